/**
 * CONTRACT §4: "A lease that expires before any worker took the job (the job never started) is not
 * a failed attempt: the job waits again and keeps its attempts."
 *
 * Jobs are admitted while no worker runs, with one attempt allowed and a 1 s lease: before, each
 * lease expired as a timed_out attempt and the job went to the dead letters without ever running.
 * Now a job whose message no worker was delivered waits (holding its slot) and runs, as attempt 1,
 * when a worker comes 4 s later, with its whole timeout from the moment the worker claims it. A job
 * a worker took and never finished still times out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { DeadLetter, OutcomeEvent, type PolicyDocumentInput } from '@janus/contracts';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 3 }, wide: { concurrency: 10 } },
  tenants: { acme: {} },
  jobTypes: {
    patient: { dependencies: [{ name: 'api' }], timeoutMs: 1000, retry: { maxAttempts: 1 } },
    crashy: { dependencies: [{ name: 'api' }], timeoutMs: 1000, retry: { maxAttempts: 1 } },
    late: { dependencies: [{ name: 'wide' }], timeoutMs: 4000, retry: { maxAttempts: 1 } },
  },
};

let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('not-started', policyDoc);
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-patient').catch(() => undefined), 10_000);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-crashy').catch(() => undefined), 10_000);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-late').catch(() => undefined), 10_000);
});

afterAll(async () => {
  await scheduler.close();
  await bed.close();
});

const inFlight = async (): Promise<number> => (await bed.limiter.inspect()).dependencies.api?.inFlight ?? -1;

describe('a job no worker took', () => {
  it('waits again, holding its slot and keeping its attempt, and runs as attempt 1 when a worker comes', async () => {
    await bed.submit('wait-1', 'patient');
    await bed.submit('wait-2', 'patient');
    await new Promise((r) => setTimeout(r, 4_000)); // four lease lengths, no worker
    expect(await inFlight()).toBe(2);
    const ran: string[] = [];
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
      jobType: 'patient',
      concurrency: 2,
      handler: async (job) => {
        ran.push(`${job.jobId}#${job.attempt}`);
      },
    });
    await waitFor(async () => ran.length === 2, 10_000);
    await waitFor(async () => (await inFlight()) === 0, 10_000);
    await worker.stop();
    expect(ran.sort()).toEqual(['wait-1#1', 'wait-2#1']);
    const outcomes = await bed.readStream(bed.names.streams.outcomes, OutcomeEvent, 'outcomes-patient');
    expect(outcomes.filter((o) => o.outcome === 'timed_out')).toEqual([]);
    const dead = await bed.readStream(bed.names.streams.dead, DeadLetter, 'dead-patient');
    expect(dead).toEqual([]);
  });

  it('a job a worker took and never finished still times out (here: its one attempt used, a dead letter)', async () => {
    // A worker that takes the message and dies without reporting (no claim: any NATS client).
    const consumer = await (await import('@nats-io/jetstream')).jetstream(bed.nc).consumers.get(bed.names.streams.jobs, 'workers-crashy');
    await bed.submit('lost-1', 'crashy');
    const taken = await consumer.next({ expires: 5_000 });
    expect(taken?.json<{ jobId: string }>().jobId).toBe('lost-1');
    const dead = await waitFor(async () => {
      const letters = await bed.readStream(bed.names.streams.dead, DeadLetter, `dead-crashy-${Date.now()}`);
      return letters.find((d) => d.jobId === 'lost-1');
    }, 10_000);
    expect(dead).toMatchObject({ jobId: 'lost-1', attempts: 1, lastOutcome: 'timed_out' });
    await waitFor(async () => (await inFlight()) === 0, 10_000);
  });

  it('runs with its whole timeoutMs from the claim: a job that waited is not cut short by what was left of its last wait', async () => {
    // 4 s leases: a waiting one is extended when 2 s are left, so a worker arriving at a random
    // moment found 2 to 4 s left (before: about half of these 3 s jobs timed out, as dead letters)
    const ids = Array.from({ length: 6 }, (_, i) => `late-${i}`);
    for (const id of ids) await bed.submit(id, 'late');
    await new Promise((r) => setTimeout(r, 6_000));
    const done: string[] = [];
    const left: number[] = [];
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
      jobType: 'late',
      concurrency: 6,
      handler: async (job) => {
        left.push(new Date(job.lease.expiresAt).getTime() - Date.now());
        await new Promise((r) => setTimeout(r, 3_000));
        done.push(job.jobId);
      },
    });
    await waitFor(async () => done.length === ids.length, 15_000);
    await waitFor(async () => (await bed.limiter.inspect()).dependencies.wide?.inFlight === 0, 10_000);
    await worker.stop();
    const outcomes = (await bed.readStream(bed.names.streams.outcomes, OutcomeEvent, 'outcomes-late')).filter((o) => ids.includes(o.jobId));
    expect(outcomes.filter((o) => o.outcome === 'timed_out')).toEqual([]);
    expect(outcomes.filter((o) => o.outcome === 'succeeded').map((o) => o.jobId).sort()).toEqual([...ids].sort());
    expect((await bed.readStream(bed.names.streams.dead, DeadLetter, 'dead-late')).filter((d) => ids.includes(d.jobId))).toEqual([]);
    // the worker was told its new expiry: a whole timeout from its claim
    for (const ms of left) expect(ms).toBeGreaterThan(3_500);
  }, 40_000);
});
