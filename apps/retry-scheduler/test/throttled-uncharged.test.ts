import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { appliedOutcomesOf, DeadLetter } from '@janus/contracts';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { Throttled, startWorker, type Worker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * Throttled failures are not charged to `maxAttempts` (the dependency refused for load; the job
 * never really ran), through the whole loop: a worker SDK worker, the scheduler's outcomes, its
 * retries, and the waiting room, whose rows (PostgreSQL) carry the count to the next lease.
 */
let bed: TestBed;
let scheduler: Scheduler;
let worker: Worker;
/** The attempts the worker ran, per job. */
const ran = new Map<string, number[]>();

/** What the job does on each attempt, by its payload's `mode`. */
type Mode = 'throttled-3-then-ok' | 'fails' | 'throttled-once-then-fails';

beforeAll(async () => {
  bed = await openTestBed('throttled_uncharged', {
    dependencies: { api: { concurrency: 10 } },
    tenants: { acme: {} },
    jobTypes: { call: { dependencies: [{ name: 'api' }], retry: { maxAttempts: 2, baseDelayMs: 10 } } },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-call').catch(() => undefined), 10_000);
  worker = await startWorker({
    nc: bed.nc,
    namespace: bed.ns,
    jobType: 'call',
    concurrency: 4,
    handler: async (job) => {
      ran.set(job.jobId, [...(ran.get(job.jobId) ?? []), job.attempt]);
      const mode = (job.payload as { mode: Mode }).mode;
      if (mode === 'throttled-3-then-ok' && job.attempt <= 3) throw new Throttled({ retryAfterMs: 50, message: 'HTTP 429' });
      if (mode === 'throttled-once-then-fails' && job.attempt === 1) throw new Throttled({ retryAfterMs: 50, message: 'HTTP 429' });
      if (mode !== 'throttled-3-then-ok') throw new Error(`boom ${job.attempt}`);
    },
  });
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await scheduler?.close();
  await bed?.close();
});

let reads = 0;
const applied = async (jobId: string) => (await bed.readStream(bed.names.streams.applied, { parse: appliedOutcomesOf }, `applied-${++reads}`)).flat().filter((a) => a.jobId === jobId);
const deadLetter = async (jobId: string) => (await bed.readStream(bed.names.streams.dead, DeadLetter, `dead-${++reads}`)).find((d) => d.jobId === jobId);
/**
 * The job's rows in the waiting room (the retries went through it), once the dispatcher has marked
 * its last admission: a row is `dispatching` until the dispatcher's batch commits, and the attempt
 * it admitted may run and finish before that.
 */
const roomRows = (jobId: string) =>
  waitFor(async () => {
    const { rows } = await bed.db.pool.query<{ attempt: number; uncharged: number; state: string }>(`SELECT attempt, uncharged, state FROM waiting_jobs WHERE job_id = $1 ORDER BY attempt`, [jobId]);
    return rows.some((r) => r.state === 'dispatching') ? undefined : rows;
  }, 5_000, 50);

describe('throttled attempts are not charged', () => {
  it('a job throttled on attempts 1–3 succeeds on attempt 4 although maxAttempts is 2; its retries carried the count through the room', async () => {
    await bed.submit('unch-ok', 'call', { mode: 'throttled-3-then-ok' });
    const outcomes = await waitFor(async () => {
      const a = await applied('unch-ok');
      return a.some((x) => x.outcome === 'succeeded') ? a : undefined;
    }, 20_000, 50);
    expect(outcomes.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
      [3, 'failed'],
      [4, 'succeeded'],
    ]);
    expect(ran.get('unch-ok')).toEqual([1, 2, 3, 4]);
    expect(await deadLetter('unch-ok')).toBeUndefined();
    // Each retry waited in the room (PostgreSQL) with the uncharged attempts before it, and was admitted from there.
    expect(await roomRows('unch-ok')).toEqual([
      { attempt: 2, uncharged: 1, state: 'admitted' },
      { attempt: 3, uncharged: 2, state: 'admitted' },
      { attempt: 4, uncharged: 3, state: 'admitted' },
    ]);
  }, 30_000);

  it('control: a job that fails (not throttled) is dead after 2 attempts', async () => {
    await bed.submit('unch-fails', 'call', { mode: 'fails' });
    const dead = await waitFor(() => deadLetter('unch-fails'), 20_000, 50);
    expect(dead).toMatchObject({ attempts: 2, lastOutcome: 'failed', error: 'boom 2' });
    expect(ran.get('unch-fails')).toEqual([1, 2]);
    expect(await roomRows('unch-fails')).toEqual([{ attempt: 2, uncharged: 0, state: 'admitted' }]);
  }, 30_000);

  it('a throttled attempt stays uncharged on later attempts: throttled once, then failing, is dead after 3 attempts (2 charged)', async () => {
    await bed.submit('unch-mixed', 'call', { mode: 'throttled-once-then-fails' });
    const dead = await waitFor(() => deadLetter('unch-mixed'), 20_000, 50);
    expect(dead).toMatchObject({ attempts: 3, lastOutcome: 'failed', error: 'boom 3' });
    expect(ran.get('unch-mixed')).toEqual([1, 2, 3]);
    expect(await roomRows('unch-mixed')).toEqual([
      { attempt: 2, uncharged: 1, state: 'admitted' },
      { attempt: 3, uncharged: 1, state: 'admitted' },
    ]);
  }, 30_000);
});
