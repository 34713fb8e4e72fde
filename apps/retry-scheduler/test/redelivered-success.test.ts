import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import type { PolicyDocumentInput } from '@janus/contracts';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, streamRefuses, type TestBed } from './harness.js';

/**
 * Outcomes apply once (CONTRACT §6), also for the dependency's outage circuit (§2 `adaptive`): a
 * success delivered again (its applied event could not be published, so it was not acked) counts
 * once. Before, every delivery counted it again, and enough redeliveries of one success outweighed
 * real failures: the circuit stayed closed over an outage.
 *
 * The circuit opens on the failure that makes the last 10 s hold at least 10 outcomes, half of them
 * failures. After one success counted once, that is the 9th failure; after the same success counted
 * c times (c ≤ 5), the (10 − c)-th. Here the applied stream refuses until the success has been
 * delivered at least three times.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { rate: { limit: 1000, periodMs: 1000 } }, api2: { rate: { limit: 1000, periodMs: 1000 } } },
  tenants: { acme: {} },
  jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 30_000 }, call2: { dependencies: [{ name: 'api2' }], timeoutMs: 30_000 } },
};

let bed: TestBed;
let scheduler: Scheduler;
let worker: Worker;
let worker2: Worker;
const runs: string[] = [];
const tokens = new Map<string, string>();

/** The applied stream refuses every message, or takes them again. */
const appliedRefuses = (refuse: boolean): Promise<void> => streamRefuses(bed, bed.names.streams.applied, refuse);

const outcomesConsumer = () => bed.jsm.consumers.info(bed.names.streams.outcomes, bed.names.consumers.schedulerOutcomes);

beforeAll(async () => {
  bed = await openTestBed('scheduler-redelivered-success', policyDoc);
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-call').catch(() => undefined), 10_000);
  worker = await startWorker({
    nc: bed.nc,
    namespace: bed.ns,
    jobType: 'call',
    handler: async (job) => void runs.push(`${job.jobId}.${job.attempt}`),
  });
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-call2').catch(() => undefined), 10_000);
  worker2 = await startWorker({
    nc: bed.nc,
    namespace: bed.ns,
    jobType: 'call2',
    handler: async (job) => {
      runs.push(`${job.jobId}.${job.attempt}`);
      tokens.set(job.jobId, job.lease.token);
    },
  });
});

afterAll(async () => {
  await appliedRefuses(false).catch(() => undefined);
  await worker?.stop();
  await worker2?.stop();
  await scheduler?.close();
  await bed?.close();
});

describe('a success delivered again', () => {
  it('counts once for the outage circuit: it opens on the 9th failure after it', async () => {
    await appliedRefuses(true);
    await bed.submit('s-1', 'call');
    // Run, reported, accepted, its applied event refused: delivered again, and again.
    await waitFor(async () => runs.includes('s-1.1') && (await outcomesConsumer()).delivered.consumer_seq >= 3, 30_000, 50);
    await appliedRefuses(false);
    await waitFor(async () => (await outcomesConsumer()).num_ack_pending === 0 && (await outcomesConsumer()).num_pending === 0, 15_000, 50);

    let failures = 0;
    while ((await bed.limiter.dependencyState('api'))?.circuit.state === 'closed' && failures < 12) {
      await bed.limiter.feedback('call', 'failed');
      failures++;
    }
    expect(runs).toEqual(['s-1.1']);
    expect(failures).toBe(9);
  }, 60_000);

  it('published again as another message (after the outcomes stream\'s 100 ms duplicate window), counts once', async () => {
    await bed.submit('s-2', 'call2');
    await waitFor(async () => runs.includes('s-2.1') && tokens.has('s-2'), 30_000, 20);
    // The worker's report again, twice, as a worker whose publish answer was lost would send it.
    const again = { jobId: 's-2', attempt: 1, leaseToken: tokens.get('s-2')!, outcome: 'succeeded' };
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const ack = await jetstream(bed.nc).publish(bed.names.subjects.outcome('call2'), JSON.stringify(again), { msgID: 's-2.1' });
      expect(ack.duplicate).toBe(false);
    }
    await waitFor(async () => (await outcomesConsumer()).num_ack_pending === 0 && (await outcomesConsumer()).num_pending === 0, 15_000, 50);

    let failures = 0;
    while ((await bed.limiter.dependencyState('api2'))?.circuit.state === 'closed' && failures < 12) {
      await bed.limiter.feedback('call2', 'failed');
      failures++;
    }
    expect(failures).toBe(9);
  }, 60_000);
});
