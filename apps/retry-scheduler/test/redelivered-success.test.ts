import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  dependencies: { api: { rate: { limit: 1000, periodMs: 1000 } } },
  tenants: { acme: {} },
  jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 30_000 } },
};

let bed: TestBed;
let scheduler: Scheduler;
let worker: Worker;
const runs: string[] = [];

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
});

afterAll(async () => {
  await appliedRefuses(false).catch(() => undefined);
  await worker?.stop();
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
});
