import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobMessage } from '@janus/contracts';
import { testEnv, testNamespace } from '@janus/testing';
import type { Dispatcher } from '@janus/waiting-room';
import { Persister } from '@janus/event-store';
import { createMetricsRegistry } from '@janus/observability';
import { pino } from 'pino';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, startDispatcher, storedMessages } from './helpers.js';

// The waiting room through the real path: ingress (mode "queue") → PostgreSQL → the dispatcher →
// the one admission pipeline → JetStream. No worker runs: a job's admission is what is measured.
const ns = testNamespace('ingress-room');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let dispatcher: Dispatcher;
const keys: Record<string, string> = {};

function jain(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return (sum * sum) / (xs.length * squares);
}

async function submit(tenant: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await ingress.app.request('/v1/jobs', json(body, { authorization: `Bearer ${keys[tenant]}`, ...headers }));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Admitted job messages per tenant, for the given job type, with their admission times. */
async function admitted(type: string): Promise<JobMessage[]> {
  const stored = await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job(type));
  return stored.map((m) => JobMessage.parse(m.body));
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: {
      // A 40/s API (its bucket's initial burst is long spent when the shares are measured).
      api: { rate: { limit: 40, periodMs: 1000 } },
      weighted: { rate: { limit: 40, periodMs: 1000 } },
      held: { concurrency: 1 },
      solo: { concurrency: 1 },
      parked: { concurrency: 1 },
    },
    tenants: { flood: {}, one: {}, two: {}, heavy: { weight: 3 }, light: { weight: 1 }, small: { maxQueued: 5 }, busy: { maxQueued: 20 }, retried: { maxQueued: 2 }, 'park-key': {} },
    jobTypes: { fetch: { dependencies: [{ name: 'api' }] }, weigh: { dependencies: [{ name: 'weighted' }] }, hold: { dependencies: [{ name: 'held' }] }, single: { dependencies: [{ name: 'solo' }] }, park: { dependencies: [{ name: 'parked' }] }, free: {} },
  });
  for (const t of ['flood', 'one', 'two', 'heavy', 'light', 'small', 'busy', 'retried', 'park-key']) keys[t] = (await createKey([ingress], t)).key;
  dispatcher = await startDispatcher(ingress, ns);
}, 60_000);

afterAll(async () => {
  await dispatcher?.stop();
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('weighted fair queueing', () => {
  it('equal weights: a tenant flooding from 24 submitters gets no more than two tenants with one submitter each (Jain ≥ 0.95)', async () => {
    const statuses: number[] = [];
    const loop = async (tenant: string, n: number) => {
      for (let i = 0; i < n; i += 1) statuses.push((await submit(tenant, { type: 'fetch', mode: 'queue' })).status);
    };
    await Promise.all([...Array.from({ length: 24 }, () => loop('flood', 40)), loop('one', 200), loop('two', 200)]);
    // Every submission was answered 202 (admitted or queued): no 429 before maxQueued.
    expect(statuses.every((s) => s === 202)).toBe(true);
    // Measured once every job is in, while all three are still backlogged (40/s for 4 s is 160
    // runs; each tenant has 100+ jobs left).
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 4_500));
    const runs = await admitted('fetch');
    const window = runs.filter((m) => Date.parse(m.admittedAt) >= from && Date.parse(m.admittedAt) < from + 4_000);
    const per = ['flood', 'one', 'two'].map((t) => window.filter((m) => m.tenant === t).length);
    console.log(`[room] equal weights, runs per tenant in 5 s: ${per.join(' / ')}; Jain ${jain(per).toFixed(3)}`);
    // The dependency is kept busy: at least 95% of its 160 tokens in 4 s were used.
    expect(window.length).toBeGreaterThanOrEqual(152);
    expect(jain(per)).toBeGreaterThanOrEqual(0.95);
  }, 60_000);

  it('weights 3:1 split the capacity 75% / 25% (± 5%)', async () => {
    const loop = async (tenant: string, n: number) => {
      for (let i = 0; i < n; i += 1) await submit(tenant, { type: 'weigh', mode: 'queue' });
    };
    await Promise.all([loop('heavy', 300), loop('light', 120), loop('heavy', 300), loop('light', 120)]);
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 4_500));
    const runs = (await admitted('weigh')).filter((m) => Date.parse(m.admittedAt) >= from && Date.parse(m.admittedAt) < from + 4_000);
    const heavy = runs.filter((m) => m.tenant === 'heavy').length;
    const share = heavy / runs.length;
    console.log(`[room] weights 3:1 → heavy ${heavy} of ${runs.length} runs (${(share * 100).toFixed(1)}%)`);
    expect(runs.length).toBeGreaterThanOrEqual(152);
    expect(share).toBeGreaterThanOrEqual(0.7);
    expect(share).toBeLessThanOrEqual(0.8);
  }, 60_000);

  it('notBefore is never later than the admission', async () => {
    const runs = await admitted('fetch');
    const told = new Map<string, number>();
    // Ask the room what each job was told: GET shows notBefore while it waits; after admission the
    // row keeps what the producer was told.
    const rows = await ingress.runtime.db.pool.query<{ job_id: string; not_before: Date }>(`SELECT job_id, not_before FROM waiting_jobs WHERE state = 'admitted'`);
    for (const r of rows.rows) told.set(r.job_id, r.not_before.getTime());
    const early = runs.filter((m) => told.has(m.jobId) && Date.parse(m.admittedAt) < told.get(m.jobId)!);
    expect(told.size).toBeGreaterThan(100);
    expect(early).toEqual([]);
  });
});

describe('a queued job', () => {
  it('is answered 202 queued with notBefore, shown queued by GET, and cancelled by DELETE (204, then status cancelled)', async () => {
    // The one slot of `held` is taken, so the next one waits.
    expect((await submit('one', { type: 'hold' })).status).toBe(202);
    const queued = await submit('one', { type: 'hold', mode: 'queue', payload: { n: 1 } });
    expect(queued.status).toBe(202);
    expect(queued.body.status).toBe('queued');
    expect(Date.parse(String(queued.body.notBefore))).toBeGreaterThan(0);
    const id = String(queued.body.jobId);
    const auth = { authorization: `Bearer ${keys.one}` };
    const view = await ingress.app.request(`/v1/jobs/${id}`, { headers: auth });
    expect(view.status).toBe(200);
    expect(await view.json()).toMatchObject({ jobId: id, status: 'queued', type: 'hold', notBefore: expect.any(String) });
    // Another tenant cannot see or cancel it.
    expect((await ingress.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${keys.two}` } })).status).toBe(404);
    const cancelled = async () => (await ingress.runtime.registry.getSingleMetricAsString('janus_jobs_cancelled_total')).split('\n').find((l) => l.startsWith('janus_jobs_cancelled_total'));
    const before = await cancelled();
    expect((await ingress.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect(await (await ingress.app.request(`/v1/jobs/${id}`, { headers: auth })).json()).toMatchObject({ status: 'cancelled' });
    const once = await cancelled();
    expect(Number(once?.split(' ')[1])).toBe(Number(before?.split(' ')[1] ?? 0) + 1);
    // Cancelling again changes nothing (nor the count); it never runs even when the slot frees.
    expect((await ingress.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect((await ingress.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect(await cancelled()).toBe(once);
    expect((await admitted('hold')).map((m) => m.jobId)).not.toContain(id);
  });

  it('the idempotency key of a queued job its producer cancelled still names it: the same request is its replay (200), another 422 — single, mode now and batch', async () => {
    // park's one slot is held (admitted now, never reported; or by a test before): the job waits
    expect([202, 429]).toContain((await submit('park-key', { type: 'park' })).status);
    const first = await submit('park-key', { type: 'park', mode: 'queue', payload: { v: 1 } }, { 'idempotency-key': 'cancel-me' });
    expect(first.body.status).toBe('queued');
    const id = String(first.body.jobId);
    const auth = { authorization: `Bearer ${keys['park-key']}` };
    expect((await ingress.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: auth })).status).toBe(204);
    // (before: the key was free again — another request under it was admitted as a new job)
    const other = await submit('park-key', { type: 'free', payload: 'something else' }, { 'idempotency-key': 'cancel-me' });
    expect(other.status).toBe(422);
    expect(other.body.type).toMatch(/idempotency-key-reused$/);
    const otherInBatch = await ingress.app.request('/v1/jobs/batch', json({ jobs: [{ type: 'free', payload: 'different', idempotencyKey: 'cancel-me' }] }, auth));
    expect(otherInBatch.status).toBe(422);
    for (const mode of ['queue', 'now']) {
      const again = await submit('park-key', { type: 'park', mode, payload: { v: 1 } }, { 'idempotency-key': 'cancel-me' });
      expect(again, mode).toEqual({ status: 200, body: { jobId: id, status: 'queued', notBefore: first.body.notBefore, duplicate: true } });
    }
    expect(await (await ingress.app.request(`/v1/jobs/${id}`, { headers: auth })).json()).toMatchObject({ status: 'cancelled' });
  });

  it('a job the room already admitted cannot be cancelled (409); an unknown one is 404', async () => {
    const rows = await ingress.runtime.db.pool.query<{ job_id: string }>(`SELECT job_id FROM waiting_jobs WHERE state = 'admitted' AND tenant = 'two' LIMIT 1`);
    const id = rows.rows[0]!.job_id;
    const auth = { authorization: `Bearer ${keys.two}` };
    expect((await ingress.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: auth })).status).toBe(409);
    expect((await ingress.app.request('/v1/jobs/01JZZZZZZZZZZZZZZZZZZZZZZZ', { method: 'DELETE', headers: auth })).status).toBe(404);
  });

  it('a job answered 202 a moment ago, not yet stored by the persister, is 409 (admitted), not 404', async () => {
    const res = await submit('one', { type: 'free' });
    expect(res.status).toBe(202);
    const auth = { authorization: `Bearer ${keys.one}` };
    // No persister has stored it yet: the cancel waits for it (up to a second) instead of answering 404.
    const cancel = ingress.app.request(`/v1/jobs/${String(res.body.jobId)}`, { method: 'DELETE', headers: auth });
    const rt = ingress.runtime;
    const persister = new Persister({ db: rt.db.db, js: rt.js, jsm: rt.jsm, names: rt.names, logger: pino({ level: 'silent' }), registry: createMetricsRegistry('room-cancel-test'), lingerMs: 5 });
    await persister.start();
    try {
      expect((await cancel).status).toBe(409);
    } finally {
      await persister.stop();
    }
  });

  it('the same idempotency key while it waits is its duplicate (200), a different request under it 422', async () => {
    const first = await submit('two', { type: 'hold', mode: 'queue', payload: { a: 1 } }, { 'idempotency-key': 'wait-1' });
    expect(first.status).toBe(202);
    expect(first.body.status).toBe('queued');
    const again = await submit('two', { type: 'hold', mode: 'queue', payload: { a: 1 } }, { 'idempotency-key': 'wait-1' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ jobId: first.body.jobId, status: 'queued', duplicate: true });
    expect((await submit('two', { type: 'hold', mode: 'queue', payload: { a: 2 } }, { 'idempotency-key': 'wait-1' })).status).toBe(422);
  });

  it("a tenant's room is bounded by maxQueued: 429 queue_full beyond it, and not before", async () => {
    const answers = [];
    for (let i = 0; i < 8; i += 1) answers.push(await submit('small', { type: 'hold', mode: 'queue' }));
    expect(answers.slice(0, 5).map((a) => a.body.status)).toEqual(['queued', 'queued', 'queued', 'queued', 'queued']);
    expect(answers.slice(5).map((a) => [a.status, a.body.reason])).toEqual([
      [429, 'queue_full'],
      [429, 'queue_full'],
      [429, 'queue_full'],
    ]);
    const usage = await ingress.app.request('/v1/usage', { headers: { authorization: `Bearer ${keys.small}` } });
    expect(await usage.json()).toMatchObject({ queued: 5, queuedByType: { hold: 5 }, oldestQueuedAt: expect.any(String) });
  });

  it('retries waiting in the room are not jobs waiting in mode queue: they do not count against maxQueued, and usage shows them apart', async () => {
    // park's one slot is held (a job that never reports, admitted here or by a test before); three of
    // the tenant's retries wait in the room
    expect([202, 429]).toContain((await submit('retried', { type: 'park' })).status);
    await ingress.runtime.db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, last_outcome, created_at, queued_at, due_at, not_before, state, updated_at)
       SELECT 'retried-' || i, 2, 'retried', 'park', 2, 'normal', 'failed', now(), now() - interval '1 hour', now(), now(), 'queued', now()
         FROM generate_series(1, 3) AS i`,
    );
    const answers = [];
    for (let i = 0; i < 3; i += 1) answers.push(await submit('retried', { type: 'park', mode: 'queue' }));
    // (before: 429 queue_full at once, the retries counted as queued)
    expect(answers.map((a) => [a.status, a.status === 429 ? a.body.reason : a.body.status])).toEqual([
      [202, 'queued'],
      [202, 'queued'],
      [429, 'queue_full'],
    ]);
    const usage = await ingress.app.request('/v1/usage', { headers: { authorization: `Bearer ${keys.retried}` } });
    const body = (await usage.json()) as { oldestQueuedAt?: string };
    expect(body).toMatchObject({ queued: 2, queuedByType: { park: 2 }, retrying: 3 });
    // the oldest of the two queued jobs, not of the retries (waiting for an hour)
    expect(Date.parse(body.oldestQueuedAt ?? '')).toBeGreaterThan(Date.now() - 60_000);
  });

  it('under concurrency: maxQueued holds exactly, and one idempotency key sent 16 times at once queues one job', async () => {
    const answers = await Promise.all(Array.from({ length: 64 }, () => submit('busy', { type: 'hold', mode: 'queue' })));
    expect(answers.filter((a) => a.status === 202 && a.body.status === 'queued')).toHaveLength(20);
    expect(answers.filter((a) => a.status === 429 && a.body.reason === 'queue_full')).toHaveLength(44);
    const same = await Promise.all(Array.from({ length: 16 }, () => submit('two', { type: 'hold', mode: 'queue', payload: { k: 1 } }, { 'idempotency-key': 'at-once' })));
    const first = same.filter((a) => a.status === 202);
    expect(first).toHaveLength(1);
    expect(same.filter((a) => a.status === 200 && a.body.duplicate === true && a.body.jobId === first[0]!.body.jobId)).toHaveLength(15);
  });

  it('a replay of an admitted request in mode queue is its duplicate, even while jobs of its type wait', async () => {
    const first = await submit('one', { type: 'single', mode: 'queue', payload: { r: 1 } }, { 'idempotency-key': 'replayed' });
    expect(first).toMatchObject({ status: 202, body: { status: 'admitted' } });
    expect((await submit('one', { type: 'single', mode: 'queue' })).body.status).toBe('queued'); // the room is not empty now
    const again = await submit('one', { type: 'single', mode: 'queue', payload: { r: 1 } }, { 'idempotency-key': 'replayed' });
    expect(again).toMatchObject({ status: 200, body: { jobId: first.body.jobId, status: 'admitted', duplicate: true } });
  });
});
