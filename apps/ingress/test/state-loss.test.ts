import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Redis } from 'ioredis';
import { loadSettings } from '@janus/config';
import { Persister } from '@janus/event-store';
import { serveLeaseExtensions } from '@janus/execution';
import { connectNats, natsNames, type NatsConnection } from '@janus/messaging';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { createKey, json, setPolicy, start, storedMessages, waitFor } from './helpers.js';

/**
 * CONTRACT §6.5: "If Redis loses its state, Janus rebuilds what it needs from its durable record and
 * admits again within 30 s, without exceeding any limit held by jobs admitted before the loss."
 *
 * Through the real path: ingress (which watches the state and rebuilds it), the persister, lease
 * extensions served as the scheduler serves them; Redis is a redis-server of this test's own, so
 * that it can lose its state twice: its keys deleted (a flush), then the server restarted without
 * persistence under the running apps.
 */
const ns = testNamespace('ingress-state-loss');
let redisPort: number;
let redisServer: ChildProcess | undefined;
let settings: ReturnType<typeof loadSettings>;
let ingress: Ingress;
let persister: Persister;
let nc: NatsConnection;
let acme: string;
let beta: string;
const names = natsNames(ns);
/** How long admission stayed closed, per loss (ms): printed for the record. */
const measured: Record<string, number> = {};

async function startRedis(): Promise<void> {
  const child = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  redisServer = child;
  await waitFor(async () => {
    const probe = new Redis(redisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      return (await probe.connect().then(() => probe.ping()).catch(() => undefined)) === 'PONG';
    } finally {
      probe.disconnect();
    }
  }, 10_000, 50);
}

async function stopRedis(): Promise<void> {
  const child = redisServer;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

const POLICY = {
  dependencies: { db: { concurrency: 2 }, db2: { concurrency: 2 }, fast: { rate: { limit: 60, periodMs: 60_000 } }, slid: { rate: { limit: 3, periodMs: 120_000, kind: 'window' as const } } },
  tenants: { acme: { budget: { limit: 10, periodMs: 3_600_000 } }, beta: {} },
  jobTypes: {
    // its workers extend their leases: a 3 s timeout, extended to a minute
    work: { dependencies: [{ name: 'db' }], timeoutMs: 3_000 },
    long: { dependencies: [{ name: 'db2' }], timeoutMs: 60_000 },
    ping: { dependencies: [{ name: 'fast' }] },
    wping: { dependencies: [{ name: 'slid' }] },
    probe: {},
  },
};

const post = (path: string, key: string, body: unknown, headers: Record<string, string> = {}) =>
  ingress.app.request(path, json(body, { authorization: `Bearer ${key}`, ...headers }));

/** The lease a worker got with job `jobId` (from its job message). */
async function leaseOf(type: string, jobId: string): Promise<{ id: string; token: string }> {
  const message = await waitFor(async () => (await storedMessages(ingress, names.streams.jobs, names.subjects.job(type))).find((m) => m.body.jobId === jobId), 5_000);
  return message.body.lease as { id: string; token: string };
}

/** What a worker does when it is done: reports success with its lease token. */
const succeed = (jobId: string, token: string) => post(`/v1/jobs/${jobId}/outcome`, token, { jobId, attempt: 1, leaseToken: token, outcome: 'succeeded' });

/** Waits until the persister has stored every admitted attempt and extension (what a rebuild reads). */
async function persisted(): Promise<void> {
  await waitFor(async () => {
    for (const [stream, consumer] of [
      [names.streams.jobs, names.consumers.persisterJobs],
      [names.streams.ledger, names.consumers.persisterLedger],
      [names.streams.extensions, names.consumers.persisterExtensions],
    ] as const) {
      const info = await ingress.runtime.jsm.consumers.info(stream, consumer).catch(() => undefined);
      if (info && info.num_pending + info.num_ack_pending > 0) return false;
    }
    return true;
  }, 10_000, 50);
}

/** Submits probes (a job type without limits, a tenant without budget) until one is admitted; returns ms since `since`. */
async function reopenedAfter(since: number): Promise<number> {
  let closed = 0;
  await waitFor(async () => {
    const res = await post('/v1/jobs', beta, { type: 'probe' });
    if (res.status === 503) {
      closed += 1;
      const retryAfter = Number(res.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(5);
    } else expect(res.status).toBe(202);
    return res.status === 202;
  }, 40_000, 100);
  expect(closed).toBeGreaterThan(0); // it was closed: the loss was seen
  return Date.now() - since;
}

const readyz = async () => (await ingress.app.request('/readyz')).status;

beforeAll(async () => {
  redisPort = await freePort();
  await startRedis();
  settings = loadSettings(testEnv(ns, { REDIS_URL: `redis://127.0.0.1:${redisPort}` }));
  ingress = await start(ns, { REDIS_URL: settings.redisUrl });
  await setPolicy([ingress], POLICY);
  acme = (await createKey([ingress], 'acme')).key;
  beta = (await createKey([ingress], 'beta')).key;
  nc = await connectNats(settings, { name: 'state-loss-test' });
  persister = new Persister({ db: ingress.runtime.db.db, js: jetstream(nc), jsm: ingress.runtime.jsm, names, logger: pino({ level: 'silent' }), registry: new Registry(), lingerMs: 5 });
  await persister.start();
}, 60_000);

afterAll(async () => {
  console.log(`state loss → admission reopened (ms): ${JSON.stringify(measured)}`);
  await ingress?.close();
  await persister?.stop();
  await nc?.close();
  await stopRedis(); // this test's own Redis: its state goes with it
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('Redis loses its state (its keys deleted)', () => {
  it('admits again within 30 s; running jobs keep their slots (extended leases too), budgets and idempotency keys hold, buckets restart empty', async () => {
    // Two jobs run on a concurrency-2 dependency; their workers extended their 3 s leases to a minute.
    const first = await post('/v1/jobs', acme, { type: 'work', cost: 3 }, { 'idempotency-key': 'order-1' });
    expect(first.status).toBe(202);
    const firstBody = (await first.json()) as { jobId: string };
    const second = await post('/v1/jobs', acme, { type: 'work', cost: 3 });
    expect(second.status).toBe(202);
    const secondId = ((await second.json()) as { jobId: string }).jobId;
    expect((await post('/v1/jobs', acme, { type: 'work', cost: 1 })).status).toBe(429); // the limit is real
    const extensions = serveLeaseExtensions(nc, jetstream(nc), names, ingress.limiter);
    const leases = [await leaseOf('work', firstBody.jobId), await leaseOf('work', secondId)];
    try {
      for (const lease of leases) {
        const reply = (await nc.request(names.subjects.leaseExtend, JSON.stringify({ leaseToken: lease.token, ms: 60_000 }), { timeout: 2_000 })).json<{ ok: boolean }>();
        expect(reply.ok).toBe(true);
      }
    } finally {
      extensions.unsubscribe();
    }
    // a batch under its own key, one of its jobs under a key of its own
    const batch = await post('/v1/jobs/batch', beta, { jobs: [{ type: 'probe', idempotencyKey: 'in-batch' }, { type: 'probe', payload: { n: 2 } }] }, { 'idempotency-key': 'batch-1' });
    expect(batch.status).toBe(202);
    const batchBody = (await batch.json()) as object;
    // a sliding window of 3 per 2 minutes, used up
    for (let i = 0; i < 3; i++) expect((await post('/v1/jobs', beta, { type: 'wping' })).status).toBe(202);
    expect((await post('/v1/jobs', beta, { type: 'wping' })).status).toBe(429);
    await persisted();
    expect((await (await post('/v1/jobs', acme, { type: 'work', cost: 3 }, { 'idempotency-key': 'order-1' })).json()) as object).toMatchObject({ jobId: firstBody.jobId, duplicate: true });

    const lostAt = Date.now();
    await dropRedisNamespace(settings.redisUrl, ns);
    expect(await readyz()).toBe(503);
    measured.keysDeleted = await reopenedAfter(lostAt);
    expect(measured.keysDeleted).toBeLessThan(30_000);
    expect(await readyz()).toBe(200);
    // Past the 3 s timeout: only the durable extension keeps the two jobs' slots.
    expect(Date.now() - lostAt).toBeGreaterThan(3_000);

    // The two running jobs still hold their slots.
    const third = await post('/v1/jobs', acme, { type: 'work', cost: 1 });
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({ reason: 'dependency_concurrency' });
    // One reports success with its original lease token: that frees its slot.
    expect((await succeed(firstBody.jobId, leases[0]!.token)).status).toBe(204);
    expect((await post('/v1/jobs', acme, { type: 'work', cost: 1 })).status).toBe(202);
    expect((await post('/v1/jobs', acme, { type: 'work', cost: 1 })).status).toBe(429);

    // The budget used before the loss (3 + 3, then 1 now) is still used: 3 more would pass 10.
    const budget = await post('/v1/jobs', acme, { type: 'probe', cost: 4 });
    expect(budget.status).toBe(429);
    expect(await budget.json()).toMatchObject({ reason: 'budget_exhausted' });
    expect((await post('/v1/jobs', acme, { type: 'probe', cost: 3 })).status).toBe(202);

    // The idempotency key used before the loss still answers with the first answer.
    const again = await post('/v1/jobs', acme, { type: 'work', cost: 3 }, { 'idempotency-key': 'order-1' });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ jobId: firstBody.jobId, status: 'admitted', attempt: 1, duplicate: true });
    // … and still knows the request it answered: the same key with another request is refused
    expect((await post('/v1/jobs', acme, { type: 'work', cost: 2 }, { 'idempotency-key': 'order-1' })).status).toBe(422);
    // The batch replays its whole first answer; the key of its first job answers on its own.
    const batchAgain = await post('/v1/jobs/batch', beta, { jobs: [{ type: 'probe', idempotencyKey: 'in-batch' }, { type: 'probe', payload: { n: 2 } }] }, { 'idempotency-key': 'batch-1' });
    expect(batchAgain.status).toBe(200);
    expect(await batchAgain.json()).toEqual({ ...batchBody, duplicate: true });
    const inBatch = await post('/v1/jobs', beta, { type: 'probe', idempotencyKey: 'in-batch' });
    expect(inBatch.status).toBe(200);
    expect(await inBatch.json()).toMatchObject({ jobId: (batchBody as { jobs: { jobId: string }[] }).jobs[0]!.jobId, duplicate: true });

    // Rate buckets restart empty: the 60/min bucket (full before the loss) admits about one a second, not a burst of 10.
    const burst = await Promise.all(Array.from({ length: 10 }, () => post('/v1/jobs', beta, { type: 'ping' })));
    const admitted = burst.filter((r) => r.status === 202).length;
    expect(admitted).toBeLessThanOrEqual(2);
    expect(await burst.find((r) => r.status === 429)?.json()).toMatchObject({ reason: 'dependency_rate' });

    // The sliding window still holds the three admitted before the loss (from the durable record).
    const overWindow = await post('/v1/jobs', beta, { type: 'wping' });
    expect(overWindow.status).toBe(429);
    expect(await overWindow.json()).toMatchObject({ reason: 'dependency_rate' });

    const metrics = await (await ingress.app.request('/metrics')).text();
    expect(metrics).toMatch(/janus_state_rebuilds_total\{result="rebuilt",app="ingress"\} 1/);
    expect(metrics).toMatch(/janus_state_restored\{what="leases",app="ingress"\} [1-9]/);
    expect(metrics).toMatch(/janus_state_restored\{what="windows",app="ingress"\} [1-9]/);
  }, 90_000);
});

describe('Redis restarts without its data under the running apps', () => {
  it('admits again within 30 s of Redis being back; the running jobs keep their slots until they report', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await post('/v1/jobs', beta, { type: 'long' });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { jobId: string }).jobId);
    }
    const leases = await Promise.all(ids.map((id) => leaseOf('long', id)));
    await persisted();

    await stopRedis();
    await startRedis();
    const backAt = Date.now();
    measured.serverRestarted = await reopenedAfter(backAt);
    expect(measured.serverRestarted).toBeLessThan(30_000);

    expect(await (await post('/v1/jobs', beta, { type: 'long' })).json()).toMatchObject({ status: 'rejected', reason: 'dependency_concurrency' });
    expect((await succeed(ids[1]!, leases[1]!.token)).status).toBe(204);
    expect((await post('/v1/jobs', beta, { type: 'long' })).status).toBe(202);
    expect((await post('/v1/jobs', beta, { type: 'long' })).status).toBe(429);
    expect((await succeed(ids[0]!, leases[0]!.token)).status).toBe(204);
    expect((await succeed(ids[0]!, leases[0]!.token)).status).toBe(409);
  }, 90_000);
});
