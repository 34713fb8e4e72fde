import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { loadSettings } from '@janus/config';
import { JobListResponse, JobView, PROBLEM_BASE } from '@janus/contracts';
import { listJobsStatement, listJobViews } from '@janus/event-store';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

// GET /v1/jobs (an extension, docs/api.md) over both places a job can be: the persister's `jobs`
// (rows written here as the persister writes them) and the waiting room (room-only jobs: queued,
// cancelled or dead before their first admission), through the real ingress and PostgreSQL.
const ns = testNamespace('ingress-list');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;
let beta: string;

/** A job id Janus could have issued (26 Crockford base32 characters), so GET answers it too. */
const id = (n: number) => `01HZZ0J0B${String(n).padStart(17, '0')}`;
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const at = (secondsBefore: number) => new Date(T0 - secondsBefore * 1000);

const req = (path: string, key: string) => ingress.app.request(path, { headers: { authorization: `Bearer ${key}` } });
async function list(key: string, query = ''): Promise<JobListResponse> {
  const res = await req(`/v1/jobs${query}`, key);
  expect(res.status).toBe(200);
  return JobListResponse.parse(await res.json());
}
/** Every page from `query`, following `next`, with the page size `limit`. */
async function all(key: string, query: string, limit: number): Promise<{ pages: JobView[][]; jobs: JobView[] }> {
  const pages: JobView[][] = [];
  let next: string | null = null;
  do {
    const page: JobListResponse = await list(key, `?limit=${limit}${query}${next === null ? '' : `&cursor=${next}`}`);
    pages.push(page.jobs);
    next = page.next;
    expect(pages.length).toBeLessThan(100);
  } while (next !== null);
  return { pages, jobs: pages.flat() };
}

async function storedJob(n: number, opts: { tenant?: string; type?: string; status: string; secondsBefore: number; payload?: unknown; attempts?: { outcome?: string; error?: string }[] }): Promise<void> {
  const pool = ingress.runtime.db.pool;
  const created = at(opts.secondsBefore);
  await pool.query(`INSERT INTO jobs (job_id, tenant, type, priority, status, payload, created_at, updated_at) VALUES ($1, $2, $3, 'normal', $4, $5::jsonb, $6, now())`, [
    id(n),
    opts.tenant ?? 'acme',
    opts.type ?? 'email',
    opts.status,
    opts.payload === undefined ? null : JSON.stringify(opts.payload),
    created,
  ]);
  for (const [i, a] of (opts.attempts ?? [{}]).entries()) {
    await pool.query(`INSERT INTO attempts (job_id, attempt, admitted_at, outcome, finished_at, error) VALUES ($1, $2, $3, $4, $5, $6)`, [
      id(n),
      i + 1,
      created,
      a.outcome ?? null,
      a.outcome === undefined ? null : created,
      a.error ?? null,
    ]);
  }
}

async function roomRow(n: number, opts: { tenant?: string; type?: string; attempt?: number; state: string; secondsBefore: number; payload?: string; notBefore?: Date }): Promise<void> {
  const created = at(opts.secondsBefore);
  await ingress.runtime.db.pool.query(
    `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, payload, created_at, queued_at, due_at, not_before, state, updated_at)
     VALUES ($1, $2, $3, $4, 1, 'low', $5, $6, $6, $6, $7, $8, now())`,
    [id(n), opts.attempt ?? 1, opts.tenant ?? 'acme', opts.type ?? 'email', opts.payload ?? null, created, opts.notBefore ?? new Date(Date.now() + 3_600_000), opts.state],
  );
}

/** acme's jobs, newest first, with the status GET shows for each. */
const EXPECTED: [number, JobView['status']][] = [
  [12, 'queued'], // room only: waiting in mode queue
  [1, 'succeeded'],
  [2, 'dead'],
  [3, 'retrying'], // the persister says retrying, the room holds its attempt 2 (notBefore)
  [4, 'cancelled'], // the persister says retrying, its attempt 2 was cancelled in the room
  [13, 'cancelled'], // room only: cancelled while queued
  [6, 'admitted'], // same created_at as 5: the larger id first
  [5, 'admitted'],
  [14, 'dead'], // room only: dead in the room before any admission
  [7, 'succeeded'], // went through the room: its admitted attempt-1 row does not list it twice
  [8, 'admitted'],
];

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: { mail: { rate: { limit: 10_000, periodMs: 60_000 } }, solo: { concurrency: 1 } },
    tenants: { acme: {}, beta: {} },
    jobTypes: { email: { dependencies: [{ name: 'mail' }] }, sms: { dependencies: [{ name: 'mail' }] }, single: { dependencies: [{ name: 'solo' }] } },
  });
  acme = (await createKey([ingress], 'acme')).key;
  beta = (await createKey([ingress], 'beta')).key;

  await storedJob(1, { status: 'succeeded', secondsBefore: 10, payload: { order: 1 }, attempts: [{ outcome: 'succeeded' }] });
  await storedJob(2, { status: 'dead', secondsBefore: 20, payload: { order: 2 }, attempts: [{ outcome: 'failed', error: 'card declined' }, { outcome: 'timed_out', error: 'lease expired' }] });
  await storedJob(3, { status: 'retrying', secondsBefore: 30, type: 'sms', attempts: [{ outcome: 'failed', error: 'busy' }] });
  await roomRow(3, { attempt: 2, state: 'queued', secondsBefore: 30, type: 'sms' });
  await storedJob(4, { status: 'retrying', secondsBefore: 40, attempts: [{ outcome: 'failed', error: 'nope' }] });
  await roomRow(4, { attempt: 2, state: 'cancelled', secondsBefore: 40 });
  await storedJob(5, { status: 'admitted', secondsBefore: 50 });
  await storedJob(6, { status: 'admitted', secondsBefore: 50 });
  await storedJob(7, { status: 'succeeded', secondsBefore: 70, attempts: [{ outcome: 'succeeded' }] });
  await roomRow(7, { state: 'admitted', secondsBefore: 70 });
  await storedJob(8, { status: 'admitted', secondsBefore: 80, type: 'sms' });
  await roomRow(12, { state: 'queued', secondsBefore: 5, payload: '{"queued":true}' });
  await roomRow(13, { state: 'cancelled', secondsBefore: 45, type: 'sms' });
  await roomRow(14, { state: 'dead', secondsBefore: 60 });
  // Another tenant's jobs, in both places, interleaved in time.
  await storedJob(20, { tenant: 'beta', status: 'dead', secondsBefore: 15 });
  await roomRow(21, { tenant: 'beta', state: 'queued', secondsBefore: 25 });
}, 60_000);

afterAll(async () => {
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('GET /v1/jobs', () => {
  it("lists the tenant's jobs newest first from the persister and the room, each as GET shows it", async () => {
    const page = await list(acme);
    expect(page.next).toBeNull();
    expect(page.jobs.map((j) => [j.jobId, j.status])).toEqual(EXPECTED.map(([n, s]) => [id(n), s]));
    for (const job of page.jobs) {
      const one = await req(`/v1/jobs/${job.jobId}`, acme);
      expect(one.status).toBe(200);
      const view = (await one.json()) as JobView;
      // notBefore is "now" at the latest: the two reads may differ by the time between them.
      expect({ ...job, notBefore: undefined }).toEqual({ ...view, notBefore: undefined });
    }
    const byId = new Map(page.jobs.map((j) => [j.jobId, j]));
    expect(byId.get(id(2))).toMatchObject({ payload: { order: 2 }, lastError: 'lease expired', attempts: [{ attempt: 1 }, { attempt: 2, outcome: 'timed_out' }] });
    expect(byId.get(id(3))).toMatchObject({ status: 'retrying', notBefore: expect.any(String), lastError: 'busy' });
    expect(byId.get(id(12))).toMatchObject({ type: 'email', priority: 'low', payload: { queued: true }, notBefore: expect.any(String), attempts: [] });
    expect(byId.get(id(1))?.lastError).toBeUndefined();
    expect(byId.get(id(5))?.payload).toBeUndefined();
    // Another tenant sees only its own.
    expect((await list(beta)).jobs.map((j) => [j.jobId, j.status])).toEqual([
      [id(20), 'dead'],
      [id(21), 'queued'],
    ]);
  });

  it('pages with an opaque cursor: every job once, in order, whatever the page size', async () => {
    for (const limit of [1, 2, 3, 5, 500]) {
      const { pages, jobs } = await all(acme, '', limit);
      expect(jobs.map((j) => j.jobId)).toEqual(EXPECTED.map(([n]) => id(n)));
      expect(pages.slice(0, -1).every((p) => p.length === limit)).toBe(true);
      expect(pages.at(-1)?.length).toBeGreaterThan(0);
    }
  });

  it('filters by status (one or several) and type, also across pages', async () => {
    const pick = (...s: JobView['status'][]) => EXPECTED.filter(([, st]) => s.includes(st)).map(([n]) => id(n));
    expect((await list(acme, '?status=dead')).jobs.map((j) => j.jobId)).toEqual(pick('dead'));
    expect((await all(acme, '&status=queued,retrying,cancelled', 1)).jobs.map((j) => j.jobId)).toEqual(pick('queued', 'retrying', 'cancelled'));
    expect((await all(acme, '&type=sms', 2)).jobs.map((j) => j.jobId)).toEqual([id(3), id(13), id(8)]);
    expect((await list(acme, '?type=sms&status=cancelled')).jobs.map((j) => j.jobId)).toEqual([id(13)]);
    expect((await list(acme, '?type=nosuch')).jobs).toEqual([]);
  });

  it('a cursor is stable: jobs created after the first page do not shift the pages that follow', async () => {
    const first = await list(acme, '?limit=3');
    expect(first.jobs.map((j) => j.jobId)).toEqual(EXPECTED.slice(0, 3).map(([n]) => id(n)));
    // New jobs arrive, newer than everything listed: in the persister and in the room.
    await storedJob(30, { status: 'admitted', secondsBefore: 1 });
    await roomRow(31, { state: 'queued', secondsBefore: 2 });
    const rest: JobView[] = [];
    let next = first.next;
    while (next !== null) {
      const page = await list(acme, `?limit=3&cursor=${next}`);
      rest.push(...page.jobs);
      next = page.next;
    }
    expect(rest.map((j) => j.jobId)).toEqual(EXPECTED.slice(3).map(([n]) => id(n)));
    // A fresh listing starts with them.
    expect((await list(acme, '?limit=2')).jobs.map((j) => j.jobId)).toEqual([id(30), id(31)]);
    await ingress.runtime.db.pool.query(`DELETE FROM jobs WHERE job_id = $1`, [id(30)]);
    await ingress.runtime.db.pool.query(`DELETE FROM attempts WHERE job_id = $1`, [id(30)]);
    await ingress.runtime.db.pool.query(`DELETE FROM waiting_jobs WHERE job_id = $1`, [id(31)]);
  });

  it('a job queued in mode queue through the API is listed at once, with its payload', async () => {
    // The one slot of `solo` is taken (no worker runs), so the next job waits in the room.
    const post = (body: unknown) => ingress.app.request('/v1/jobs', json(body, { authorization: `Bearer ${beta}` }));
    expect((await post({ type: 'single' })).status).toBe(202);
    const queued = (await (await post({ type: 'single', mode: 'queue', payload: { hello: 'room' } })).json()) as { jobId: string; status: string };
    expect(queued.status).toBe('queued');
    const page = await list(beta, '?status=queued&type=single');
    expect(page.jobs).toHaveLength(1);
    expect(page.jobs[0]).toMatchObject({ jobId: queued.jobId, status: 'queued', payload: { hello: 'room' }, notBefore: expect.any(String), attempts: [] });
  });

  it('400 naming the field for a bad limit, status, type or cursor; 401 without a key', async () => {
    const cursor = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const cases: [string, string][] = [
      ['?limit=0', 'limit'],
      ['?limit=501', 'limit'],
      ['?limit=ten', 'limit'],
      ['?limit=2.5', 'limit'],
      ['?status=finished', 'status'],
      ['?status=dead,,queued', 'status'],
      ['?type=Not%20A%20Name', 'type'],
      ['?cursor=not*base64', 'cursor'],
      [`?cursor=${cursor({ t: '2030-02-30T00:00:00.000000Z', id: id(1) })}`, 'cursor'],
      [`?cursor=${cursor({ t: '2030-01-01T00:00:00.000000Z', id: 'a\u0000b' })}`, 'cursor'],
      [`?cursor=${cursor({ t: '2030-01-01T00:00:00.000Z', id: id(1) })}`, 'cursor'],
      [`?cursor=${cursor([1, 2])}`, 'cursor'],
    ];
    for (const [query, field] of cases) {
      const res = await req(`/v1/jobs${query}`, acme);
      expect(res.status, query).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      const body = (await res.json()) as { type: string; errors: { path: string }[] };
      expect(body.type).toBe(`${PROBLEM_BASE}/invalid-request`);
      expect(body.errors.map((e) => e.path), query).toEqual([field]);
    }
    expect((await ingress.app.request('/v1/jobs?limit=0')).status).toBe(401);
  });

  it('is in the OpenAPI document, with its query parameters', async () => {
    const doc = (await (await ingress.app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>> };
    const params = doc.paths['/v1/jobs']?.get?.parameters?.map((p) => `${p.in}:${p.name}`);
    expect(params).toEqual(expect.arrayContaining(['query:status', 'query:type', 'query:limit', 'query:cursor']));
    expect(doc.paths['/v1/jobs/{jobId}/replay']?.post).toBeDefined();
  });
});

describe('the query plan', () => {
  it('walks indexes newest first, on 40,000 jobs of 40 tenants', async () => {
    const pool = ingress.runtime.db.pool;
    await pool.query(`INSERT INTO jobs (job_id, tenant, type, priority, status, created_at, updated_at)
      SELECT 'bulk-' || i, 'bulk' || (i % 40), 'email', 'normal', (ARRAY['succeeded','dead','retrying','admitted'])[1 + i % 4], now() - (i || ' s')::interval, now()
        FROM generate_series(1, 40000) i`);
    await pool.query(`INSERT INTO attempts (job_id, attempt, admitted_at, outcome) SELECT job_id, 1, created_at, 'failed' FROM jobs WHERE job_id LIKE 'bulk-%'`);
    await pool.query(`INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at)
      SELECT 'room-' || i, 1, 'bulk' || (i % 40), 'email', 1, 'normal', now() - interval '1 hour' - (i || ' s')::interval, now(), now(), now(),
             (ARRAY['queued','cancelled','admitted'])[1 + i % 3], now()
        FROM generate_series(1, 4000) i`);
    await pool.query('ANALYZE jobs; ANALYZE attempts; ANALYZE waiting_jobs');
    const plan = async (query: Parameters<typeof listJobsStatement>[1]) => {
      const rows = await ingress.runtime.db.db.execute<{ 'QUERY PLAN': string }>(sql`EXPLAIN ${listJobsStatement('bulk7', query)}`);
      return rows.rows.map((r) => r['QUERY PLAN']).join('\n');
    };
    const cursor = { createdAt: new Date(Date.now() - 2_000_000).toISOString().replace('Z', '000Z'), jobId: 'bulk-5000' };
    for (const query of [{ limit: 50 }, { limit: 50, after: cursor }, { limit: 500, type: 'email', after: cursor }]) {
      const text = await plan(query);
      if (query.after === undefined) console.log(`[list] plan for ${JSON.stringify(query)}:\n${text}`);
      expect(text).toContain('jobs_tenant_created_idx');
      expect(text).toContain('waiting_jobs_unadmitted_idx');
      expect(text).not.toMatch(/Seq Scan on (jobs|waiting_jobs|attempts)/);
    }
    // The statement asks one row more than the page: that row says whether a next page exists.
    const page = await listJobViews(ingress.runtime.db.db, 'bulk7', { limit: 3 });
    expect(page.jobs.map((j) => j.jobId)).toEqual(['bulk-7', 'bulk-47', 'bulk-87']);
    expect(page.next).toMatchObject({ jobId: 'bulk-87' });
  });
});
