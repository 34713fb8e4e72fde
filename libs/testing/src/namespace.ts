import { randomBytes } from 'node:crypto';
import { TEST_SECRETS } from './secrets.js';

/**
 * A fresh namespace for one test file, so that test files can run in parallel against one
 * Redis, NATS and PostgreSQL without seeing each other. Matches the JANUS_NAMESPACE pattern.
 */
export function testNamespace(label: string): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 20);
  return `t_${clean}_${randomBytes(4).toString('hex')}`;
}

/**
 * Environment for a test file: the real local services, its own namespace. `JANUS_TEST_LOG_LEVEL`
 * (set by `npm test`, with `JANUS_LOG_FILE`) overrides every test's log level, so that the secret
 * scan after the run reads every line the apps can write.
 */
export function testEnv(namespace: string, extra: Record<string, string> = {}): Record<string, string> {
  const forcedLevel = process.env.JANUS_TEST_LOG_LEVEL;
  return {
    NODE_ENV: 'test',
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
    DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/janus',
    JANUS_NAMESPACE: namespace,
    JANUS_SIGNING_KEY: TEST_SECRETS.signingKey,
    JANUS_ADMIN_TOKEN: TEST_SECRETS.adminToken,
    LOG_LEVEL: 'silent',
    ...extra,
    ...(forcedLevel ? { LOG_LEVEL: forcedLevel } : {}),
  };
}
