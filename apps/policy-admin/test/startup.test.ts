import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@janus/config';
import { resolveAdminToken } from '../src/admin-token.js';

const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsx = path.resolve(appDir, '../../node_modules/.bin/tsx');

function run(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(tsx, ['src/main.ts'], { cwd: appDir, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('admin token (CONTRACT §1)', () => {
  it('uses JANUS_ADMIN_TOKEN when set, generates one only in development, refuses otherwise', () => {
    expect(resolveAdminToken({ adminToken: 'x'.repeat(32), nodeEnv: 'production' })).toEqual({ token: 'x'.repeat(32), generated: false });
    const dev = resolveAdminToken({ adminToken: undefined, nodeEnv: 'development' });
    expect(dev.generated).toBe(true);
    expect(dev.token.length).toBeGreaterThanOrEqual(32);
    expect(resolveAdminToken({ adminToken: undefined, nodeEnv: 'development' }).token).not.toBe(dev.token);
    for (const nodeEnv of ['production', 'test'] as const) {
      expect(() => resolveAdminToken({ adminToken: undefined, nodeEnv })).toThrow(ConfigError);
      expect(() => resolveAdminToken({ adminToken: undefined, nodeEnv })).toThrow(/JANUS_ADMIN_TOKEN/);
    }
  });

  it('a production start without the token exits non-zero naming JANUS_ADMIN_TOKEN, before connecting to anything', async () => {
    const { code, stderr } = await run({ NODE_ENV: 'production', JANUS_SIGNING_KEY: 'k'.repeat(40), JANUS_NAMESPACE: 'never_used_ns', REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(1);
    expect(stderr).toContain('JANUS_ADMIN_TOKEN');
  });

  it('a production start with a token under 32 characters exits non-zero naming JANUS_ADMIN_TOKEN, never echoing it', async () => {
    const token = 'short-prod-token-0123'; // 21 characters: enough in development, not in production
    const { code, stderr } = await run({ NODE_ENV: 'production', JANUS_ADMIN_TOKEN: token, JANUS_SIGNING_KEY: 'k'.repeat(40), JANUS_NAMESPACE: 'never_used_ns', REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(1);
    expect(stderr).toContain('JANUS_ADMIN_TOKEN: must be at least 32 characters when NODE_ENV=production');
    expect(stderr).not.toContain(token);
  });
});
