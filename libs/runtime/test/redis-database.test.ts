// REDIS_URL may name a database (`redis://host:port/<db>`). One the server does not have must not
// quietly become database 0 (ioredis goes on there when its SELECT fails): the app stays unready,
// naming REDIS_URL. A real ingress process against the real Redis (16 databases by default).
import { afterAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, testEnv, testNamespace, type AppProcess } from '@janus/testing';

const ns = testNamespace('redis_db');
const env = testEnv(ns, { LOG_LEVEL: 'info', JANUS_LOG_FORMAT: 'json' });
const settings = loadSettings(env);
const running: AppProcess[] = [];

afterAll(async () => {
  await Promise.all(running.map((p) => p.kill('SIGTERM')));
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropRedisNamespace('redis://127.0.0.1:6379/2', ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('REDIS_URL with a database', () => {
  it('a database the server does not have: unready, naming REDIS_URL (not database 0)', async () => {
    const app = await startAppProcess('ingress', { ...env, REDIS_URL: 'redis://127.0.0.1:6379/999' }, { until: 'healthy', readyTimeoutMs: 30_000 });
    running.push(app);
    await expect.poll(() => app.output().includes('REDIS_URL names a database this Redis does not have'), { timeout: 15_000 }).toBe(true);
    const res = await fetch(`${app.url}/readyz`);
    expect(res.status).toBe(503);
    expect(JSON.stringify(await res.json())).toContain('redis');
  }, 60_000);

  it('a database it has: ready', async () => {
    const app = await startAppProcess('ingress', { ...env, REDIS_URL: 'redis://127.0.0.1:6379/2' }, { until: 'ready', readyTimeoutMs: 30_000 });
    running.push(app);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
    expect(app.output()).not.toContain('does not have');
  }, 60_000);
});
