// Every app starts while NATS or PostgreSQL cannot be reached (CONTRACT §1): it serves /healthz,
// /readyz (503 naming what is down) and /metrics at once, keeps connecting in the background, and
// finishes starting when the service answers — without a restart. Each app is a real child process
// (apps/<app>/src/main.ts); the service sits behind a TCP proxy that is closed at start and opened later.
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { apiKeys, createDb, migrate } from '@janus/db';
import { connectNats, natsNames } from '@janus/messaging';
import { generateApiKey, PolicyStore } from '@janus/policy';
import {
  dropNatsNamespace,
  dropPgNamespace,
  dropRedisNamespace,
  startAppProcess,
  TcpProxy,
  testEnv,
  testNamespace,
  TEST_SECRETS,
  waitFor,
  type AppName,
  type AppProcess,
} from '@janus/testing';

const ns = testNamespace('start_down');
const env = testEnv(ns, { LOG_LEVEL: 'info', JANUS_LOG_FORMAT: 'json' });
const settings = loadSettings(env);
const names = natsNames(ns);
const APPS: readonly AppName[] = ['ingress', 'policy-admin', 'persister', 'retry-scheduler'];
const TARGETS = { nats: { host: '127.0.0.1', port: 4222 }, postgres: { host: '127.0.0.1', port: 5432 } } as const;
const running = new Set<AppProcess>();
const proxies = new Set<TcpProxy>();
let apiKey: string;

/** A proxy in front of `service` that refuses connections until `restore()`, and the env pointing at it. */
async function closedProxy(service: keyof typeof TARGETS): Promise<{ proxy: TcpProxy; env: Record<string, string> }> {
  const proxy = await TcpProxy.start(TARGETS[service]);
  proxies.add(proxy);
  await proxy.cut();
  const variable = service === 'nats' ? 'NATS_URL' : 'DATABASE_URL';
  return { proxy, env: { [variable]: proxy.url(service === 'nats' ? (settings.natsServers[0] ?? '') : settings.databaseUrl) } };
}

async function start(app: AppName, extra: Record<string, string>): Promise<AppProcess> {
  const p = await startAppProcess(app, { ...env, ...extra }, { until: 'healthy', readyTimeoutMs: 30_000 });
  running.add(p);
  return p;
}

async function readyz(p: AppProcess): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${p.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function stop(p: AppProcess): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  const { code } = await p.kill('SIGTERM');
  running.delete(p);
  return { code, ms: Date.now() - t0 };
}

/** What "the app works" means for each app, once ready. */
const works: Record<AppName, (p: AppProcess) => Promise<void>> = {
  ingress: async (p) => {
    const res = await fetch(`${p.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'send' }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    expect(await res.json()).toMatchObject({ status: 'admitted' });
  },
  'policy-admin': async (p) => {
    const res = await fetch(`${p.url}/v1/policy`, { headers: { authorization: `Bearer ${TEST_SECRETS.adminToken}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ jobTypes: { send: {} } });
  },
  // Ready means its consumers run; they exist on the server.
  persister: async () => expect(await consumerExists(names.streams.jobs, names.consumers.persisterJobs)).toBe(true),
  'retry-scheduler': async () => {
    expect(await consumerExists(names.streams.outcomes, names.consumers.schedulerOutcomes)).toBe(true);
    expect(await consumerExists(names.streams.jobs, names.consumers.workers('send'))).toBe(true);
  },
};

async function consumerExists(stream: string, consumer: string): Promise<boolean> {
  const nc = await connectNats(settings, { name: 'start-unreachable-test' });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.consumers.info(stream, consumer).catch(() => undefined)) !== undefined;
  } finally {
    await nc.close();
  }
}

beforeAll(async () => {
  await migrate(settings);
  const db = createDb(settings);
  try {
    const doc = PolicyDocument.parse({ dependencies: { api: { concurrency: 100 } }, tenants: { acme: {} }, jobTypes: { send: { dependencies: [{ name: 'api' }] } } });
    const saved = await new PolicyStore(db.db).update(() => doc, { actor: 'test', action: 'seed' });
    if (!saved.ok) throw new Error('seeding the policy failed');
    const key = generateApiKey();
    await db.db.insert(apiKeys).values({ keyId: key.keyId, tenant: 'acme', keyHash: key.keyHash });
    apiKey = key.key;
  } finally {
    await db.close();
  }
});

afterAll(async () => {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
  await Promise.all([...proxies].map((p) => p.close()));
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
}, 30_000);

describe.concurrent('an app started while a service cannot be reached', () => {
  it.each(APPS.flatMap((app) => (['nats', 'postgres'] as const).map((service) => [app, service] as const)))(
    '%s with %s down: healthz 200, readyz 503 naming it, then ready and working once it answers',
    async (app, service) => {
      const { proxy, env: extra } = await closedProxy(service);
      const p = await start(app, extra);

      expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
      const down = await readyz(p);
      expect(down.status).toBe(503);
      expect(down.body.down).toContain(service);
      expect(String(down.body.reason)).toContain(service);
      const metrics = await fetch(`${p.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('process_cpu');
      // Nothing is taken before the app has started.
      if (app === 'ingress') {
        const res = await fetch(`${p.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'send' }) });
        expect(res.status).toBe(503);
        expect(res.headers.get('content-type')).toContain('application/problem+json');
        expect(((await res.json()) as { type: string }).type).toBe('https://janus.dev/problems/service-unavailable');
      }

      await proxy.restore();
      await waitFor(async () => (await readyz(p)).status === 200, 15_000, 100);
      await works[app](p);
      // One line per failed try, without a stack trace (nor a raw one from a crash).
      const tries = p.output().split('\n').filter((line) => line.includes(`"${service} not reachable yet; retrying"`));
      expect(tries.length).toBeGreaterThan(0);
      expect(tries.filter((line) => line.includes('"stack"'))).toEqual([]);
      expect(p.output()).not.toMatch(/\n\s+at .*:\d+:\d+\)?\n/);

      const stopped = await stop(p);
      expect(stopped.code).toBe(0);
    },
    60_000,
  );

  it.each(APPS)('%s stops cleanly and promptly on SIGTERM while it still waits for NATS and PostgreSQL', async (app) => {
    const nats = await closedProxy('nats');
    const postgres = await closedProxy('postgres');
    const p = await start(app, { ...nats.env, ...postgres.env });
    expect((await readyz(p)).body.down).toEqual(expect.arrayContaining(['nats', 'postgres']));
    const stopped = await stop(p);
    expect(stopped.code, p.output()).toBe(0);
    expect(stopped.ms).toBeLessThan(3_000);
  }, 60_000);
});
