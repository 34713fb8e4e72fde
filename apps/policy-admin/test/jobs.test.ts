import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attempts, jobs } from '@janus/db';
import { startAdmin, waitFor, type AdminHarness } from './harness.js';

/**
 * The admins' job routes (docs/api.md): `GET /v1/admin/jobs` across tenants or for one, by status
 * and type, paged with the producers' cursor; `GET /v1/admin/jobs/{jobId}`; and the replay of a
 * dead job into the waiting room. The jobs are written as the persister writes them.
 */
let h: AdminHarness;
const base = Date.parse('2030-01-01T00:00:00.000Z');

async function storeJob(jobId: string, tenant: string, status: 'succeeded' | 'dead', at: number, error?: string): Promise<void> {
  const db = h.rt.db.db;
  await db.insert(jobs).values({ jobId, tenant, type: 'charge', priority: 'normal', status, payload: { n: at - base }, createdAt: new Date(at), updatedAt: new Date(at) });
  await db.insert(attempts).values({ jobId, attempt: 1, admittedAt: new Date(at), outcome: status === 'dead' ? 'failed' : 'succeeded', finishedAt: new Date(at + 10), error: error ?? null });
}

beforeAll(async () => {
  h = await startAdmin('admin_jobs');
  expect((await h.call('PUT', '/v1/dependencies/stripe', { rate: { limit: 100, periodMs: 1000 } })).status).toBe(200);
  const put = await h.call('PUT', '/v1/job-types/charge', { dependencies: [{ name: 'stripe' }] });
  expect(put.status).toBe(200);
  await waitFor(() => h.limiter.policy.version === put.body.version, 2_000);
  await storeJob('job-a1', 'acme', 'succeeded', base + 1_000);
  await storeJob('job-a2', 'acme', 'dead', base + 2_000, 'card declined');
  await storeJob('job-g1', 'globex', 'dead', base + 3_000, 'timeout upstream');
  await storeJob('job-g2', 'globex', 'succeeded', base + 4_000);
});

afterAll(async () => {
  await h?.close();
});

describe('admin job routes', () => {
  it('need the admin token', async () => {
    expect((await h.app.request('/v1/admin/jobs')).status).toBe(401);
    expect((await h.app.request('/v1/admin/jobs/job-a1')).status).toBe(401);
    expect((await h.app.request('/v1/admin/jobs/job-a2/replay', { method: 'POST' })).status).toBe(401);
  });

  it("GET /v1/admin/jobs: every tenant's jobs newest first, each with its tenant; or one tenant's; by status", async () => {
    const all = await h.call('GET', '/v1/admin/jobs');
    expect(all.status).toBe(200);
    expect(all.body.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['job-g2', 'job-g1', 'job-a2', 'job-a1']);
    expect(all.body.next).toBeNull();
    expect(all.body.jobs[1]).toMatchObject({ jobId: 'job-g1', tenant: 'globex', type: 'charge', status: 'dead', lastError: 'timeout upstream', payload: { n: 3_000 } });
    expect(all.body.jobs[1].attempts).toEqual([{ attempt: 1, admittedAt: new Date(base + 3_000).toISOString(), outcome: 'failed', finishedAt: new Date(base + 3_010).toISOString(), error: 'timeout upstream' }]);

    const acme = await h.call('GET', '/v1/admin/jobs?tenant=acme');
    expect(acme.body.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['job-a2', 'job-a1']);
    const dead = await h.call('GET', '/v1/admin/jobs?status=dead');
    expect(dead.body.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['job-g1', 'job-a2']);
    const either = await h.call('GET', '/v1/admin/jobs?status=dead,succeeded&tenant=globex&type=charge');
    expect(either.body.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['job-g2', 'job-g1']);
    expect((await h.call('GET', '/v1/admin/jobs?type=other')).body.jobs).toEqual([]);
  });

  it('pages with an opaque cursor, every job once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await h.call('GET', `/v1/admin/jobs?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.jobs.map((j: { jobId: string }) => j.jobId));
      cursor = page.body.next;
      pages++;
    } while (cursor !== null && pages < 5);
    expect(pages).toBe(2);
    expect(seen).toEqual(['job-g2', 'job-g1', 'job-a2', 'job-a1']);
  });

  it('a bad query is 400 naming the field', async () => {
    for (const [q, field] of [
      ['status=nope', 'status'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['cursor=abc', 'cursor'],
      ['tenant=a:b', 'tenant'],
    ] as const) {
      const res = await h.call('GET', `/v1/admin/jobs?${q}`);
      expect(res.status, q).toBe(400);
      expect(JSON.stringify(res.body.errors), q).toContain(field);
    }
  });

  it('GET /v1/admin/jobs/{jobId}: any tenant’s job; 404 for none (and for an id that cannot be one)', async () => {
    const one = await h.call('GET', '/v1/admin/jobs/job-g1');
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ jobId: 'job-g1', tenant: 'globex', status: 'dead', lastError: 'timeout upstream' });
    expect((await h.call('GET', '/v1/admin/jobs/job-none')).status).toBe(404);
    expect((await h.call('GET', `/v1/admin/jobs/${encodeURIComponent('a b\u0000')}`)).status).toBe(404);
  });

  it('POST /v1/admin/jobs/{jobId}/replay: a dead job waits in the room as its next attempt (and wakes the dispatcher); once only', async () => {
    const wakes: string[] = [];
    const sub = h.rt.nc.subscribe(h.rt.names.subjects.roomWake, { callback: (_e, m) => void wakes.push(m.string()) });
    await h.rt.nc.flush();
    const replay = await h.call('POST', '/v1/admin/jobs/job-g1/replay');
    expect(replay.status).toBe(202);
    expect(replay.body).toMatchObject({ jobId: 'job-g1', status: 'retrying', attempt: 2 });
    await waitFor(() => wakes.length > 0, 2_000);
    sub.unsubscribe();
    const row = await h.rt.db.pool.query<{ tenant: string; uncharged: number; state: string }>(`SELECT tenant, uncharged, state FROM waiting_jobs WHERE job_id = 'job-g1' AND attempt = 2`);
    expect(row.rows).toEqual([{ tenant: 'globex', uncharged: 1, state: 'queued' }]);
    expect((await h.call('GET', '/v1/admin/jobs/job-g1')).body.status).toBe('retrying');

    const again = await h.call('POST', '/v1/admin/jobs/job-g1/replay');
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ type: expect.stringContaining('/not-replayable'), jobStatus: 'retrying' });
    const notDead = await h.call('POST', '/v1/admin/jobs/job-a1/replay');
    expect(notDead.status).toBe(409);
    expect(notDead.body.jobStatus).toBe('succeeded');
    expect((await h.call('POST', '/v1/admin/jobs/job-none/replay')).status).toBe(404);
    const metrics = await (await h.app.request('/metrics')).text();
    expect(metrics).toMatch(/janus_admin_jobs_replayed_total\{job_type="charge"[^}]*\} 1/);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await (await h.app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/v1/admin/jobs'] ?? {})).toEqual(['get']);
    expect(Object.keys(doc.paths['/v1/admin/jobs/{jobId}'] ?? {})).toEqual(['get']);
    expect(Object.keys(doc.paths['/v1/admin/jobs/{jobId}/replay'] ?? {})).toEqual(['post']);
  });
});
