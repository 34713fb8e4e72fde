import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { DeadLetter, JobMessage, appliedOutcomesOf, type JobView, type OutcomeEvent, type PolicyDocumentInput } from '@janus/contracts';
import { outcomeEvents, type DbHandle } from '@janus/db';
import { getJobView, Persister } from '@janus/event-store';
import { publishJson, type NatsConnection, type NatsNames } from '@janus/messaging';
import { createMetricsRegistry } from '@janus/observability';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { Permanent, startWorker } from '@janus/worker-sdk';
import { eq } from 'drizzle-orm';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * "Exact under faults", outcomes: job status follows only what the scheduler accepted (CONTRACT §4,
 * §6.4), with the real scheduler, persister, limiter and worker SDK.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 10 } },
  tenants: { acme: {} },
  jobTypes: {
    work: { dependencies: [{ name: 'api' }], timeoutMs: 800, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } },
    twice: { dependencies: [{ name: 'api' }], timeoutMs: 800, retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 } },
    other: { dependencies: [{ name: 'api' }], timeoutMs: 10_000 },
  },
};

let bed: TestBed;
let scheduler: Scheduler;
let persister: Persister;
let nc: NatsConnection;
let ns: string;
let names: NatsNames;
let jsm: JetStreamManager;
let db: DbHandle;
const silent = pino({ level: 'silent' });
const submit = (jobId: string, jobType = 'work'): Promise<JobMessage> => bed.submit(jobId, jobType, { n: jobId });

const view = (jobId: string): Promise<JobView | undefined> => getJobView(db.db, 'acme', jobId);
const statusIs = (jobId: string, status: JobView['status']) => waitFor(async () => ((await view(jobId))?.status === status ? true : undefined));
const reports = (jobId: string) => db.db.select().from(outcomeEvents).where(eq(outcomeEvents.jobId, jobId));

async function appliedCount(jobId: string, attempt: number): Promise<number> {
  const info = await jsm.streams.info(names.streams.applied, { subjects_filter: `${ns}.applied.>` });
  let n = 0;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(names.streams.applied, { seq }).catch(() => undefined);
    for (const a of m ? appliedOutcomesOf(m.json()) : []) if (a.jobId === jobId && a.attempt === attempt) n++;
  }
  return n;
}

async function deadLetter(jobId: string): Promise<DeadLetter | undefined> {
  const info = await jsm.streams.info(names.streams.dead);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(names.streams.dead, { seq }).catch(() => undefined);
    const body = m ? DeadLetter.parse(m.json()) : undefined;
    if (body?.jobId === jobId) return body;
  }
  return undefined;
}

beforeAll(async () => {
  bed = await openTestBed('exact', policyDoc);
  ({ nc, ns, names, jsm, db } = bed);
  scheduler = await startScheduler(bed.settings, { logger: silent, reapIntervalMs: 100 });
  await announceConfigChange(nc, names, bed.version);
  await waitFor(() => jsm.consumers.info(names.streams.jobs, 'workers-twice').catch(() => undefined));
  persister = new Persister({ db: db.db, js: jetstream(nc), jsm, names, logger: silent, registry: createMetricsRegistry('exact-test'), lingerMs: 5 });
  await persister.start();
});

afterAll(async () => {
  await persister.stop();
  await scheduler.close();
  await bed.close();
});

describe('outcomes apply once; a forged outcome changes no status', () => {
  it('a forged outcome is recorded but changes nothing; the genuine one then applies', async () => {
    const job = await submit('j-forged');
    await statusIs('j-forged', 'admitted');
    const forged: OutcomeEvent = { jobId: 'j-forged', attempt: 1, leaseToken: `${job.lease.id}.forgedmac`, outcome: 'succeeded' };
    await publishJson(jetstream(nc), names.subjects.outcome('work'), forged, 'forged-1');
    // The persister recorded the report (so it has seen it) …
    await waitFor(async () => ((await reports('j-forged')).length === 1 ? true : undefined));
    // … and the job is still admitted, its attempt without an outcome.
    expect(await view('j-forged')).toMatchObject({ status: 'admitted', attempts: [{ attempt: 1 }] });
    expect((await view('j-forged'))?.attempts[0]?.outcome).toBeUndefined();
    expect(await appliedCount('j-forged', 1)).toBe(0);

    let runs = 0;
    const worker = await startWorker({ nc, namespace: ns, jobType: 'work', handler: async () => void runs++ });
    await statusIs('j-forged', 'succeeded');
    await worker.stop();
    expect(runs).toBe(1);
    // The genuine report is the one marked applied; the forged one is kept, not applied.
    await waitFor(async () => ((await reports('j-forged')).some((r) => r.applied) ? true : undefined));
    const rows = await reports('j-forged');
    expect(rows.map((r) => [r.outcome, r.applied]).sort()).toEqual([
      ['succeeded', false],
      ['succeeded', true],
    ]);
  });

  it('a repeated outcome is applied once: one applied event, one retry', async () => {
    let token = '';
    const seen: number[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'work',
      handler: async (job) => {
        seen.push(job.attempt);
        if (job.attempt === 1) {
          token = job.lease.token;
          throw new Error('first fails');
        }
      },
    });
    await submit('j-repeat');
    await statusIs('j-repeat', 'succeeded');
    // The same report again (another msgID, so JetStream does not drop it), and a contradicting one.
    const again: OutcomeEvent = { jobId: 'j-repeat', attempt: 1, leaseToken: token, outcome: 'failed', error: 'first fails' };
    await publishJson(jetstream(nc), names.subjects.outcome('work'), again, 'repeat-1');
    await publishJson(jetstream(nc), names.subjects.outcome('work'), { ...again, outcome: 'succeeded', error: undefined }, 'repeat-2');
    await waitFor(async () => ((await reports('j-repeat')).length === 3 ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    await worker.stop();
    expect(seen).toEqual([1, 2]);
    expect(await appliedCount('j-repeat', 1)).toBe(1);
    expect(await view('j-repeat')).toMatchObject({ status: 'succeeded', attempts: [{ attempt: 1, outcome: 'failed' }, { attempt: 2, outcome: 'succeeded' }] });
    const jobsStored = await jsm.streams.info(names.streams.jobs, { subjects_filter: names.subjects.job('work') });
    expect(jobsStored.state.subjects?.[names.subjects.job('work')]).toBe(3); // j-forged.1, j-repeat.1, j-repeat.2
  });

  it('a different report of an attempt already decided changes nothing: dead by `retryable: false` stays dead (no retry)', async () => {
    const job = await submit('j-perm', 'other');
    const report: OutcomeEvent = { jobId: 'j-perm', attempt: 1, leaseToken: job.lease.token, outcome: 'failed', error: 'bad input', retryable: false };
    await publishJson(jetstream(nc), names.subjects.outcome('other'), report, 'j-perm.1');
    await statusIs('j-perm', 'dead');
    // the same genuine token, reporting differently (a retryable failure, a throttle), after JetStream's duplicate window
    await new Promise((r) => setTimeout(r, 200));
    await publishJson(jetstream(nc), names.subjects.outcome('other'), { ...report, retryable: true }, 'j-perm.1.b');
    await publishJson(jetstream(nc), names.subjects.outcome('other'), { ...report, retryable: undefined, throttled: true, retryAfterMs: 50 }, 'j-perm.1.c');
    // (the two share one stored report: same outcome, token and error) — give the scheduler time to
    // act on them: before, a retry was scheduled at once and the job went `retrying`
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await view('j-perm')).toMatchObject({ status: 'dead', attempts: [{ attempt: 1, outcome: 'failed' }] });
    expect(await appliedCount('j-perm', 1)).toBe(1);
    // no attempt 2 was ever admitted
    const attempts = (await bed.readStream(names.streams.jobs, JobMessage, `jobs-perm-${Date.now()}`)).filter((j) => j.jobId === 'j-perm');
    expect(attempts.map((j) => j.attempt)).toEqual([1]);
  });

  it("an outcome carrying another job's genuine token is recorded but settles neither job", async () => {
    const a = await submit('j-cross-a', 'other');
    const b = await submit('j-cross-b', 'other');
    const crossed: OutcomeEvent = { jobId: 'j-cross-a', attempt: 1, leaseToken: b.lease.token, outcome: 'succeeded' };
    await publishJson(jetstream(nc), names.subjects.outcome('other'), crossed, 'cross-1');
    // B's token naming B but another attempt: likewise.
    await publishJson(jetstream(nc), names.subjects.outcome('other'), { ...crossed, jobId: 'j-cross-b', attempt: 2 }, 'cross-2');
    await waitFor(async () => ((await reports('j-cross-a')).length === 1 && (await reports('j-cross-b')).length === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    for (const job of [a, b]) {
      const lease = await bed.limiter.leaseState(job.lease.token);
      expect(lease.ok && lease.lease.state).not.toBe('settled');
      expect(await view(job.jobId)).toMatchObject({ status: 'admitted' });
      expect(await appliedCount(job.jobId, 1)).toBe(0);
    }
  });

  it("a forged outcome under the attempt's msgID does not keep the worker's genuine report out of the stream", async () => {
    const job = await submit('j-squat', 'other');
    const forged: OutcomeEvent = { jobId: 'j-squat', attempt: 1, leaseToken: `${job.lease.id}.forgedmac`, outcome: 'failed', retryable: false };
    // Both with the msgID CONTRACT §4 gives a worker's outcome: `<jobId>.<attempt>`.
    await publishJson(jetstream(nc), names.subjects.outcome('other'), forged, 'j-squat.1');
    await waitFor(async () => ((await reports('j-squat')).length === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const genuine: OutcomeEvent = { jobId: 'j-squat', attempt: 1, leaseToken: job.lease.token, outcome: 'succeeded' };
    const ack = await jetstream(nc).publish(names.subjects.outcome('other'), JSON.stringify(genuine), { msgID: 'j-squat.1' });
    expect(ack.duplicate).toBe(false);
    await statusIs('j-squat', 'succeeded');
    expect(await appliedCount('j-squat', 1)).toBe(1);
  });

  it("a forged report published just before the worker's own, under the same msgID, does not keep the worker SDK's report out", async () => {
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'twice',
      handler: async (job) => {
        if (job.jobId !== 'j-race') return;
        // a forger who knows `<jobId>.<attempt>` publishes first: JetStream takes the worker's own
        // report, a moment later, for a duplicate of it
        const forged: OutcomeEvent = { jobId: job.jobId, attempt: job.attempt, leaseToken: `${job.lease.id}.forgedmac`, outcome: 'failed', retryable: false };
        await publishJson(jetstream(nc), names.subjects.outcome('twice'), forged, `${job.jobId}.${job.attempt}`);
      },
    });
    await submit('j-race', 'twice');
    await statusIs('j-race', 'succeeded');
    await worker.stop();
    expect(await view('j-race')).toMatchObject({ status: 'succeeded', attempts: [{ attempt: 1, outcome: 'succeeded' }] });
    expect(await appliedCount('j-race', 1)).toBe(1);
  });

  it("a report over the contract's bounds (error over 2 KiB, retryAfterMs over a day) still counts, its error cut to 2 KiB", async () => {
    const job = await submit('j-long', 'other');
    const report = { jobId: 'j-long', attempt: 1, leaseToken: job.lease.token, outcome: 'failed', retryable: false, error: 'e'.repeat(5_000), retryAfterMs: 10 * 86_400_000 };
    await publishJson(jetstream(nc), names.subjects.outcome('other'), report, 'j-long.1');
    await statusIs('j-long', 'dead');
    const error = (await view('j-long'))?.attempts[0]?.error ?? '';
    expect(error.length).toBe(2048);
    expect(error.endsWith('...')).toBe(true);
    expect((await deadLetter('j-long'))?.error?.length).toBe(2048);
  });

  it('a report whose actualCost is no count (-5, 2.5) still counts, with the cost unknown (the estimate stands)', async () => {
    for (const [id, actualCost] of [['j-neg', -5], ['j-frac', 2.5]] as const) {
      const job = await submit(id, 'other');
      await publishJson(jetstream(nc), names.subjects.outcome('other'), { jobId: id, attempt: 1, leaseToken: job.lease.token, outcome: 'succeeded', actualCost }, `${id}.1`);
      await statusIs(id, 'succeeded');
    }
  });

  it("a late outcome of an expired lease is ignored: the attempt stays timed_out", async () => {
    const seen: number[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'twice',
      concurrency: 2,
      handler: async (job, ctx) => {
        seen.push(job.attempt);
        if (job.attempt === 1) {
          // A stuck worker that ignores its lease and reports success long after it expired.
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
          await new Promise((r) => setTimeout(r, 300));
          return;
        }
        throw new Permanent('second attempt refuses');
      },
    });
    await submit('j-late', 'twice');
    await statusIs('j-late', 'dead');
    await waitFor(async () => ((await reports('j-late')).some((r) => r.outcome === 'succeeded') ? true : undefined));
    await worker.stop();
    expect(seen).toEqual([1, 2]);
    expect(await view('j-late')).toMatchObject({ status: 'dead', attempts: [{ attempt: 1, outcome: 'timed_out' }, { attempt: 2, outcome: 'failed' }] });
  });
});

describe('"retryable": false', () => {
  it('a permanent failure on attempt 1 of a 3-attempt job is dead after 1 attempt', async () => {
    const seen: number[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'work',
      handler: async (job) => {
        seen.push(job.attempt);
        throw new Permanent('card refused');
      },
    });
    await submit('j-permanent');
    const dead = await waitFor(() => deadLetter('j-permanent'));
    await statusIs('j-permanent', 'dead');
    await new Promise((r) => setTimeout(r, 300));
    await worker.stop();
    expect(seen).toEqual([1]);
    expect(dead).toMatchObject({ jobId: 'j-permanent', attempts: 1, lastOutcome: 'failed', error: 'card refused' });
    expect(await view('j-permanent')).toMatchObject({ status: 'dead', attempts: [{ attempt: 1, outcome: 'failed', error: 'card refused' }] });
  });
});
