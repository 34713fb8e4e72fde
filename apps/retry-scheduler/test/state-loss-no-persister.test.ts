import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { appliedOutcomesOf, type PolicyDocumentInput } from '@janus/contracts';
import { announceConfigChange } from '@janus/policy';
import { dropRedisNamespace, waitFor } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, schedulerReady, type TestBed } from './harness.js';

/**
 * A Redis state loss while no persister runs (CONTRACT §6.5, §6.1, §6.2; found by a black-box chaos
 * audit: a persister killed, then Redis restarted empty). The rebuild reads the durable record the
 * persister keeps, so before, the persister's absence left only the fail-closed window: admission
 * reopened without the running jobs' leases (a concurrency limit of 3 ran 6), and their workers'
 * reports, in time, were never applied (the jobs stayed `admitted`). Now the rebuilding scheduler
 * stores the streams itself and rebuilds: the running jobs keep their slots and their reports settle.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 2 } },
  tenants: { acme: {} },
  jobTypes: { slow: { dependencies: [{ name: 'api' }], timeoutMs: 60_000 } },
};

let bed: TestBed;
let scheduler: Scheduler;
let worker: Worker;
const release = new Map<string, () => void>();
const inFlight = async (): Promise<number> => (await bed.limiter.inspect()).dependencies.api?.inFlight ?? -1;

beforeAll(async () => {
  bed = await openTestBed('scheduler-state-loss-no-persister', policyDoc);
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-slow').catch(() => undefined), 10_000);
  worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'slow', concurrency: 4, handler: (job) => new Promise<void>((resolve) => release.set(job.jobId, resolve)) });
});

afterAll(async () => {
  for (const done of release.values()) done();
  await worker.stop();
  await scheduler.close();
  await bed.close();
});

describe('Redis loses its state while no persister runs', () => {
  it('the scheduler stores the streams itself and rebuilds within 30 s: running jobs keep their slots, their reports settle', async () => {
    await bed.submit('run-1', 'slow');
    await bed.submit('run-2', 'slow');
    await waitFor(() => release.has('run-1') && release.has('run-2'), 10_000);

    const lostAt = Date.now();
    await dropRedisNamespace(bed.settings.redisUrl, bed.ns);
    await waitFor(async () => !(await schedulerReady(scheduler)), 5_000, 20);
    await waitFor(() => schedulerReady(scheduler), 30_000, 50);
    const reopenedMs = Date.now() - lostAt;
    console.log(`scheduler without a persister: state loss → rebuilt in ${reopenedMs} ms`);
    expect(reopenedMs).toBeLessThan(30_000);

    // both running jobs hold the dependency's two slots (before: reopened empty, a third admitted)
    expect(await inFlight()).toBe(2);
    expect(await bed.limiter.admit({ jobs: [{ jobId: 'over', tenant: 'acme', jobType: 'slow', priority: 'high' }] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    // their reports settle (before: their leases were unknown, the reports ignored)
    release.get('run-1')!();
    release.get('run-2')!();
    await waitFor(async () => (await inFlight()) === 0, 10_000, 50);
    const applied = (await bed.readStream(bed.names.streams.applied, { parse: appliedOutcomesOf }, `applied-${Date.now()}`)).flat();
    expect(applied.filter((a) => a.jobId.startsWith('run-')).map((a) => [a.jobId, a.outcome]).sort()).toEqual([
      ['run-1', 'succeeded'],
      ['run-2', 'succeeded'],
    ]);
  }, 60_000);
});
