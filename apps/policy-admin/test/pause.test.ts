import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Limiter } from '@janus/limiter';
import { startAdmin, waitFor, type AdminHarness } from './harness.js';

/**
 * Pause and resume (CONTRACT §5 v1.1): `POST /v1/dependencies/{name}/pause` `{ until? }`, `…/resume`,
 * and the same under `/v1/job-types/{name}/`. Admission (a limiter on the same namespace, as every
 * ingress and the room's dispatcher have) refuses the paused jobs with `paused` at once; a resume
 * wakes the waiting room.
 */
let h: AdminHarness;
let admission: Limiter;
let seq = 0;
const admit = (jobType: string) => admission.admit({ jobs: [{ jobId: `p-${++seq}`, tenant: 'acme', jobType, priority: 'normal' }] });

beforeAll(async () => {
  h = await startAdmin('admin_pause');
  expect((await h.call('PUT', '/v1/dependencies/api', { rate: { limit: 100, periodMs: 1000 } })).status).toBe(200);
  expect((await h.call('PUT', '/v1/dependencies/db', { adaptive: { enabled: false } })).status).toBe(200);
  expect((await h.call('PUT', '/v1/job-types/call', { dependencies: [{ name: 'api' }] })).status).toBe(200);
  const put = await h.call('PUT', '/v1/job-types/store', { dependencies: [{ name: 'db' }] });
  expect(put.status).toBe(200);
  await waitFor(() => h.limiter.policy.version === put.body.version, 2_000);
  admission = new Limiter({ redis: h.rt.redis, namespace: h.ns, signingKey: h.settings.signingKey, policy: h.limiter.policy });
  await admission.init({ fresh: true });
});

afterAll(async () => {
  await h?.close();
});

describe('pause and resume', () => {
  it('a dependency: paused until resumed → admission answers `paused`; the state says so; resume wakes the room and admits again', async () => {
    const paused = await h.call('POST', '/v1/dependencies/api/pause');
    expect(paused.status).toBe(200);
    expect(paused.body).toEqual({ dependency: 'api', paused: true, until: null });
    expect(await admit('call')).toMatchObject({ kind: 'rejected', reason: 'paused' });
    expect((await admit('store')).kind).toBe('admitted');
    expect((await h.call('GET', '/v1/dependencies/api/pause')).body).toEqual({ dependency: 'api', paused: true, until: null });
    expect((await h.call('GET', '/v1/dependencies/api/state')).body).toMatchObject({ paused: true, pausedUntil: null });

    const wakes: string[] = [];
    const sub = h.rt.nc.subscribe(h.rt.names.subjects.roomWake, { callback: (_e, m) => void wakes.push(m.string()) });
    await h.rt.nc.flush();
    const resumed = await h.call('POST', '/v1/dependencies/api/resume');
    expect(resumed.status).toBe(200);
    expect(resumed.body).toEqual({ dependency: 'api', paused: false, until: null });
    await waitFor(() => wakes.length > 0, 2_000);
    sub.unsubscribe();
    expect((await admit('call')).kind).toBe('admitted');
  });

  it('pauses and resumes are in the audit log: who, what, and the pause as it stood', async () => {
    const until = new Date(Date.now() + 60_000).toISOString();
    expect((await h.call('POST', '/v1/job-types/call/pause', { until })).status).toBe(200);
    expect((await h.call('POST', '/v1/job-types/call/resume')).status).toBe(200);
    const entries = (await h.call('GET', '/v1/audit?limit=2')).body.entries as { actor: string; action: string; target: string; diff: unknown }[];
    expect(entries.map((e) => [e.action, e.target])).toEqual([
      ['job-type.resume', 'job-types/call'],
      ['job-type.pause', 'job-types/call'],
    ]);
    expect(entries[1]?.actor).toBe(entries[0]?.actor);
    expect(entries[1]?.actor).toMatch(/^token:/);
    expect(entries[1]?.diff).toEqual([{ op: 'replace', path: 'job-types.call.pause', value: { paused: true, until } }]);
  });

  it('until: the pause ends by itself at that time (a dependency without adaptive too)', async () => {
    const until = new Date(Date.now() + 1_500).toISOString();
    const paused = await h.call('POST', '/v1/dependencies/db/pause', { until });
    expect(paused.body).toEqual({ dependency: 'db', paused: true, until });
    const refused = await admit('store');
    expect(refused).toMatchObject({ kind: 'rejected', reason: 'paused' });
    expect(refused.kind === 'rejected' && refused.retryAfterMs).toBeGreaterThan(1_000);
    expect(refused.kind === 'rejected' && refused.retryAfterMs).toBeLessThanOrEqual(1_500);
    await waitFor(async () => (await admit('store')).kind === 'admitted', 3_000, 100);
    expect((await h.call('GET', '/v1/dependencies/db/state')).body).toMatchObject({ paused: false, pausedUntil: null });
  });

  it('a job type: its jobs only', async () => {
    expect((await h.call('POST', '/v1/job-types/call/pause', {})).body).toEqual({ jobType: 'call', paused: true, until: null });
    expect(await admit('call')).toMatchObject({ kind: 'rejected', reason: 'paused' });
    expect((await admit('store')).kind).toBe('admitted');
    expect((await h.call('POST', '/v1/job-types/call/resume')).body).toEqual({ jobType: 'call', paused: false, until: null });
    expect((await admit('call')).kind).toBe('admitted');
  });

  it('404 for an unknown name, 400 for an invalid one, 400 naming `until` when it is not an ISO time or is past (which would lift a pause)', async () => {
    expect((await h.call('POST', '/v1/dependencies/nope/pause')).status).toBe(404);
    expect((await h.call('POST', '/v1/job-types/nope/resume')).status).toBe(404);
    expect((await h.call('POST', '/v1/dependencies/Bad%20Name/pause')).status).toBe(400);
    const bad = await h.call('POST', '/v1/dependencies/api/pause', { until: 'tomorrow' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('until');
    expect((await h.call('POST', '/v1/dependencies/api/pause', { until: '2030-01-01T00:00:00Z', extra: 1 })).status).toBe(400);
    expect((await h.call('GET', '/v1/dependencies/api/pause')).body).toEqual({ dependency: 'api', paused: false, until: null });
    // a pause in force is not lifted by a pause request whose `until` is past
    const until = new Date(Date.now() + 60_000).toISOString();
    expect((await h.call('POST', '/v1/dependencies/api/pause', { until })).status).toBe(200);
    const past = await h.call('POST', '/v1/dependencies/api/pause', { until: '2020-01-01T00:00:00Z' });
    expect(past.status).toBe(400);
    expect(past.body.errors).toEqual([{ path: 'until', message: expect.stringContaining('future') }]);
    expect((await h.call('GET', '/v1/dependencies/api/pause')).body).toMatchObject({ paused: true });
    expect((await h.call('POST', '/v1/dependencies/api/resume')).status).toBe(200);
  });
});

describe('deleting a dependency or a job type drops its pause', () => {
  /** Dependency dz, job type jz (no dependency) and jdz (on dz), run by both limiters. */
  const create = async () => {
    expect((await h.call('PUT', '/v1/dependencies/dz', {})).status).toBe(200);
    expect((await h.call('PUT', '/v1/job-types/jz', { dependencies: [] })).status).toBe(200);
    const put = await h.call('PUT', '/v1/job-types/jdz', { dependencies: [{ name: 'dz' }] });
    expect(put.status).toBe(200);
    await waitFor(() => h.limiter.policy.version === put.body.version, 2_000);
    admission.setPolicy(h.limiter.policy);
  };
  const setUp = async () => {
    await create();
    expect((await h.call('POST', '/v1/dependencies/dz/pause')).body).toMatchObject({ paused: true });
    expect((await h.call('POST', '/v1/job-types/jz/pause', { until: new Date(Date.now() + 3_600_000).toISOString() })).body).toMatchObject({ paused: true });
    expect(await admit('jdz')).toMatchObject({ kind: 'rejected', reason: 'paused' });
    expect(await admit('jz')).toMatchObject({ kind: 'rejected', reason: 'paused' });
  };
  const recreated = async () => {
    await create();
    expect((await h.call('GET', '/v1/dependencies/dz/pause')).body).toEqual({ dependency: 'dz', paused: false, until: null });
    expect((await h.call('GET', '/v1/job-types/jz/pause')).body).toEqual({ jobType: 'jz', paused: false, until: null });
    expect((await h.call('GET', '/v1/dependencies/dz/state')).body).toMatchObject({ paused: false, pausedUntil: null });
    expect((await admit('jdz')).kind).toBe('admitted');
    expect((await admit('jz')).kind).toBe('admitted');
  };

  it('by DELETE: re-created, they are not paused', async () => {
    await setUp();
    expect((await h.call('DELETE', '/v1/job-types/jdz')).status).toBe(200);
    expect((await h.call('DELETE', '/v1/job-types/jz')).status).toBe(200);
    expect((await h.call('DELETE', '/v1/dependencies/dz')).status).toBe(200);
    await recreated();
  });

  it('by PUT /v1/policy without them: re-created, they are not paused; a dry run keeps the pause', async () => {
    await setUp();
    const { version: _v, ...doc } = (await h.call('GET', '/v1/policy')).body;
    const { dz: _dz, ...dependencies } = doc.dependencies;
    const { jz: _jz, jdz: _jdz, ...jobTypes } = doc.jobTypes;
    expect((await h.call('PUT', '/v1/policy?dryRun=true', { ...doc, dependencies, jobTypes })).status).toBe(200);
    expect((await h.call('GET', '/v1/dependencies/dz/pause')).body).toMatchObject({ paused: true });
    expect((await h.call('PUT', '/v1/policy', { ...doc, dependencies, jobTypes })).status).toBe(200);
    await recreated();
  });
});
