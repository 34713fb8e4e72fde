import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { DeadLetter, type PolicyDocumentInput } from '@janus/contracts';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, streamRefuses, type TestBed } from './harness.js';

/**
 * Outcomes apply once (CONTRACT §6): a failure's consequence — its retry or its dead letter — is
 * the same however often the outcome is delivered. The scheduler publishes that consequence, then
 * the applied outcome, then acks; an outcome whose applied event could not be published comes back
 * and is decided again. Before, the decision read the dependency's outage circuit afresh: a failure
 * decided "dead" (charged, its only attempt used) while the circuit was closed, redelivered after
 * the circuit opened, was decided "free" and retried as well — a dead job ran again. Here the
 * applied stream refuses until the circuit has opened meanwhile.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { rate: { limit: 1000, periodMs: 1000 } } },
  tenants: { acme: {} },
  jobTypes: { once: { dependencies: [{ name: 'api' }], timeoutMs: 30_000, retry: { maxAttempts: 1, baseDelayMs: 50, maxDelayMs: 100 } } },
};

let bed: TestBed;
let scheduler: Scheduler;
let worker: Worker;
const runs: string[] = [];

/** The applied stream refuses every message, or takes them again. */
const appliedRefuses = (refuse: boolean): Promise<void> => streamRefuses(bed, bed.names.streams.applied, refuse);

beforeAll(async () => {
  bed = await openTestBed('scheduler-redelivered-decision', policyDoc);
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-once').catch(() => undefined), 10_000);
  worker = await startWorker({
    nc: bed.nc,
    namespace: bed.ns,
    jobType: 'once',
    concurrency: 2,
    handler: (job) => {
      runs.push(`${job.jobId}.${job.attempt}`);
      return Promise.reject(new Error(`attempt ${job.attempt} fails`));
    },
  });
});

afterAll(async () => {
  await appliedRefuses(false).catch(() => undefined);
  await worker.stop();
  await scheduler.close();
  await bed.close();
});

describe('a failure redelivered after its dead letter was published', () => {
  it('is decided the same although the outage circuit opened meanwhile: dead, never retried', async () => {
    await appliedRefuses(true);
    await bed.submit('d-1', 'once');
    // Accepted, decided (dead: its one attempt was charged), the applied event refused: redelivered.
    await waitFor(async () => runs.includes('d-1.1') && (await bed.jsm.consumers.info(bed.names.streams.outcomes, bed.names.consumers.schedulerOutcomes)).num_redelivered > 0, 15_000, 50);
    // The dependency's outage circuit opens (other jobs' failures): a failure now would be free.
    for (let i = 0; i < 10; i++) await bed.limiter.feedback('once', 'failed');
    expect((await bed.limiter.dependencyState('api'))?.circuit.state).toBe('open');
    await appliedRefuses(false);

    await waitFor(async () => (await bed.jsm.consumers.info(bed.names.streams.outcomes, bed.names.consumers.schedulerOutcomes)).num_ack_pending === 0, 15_000, 50);
    const dead = await waitFor(async () => {
      const letters = await bed.readStream(bed.names.streams.dead, DeadLetter, `dead-${Date.now()}`);
      return letters.length > 0 ? letters : undefined;
    }, 10_000, 100);
    expect(dead.map((d) => [d.jobId, d.attempts])).toEqual([['d-1', 1]]);
    // A retry would have run by now (50–100 ms backoff; the circuit's probe lets one through a second after opening).
    await new Promise((r) => setTimeout(r, 2_500));
    expect(runs).toEqual(['d-1.1']);
    expect((await bed.jsm.streams.info(bed.names.streams.retries)).state.messages).toBe(0);
  }, 60_000);
});
