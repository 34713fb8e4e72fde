/**
 * A tenant shard (libs/limiter src/shards.ts) that loses its state is rebuilt from the durable
 * record like the namespace's slot: its tenants' running jobs keep their slots (an extended one
 * and an extended one alike) and their budget keeps
 * what the ledger says was used — while the namespace's slot and the other shards never close.
 * Real Redis, NATS, PostgreSQL and a persister; admissions made as ingress makes them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadSettings, type Settings } from '@janus/config';
import { PolicyDocument, type JobMessage, type LedgerEntry } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { Persister } from '@janus/event-store';
import { compilePolicy, Limiter, shardTag, StateLost, tenantShardOf } from '@janus/limiter';
import { connectNats, ensureStreams, messageIds, natsNames, publishJson, type NatsConnection } from '@janus/messaging';
import { Redis } from 'ioredis';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, testEnv, testNamespace } from '@janus/testing';
import { encodeRetryContext } from '../src/retry-context.js';
import { StateRecovery } from '../src/recovery.js';

const ns = testNamespace('shard_recovery');
const settings: Settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
const SHARDS = 2;
/** Two tenants in different shards. */
const [LOST, KEPT] = ((): [string, string] => {
  const byShard = new Map<number, string>();
  for (let i = 0; byShard.size < SHARDS; i++) byShard.set(tenantShardOf(`t${i}`, SHARDS), byShard.get(tenantShardOf(`t${i}`, SHARDS)) ?? `t${i}`);
  return [byShard.get(0)!, byShard.get(1)!];
})();
const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: { db: {} },
    tenants: { [LOST]: { concurrency: 2, budget: { limit: 100, periodMs: 3_600_000 } }, [KEPT]: { concurrency: 5 } },
    // the fail-closed window a lost shard kept before it was rebuilt: the longest timeout
    jobTypes: { work: { dependencies: [{ name: 'db' }], timeoutMs: 60_000 } },
  }),
  1,
);

let db: DbHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;
let redis: Redis;
let persister: Persister;
let recovery: StateRecovery | undefined;

const limiter = () => new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy, tenantShards: SHARDS });

/** What ingress does: admit, publish the job message, then the budget reserve. */
async function submit(l: Limiter, tenant: string, cost: number): Promise<{ jobId: string; token: string }> {
  const jobId = `j-${Math.random().toString(36).slice(2)}`;
  const result = await l.admit({ jobs: [{ jobId, tenant, jobType: 'work', priority: 'normal', cost, context: encodeRetryContext({ tenant, type: 'work', priority: 'normal', cost }) }] });
  if (result.kind !== 'admitted' || !result.jobs[0]?.lease) throw new Error(`not admitted: ${JSON.stringify(result)}`);
  const a = result.jobs[0];
  const lease = a.lease!;
  const message: JobMessage = { jobId, type: 'work', tenant, attempt: 1, priority: 'normal', admittedAt: new Date(a.admittedAt).toISOString(), cost, lease: { id: lease.id, token: lease.token, expiresAt: new Date(lease.expiresAt).toISOString() } };
  await publishJson(jetstream(nc), names.subjects.job('work'), message, messageIds.attempt(jobId, 1));
  if (a.budgetReserved > 0) {
    const entry: LedgerEntry = { tenant, kind: 'reserve', amount: a.budgetReserved, jobId, attempt: 1, at: new Date(a.admittedAt).toISOString() };
    await publishJson(jetstream(nc), names.subjects.ledger(tenant), entry, messageIds.ledger(jobId, 1, 'reserve'));
  }
  await l.confirm({ jobs: [{ jobId, tenant, jobType: 'work', priority: 'normal', cost }] }, result);
  return { jobId, token: lease.token };
}

beforeAll(async () => {
  await migrate(settings);
  db = createDb(settings);
  nc = await connectNats(settings, { name: 'shard-recovery-test' });
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1 });
  persister = new Persister({ db: db.db, js: jetstream(nc), jsm, names, logger: pino({ level: 'silent' }), registry: new Registry(), lingerMs: 5 });
  await persister.start();
});

afterAll(async () => {
  await recovery?.stop();
  await persister.stop();
  await nc.close();
  redis.disconnect();
  await db.close();
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('a tenant shard that loses its state', () => {
  it("is rebuilt from the durable record: its tenant's running jobs keep their slots and its budget what it used; the rest never closes", async () => {
    const l = limiter();
    recovery = new StateRecovery({ limiter: l, db: db.db, jsm, names, registry: new Registry(), logger: pino({ level: 'silent' }), inFlightGraceMs: 200, catchUpTimeoutMs: 2_000, pollMs: 200 });
    expect(await recovery.open()).toMatchObject({ open: true });
    recovery.watch();
    await submit(l, LOST, 10);
    await submit(l, LOST, 20);
    expect(await l.admit({ jobs: [{ jobId: 'third', tenant: LOST, jobType: 'work', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });

    // the shard's primary comes back empty
    const lost = await redis.keys(`${ns}:{${shardTag(ns, tenantShardOf(LOST, SHARDS))}}:*`);
    expect(lost.length).toBeGreaterThan(0);
    await redis.del(...lost);
    await expect(l.admit({ jobs: [{ jobId: 'during', tenant: LOST, jobType: 'work', priority: 'high' }] })).rejects.toBeInstanceOf(StateLost);
    // the other shard's tenant and the namespace's slot admit throughout
    await submit(l, KEPT, 1);

    // rebuilt well within the fail-closed window (60 s) that was all a lost shard had before
    const seenAt = Date.now();
    await expect
      .poll(async () => (await l.admit({ jobs: [{ jobId: `after-${Math.random()}`, tenant: LOST, jobType: 'work', priority: 'high' }] }).catch((e: unknown) => e)) instanceof StateLost, { timeout: 30_000, interval: 250 })
      .toBe(false);
    const after = await l.admit({ jobs: [{ jobId: 'after', tenant: LOST, jobType: 'work', priority: 'high' }] });
    expect(after).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
    expect((await l.usage(LOST)).budget?.used).toBe(30);
    expect(Date.now() - seenAt).toBeLessThan(30_000);
  }, 60_000);
});
