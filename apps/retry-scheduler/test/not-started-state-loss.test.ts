/**
 * CONTRACT §4 across a Redis state loss: a job no worker took keeps waiting — its attempt is not
 * spent — even when Redis loses its state while it waits. The persister keeps each job message's
 * stream sequence (`attempts.job_seq`), and the rebuild writes back a lease whose message no worker
 * was delivered as still waiting (a job-type timeout from now), with its sequence, as the scheduler
 * would have kept it. (Before, the rebuild restored the admitted expiry, long past, without the
 * sequence: the reaper timed it out and, with one attempt allowed, it went to the dead letters
 * without ever running.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import { DeadLetter, OutcomeEvent, type PolicyDocumentInput } from '@janus/contracts';
import { Persister } from '@janus/event-store';
import { createMetricsRegistry } from '@janus/observability';
import { announceConfigChange } from '@janus/policy';
import { dropRedisNamespace, waitFor } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, schedulerReady, type TestBed } from './harness.js';

const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 3 } },
  tenants: { acme: {} },
  jobTypes: { patient: { dependencies: [{ name: 'api' }], timeoutMs: 1000, retry: { maxAttempts: 1 } } },
};

let bed: TestBed;
let scheduler: Scheduler;
let persister: Persister;
const silent = pino({ level: 'silent' });
const ready = (): Promise<boolean> => schedulerReady(scheduler);

beforeAll(async () => {
  bed = await openTestBed('not-started-loss', policyDoc);
  persister = new Persister({ db: bed.db.db, js: jetstream(bed.nc), jsm: bed.jsm, names: bed.names, logger: silent, registry: createMetricsRegistry('not-started-loss'), lingerMs: 5 });
  await persister.start();
  scheduler = await startScheduler(bed.settings, { logger: silent, reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-patient').catch(() => undefined), 10_000);
});

afterAll(async () => {
  await scheduler.close();
  await persister.stop();
  await bed.close();
});

describe('a job no worker took, when Redis loses its state while it waits', () => {
  it('still waits, and runs as attempt 1 when a worker comes', async () => {
    await bed.submit('w-1', 'patient');
    await new Promise((r) => setTimeout(r, 3_000)); // three lease lengths, no worker: it waited again
    await dropRedisNamespace(bed.settings.redisUrl, bed.ns);
    await waitFor(async () => !(await ready()), 5_000, 20);
    await waitFor(ready, 30_000, 50); // rebuilt from the durable record
    await new Promise((r) => setTimeout(r, 3_000)); // three more lease lengths after the rebuild
    const ran: string[] = [];
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'patient', handler: async (job) => void ran.push(`${job.jobId}#${job.attempt}`) });
    await waitFor(async () => ran.length > 0, 10_000).catch(() => undefined);
    await worker.stop();
    const dead = await bed.readStream(bed.names.streams.dead, DeadLetter, 'dead-patient');
    expect(dead.map((d) => `${d.jobId}: ${d.lastOutcome}`)).toEqual([]);
    expect(ran).toEqual(['w-1#1']);
    const outcomes = await bed.readStream(bed.names.streams.outcomes, OutcomeEvent, 'outcomes-patient');
    expect(outcomes.filter((o) => o.outcome === 'timed_out')).toEqual([]);
  }, 90_000);
});
