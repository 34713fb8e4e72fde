import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { DeadLetter, type PolicyDocumentInput } from '@janus/contracts';
import { ensureWorkerConsumer } from '@janus/messaging';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * CONTRACT §4: "A lease that expires before any worker took the job (the job never started) is not
 * a failed attempt: the job waits again and keeps its attempts."
 *
 * A worker SDK was delivered the job while no retry-scheduler answered claims (all of them down),
 * for longer than the job's lease: it never ran the job. Before, it let the message go silently, the
 * lease expired as a timed_out attempt once a scheduler was back, and a job with one attempt went
 * to the dead letters without ever running. Now the SDK reports it as not started while the lease
 * holds, and the job is retried without charging its attempt: it runs, once.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 5 } },
  tenants: { acme: {} },
  jobTypes: { once: { dependencies: [{ name: 'api' }], timeoutMs: 4_000, retry: { maxAttempts: 1, baseDelayMs: 50, maxDelayMs: 100 } } },
};

let bed: TestBed;
let scheduler: Scheduler | undefined;
let worker: Worker;
const runs: string[] = [];

beforeAll(async () => {
  bed = await openTestBed('scheduler-given-up', policyDoc);
  await ensureWorkerConsumer(bed.jsm, bed.names, 'once', 4_000);
  worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'once', handler: async (job) => void runs.push(`${job.jobId}.${job.attempt}`) });
});

afterAll(async () => {
  await worker?.stop();
  await scheduler?.close();
  await bed?.close();
});

describe('a job a worker was delivered while no scheduler answered its claim', () => {
  it('is not a failed attempt: once a scheduler is back it runs, without a dead letter', async () => {
    await bed.submit('gu-1', 'once');
    // Delivered, claimed in vain past its 4 s lease: not run.
    await waitFor(async () => (await bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-once')).num_ack_pending === 0 && (await bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-once')).delivered.consumer_seq === 1, 10_000, 50);
    await new Promise((r) => setTimeout(r, 4_500));
    expect(runs).toEqual([]);

    scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
    await announceConfigChange(bed.nc, bed.names, bed.version);
    await waitFor(() => runs.length > 0, 20_000, 50);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(runs).toEqual(['gu-1.2']);
    expect(await bed.readStream(bed.names.streams.dead, DeadLetter, `dead-${Date.now()}`)).toEqual([]);
  }, 60_000);
});
