import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { jetstream } from '@nats-io/jetstream';
import { ensureServiceConsumer } from '@janus/messaging';
import { PolicyStore, announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The workers consumer of a job type deleted from the policy is removed once drained (issue #15):
 * while a job of it still waits for a worker, the consumer stays (the job still runs); once no job
 * is pending or held, it goes. The consumers of the policy's job types are never removed; one that
 * was deleted by hand comes back, and its workers carry on without a restart. A job type deleted
 * and created again does not hand its workers the finished jobs of before.
 */
let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('consumer_sweep', {
    dependencies: { api: { concurrency: 10 } },
    tenants: { acme: {} },
    jobTypes: { keep: { dependencies: [{ name: 'api' }] }, gone: { dependencies: [{ name: 'api' }] }, again: { dependencies: [{ name: 'api' }] } },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100, consumerSweepMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-gone').catch(() => undefined), 10_000);
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

const exists = (name: string) => bed.jsm.consumers.info(bed.names.streams.jobs, name).then(() => true, () => false);

describe('workers consumers of deleted job types', () => {
  it('stay while their jobs wait, and are removed once drained', async () => {
    await bed.submit('sweep-1', 'gone');
    const saved = await new PolicyStore(bed.db.db).update(
      ({ document }) => {
        const { gone: _gone, ...jobTypes } = document.jobTypes;
        return { ...document, jobTypes };
      },
      { actor: 'test', action: 'delete gone' },
    );
    if (!saved.ok) throw new Error('policy update failed');
    await announceConfigChange(bed.nc, bed.names, saved.policy.version);
    await waitFor(() => scheduler.limiter.policy.version === saved.policy.version, 10_000);
    // Many sweeps later, the job still waits for a worker: its consumer stays.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await exists('workers-gone')).toBe(true);

    const ran: string[] = [];
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'gone', handler: async (job) => void ran.push(job.jobId) });
    await waitFor(() => ran.length === 1, 10_000);
    await worker.stop();
    await waitFor(async () => !(await exists('workers-gone')), 10_000, 100);
    expect(ran).toEqual(['sweep-1']);
    expect(await exists('workers-keep')).toBe(true);
  }, 60_000);

  it('the deleted consumer of a job type in the policy comes back: later jobs run, finished ones are not delivered again', async () => {
    const ran: string[] = [];
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'keep', handler: async (job) => void ran.push(job.jobId) });
    try {
      await bed.submit('keep-1', 'keep');
      await waitFor(() => ran.length === 1, 10_000);
      // A sweep has seen the acknowledged floor (every 100 ms) once keep-1 was acked.
      await waitFor(async () => (await bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-keep')).ack_floor.consumer_seq === 1, 10_000, 50);
      await new Promise((r) => setTimeout(r, 500));

      expect(await bed.jsm.consumers.delete(bed.names.streams.jobs, 'workers-keep')).toBe(true);
      await bed.submit('keep-2', 'keep');
      await waitFor(() => ran.length === 2, 20_000, 100);
      expect(ran).toEqual(['keep-1', 'keep-2']);
      // The consumer started after keep-1: one delivery (keep-2), not the job that had finished.
      const info = await bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-keep');
      expect(info.delivered.consumer_seq).toBe(1);
      expect(info.config.max_deliver).toBe(1);
      // Counted (the consumers the first sweeps created for the seeded job types are not).
      expect(await scheduler.runtime.registry.getSingleMetricAsString('janus_worker_consumers_recreated_total')).toMatch(/janus_worker_consumers_recreated_total\{app="retry-scheduler"\} 1$/m);
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('the deleted consumer of a job type in the policy comes back without handing a job a worker holds to a second worker', async () => {
    // Worker A takes keep-held and holds it (no ack yet; a raw NATS client, as any worker may be).
    const consumer = await jetstream(bed.nc).consumers.get(bed.names.streams.jobs, 'workers-keep');
    await bed.submit('keep-held', 'keep');
    const held = await consumer.next({ expires: 5_000 });
    expect(held?.json<{ jobId: string }>().jobId).toBe('keep-held');
    // A sweep sees it delivered (every 100 ms), then the consumer is deleted by hand.
    await waitFor(async () => (await bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-keep')).num_ack_pending === 1, 5_000, 20);
    await new Promise((r) => setTimeout(r, 500));
    expect(await bed.jsm.consumers.delete(bed.names.streams.jobs, 'workers-keep')).toBe(true);
    // Worker B (the SDK) on the consumer created again: it gets the next job, never keep-held
    // (before, the new consumer started after the acknowledged floor and B's claim of keep-held succeeded).
    await waitFor(() => exists('workers-keep'), 10_000, 50);
    const ran: string[] = [];
    const b = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'keep', handler: async (job) => void ran.push(job.jobId) });
    try {
      await bed.submit('keep-next', 'keep');
      await waitFor(() => ran.includes('keep-next'), 20_000, 100);
      await new Promise((r) => setTimeout(r, 300));
      expect(ran).toEqual(['keep-next']);
    } finally {
      await b.stop();
      held?.ack();
    }
  }, 60_000);

  it('a job type deleted (its consumer removed drained) and created again does not deliver its finished jobs again', async () => {
    // The persister's consumer, caught up (what it stored may leave the stream).
    await ensureServiceConsumer(bed.jsm, bed.names.streams.jobs, bed.names.consumers.persisterJobs);
    const persisterCaughtUp = async () => {
      const consumer = await jetstream(bed.nc).consumers.get(bed.names.streams.jobs, bed.names.consumers.persisterJobs);
      for (;;) {
        const m = await consumer.next({ expires: 1_000 });
        if (!m) return;
        m.ack();
      }
    };
    const ran: string[] = [];
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'again', handler: async (job) => void ran.push(job.jobId) });
    await bed.submit('again-1', 'again');
    await waitFor(() => ran.length === 1, 10_000);
    await worker.stop();
    await persisterCaughtUp();
    const store = new PolicyStore(bed.db.db);
    const change = async (build: Parameters<PolicyStore['update']>[0]) => {
      const saved = await store.update(build, { actor: 'test', action: 'again' });
      if (!saved.ok) throw new Error('policy update failed');
      await announceConfigChange(bed.nc, bed.names, saved.policy.version);
      await waitFor(() => scheduler.limiter.policy.version === saved.policy.version, 10_000);
    };
    const { again } = scheduler.limiter.policy.document.jobTypes;
    await change(({ document }) => {
      const { again: _again, ...jobTypes } = document.jobTypes;
      return { ...document, jobTypes };
    });
    await waitFor(async () => !(await exists('workers-again')), 10_000, 100);
    await change(({ document }) => ({ ...document, jobTypes: { ...document.jobTypes, again: again! } }));
    await waitFor(() => exists('workers-again'), 10_000, 50);
    // nothing of before waits for its workers (before: again-1, delivered to them again)
    expect((await bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-again')).num_pending).toBe(0);
    const later: string[] = [];
    const next = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'again', handler: async (job) => void later.push(job.jobId) });
    try {
      await bed.submit('again-2', 'again');
      await waitFor(() => later.length === 1, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(later).toEqual(['again-2']);
    } finally {
      await next.stop();
    }
  }, 60_000);
});
