import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { DeadLetter, LeaseExtended, OutcomeEvent, type PolicyDocumentInput } from '@janus/contracts';
import { PolicyStore, announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker, type JobHandler } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 5 }, metered: { costRate: { limit: 1000, periodMs: 1000, burst: 100 } } },
  tenants: { acme: {} },
  jobTypes: {
    flaky: { dependencies: [{ name: 'api' }], timeoutMs: 800, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
    capped: { dependencies: [{ name: 'metered', cost: 50 }], timeoutMs: 5000, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
    claims: { dependencies: [{ name: 'api' }], timeoutMs: 10_000 },
  },
};

let bed: TestBed;
let scheduler: Scheduler;
const submit = (jobId: string) => bed.submit(jobId, 'flaky', { n: jobId });
const inFlight = async (): Promise<number> => (await bed.limiter.inspect()).dependencies.api?.inFlight ?? -1;

beforeAll(async () => {
  bed = await openTestBed('scheduler', policyDoc);
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
});

afterAll(async () => {
  await scheduler.close();
  await bed.close();
});

describe('the execution loop', () => {
  it('creates the workers consumer of every job type, retries failures through admission, and frees every slot', async () => {
    const info = await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-flaky').catch(() => undefined), 10_000);
    expect(info.config.max_deliver).toBe(1);

    const attempts: number[] = [];
    const priorities: string[] = [];
    const handler: JobHandler = async (job) => {
      attempts.push(job.attempt);
      priorities.push(job.priority);
      expect(job.payload).toEqual({ n: 'j-retry' });
      if (job.attempt < 3) throw new Error(`boom ${job.attempt}`);
    };
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'flaky', handler });
    await submit('j-retry');
    await waitFor(async () => attempts.length >= 3, 10_000);
    await waitFor(async () => (await inFlight()) === 0, 10_000);
    await worker.stop();
    expect(attempts).toEqual([1, 2, 3]);
    // A retry is admitted at its job type's retryPriority (`low` here), but its message says the job's own.
    expect(priorities).toEqual(['normal', 'normal', 'normal']);
    // Retries go out as new attempts with their own msgIDs.
    const jobsStream = await bed.jsm.streams.info(bed.names.streams.jobs);
    expect(jobsStream.state.messages).toBe(3);
  });

  it('dead-letters a job that used up its attempts', async () => {
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'flaky', handler: async () => Promise.reject(new Error('always')) });
    await submit('j-dead');
    const dead = await waitFor(async () => {
      const letters = await bed.readStream(bed.names.streams.dead, DeadLetter, `dl-${Date.now()}`);
      return letters.find((d) => d.jobId === 'j-dead');
    }, 10_000);
    await worker.stop();
    expect(dead).toMatchObject({ jobId: 'j-dead', type: 'flaky', tenant: 'acme', attempts: 3, lastOutcome: 'failed', error: 'always', payload: { n: 'j-dead' } });
    await waitFor(async () => (await inFlight()) === 0, 10_000);
  });

  it('turns a lost worker into a timed_out outcome and a retry; the zombie’s late report changes nothing', async () => {
    let zombieToken = '';
    const seen: number[] = [];
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
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
    await waitFor(async () => seen.includes(2), 15_000);
    await waitFor(async () => (await inFlight()) === 0, 10_000);
    await worker.stop();

    const outcomes = (await bed.readStream(bed.names.streams.outcomes, OutcomeEvent, `oc-${Date.now()}`)).filter((o) => o.jobId === 'j-zombie');
    // attempt 1: the zombie's own late 'failed' (recorded, ignored: its lease had expired) and Janus's
    // timed_out, in either order; attempt 2, the retry, succeeded. Exactly one retry happened.
    expect(outcomes.map((o) => `${o.attempt}:${o.outcome}`).sort()).toEqual(['1:failed', '1:timed_out', '2:succeeded']);
    expect(seen).toEqual([1, 2]);
    expect(await bed.limiter.settle(zombieToken, 'succeeded')).toEqual({ ok: false, reason: 'expired' });
  });

  it('answers a batch of claims (as the worker SDK sends them) token by token, in order, as it answers single claims', async () => {
    const admitted = await bed.limiter.admit({ jobs: [1, 2, 3].map((i) => ({ jobId: `j-claims-${i}`, tenant: 'acme', jobType: 'claims', priority: 'normal' as const })) });
    if (admitted.kind !== 'admitted') throw new Error(`not admitted: ${JSON.stringify(admitted)}`);
    const [a, b, c] = admitted.jobs.map((j) => j.lease?.token ?? '');
    expect(await bed.limiter.settle(b!, 'succeeded')).toMatchObject({ ok: true });
    const ask = async (body: unknown) => (await bed.nc.request(bed.names.subjects.leaseExtend, JSON.stringify(body), { timeout: 2_000 })).json<unknown>();

    const batch = await ask({ leaseTokens: [a, 'not-a-token', b, c], ms: 1 });
    expect(batch).toEqual({
      results: [
        { ok: true, expiresAt: expect.any(String) },
        { ok: false, reason: 'invalid_token' },
        { ok: false, reason: 'already_settled' },
        { ok: true, expiresAt: expect.any(String) },
      ],
    });
    // The same answers as single claims: a claim keeps the lease's expiry.
    const first = (batch as { results: { expiresAt?: string }[] }).results[0]!;
    expect(await ask({ leaseToken: a, ms: 1 })).toEqual({ ok: true, expiresAt: first.expiresAt });
    expect(await ask({ leaseToken: b, ms: 1 })).toEqual({ ok: false, reason: 'already_settled' });
    // Claimed: the leases are running, and a worker's outcome settles them.
    expect((await bed.limiter.inspect()).dependencies.api?.inFlight).toBe(2);
    for (const token of [a, c]) expect(await bed.limiter.settle(token!, 'succeeded')).toMatchObject({ ok: true });

    expect(await ask({ leaseTokens: [], ms: 1 })).toEqual({ ok: false, reason: 'malformed' });
    expect(await ask({ leaseTokens: new Array(1001).fill(a), ms: 1 })).toEqual({ ok: false, reason: 'malformed' });
    expect(await ask({ leaseTokens: [a, 7], ms: 1 })).toEqual({ ok: false, reason: 'malformed' });
    await waitFor(async () => (await inFlight()) === 0, 10_000);
  });

  it('a producer idempotency key spelled like a retry key cannot stop a retry', async () => {
    // A producer may send `Idempotency-Key: retry:<jobId>.2` (ingress admits it exactly so): that
    // must not dedupe the scheduler's admission of attempt 2 of <jobId>.
    const other = await bed.limiter.admit({
      jobs: [{ jobId: 'j-producer', tenant: 'acme', jobType: 'flaky', priority: 'normal', idempotency: { key: 'retry:j-collide.2', record: '{"jobId":"j-producer"}' } }],
    });
    if (other.kind !== 'admitted' || !other.jobs[0]?.lease) throw new Error('producer job not admitted');
    expect(await bed.limiter.settle(other.jobs[0].lease.token, 'succeeded')).toMatchObject({ ok: true });

    const attempts: number[] = [];
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
      jobType: 'flaky',
      handler: async (job) => {
        if (job.jobId !== 'j-collide') return;
        attempts.push(job.attempt);
        if (job.attempt === 1) throw new Error('once');
      },
    });
    await submit('j-collide');
    await waitFor(async () => attempts.includes(2), 10_000);
    await waitFor(async () => (await inFlight()) === 0, 10_000);
    await worker.stop();
    expect(attempts).toEqual([1, 2]);
  });

  it('extends a lease on a worker’s request, and records the new expiry durably before the worker hears it', async () => {
    let extendedTo: Date | undefined;
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
      jobType: 'flaky',
      handler: async (job, ctx) => {
        extendedTo = await ctx.extendLease(5_000);
        expect(extendedTo.getTime()).toBeGreaterThan(Date.parse(job.lease.expiresAt));
        await new Promise((r) => setTimeout(r, 1_200)); // longer than the original 800 ms lease
      },
    });
    await submit('j-extend');
    await waitFor(async () => (await inFlight()) === 0 && extendedTo !== undefined, 10_000);
    await worker.stop();
    const outcomes = (await bed.readStream(bed.names.streams.outcomes, OutcomeEvent, `oc2-${Date.now()}`)).filter((o) => o.jobId === 'j-extend');
    expect(outcomes.map((o) => o.outcome)).toEqual(['succeeded']);
    const extensions = (await bed.readStream(bed.names.streams.extensions, LeaseExtended, `ext-${Date.now()}`)).filter((e) => e.jobId === 'j-extend');
    expect(extensions).toEqual([{ jobId: 'j-extend', type: 'flaky', tenant: 'acme', attempt: 1, leaseId: expect.any(String), expiresAt: extendedTo?.toISOString() }]);
  });

  it('dead-letters a retry that no wait can admit (its cost is over a limit lowered while it ran) instead of waiting forever', async () => {
    await bed.submit('j-capped', 'capped', { n: 1 });
    // while it runs, the bucket is lowered below the job's cost: no retry of it can ever be admitted
    const lowered = { ...policyDoc, dependencies: { ...policyDoc.dependencies, metered: { costRate: { limit: 1000, periodMs: 1000, burst: 10 } } } };
    const saved = await new PolicyStore(bed.db.db).update(() => lowered as never, { actor: 'test', action: 'lower' });
    if (!saved.ok) throw new Error('policy update failed');
    await announceConfigChange(bed.nc, bed.names, saved.policy.version);
    await waitFor(async () => scheduler.limiter.policy.version === saved.policy.version, 10_000);

    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'capped', handler: async () => Promise.reject(new Error('once')) });
    const dead = await waitFor(async () => {
      const letters = await bed.readStream(bed.names.streams.dead, DeadLetter, `dl-${Date.now()}`);
      return letters.find((d) => d.jobId === 'j-capped');
    }, 10_000);
    await worker.stop();
    expect(dead).toMatchObject({ jobId: 'j-capped', type: 'capped', attempts: 1, lastOutcome: 'failed', payload: { n: 1 } });
    expect(dead.error).toMatch(/exceeds capacity.*metered.*costRate/);
  });
});
