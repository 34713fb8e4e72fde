import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import { appliedOutcomesOf, JobMessage, type PolicyDocumentInput } from '@janus/contracts';
import { Persister } from '@janus/event-store';
import { createMetricsRegistry } from '@janus/observability';
import { announceConfigChange } from '@janus/policy';
import { dropRedisNamespace, waitFor } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, schedulerReady, type TestBed } from './harness.js';

/**
 * A Redis state loss under a running scheduler (CONTRACT §6.5 and §6.2), through NATS workers: the
 * scheduler finds the loss, rebuilds the state from the durable record, and then a running job's
 * report settles its restored lease and frees its slot (even one reported while the state was
 * being rebuilt: it waits, it is not dropped), and a job whose worker was lost is reaped as
 * timed_out and retried.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 2 } },
  tenants: { acme: {} },
  jobTypes: {
    slow: { dependencies: [{ name: 'api' }], timeoutMs: 30_000 },
    // a worker takes these and is lost (it never reports): their leases run out while Redis is down
    orphan: { timeoutMs: 1_500, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } },
  },
};

let bed: TestBed;
let scheduler: Scheduler;
let persister: Persister;
let worker: Worker;
const release = new Map<string, () => void>();

const inFlight = async (): Promise<number> => (await bed.limiter.inspect()).dependencies.api?.inFlight ?? -1;
const ready = (): Promise<boolean> => schedulerReady(scheduler);

beforeAll(async () => {
  bed = await openTestBed('scheduler-state-loss', policyDoc);
  const silent = pino({ level: 'silent' });
  persister = new Persister({ db: bed.db.db, js: jetstream(bed.nc), jsm: bed.jsm, names: bed.names, logger: silent, registry: createMetricsRegistry('state-loss-test'), lingerMs: 5 });
  await persister.start();
  scheduler = await startScheduler(bed.settings, { logger: silent, reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-slow').catch(() => undefined), 10_000);
  worker = await startWorker({
    nc: bed.nc,
    namespace: bed.ns,
    jobType: 'slow',
    concurrency: 4,
    handler: (job) => new Promise<void>((resolve) => release.set(job.jobId, resolve)),
  });
});

afterAll(async () => {
  for (const done of release.values()) done();
  await worker.stop();
  await scheduler.close();
  await persister.stop();
  await bed.close();
});

describe('Redis loses its state under a running scheduler', () => {
  it('rebuilds within 30 s; reports settle restored leases (one sent while rebuilding waits, not dropped); a lost worker’s job is retried', async () => {
    await bed.submit('run-1', 'slow');
    await bed.submit('run-2', 'slow');
    await bed.submit('lost-1', 'orphan', { n: 1 });
    // A worker takes it and is lost (any NATS client that pulls and never reports). A job no worker
    // took would keep waiting instead (CONTRACT §4; not-started-state-loss.test.ts).
    await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-orphan').catch(() => undefined), 10_000);
    const taken = await (await jetstream(bed.nc).consumers.get(bed.names.streams.jobs, 'workers-orphan')).next({ expires: 5_000 });
    expect(taken?.json<{ jobId: string }>().jobId).toBe('lost-1');
    await waitFor(() => release.has('run-1') && release.has('run-2'), 10_000);
    expect(await bed.limiter.admit({ jobs: [{ jobId: 'over', tenant: 'acme', jobType: 'slow', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    await waitFor(async () => {
      const c = await bed.jsm.consumers.info(bed.names.streams.jobs, bed.names.consumers.persisterJobs).catch(() => undefined);
      return c !== undefined && c.num_pending + c.num_ack_pending === 0;
    }, 10_000);

    const lostAt = Date.now();
    await dropRedisNamespace(bed.settings.redisUrl, bed.ns);
    await waitFor(async () => !(await ready()), 5_000, 20);
    // run-2 finishes while the state is being rebuilt: its report must wait for the rebuild
    release.get('run-2')!();
    await waitFor(ready, 30_000, 50);
    const reopenedMs = Date.now() - lostAt;
    console.log(`scheduler: state loss → rebuilt in ${reopenedMs} ms`);
    expect(reopenedMs).toBeLessThan(30_000);

    // run-2's report settled its restored lease; run-1 still holds its slot
    await waitFor(async () => (await inFlight()) === 1, 10_000, 50);
    expect(await bed.limiter.admit({ jobs: [{ jobId: 'third', tenant: 'acme', jobType: 'slow', priority: 'high' }] })).toMatchObject({ kind: 'admitted' });
    expect(await bed.limiter.admit({ jobs: [{ jobId: 'fourth', tenant: 'acme', jobType: 'slow', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    release.get('run-1')!();
    await waitFor(async () => (await inFlight()) === 1, 10_000, 50);
    const applied = (await bed.readStream(bed.names.streams.applied, { parse: appliedOutcomesOf }, `applied-${Date.now()}`)).flat();
    expect(applied.filter((a) => a.jobId.startsWith('run-')).map((a) => [a.jobId, a.outcome]).sort()).toEqual([
      ['run-1', 'succeeded'],
      ['run-2', 'succeeded'],
    ]);

    // the orphan's lease ran out during the loss: it is reaped as timed_out and its attempt 2 is admitted
    const retried = await waitFor(async () => {
      const jobs = await bed.readStream(bed.names.streams.jobs, JobMessage, `jobs-${Date.now()}`);
      return jobs.find((j) => j.jobId === 'lost-1' && j.attempt === 2);
    }, 15_000, 200);
    expect(retried.payload).toEqual({ n: 1 });
  }, 60_000);
});
