import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadSettings } from '@janus/config';
import { checkReadiness } from '@janus/observability';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, TcpProxy, testEnv, testNamespace } from '@janus/testing';
import { startRuntime, type Runtime } from './runtime.js';
import { Cluster, createRedis, Redis, redisVersionSupported } from './redis.js';

const ns = testNamespace('runtime');
const base = loadSettings(testEnv(ns));
const proxies: Record<'redis' | 'nats' | 'postgres', TcpProxy> = {} as never;
let rt: Runtime<number>;

async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await predicate()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

beforeAll(async () => {
  proxies.redis = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
  proxies.nats = await TcpProxy.start({ host: '127.0.0.1', port: 4222 });
  proxies.postgres = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
  const settings = loadSettings(
    testEnv(ns, {
      REDIS_URL: proxies.redis.url(base.redisUrl),
      NATS_URL: proxies.nats.url(base.natsServers[0] ?? ''),
      DATABASE_URL: proxies.postgres.url(base.databaseUrl),
    }),
  );
  rt = await startRuntime({ app: 'runtime-test', settings, compilePolicy: (p) => p.version, logger: pino({ level: 'silent' }) });
  await waitUntil(async () => (await checkReadiness(rt.readiness)).ready, 5_000);
});

afterAll(async () => {
  await rt.close();
  await Promise.all(Object.values(proxies).map((p) => p.close()));
  await dropRedisNamespace(base.redisUrl, ns);
  await dropNatsNamespace([...base.natsServers], ns);
  await dropPgNamespace(base.databaseUrl, ns);
});

describe('readiness tells the truth', () => {
  it.each(['redis', 'nats', 'postgres'] as const)(
    'turns 503 naming %s within 5 s of losing it, and ready again without a restart',
    async (service) => {
      await proxies[service].cut();
      const downAfter = await waitUntil(async () => (await checkReadiness(rt.readiness)).down.includes(service), 5_000);
      const report = await checkReadiness(rt.readiness);
      expect(report.ready).toBe(false);
      // losing NATS is losing JetStream too
      expect(report.down).toEqual(service === 'nats' ? ['nats', 'jetstream'] : [service]);
      expect(downAfter).toBeLessThan(5_000);

      await proxies[service].restore();
      await waitUntil(async () => (await checkReadiness(rt.readiness)).ready, 10_000);
    },
    30_000,
  );

  it('loaded the stored policy (version 0 when none is stored yet)', () => {
    expect(rt.policy.loaded).toBe(true);
    expect(rt.policy.compiled).toBe(0);
  });
});

describe('redisVersionSupported', () => {
  it('accepts Redis 7.0 and later, refuses 6.x, and says nothing without a version', () => {
    expect(redisVersionSupported('# Server\r\nredis_version:7.0.15\r\n')).toEqual({ ok: true, version: '7.0' });
    expect(redisVersionSupported('redis_version:7.4.1')).toEqual({ ok: true, version: '7.4' });
    expect(redisVersionSupported('redis_version:8.0.0')).toEqual({ ok: true, version: '8.0' });
    expect(redisVersionSupported('redis_version:6.2.14')).toEqual({ ok: false, version: '6.2' });
    expect(redisVersionSupported('no version here')).toBeUndefined();
  });
});

describe('createRedis', () => {
  it("gives ioredis a longer timeout than the limiter's 2 s, so that a late reply reaches the limiter (and a refused admission is revoked)", () => {
    const single = createRedis(loadSettings({}), 'timeout-test');
    expect(single instanceof Redis && single.options.commandTimeout).toBeGreaterThan(2_000);
    single.disconnect();
    const cluster = createRedis(loadSettings({ REDIS_URL: 'redis+cluster://127.0.0.1:1' }), 'timeout-test');
    expect(cluster instanceof Cluster && cluster.options.redisOptions?.commandTimeout).toBeGreaterThan(2_000);
    // Nothing queued while the cluster is unreachable (a command fails at once: 503).
    expect(cluster instanceof Cluster && cluster.options.enableOfflineQueue).toBe(false);
    cluster.disconnect();
  });

  it('pipelines automatically only when asked (the retry-scheduler does; the limiter coalesces on its own)', () => {
    const plain = createRedis(loadSettings({}), 'pipelining-test');
    const pipelined = createRedis(loadSettings({}), 'pipelining-test', { autoPipelining: true });
    expect(plain instanceof Redis && plain.options.enableAutoPipelining).toBe(false);
    expect(pipelined instanceof Redis && pipelined.options.enableAutoPipelining).toBe(true);
    const cluster = createRedis(loadSettings({ REDIS_URL: 'redis+cluster://127.0.0.1:1' }), 'pipelining-test', { autoPipelining: true });
    expect(cluster instanceof Cluster && cluster.options.enableAutoPipelining).toBe(true);
    for (const c of [plain, pipelined, cluster]) c.disconnect();
  });
});
