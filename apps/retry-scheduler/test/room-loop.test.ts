import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The waiting room in the whole loop (the scheduler app with its dispatcher, a worker SDK worker):
 * a freed slot is used at once — a settle wakes the dispatcher, no polling delay — a retry storm
 * of one tenant waiting in the room does not push out another tenant's first attempts, and a tenant
 * spreading its jobs over two job types on one dependency gets one share of it, not two; and one
 * tenant's low-priority job shed at its own limit holds no other tenant's jobs back.
 */
let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('room_loop', {
    dependencies: { single: { concurrency: 1 }, api: { rate: { limit: 40, periodMs: 1000 } }, shared: { rate: { limit: 40, periodMs: 1000 } } },
    tenants: { storm: {}, calm: {}, splitter: {}, steady: {}, capped: { concurrency: 5 }, free: {} },
    jobTypes: {
      one: { dependencies: [{ name: 'single' }] },
      call: { dependencies: [{ name: 'api' }], timeoutMs: 600_000 },
      // two job types on one dependency
      sa: { dependencies: [{ name: 'shared' }], timeoutMs: 600_000 },
      sb: { dependencies: [{ name: 'shared' }], timeoutMs: 600_000 },
      // on no limited dependency: only the tenants' limits apply
      plain: { dependencies: [], timeoutMs: 600_000 },
    },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-one').catch(() => undefined), 10_000);
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

async function insert(rows: { jobId: string; attempt: number; tenant: string; type: string; priority: number }[]): Promise<void> {
  await bed.db.pool.query(
    `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, last_outcome, created_at, queued_at, due_at, not_before, state, updated_at)
     SELECT j, a, t, ty, p, 'normal', CASE WHEN a > 1 THEN 'failed' END, now(), now(), now(), now(), 'queued', now()
       FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int[]) AS r(j, a, t, ty, p)`,
    [rows.map((r) => r.jobId), rows.map((r) => r.attempt), rows.map((r) => r.tenant), rows.map((r) => r.type), rows.map((r) => r.priority)],
  );
  bed.nc.publish(bed.names.subjects.roomWake, 'job');
}

describe('the waiting room in the loop', () => {
  it('a freed slot is used at once: 30 jobs through a concurrency-1 dependency in well under the 1 s fallback each', async () => {
    const ran: string[] = [];
    const at: Record<string, number> = {};
    const worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'one', handler: async (job) => { ran.push(job.jobId); at[job.jobId] = Date.now(); } });
    const started = Date.now();
    await insert(Array.from({ length: 30 }, (_, i) => ({ jobId: `one-${i}`, attempt: 1, tenant: 'calm', type: 'one', priority: 1 })));
    await waitFor(async () => ran.length === 30, 20_000, 10);
    const tookMs = Date.now() - started;
    await worker.stop();
    console.log(`[room-loop] 30 jobs through concurrency 1 in ${tookMs} ms`);
    if (process.env.ROOM_DEBUG) {
      const rows = await bed.db.pool.query<{ job_id: string; updated_at: Date }>(`SELECT job_id, updated_at FROM waiting_jobs WHERE type = 'one' ORDER BY updated_at`);
      for (const r of rows.rows) console.log(r.job_id, 'admitted(row)', r.updated_at.getTime() - started, 'ran', (at[r.job_id] ?? 0) - started);
    }
    // Each slot freed by a settle is taken by the next waiting job at once (a polling dispatcher
    // with its 1 s recheck would need about 30 s).
    expect(tookMs).toBeLessThan(3_000);
    expect(new Set(ran).size).toBe(30);
  }, 60_000);

  it("a retry storm waiting in the room does not push out another tenant's first attempts", async () => {
    // 400 retries of one tenant (at their retry priority, low) and 200 first attempts of another.
    await insert([
      ...Array.from({ length: 400 }, (_, i) => ({ jobId: `storm-${i}`, attempt: 2, tenant: 'storm', type: 'call', priority: 2 })),
      ...Array.from({ length: 200 }, (_, i) => ({ jobId: `calm-${i}`, attempt: 1, tenant: 'calm', type: 'call', priority: 1 })),
    ]);
    const from = Date.now() + 1_500; // past the bucket's initial burst
    await new Promise((r) => setTimeout(r, 5_500));
    const rows = await bed.db.pool.query<{ tenant: string; n: number }>(
      `SELECT tenant, count(*)::int AS n FROM waiting_jobs WHERE type = 'call' AND state = 'admitted' AND updated_at >= $1 AND updated_at < $2 GROUP BY tenant`,
      [new Date(from), new Date(from + 4_000)],
    );
    const per = Object.fromEntries(rows.rows.map((r) => [r.tenant, r.n]));
    console.log(`[room-loop] over 4 s: storm retries ${per.storm ?? 0}, calm first attempts ${per.calm ?? 0}`);
    const calmShare = (per.calm ?? 0) / ((per.calm ?? 0) + (per.storm ?? 0));
    // At least its fair half: the retries run at `low` priority, which may use only 80 % of the
    // bucket (shedding), so the first attempts (normal) may take more, never less. (Until
    // 2026-12-01 a shed retry blocked the whole job type for a moment, and the two came out even.)
    expect(calmShare).toBeGreaterThanOrEqual(0.45);
    // and the dependency's rate is used: 40/s over 4 s
    expect((per.calm ?? 0) + (per.storm ?? 0)).toBeGreaterThanOrEqual(140);
  }, 60_000);

  it('/metrics shows the room: its leader, what it dispatched, what waits', async () => {
    const text = await scheduler.runtime.registry.metrics();
    expect(text).toMatch(/^janus_room_leader(\{[^}]*\})? 1$/m);
    expect(text).toMatch(/^janus_room_dispatched_total\{disposition="admitted"[^}]*\} [1-9]\d*$/m);
    expect(text).toMatch(/^janus_room_wait_seconds_count(\{[^}]*\})? [1-9]\d*$/m);
    // What still waits (the storm test left some of its 600 jobs behind).
    expect(text).toMatch(/^janus_room_waiting_jobs\{tenant="(storm|calm)",job_type="call"[^}]*\} [1-9]\d*$/m);
    expect(text).toMatch(/^janus_room_oldest_waiting_seconds\{tenant="(storm|calm)"[^}]*\} \d/m);
  });

  it('a tenant spreading its jobs over two job types on one dependency gets one share of it, not two', async () => {
    await insert([
      ...Array.from({ length: 200 }, (_, i) => ({ jobId: `split-a-${i}`, attempt: 1, tenant: 'splitter', type: 'sa', priority: 1 })),
      ...Array.from({ length: 200 }, (_, i) => ({ jobId: `split-b-${i}`, attempt: 1, tenant: 'splitter', type: 'sb', priority: 1 })),
      ...Array.from({ length: 200 }, (_, i) => ({ jobId: `steady-${i}`, attempt: 1, tenant: 'steady', type: 'sa', priority: 1 })),
    ]);
    const from = Date.now() + 1_500; // past the bucket's initial burst
    await new Promise((r) => setTimeout(r, 5_500));
    const rows = await bed.db.pool.query<{ tenant: string; n: number }>(
      `SELECT tenant, count(*)::int AS n FROM waiting_jobs WHERE type IN ('sa', 'sb') AND state = 'admitted' AND updated_at >= $1 AND updated_at < $2 GROUP BY tenant`,
      [new Date(from), new Date(from + 4_000)],
    );
    const per = Object.fromEntries(rows.rows.map((r) => [r.tenant, r.n]));
    console.log(`[room-loop] over 4 s on one 40/s dependency: splitter (two job types) ${per.splitter ?? 0}, steady (one) ${per.steady ?? 0}`);
    const steadyShare = (per.steady ?? 0) / ((per.steady ?? 0) + (per.splitter ?? 0));
    // (per job type, as before 2026-12-01, the splitter took two thirds)
    expect(steadyShare).toBeGreaterThanOrEqual(0.44);
    expect(steadyShare).toBeLessThanOrEqual(0.56);
  }, 60_000);

  it("a tenant's low-priority job shed at its own concurrency share holds no other tenant's jobs of the type back", async () => {
    // capped: concurrency 5, of which low priority may use ceil(0.8 × 5) = 4 — all 4 held
    for (let i = 0; i < 4; i += 1) {
      expect((await bed.limiter.admit({ jobs: [{ jobId: `held-${i}`, tenant: 'capped', jobType: 'plain', priority: 'high' }] })).kind).toBe('admitted');
    }
    await insert([{ jobId: 'capped-low', attempt: 1, tenant: 'capped', type: 'plain', priority: 2 }]);
    await new Promise((r) => setTimeout(r, 300));
    await insert(Array.from({ length: 5 }, (_, i) => ({ jobId: `free-${i}`, attempt: 1, tenant: 'free', type: 'plain', priority: 1 })));
    const state = async (prefix: string) =>
      (await bed.db.pool.query<{ state: string }>(`SELECT state FROM waiting_jobs WHERE job_id LIKE $1 || '%'`, [prefix])).rows.map((r) => r.state);
    // the other tenant's five go at once (before: the lane was blocked behind the shed job, and
    // they waited for as long as the capped tenant stayed at its share)
    await waitFor(async () => (await state('free-')).every((s) => s === 'admitted'), 3_000, 20);
    expect(await state('capped-low')).toEqual(['queued']);
  }, 30_000);
});
