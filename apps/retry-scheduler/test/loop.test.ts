import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { loadSettings } from '@janus/config';
import { DeadLetter, OutcomeEvent, type JobMessage, type PolicyDocumentInput } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { encodeRetryContext } from '@janus/execution';
import { connectNats, messageIds, natsNames, publishJson, type NatsConnection } from '@janus/messaging';
import { PolicyStore, announceConfigChange } from '@janus/policy';
import { createRedis } from '@janus/runtime';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, testEnv, testNamespace } from '@janus/testing';
import { startWorker, type JobHandler } from '@janus/worker-sdk';
import { Limiter, compilePolicy } from '@janus/limiter';
import { startScheduler, type Scheduler } from '../src/scheduler.js';

const ns = testNamespace('scheduler');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 5 }, metered: { costRate: { limit: 1000, periodMs: 1000, burst: 100 } } },
  tenants: { acme: {} },
  jobTypes: {
    flaky: { dependencies: [{ name: 'api' }], timeoutMs: 800, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
    capped: { dependencies: [{ name: 'metered', cost: 50 }], timeoutMs: 5000, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
  },
};

let scheduler: Scheduler;
let nc: NatsConnection;
let jsm: JetStreamManager;
let db: DbHandle;
let limiter: Limiter;
const redis = createRedis(settings, 'scheduler-test');

/** What ingress does: admit through the limiter and publish the attempt. */
async function submit(jobId: string): Promise<void> {
  const result = await limiter.admit({
    jobs: [{ jobId, tenant: 'acme', jobType: 'flaky', priority: 'normal', context: encodeRetryContext({ tenant: 'acme', type: 'flaky', priority: 'normal', payload: { n: jobId } }) }],
  });
  if (result.kind !== 'admitted' || !result.jobs[0]?.lease) throw new Error(`not admitted: ${JSON.stringify(result)}`);
  const j = result.jobs[0];
  const lease = j.lease!;
  const message: JobMessage = {
    jobId,
    type: 'flaky',
    tenant: 'acme',
    attempt: 1,
    priority: 'normal',
    payload: { n: jobId },
    admittedAt: new Date(j.admittedAt).toISOString(),
    lease: { id: lease.id, token: lease.token, expiresAt: new Date(lease.expiresAt).toISOString() },
  };
  await publishJson(jetstream(nc), names.subjects.job('flaky'), message, messageIds.attempt(jobId, 1));
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readStream<T>(stream: string, schema: { parse(v: unknown): T }, name: string): Promise<T[]> {
  await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.None });
  const consumer = await jetstream(nc).consumers.get(stream, name);
  const info = await consumer.info();
  const out: T[] = [];
  if (info.num_pending === 0) return out;
  const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 2_000 });
  for await (const m of batch) out.push(schema.parse(m.json()));
  return out;
}

async function inFlight(): Promise<number> {
  return (await limiter.inspect()).dependencies.api?.inFlight ?? -1;
}

beforeAll(async () => {
  await migrate(settings);
  db = createDb(settings);
  nc = await connectNats(settings, { name: 'scheduler-test' });
  jsm = await jetstreamManager(nc);
  const store = new PolicyStore(db.db);
  const saved = await store.update(() => policyDoc as never, { actor: 'test', action: 'seed' });
  if (!saved.ok) throw new Error('seed failed');
  await redis.connect();
  limiter = new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy: compilePolicy(saved.policy.document, saved.policy.version) });
  scheduler = await startScheduler(settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(nc, names, saved.policy.version);
});

afterAll(async () => {
  await scheduler.close();
  await nc.close();
  redis.disconnect();
  await db.close();
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('the execution loop', () => {
  it('creates the workers consumer of every job type, retries failures through admission, and frees every slot', async () => {
    const info = await waitFor(() => jsm.consumers.info(names.streams.jobs, 'workers-flaky').catch(() => undefined));
    expect(info.config.max_deliver).toBe(1);

    const attempts: number[] = [];
    const handler: JobHandler = async (job) => {
      attempts.push(job.attempt);
      expect(job.payload).toEqual({ n: 'j-retry' });
      if (job.attempt < 3) throw new Error(`boom ${job.attempt}`);
    };
    const worker = await startWorker({ nc, namespace: ns, jobType: 'flaky', handler });
    await submit('j-retry');
    await waitFor(async () => (attempts.length >= 3 ? true : undefined));
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined));
    await worker.stop();
    expect(attempts).toEqual([1, 2, 3]);
    // Retries go out as new attempts with their own msgIDs.
    const jobsStream = await jsm.streams.info(names.streams.jobs);
    expect(jobsStream.state.messages).toBe(3);
  });

  it('dead-letters a job that used up its attempts', async () => {
    const worker = await startWorker({ nc, namespace: ns, jobType: 'flaky', handler: async () => Promise.reject(new Error('always')) });
    await submit('j-dead');
    const dead = await waitFor(async () => {
      const letters = await readStream(names.streams.dead, DeadLetter, `dl-${Date.now()}`);
      return letters.find((d) => d.jobId === 'j-dead');
    });
    await worker.stop();
    expect(dead).toMatchObject({ jobId: 'j-dead', type: 'flaky', tenant: 'acme', attempts: 3, lastOutcome: 'failed', error: 'always', payload: { n: 'j-dead' } });
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined));
  });

  it('turns a lost worker into a timed_out outcome and a retry; the zombie’s late report changes nothing', async () => {
    let zombieToken = '';
    const seen: number[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'flaky',
      concurrency: 2,
      handler: async (job, ctx) => {
        seen.push(job.attempt);
        if (job.attempt === 1) {
          zombieToken = job.lease.token;
          // Hang past the lease like a stuck worker; the SDK aborts us at expiry.
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
          throw new Error('gave up');
        }
      },
    });
    await submit('j-zombie');
    await waitFor(async () => (seen.includes(2) ? true : undefined), 15_000);
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined));
    await worker.stop();

    const outcomes = (await readStream(names.streams.outcomes, OutcomeEvent, `oc-${Date.now()}`)).filter((o) => o.jobId === 'j-zombie');
    // attempt 1: the zombie's own late 'failed' (recorded, ignored: its lease had expired) and Janus's
    // timed_out, in either order; attempt 2, the retry, succeeded. Exactly one retry happened.
    expect(outcomes.map((o) => `${o.attempt}:${o.outcome}`).sort()).toEqual(['1:failed', '1:timed_out', '2:succeeded']);
    expect(seen).toEqual([1, 2]);
    expect(await limiter.settle(zombieToken, 'succeeded')).toEqual({ ok: false, reason: 'expired' });
  });

  it('a producer idempotency key spelled like a retry key cannot stop a retry', async () => {
    // A producer may send `Idempotency-Key: retry:<jobId>.2` (ingress admits it exactly so): that
    // must not dedupe the scheduler's admission of attempt 2 of <jobId>.
    const other = await limiter.admit({
      jobs: [{ jobId: 'j-producer', tenant: 'acme', jobType: 'flaky', priority: 'normal', idempotency: { key: 'retry:j-collide.2', record: '{"jobId":"j-producer"}' } }],
    });
    if (other.kind !== 'admitted' || !other.jobs[0]?.lease) throw new Error('producer job not admitted');
    expect(await limiter.settle(other.jobs[0].lease.token, 'succeeded')).toMatchObject({ ok: true });

    const attempts: number[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'flaky',
      handler: async (job) => {
        if (job.jobId !== 'j-collide') return;
        attempts.push(job.attempt);
        if (job.attempt === 1) throw new Error('once');
      },
    });
    await submit('j-collide');
    await waitFor(async () => (attempts.includes(2) ? true : undefined));
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined));
    await worker.stop();
    expect(attempts).toEqual([1, 2]);
  });

  it('extends a lease on a worker’s request', async () => {
    let extendedTo: Date | undefined;
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'flaky',
      handler: async (job, ctx) => {
        extendedTo = await ctx.extendLease(5_000);
        expect(extendedTo.getTime()).toBeGreaterThan(Date.parse(job.lease.expiresAt));
        await new Promise((r) => setTimeout(r, 1_200)); // longer than the original 800 ms lease
      },
    });
    await submit('j-extend');
    await waitFor(async () => ((await inFlight()) === 0 && extendedTo ? true : undefined));
    await worker.stop();
    const outcomes = (await readStream(names.streams.outcomes, OutcomeEvent, `oc2-${Date.now()}`)).filter((o) => o.jobId === 'j-extend');
    expect(outcomes.map((o) => o.outcome)).toEqual(['succeeded']);
  });

  it('dead-letters a retry that no wait can admit (its cost is over a limit lowered while it ran) instead of waiting forever', async () => {
    const admitted = await limiter.admit({
      jobs: [{ jobId: 'j-capped', tenant: 'acme', jobType: 'capped', priority: 'normal', context: encodeRetryContext({ tenant: 'acme', type: 'capped', priority: 'normal', payload: { n: 1 } }) }],
    });
    if (admitted.kind !== 'admitted' || !admitted.jobs[0]?.lease) throw new Error(`not admitted: ${JSON.stringify(admitted)}`);
    const j = admitted.jobs[0];
    const lease = j.lease!;
    const message: JobMessage = {
      jobId: 'j-capped',
      type: 'capped',
      tenant: 'acme',
      attempt: 1,
      priority: 'normal',
      payload: { n: 1 },
      admittedAt: new Date(j.admittedAt).toISOString(),
      lease: { id: lease.id, token: lease.token, expiresAt: new Date(lease.expiresAt).toISOString() },
    };
    // while it runs, the bucket is lowered below the job's cost: no retry of it can ever be admitted
    const lowered = { ...policyDoc, dependencies: { ...policyDoc.dependencies, metered: { costRate: { limit: 1000, periodMs: 1000, burst: 10 } } } };
    const saved = await new PolicyStore(db.db).update(() => lowered as never, { actor: 'test', action: 'lower' });
    if (!saved.ok) throw new Error('policy update failed');
    await announceConfigChange(nc, names, saved.policy.version);
    await waitFor(async () => (scheduler.limiter.policy.version === saved.policy.version ? true : undefined));

    const worker = await startWorker({ nc, namespace: ns, jobType: 'capped', handler: async () => Promise.reject(new Error('once')) });
    await publishJson(jetstream(nc), names.subjects.job('capped'), message, messageIds.attempt('j-capped', 1));
    const dead = await waitFor(async () => {
      const letters = await readStream(names.streams.dead, DeadLetter, `dl-${Date.now()}`);
      return letters.find((d) => d.jobId === 'j-capped');
    });
    await worker.stop();
    expect(dead).toMatchObject({ jobId: 'j-capped', type: 'capped', attempts: 1, lastOutcome: 'failed', payload: { n: 1 } });
    expect(dead.error).toMatch(/exceeds capacity.*metered.*costRate/);
  });
});
