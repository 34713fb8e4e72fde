import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { compilePolicy } from '@janus/limiter';
import { announceConfigChange, PolicyStore } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * A paused dependency (CONTRACT §5 v1.1) holds its waiting jobs in the room — none is admitted while
 * paused, none is lost — and a resume (which wakes the room, as policy-admin's route does) lets them
 * go at once, not after the 5 s an indefinite pause asks admission to wait. Likewise a policy
 * change that raises a limit: waiting jobs go as soon as the scheduler runs it, not at the next recheck.
 * The dispatcher's own recheck of a concurrency refusal is lengthened to 20 s here (1 s by default), so
 * that "at once" can be told from "at the recheck" with seconds to spare on a loaded machine.
 */
const RECHECK_MS = 20_000;
let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('pause_room', {
    dependencies: { api: { concurrency: 100 }, narrow: { concurrency: 1 } },
    tenants: { acme: {} },
    jobTypes: { call: { dependencies: [{ name: 'api' }] }, squeeze: { dependencies: [{ name: 'narrow' }] } },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100, roomSlotRecheckMs: RECHECK_MS });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(async () => scheduler.limiter.policy.version === bed.version, 10_000);
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

const count = async (state: string): Promise<number> =>
  Number((await bed.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM waiting_jobs WHERE state = $1`, [state])).rows[0]?.n ?? 0);

describe('pause and the waiting room', () => {
  it('holds waiting jobs while paused; a resume lets them all go at once', async () => {
    expect(await bed.limiter.pause({ dependency: 'api' })).toEqual({ paused: true, until: Infinity });
    await bed.db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at)
       SELECT 'pr-' || i, 1, 'acme', 'call', 1, 'normal', now(), now(), now(), now(), 'queued', now() FROM generate_series(1, 20) AS i`,
    );
    bed.nc.publish(bed.names.subjects.roomWake, 'job');
    // The dispatcher tries, is refused (`paused`), and keeps them waiting.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await count('admitted')).toBe(0);
    expect(await count('queued')).toBe(20);
    await bed.limiter.resume({ dependency: 'api' });
    const resumedAt = Date.now();
    bed.nc.publish(bed.names.subjects.roomWake, '');
    await waitFor(async () => (await count('admitted')) === 20, 10_000, 50);
    const tookMs = Date.now() - resumedAt;
    console.log(`[pause-room] 20 waiting jobs admitted ${tookMs} ms after the resume`);
    // At once: the wake lifts the block (without it, the dispatcher would look again after the 5 s
    // an indefinite pause asks for).
    expect(tookMs).toBeLessThan(2_500);
  }, 30_000);

  it('a policy change that raises a concurrency limit lets waiting jobs go at once', async () => {
    // the only slot is held (by a job that never reports): the room's jobs are refused and blocked
    const held = await bed.limiter.admit({ jobs: [{ jobId: 'holder', tenant: 'acme', jobType: 'squeeze', priority: 'normal' }] });
    expect(held.kind).toBe('admitted');
    await bed.db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at)
       SELECT 'sq-' || i, 1, 'acme', 'squeeze', 1, 'normal', now(), now(), now(), now(), 'queued', now() FROM generate_series(1, 10) AS i`,
    );
    bed.nc.publish(bed.names.subjects.roomWake, 'job');
    await new Promise((r) => setTimeout(r, 1_500));
    const squeezed = async () => Number((await bed.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM waiting_jobs WHERE state = 'admitted' AND type = 'squeeze'`)).rows[0]?.n ?? 0);
    expect(await squeezed()).toBe(0);

    // Refused (dependency_concurrency) and blocked: without a wake the next look is RECHECK_MS away.
    const saved = await new PolicyStore(bed.db.db).update(({ document: doc }) => ({ ...doc, dependencies: { ...doc.dependencies, narrow: { ...doc.dependencies['narrow']!, concurrency: 20 } } }), { actor: 'test', action: 'raise' });
    if (!saved.ok) throw new Error('policy update failed');
    bed.limiter.setPolicy(compilePolicy(saved.policy.document, saved.policy.version));
    await announceConfigChange(bed.nc, bed.names, saved.policy.version);
    await waitFor(() => scheduler.limiter.policy.version === saved.policy.version, 5_000, 5);
    const appliedAt = Date.now();
    await waitFor(async () => (await squeezed()) === 10, 10_000, 20);
    const tookMs = Date.now() - appliedAt;
    console.log(`[pause-room] 10 waiting jobs admitted ${tookMs} ms after the scheduler ran the raised limit`);
    // well within the dispatcher's own recheck: the change woke it
    expect(tookMs).toBeLessThan(RECHECK_MS / 4);
  }, 30_000);
});
