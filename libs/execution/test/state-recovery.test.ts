import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadSettings, type Settings } from '@janus/config';
import { PolicyDocument, type JobMessage, type LedgerEntry, type PolicyDocumentInput } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { Persister } from '@janus/event-store';
import { compilePolicy, Limiter, StateLost, type Admitted } from '@janus/limiter';
import { connectNats, ensureStreams, messageIds, natsNames, publishJson, type NatsConnection } from '@janus/messaging';
import { Redis } from 'ioredis';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, TcpProxy, testEnv, testNamespace, waitFor } from '@janus/testing';
import { encodeRetryContext } from '../src/retry-context.js';
import { StateRecovery, type StateRecoveryDeps } from '../src/recovery.js';

/**
 * StateRecovery against real Redis, NATS, PostgreSQL and a persister: one instance rebuilds at a
 * time, the fail-closed window stays only for what cannot be rebuilt, and what the ledger says a
 * budget used is what it uses after. Admissions are made as ingress makes them (admit, publish the
 * job message and the budget reserve).
 */
const ns = testNamespace('state_recovery');
const settings: Settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let db: DbHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;
let redis: Redis;
let persister: Persister | undefined;
const recoveries: StateRecovery[] = [];

const POLICY: PolicyDocumentInput = {
  dependencies: { db: { concurrency: 2 }, gate: { concurrency: 2 }, hold: { concurrency: 2 } },
  tenants: { acme: { budget: { limit: 100, periodMs: 3_600_000 } } },
  jobTypes: { work: { dependencies: [{ name: 'db' }], timeoutMs: 60_000 }, quick: { timeoutMs: 20_000 }, gated: { dependencies: [{ name: 'gate' }], timeoutMs: 60_000 }, held: { dependencies: [{ name: 'hold' }], timeoutMs: 60_000 } },
};
const policy = compilePolicy(PolicyDocument.parse(POLICY), 1);

function limiter(opts: { recoveryMs?: number } = {}): Limiter {
  return new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy, ...opts });
}

function recovery(l: Limiter, extra: Partial<StateRecoveryDeps> = {}): StateRecovery {
  const r = new StateRecovery({ limiter: l, db: db.db, jsm, names, registry: new Registry(), logger: pino({ level: 'silent' }), inFlightGraceMs: 200, catchUpTimeoutMs: 1_000, ...extra });
  recoveries.push(r);
  return r;
}

/** What ingress does: admit, publish the job message, then the budget reserve. */
async function submit(l: Limiter, jobType: string, cost?: number): Promise<Admitted['jobs'][number]> {
  const jobId = `j-${Math.random().toString(36).slice(2)}`;
  const result = await l.admit({
    jobs: [{ jobId, tenant: 'acme', jobType, priority: 'normal', ...(cost !== undefined ? { cost } : {}), context: encodeRetryContext({ tenant: 'acme', type: jobType, priority: 'normal', ...(cost !== undefined ? { cost } : {}) }) }],
  });
  if (result.kind !== 'admitted' || !result.jobs[0]?.lease) throw new Error(`not admitted: ${JSON.stringify(result)}`);
  const a = result.jobs[0];
  const js = jetstream(nc);
  const message: JobMessage = {
    jobId,
    type: jobType,
    tenant: 'acme',
    attempt: 1,
    priority: 'normal',
    admittedAt: new Date(a.admittedAt).toISOString(),
    lease: { id: a.lease!.id, token: a.lease!.token, expiresAt: new Date(a.lease!.expiresAt).toISOString() },
    ...(cost !== undefined ? { cost } : {}),
  };
  await publishJson(js, names.subjects.job(jobType), message, messageIds.attempt(jobId, 1));
  if (a.budgetReserved > 0) await ledger('reserve', jobId, a.budgetReserved, a.admittedAt);
  return a;
}

async function ledger(kind: LedgerEntry['kind'], jobId: string, amount: number, at = Date.now()): Promise<void> {
  const entry: LedgerEntry = { tenant: 'acme', kind, amount, jobId, attempt: 1, at: new Date(at).toISOString() };
  await publishJson(jetstream(nc), names.subjects.ledger('acme'), entry, messageIds.ledger(jobId, 1, kind));
}

async function startPersister(): Promise<void> {
  if (persister) return;
  persister = new Persister({ db: db.db, js: jetstream(nc), jsm, names, logger: pino({ level: 'silent' }), registry: new Registry(), lingerMs: 5 });
  await persister.start();
}

async function stopPersister(): Promise<void> {
  await persister?.stop();
  persister = undefined;
}

/** Redis restarted without persistence: every key of the namespace is gone. */
async function loseState(l: Limiter): Promise<void> {
  await dropRedisNamespace(settings.redisUrl, ns);
  await expect(l.admit({ jobs: [{ jobId: 'x', tenant: 'acme', jobType: 'quick', priority: 'high' }] })).rejects.toBeInstanceOf(StateLost);
}

const inFlight = async (l: Limiter) => (await l.inspect()).dependencies.db?.inFlight;

beforeAll(async () => {
  await migrate(settings);
  db = createDb(settings);
  nc = await connectNats(settings, { name: 'state-recovery-test' });
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1 });
});

afterEach(async () => {
  await Promise.all(recoveries.splice(0).map((r) => r.stop()));
});

afterAll(async () => {
  await stopPersister();
  await nc.close();
  redis.disconnect();
  await db.close();
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('StateRecovery', () => {
  it('a namespace nothing was ever admitted in opens at once', async () => {
    const l = limiter();
    expect(await recovery(l).open()).toEqual({ open: true, how: 'nothing_admitted' });
    expect(await recovery(l).open()).toEqual({ open: true, how: 'trusted' });
  });

  it('exactly one of several instances rebuilds; the others wait, and every slot is counted once', async () => {
    await startPersister();
    const l = limiter();
    await submit(l, 'work', 5);
    await submit(l, 'work', 5);
    await loseState(l);
    const instances = [limiter(), limiter(), limiter()];
    const started = Date.now();
    const openings = await Promise.all(instances.map((i) => recovery(i).open()));
    const elapsed = Date.now() - started;
    expect(openings.every((o) => o.open)).toBe(true);
    expect(openings.filter((o) => o.open && o.how === 'rebuilt')).toHaveLength(1);
    expect(openings.find((o) => o.open && o.how === 'rebuilt')).toMatchObject({ restored: { leases: 2, budgets: 1 } });
    expect(elapsed).toBeLessThan(30_000);
    expect(await inFlight(l)).toBe(2);
    expect((await l.usage('acme')).budget?.used).toBe(10);
    expect(await l.admit({ jobs: [{ jobId: 'third', tenant: 'acme', jobType: 'work', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('budgets are what the ledger says: a settle replaces its reservation, a release cancels it, an unpublished reserve counts its estimate', async () => {
    await startPersister();
    const l = limiter();
    const before = (await l.usage('acme')).budget?.used ?? 0;
    const settled = await submit(l, 'quick', 7);
    await ledger('settle', settled.jobId, 2);
    const released = await submit(l, 'quick', 11);
    await ledger('release', released.jobId, 11);
    await submit(l, 'quick', 3); // still running: its reservation stands
    // admitted and published, but the instance died before its reserve reached the ledger
    const admitted = await l.admit({ jobs: [{ jobId: 'no-reserve', tenant: 'acme', jobType: 'quick', priority: 'normal', cost: 4 }] });
    if (admitted.kind !== 'admitted') throw new Error('not admitted');
    const a = admitted.jobs[0]!;
    const message: JobMessage = { jobId: 'no-reserve', type: 'quick', tenant: 'acme', attempt: 1, priority: 'normal', admittedAt: new Date(a.admittedAt).toISOString(), cost: 4, lease: { id: a.lease!.id, token: a.lease!.token, expiresAt: new Date(a.lease!.expiresAt).toISOString() } };
    await publishJson(jetstream(nc), names.subjects.job('quick'), message, messageIds.attempt('no-reserve', 1));
    await loseState(l);
    expect(await recovery(l).open()).toMatchObject({ open: true, how: 'rebuilt' });
    // 2 (settled) + 0 (released) + 3 (running) + 4 (estimate, no ledger entry)
    expect((await l.usage('acme')).budget?.used).toBe(before + 2 + 3 + 4);
  });

  it('a job that was running when its tenant was given a budget: its settle counts in the rebuilt budget (no reserve entry)', async () => {
    await startPersister();
    const unbudgeted = compilePolicy(PolicyDocument.parse({ ...POLICY, tenants: { acme: {} } }), 1);
    const l = new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy: unbudgeted });
    const before = (await limiter().usage('acme')).budget?.used ?? 0;
    const running = await submit(l, 'quick', 9);
    expect(running.budgetReserved).toBe(0);
    l.setPolicy(compilePolicy(PolicyDocument.parse(POLICY), 2));
    expect(await l.applied()).toMatchObject({ attach: { ok: true, budgets: 1 } });
    expect((await l.usage('acme')).budget?.used).toBe(before + 9);
    // the worker reports 5: settle charges it, and the settle entry is what the ledger keeps
    const settled = await l.settle(running.lease!.token, 'succeeded', 5);
    expect(settled).toMatchObject({ ok: true, lease: { reserved: 9, actual: 5 } });
    await ledger('settle', running.jobId, 5);
    expect((await l.usage('acme')).budget?.used).toBe(before + 5);
    await loseState(l);
    expect(await recovery(l).open()).toMatchObject({ open: true, how: 'rebuilt' });
    expect((await l.usage('acme')).budget?.used).toBe(before + 5);
  });

  it('the persister behind: admission stays closed, and opens by a rebuild once it has caught up', async () => {
    await stopPersister();
    const l = limiter();
    const running = await submit(l, 'quick');
    await loseState(l);
    const r = recovery(l);
    const closed = await r.open(1_500);
    expect(closed).toMatchObject({ open: false, why: expect.stringMatching(/persister has \d+ message\(s\) of .* not yet stored/) });
    expect(await r.readiness.check()).toBe(false);
    await expect(l.admit({ jobs: [{ jobId: 'y', tenant: 'acme', jobType: 'quick', priority: 'high' }] })).rejects.toBeInstanceOf(StateLost);
    await startPersister();
    expect(await r.open()).toMatchObject({ open: true, how: 'rebuilt' });
    expect(await r.readiness.check()).toBe(true);
    expect(await l.leaseState(running.lease!.token)).toMatchObject({ ok: true, lease: { jobId: running.jobId } });
  });

  it('no persister runs: the rebuilding instance stores what is in the streams itself, and rebuilds (running jobs keep their slots)', async () => {
    await stopPersister();
    const l = limiter();
    const running = [await submit(l, 'held'), await submit(l, 'held')];
    await loseState(l);
    const r = recovery(l, { js: jetstream(nc), helpAfterMs: 300, catchUpTimeoutMs: 15_000 });
    expect(await r.open()).toMatchObject({ open: true, how: 'rebuilt' });
    for (const job of running) expect(await l.leaseState(job.lease!.token)).toMatchObject({ ok: true, lease: { jobId: job.jobId } });
    expect(await l.admit({ jobs: [{ jobId: 'over-held', tenant: 'acme', jobType: 'held', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('PostgreSQL unreachable: admission reopens only once the fail-closed window (the longest timeout) has passed', async () => {
    await startPersister();
    // the fail-closed window: 1.5 s here (by default the policy's longest timeout)
    const l = limiter({ recoveryMs: 1_500 });
    await submit(l, 'quick');
    const pgUrl = new URL(settings.databaseUrl);
    const proxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const unreachable = createDb({ databaseUrl: proxy.url(settings.databaseUrl), namespace: ns });
    try {
      await proxy.cut();
      await loseState(l);
      const lostAt = Date.now();
      const r = recovery(l, { db: unreachable.db });
      expect(await r.open(200)).toMatchObject({ open: false, why: expect.stringMatching(/PostgreSQL could not be read/) });
      expect(await r.open(20_000)).toEqual({ open: true, how: 'fail_closed_window' });
      expect(Date.now() - lostAt).toBeGreaterThanOrEqual(1_500);
    } finally {
      await unreachable.close();
      await proxy.close();
    }
  });

  it('watch() finds a loss under a running app and rebuilds it in the background', async () => {
    await startPersister();
    const l = limiter();
    const r = recovery(l, { pollMs: 100 });
    expect((await r.open()).open).toBe(true);
    r.watch();
    const lease = await submit(l, 'quick');
    await dropRedisNamespace(settings.redisUrl, ns);
    await waitFor(async () => !(await r.readiness.check()), 5_000, 20);
    await waitFor(() => r.readiness.check(), 15_000, 50);
    expect(await l.leaseState(lease.lease!.token)).toMatchObject({ ok: true, lease: { state: 'active' } });
  });

  it('a jobs stream created again empty while PostgreSQL records running attempts: rebuilt from them, not opened as a new namespace', async () => {
    await startPersister();
    const l = limiter();
    const running = [await submit(l, 'gated'), await submit(l, 'gated')];
    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM attempts WHERE job_id = ANY($1)`, [running.map((r) => r.jobId)])).rowCount === 2, 10_000, 50);
    await jsm.streams.delete(names.streams.jobs);
    await ensureStreams(jsm, names);
    await loseState(l);
    const opening = await recovery(l).open();
    expect(opening).toMatchObject({ open: true, how: 'rebuilt' });
    // The two running jobs hold the dependency's two slots: a third is refused (opened as a new
    // namespace it was admitted, over the limit).
    expect(await l.admit({ jobs: [{ jobId: 'over', tenant: 'acme', jobType: 'gated', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('a large durable record (5,000 live leases, 20,000 idempotency keys) is rebuilt well within 30 s', async () => {
    await startPersister();
    const l = limiter();
    await submit(l, 'quick');
    const n = 5_000;
    const keys = 20_000;
    const expires = new Date(Date.now() + 60_000).toISOString();
    const admitted = new Date().toISOString();
    await db.pool.query(
      `INSERT INTO jobs (job_id, tenant, type, priority, status, payload, created_at, updated_at)
       SELECT 'bulk-' || i, 'acme', 'quick', 'normal', 'admitted', '{"i": 1}'::jsonb, $1::timestamptz, now() FROM generate_series(1, $2::int) i`,
      [admitted, n],
    );
    await db.pool.query(
      `INSERT INTO attempts (job_id, attempt, admitted_at, lease_id, lease_expires_at)
       SELECT 'bulk-' || i, 1, $1::timestamptz, 'bulkcall_' || i, $2::timestamptz FROM generate_series(1, $3::int) i`,
      [admitted, expires, n],
    );
    await db.pool.query(
      `INSERT INTO idempotency_keys (tenant, key, position, batch_size, job_id, fingerprint, admitted_at, expires_at)
       SELECT 'acme', 'key-' || i, 0, NULL, 'bulk-' || (i % $1::int + 1), 'fp', $2::timestamptz, $3::timestamptz FROM generate_series(1, $4::int) i`,
      [n, admitted, expires, keys],
    );
    await loseState(l);
    const started = Date.now();
    const opening = await recovery(l).open();
    const ms = Date.now() - started;
    console.log(`rebuild of ${n} leases and ${keys} idempotency keys: ${ms} ms (in-flight wait 200 ms included)`);
    expect(opening).toMatchObject({ open: true, how: 'rebuilt', restored: { leases: expect.any(Number), idempotencyKeys: keys } });
    expect(opening.open && opening.restored!.leases).toBeGreaterThanOrEqual(n);
    expect(ms).toBeLessThan(10_000);
    expect((await l.inspect()).global.inFlight).toBeGreaterThanOrEqual(n);
  }, 60_000);
});
