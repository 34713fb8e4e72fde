import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import { OutcomeEvent, type JobView, type PolicyDocumentInput } from '@janus/contracts';
import { getJobView, Persister } from '@janus/event-store';
import { createMetricsRegistry } from '@janus/observability';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { serveLeaseExtensions } from '@janus/execution';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * An outcome counts if the worker reported it (JetStream stored it) before its lease expired, however
 * late the scheduler processes it: the scheduler is down while a worker reports, and back only after
 * the lease has expired (CONTRACT §4, §6.2). One reported after the expiry still changes nothing.
 * Real path: worker SDK → JetStream → a scheduler started afresh → the persister's job view.
 * While the scheduler is down, the workers' claims are answered by the lease-extension service
 * alone (the SDK runs a job only on Janus's answer), as by a scheduler instance whose outcome
 * processing is stalled.
 */
const TIMEOUT_MS = 1_000;
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 1 } },
  tenants: { acme: {} },
  jobTypes: { work: { dependencies: [{ name: 'api' }], timeoutMs: TIMEOUT_MS, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } } },
};

const silent = pino({ level: 'silent' });
let bed: TestBed;
let persister: Persister;
let scheduler: Scheduler | undefined;
let claims: ReturnType<typeof serveLeaseExtensions>;

const view = (jobId: string): Promise<JobView | undefined> => getJobView(bed.db.db, 'acme', jobId);
const inFlight = async (): Promise<number> => (await bed.limiter.inspect()).dependencies.api?.inFlight ?? -1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every outcome stored for `jobId`, with the time JetStream stored it. */
async function storedOutcomes(jobId: string): Promise<{ outcome: OutcomeEvent; at: number }[]> {
  const info = await bed.jsm.streams.info(bed.names.streams.outcomes);
  const out: { outcome: OutcomeEvent; at: number }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await bed.jsm.streams.getMessage(bed.names.streams.outcomes, { seq }).catch(() => undefined);
    const body = m ? OutcomeEvent.parse(m.json()) : undefined;
    if (m && body?.jobId === jobId) out.push({ outcome: body, at: m.time.getTime() });
  }
  return out;
}

async function startAgain(): Promise<Scheduler> {
  scheduler = await startScheduler(bed.settings, { logger: silent, reapIntervalMs: 50 });
  return scheduler;
}

beforeAll(async () => {
  bed = await openTestBed('late_outcomes', policyDoc);
  // A first scheduler creates the consumers (workers-work, scheduler-outcomes), then goes away.
  const first = await startAgain();
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-work').catch(() => undefined), 10_000);
  await first.close();
  scheduler = undefined;
  claims = serveLeaseExtensions(bed.nc, jetstream(bed.nc), bed.names, bed.limiter);
  persister = new Persister({ db: bed.db.db, js: jetstream(bed.nc), jsm: bed.jsm, names: bed.names, logger: silent, registry: createMetricsRegistry('late-outcomes'), lingerMs: 5 });
  await persister.start();
});

// Each test starts the scheduler only after its outage; it stops again after the test.
afterEach(async () => {
  await scheduler?.close();
  scheduler = undefined;
});

afterAll(async () => {
  claims.unsubscribe();
  await persister.stop();
  await bed.close();
});

describe('outcomes processed after their lease expired', () => {
  it('a success reported before the expiry, processed after it: the job is succeeded, ran once, its slot is free', async () => {
    const runs: string[] = [];
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'work', handler: async (job) => void runs.push(`${job.jobId}.${job.attempt}`) });
    // No scheduler runs (only claims are answered): the worker's report waits in the outcomes consumer.
    const message = await bed.submit('j-in-time', 'work');
    const [report] = await waitFor(async () => {
      const stored = await storedOutcomes('j-in-time');
      return stored.length > 0 ? stored : undefined;
    });
    expect(report!.outcome.outcome).toBe('succeeded');
    const expiresAt = Date.parse(message.lease.expiresAt);
    expect(report!.at).toBeLessThan(expiresAt); // reported in time …
    await sleep(expiresAt - Date.now() + 500); // … and the lease has expired when the scheduler is back
    expect(await bed.limiter.leaseState(message.lease.token)).toMatchObject({ ok: true, lease: { state: 'expired' } });

    await startAgain();
    await waitFor(async () => ((await view('j-in-time'))?.status === 'succeeded' ? true : undefined), 10_000);
    // Long enough for a reap (50 ms ticks) and a retry (50–100 ms backoff) to have happened, if any.
    await sleep(1_500);
    await worker.stop();

    expect(runs).toEqual(['j-in-time.1']);
    expect(await view('j-in-time')).toMatchObject({ status: 'succeeded', attempts: [{ attempt: 1, outcome: 'succeeded' }] });
    expect((await storedOutcomes('j-in-time')).map((o) => o.outcome.outcome)).toEqual(['succeeded']); // no timed_out
    expect(await bed.limiter.leaseState(message.lease.token)).toMatchObject({ ok: true, lease: { state: 'settled', outcome: 'succeeded' } });
    expect(await inFlight()).toBe(0);
    // The slot is free: on a concurrency-1 dependency the next job is admitted.
    await bed.submit('j-next', 'work');
  }, 30_000);

  it('a success reported after the expiry changes nothing: the attempt timed out and the job runs again', async () => {
    const runs: string[] = [];
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
      jobType: 'work',
      handler: async (job, ctx) => {
        runs.push(`${job.jobId}.${job.attempt}`);
        if (job.jobId === 'j-zombie' && job.attempt === 1) {
          // A zombie: ignores its lease and reports success after it expired.
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
          await sleep(200);
        }
      },
    });
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined), 10_000); // j-next's lease (from the test before) is gone
    const message = await bed.submit('j-zombie', 'work');
    const [report] = await waitFor(async () => {
      const stored = await storedOutcomes('j-zombie');
      return stored.length > 0 ? stored : undefined;
    }, 10_000);
    expect(report!.outcome.outcome).toBe('succeeded');
    expect(report!.at).toBeGreaterThanOrEqual(Date.parse(message.lease.expiresAt)); // reported late

    await startAgain();
    await waitFor(async () => ((await view('j-zombie'))?.status === 'succeeded' ? true : undefined), 10_000);
    await worker.stop();

    expect(runs.filter((r) => r.startsWith('j-zombie'))).toEqual(['j-zombie.1', 'j-zombie.2']);
    expect(await view('j-zombie')).toMatchObject({
      status: 'succeeded',
      attempts: [
        { attempt: 1, outcome: 'timed_out' },
        { attempt: 2, outcome: 'succeeded' },
      ],
    });
    expect(await bed.limiter.leaseState(message.lease.token)).toMatchObject({ ok: true, lease: { state: 'expired' } });
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined), 10_000);
  }, 30_000);

  it('a raw worker (no SDK, no claim) that pulled, acked and reported in time while no scheduler ran: succeeded, ran once', async () => {
    await waitFor(async () => ((await inFlight()) === 0 ? true : undefined), 10_000);
    const message = await bed.submit('j-raw', 'work');
    // Pull it from the workers' consumer as a worker in another language would, and ack it.
    const consumer = await jetstream(bed.nc).consumers.get(bed.names.streams.jobs, 'workers-work');
    const pulled = await consumer.next({ expires: 5_000 });
    expect(pulled?.json<{ jobId: string }>().jobId).toBe('j-raw');
    pulled!.ack();
    const report: OutcomeEvent = { jobId: 'j-raw', attempt: 1, leaseToken: message.lease.token, outcome: 'succeeded' };
    await jetstream(bed.nc).publish(bed.names.subjects.outcome('work'), JSON.stringify(report), { msgID: 'j-raw.1' });
    const expiresAt = Date.parse(message.lease.expiresAt);
    await sleep(expiresAt - Date.now() + 500);

    await startAgain();
    await waitFor(async () => ((await view('j-raw'))?.status === 'succeeded' ? true : undefined), 10_000);
    await sleep(1_500);
    expect(await view('j-raw')).toMatchObject({ status: 'succeeded', attempts: [{ attempt: 1, outcome: 'succeeded' }] });
    expect((await storedOutcomes('j-raw')).map((o) => o.outcome.outcome)).toEqual(['succeeded']);
    expect(await inFlight()).toBe(0);
  }, 30_000);
});
