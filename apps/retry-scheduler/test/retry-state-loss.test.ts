import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import type { PolicyDocumentInput } from '@janus/contracts';
import { getJobView, Persister } from '@janus/event-store';
import { createMetricsRegistry } from '@janus/observability';
import { announceConfigChange } from '@janus/policy';
import { dropRedisNamespace, waitFor } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, schedulerReady, streamRefuses, type TestBed } from './harness.js';

/**
 * A failure whose retry was not yet durable when Redis lost its state (CONTRACT §6: nothing
 * admitted is lost). The chaos test found it once: the scheduler accepted a failed attempt and
 * died before publishing its retry; its outcome came back after Redis lost its state and was
 * rebuilt, found no lease (an attempt whose applied outcome is stored is not rebuilt) and was
 * dropped — the job stayed `retrying` for ever. Here the retries stream refuses the retry instead
 * of a kill landing in that window (the same state: outcome accepted, retry not published, the
 * outcome redelivered), Redis loses its state, and the stream takes messages again after the rebuild.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 2 } },
  tenants: { acme: {} },
  jobTypes: { flaky: { dependencies: [{ name: 'api' }], timeoutMs: 30_000, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } } },
};

let bed: TestBed;
let scheduler: Scheduler;
let persister: Persister;
let worker: Worker;
const runs: string[] = [];

const ready = (): Promise<boolean> => schedulerReady(scheduler);

/** The retries stream refuses every message, or takes them again. */
const retriesRefuse = (refuse: boolean): Promise<void> => streamRefuses(bed, bed.names.streams.retries, refuse);

beforeAll(async () => {
  bed = await openTestBed('scheduler-retry-loss', policyDoc);
  const silent = pino({ level: 'silent' });
  persister = new Persister({ db: bed.db.db, js: jetstream(bed.nc), jsm: bed.jsm, names: bed.names, logger: silent, registry: createMetricsRegistry('retry-loss-test'), lingerMs: 5 });
  await persister.start();
  scheduler = await startScheduler(bed.settings, { logger: silent, reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-flaky').catch(() => undefined), 10_000);
  worker = await startWorker({
    nc: bed.nc,
    namespace: bed.ns,
    jobType: 'flaky',
    concurrency: 2,
    handler: (job) => {
      runs.push(`${job.jobId}.${job.attempt}`);
      if (job.attempt === 1) throw new Error('attempt 1 fails');
      return Promise.resolve();
    },
  });
});

afterAll(async () => {
  await worker.stop();
  await scheduler.close();
  await persister.stop();
  await bed.close();
});

describe('a failure accepted while its retry could not be published, then Redis loses its state', () => {
  it('is retried once the retry can be published: the job succeeds', async () => {
    await retriesRefuse(true);
    await bed.submit('f-1', 'flaky');
    // The outcome was accepted and its retry refused at least once (the outcome is redelivered).
    await waitFor(async () => runs.includes('f-1.1') && (await bed.jsm.consumers.info(bed.names.streams.outcomes, bed.names.consumers.schedulerOutcomes)).num_redelivered > 0, 15_000, 50);

    await dropRedisNamespace(bed.settings.redisUrl, bed.ns);
    await waitFor(async () => !(await ready()), 5_000, 20);
    await waitFor(ready, 30_000, 50); // rebuilt from the durable record
    await retriesRefuse(false);

    const view = await waitFor(async () => {
      const v = await getJobView(bed.db.db, 'acme', 'f-1');
      return v?.status === 'succeeded' ? v : undefined;
    }, 20_000, 100).catch(async () => getJobView(bed.db.db, 'acme', 'f-1'));
    expect(view?.status, JSON.stringify(view)).toBe('succeeded');
    expect(runs).toEqual(['f-1.1', 'f-1.2']);
  }, 90_000);
});
