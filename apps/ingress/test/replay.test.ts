import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobView, PROBLEM_BASE, ReplayResponse } from '@janus/contracts';
import { startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, storedMessages, viewWhen } from './helpers.js';

// POST /v1/jobs/{jobId}/replay (an extension, docs/api.md) through the whole loop: this ingress, a
// worker (the SDK), and the retry-scheduler (outcomes, retries, the room's dispatcher) and the
// persister as the real apps in child processes. A job dies, is replayed while its job type is
// paused (so it visibly waits), dies again, is replayed again and succeeds.
const ns = testNamespace('ingress-replay');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;
let beta: string;
const processes: AppProcess[] = [];
let worker: Worker | undefined;

/** What the worker saw, and whether it fails the jobs that ask for it. */
const runs: { jobId: string; attempt: number }[] = [];
let healed = false;

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const get = async (jobId: string, key = acme) => ingress.app.request(`/v1/jobs/${jobId}`, { headers: auth(key) });
const view = async (jobId: string): Promise<JobView> => JobView.parse(await (await get(jobId)).json());
const replay = (jobId: string, key = acme) => ingress.app.request(`/v1/jobs/${jobId}/replay`, { method: 'POST', headers: auth(key) });
const until = (jobId: string, ok: (v: JobView) => boolean, ms = 30_000) => viewWhen(ingress, acme, jobId, ok, ms);
async function submit(payload: unknown): Promise<string> {
  const res = await ingress.app.request('/v1/jobs', json({ type: 'flaky', payload }, auth(acme)));
  expect(res.status).toBe(202);
  return ((await res.json()) as { jobId: string }).jobId;
}
async function problemOf(res: Response): Promise<{ type: string; detail?: string; jobStatus?: string }> {
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  return (await res.json()) as { type: string; detail?: string; jobStatus?: string };
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: { api: { concurrency: 10 } },
    tenants: { acme: {}, beta: {} },
    jobTypes: { flaky: { dependencies: [{ name: 'api' }], timeoutMs: 10_000, retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 } } },
  });
  acme = (await createKey([ingress], 'acme')).key;
  beta = (await createKey([ingress], 'beta')).key;
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  processes.push(...(await Promise.all([startAppProcess('retry-scheduler', env), startAppProcess('persister', env)])));
  // The scheduler creates the workers consumer once it runs the policy.
  worker = await waitFor(
    () =>
      startWorker({
        nc: ingress.runtime.nc,
        namespace: ns,
        jobType: 'flaky',
        concurrency: 4,
        handler: async (job) => {
          runs.push({ jobId: job.jobId, attempt: job.attempt });
          if (!healed && (job.payload as { fail?: boolean } | undefined)?.fail === true) throw new Error(`boom ${job.attempt}`);
        },
      }).catch(() => undefined),
    30_000,
    100,
  );
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('POST /v1/jobs/{jobId}/replay', () => {
  let dead = '';
  let done = '';

  it('a job that used up its attempts is dead, with its payload and last error in the view and the list', async () => {
    dead = await submit({ order: 1, fail: true });
    done = await submit({ order: 2 });
    const v = await until(dead, (x) => x.status === 'dead');
    expect(v).toMatchObject({ payload: { order: 1, fail: true }, lastError: 'boom 2' });
    expect(v.attempts.map((a) => [a.attempt, a.outcome, a.error])).toEqual([
      [1, 'failed', 'boom 1'],
      [2, 'failed', 'boom 2'],
    ]);
    await until(done, (x) => x.status === 'succeeded');
    const listed = (await (await ingress.app.request('/v1/jobs?status=dead', { headers: auth(acme) })).json()) as { jobs: JobView[] };
    expect(listed.jobs.map((j) => j.jobId)).toEqual([dead]);
  }, 40_000);

  it('404 for another tenant (as GET) and for an unknown id; 409 for a job that is not dead; 401 without a key', async () => {
    expect((await get(dead, beta)).status).toBe(404);
    const foreign = await replay(dead, beta);
    expect(foreign.status).toBe(404);
    expect((await problemOf(foreign)).type).toBe(`${PROBLEM_BASE}/not-found`);
    expect((await replay('01HZZZZZZZZZZZZZZZZZZZZZZZ')).status).toBe(404);
    expect((await replay('not-a-job-id')).status).toBe(404);
    const alive = await replay(done);
    expect(alive.status).toBe(409);
    const p = await problemOf(alive);
    expect(p).toMatchObject({ type: `${PROBLEM_BASE}/not-replayable`, jobStatus: 'succeeded' });
    expect(p.detail).toContain('succeeded');
    expect((await ingress.app.request(`/v1/jobs/${dead}/replay`, { method: 'POST' })).status).toBe(401);
  });

  it('replays once however many replays arrive at once: one new attempt, shown retrying right away, and 409 for the rest', async () => {
    // Paused, the replayed attempt visibly waits in the room (the dispatcher is refused `paused`).
    await ingress.limiter.pause({ jobType: 'flaky' });
    const answers = await Promise.all([replay(dead), replay(dead), replay(dead)]);
    const [accepted, ...others] = answers.filter((r) => r.status === 202);
    expect(others).toHaveLength(0);
    expect(answers.filter((r) => r.status === 409)).toHaveLength(2);
    const body = ReplayResponse.parse(await accepted?.json());
    expect(body).toMatchObject({ jobId: dead, status: 'retrying', attempt: 3 });
    expect(await view(dead)).toMatchObject({ status: 'retrying', notBefore: expect.any(String), attempts: [{ attempt: 1 }, { attempt: 2 }] });
    const again = await replay(dead);
    expect(again.status).toBe(409);
    expect(await problemOf(again)).toMatchObject({ type: `${PROBLEM_BASE}/not-replayable`, jobStatus: 'retrying' });
    // One new room row (after the retry of attempt 2, admitted long ago): the next attempt, with
    // every earlier attempt uncharged (a fresh maxAttempts).
    const rows = await ingress.runtime.db.pool.query<{ attempt: number; uncharged: number; state: string; payload: string }>(
      `SELECT attempt, uncharged, state, payload FROM waiting_jobs WHERE job_id = $1 ORDER BY attempt`,
      [dead],
    );
    // (waiting: `queued`, or `dispatching` for the moment the dispatcher tries it and is refused `paused`)
    const waiting = (state: string) => (state === 'dispatching' ? 'queued' : state);
    expect(rows.rows.map((r) => [r.attempt, r.uncharged, waiting(r.state), JSON.parse(r.payload)])).toEqual([
      [2, 0, 'admitted', { order: 1, fail: true }],
      [3, 2, 'queued', { order: 1, fail: true }],
    ]);
    // Listed as GET shows it.
    const listed = (await (await ingress.app.request('/v1/jobs?status=retrying', { headers: auth(acme) })).json()) as { jobs: JobView[] };
    expect(listed.jobs.map((j) => j.jobId)).toEqual([dead]);
  });

  it('the replay runs through admission with a fresh maxAttempts, and may die again (its own dead letter)', async () => {
    await ingress.limiter.resume({ jobType: 'flaky' });
    ingress.runtime.nc.publish(ingress.runtime.names.subjects.roomWake, '');
    const v = await until(dead, (x) => x.status === 'dead' && x.attempts.length === 4);
    expect(v.attempts.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
      [3, 'failed'],
      [4, 'failed'],
    ]);
    expect(v.lastError).toBe('boom 4');
    const letters = await storedMessages(ingress, ingress.runtime.names.streams.dead, ingress.runtime.names.subjects.dead('flaky'));
    expect(letters.map((l) => [l.msgID, l.body.attempts])).toEqual([
      [`${dead}.2.dead`, 2],
      [`${dead}.4.dead`, 4],
    ]);
  }, 40_000);

  it('replayed again once the cause is fixed, it succeeds: GET shows the outcome and every attempt', async () => {
    healed = true;
    const res = await replay(dead);
    expect(res.status).toBe(202);
    expect(ReplayResponse.parse(await res.json())).toMatchObject({ status: 'retrying', attempt: 5 });
    const v = await until(dead, (x) => x.status === 'succeeded');
    expect(v.attempts.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
      [3, 'failed'],
      [4, 'failed'],
      [5, 'succeeded'],
    ]);
    expect(v).toMatchObject({ payload: { order: 1, fail: true }, lastError: 'boom 4' });
    expect(runs.filter((r) => r.jobId === dead).map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect((await replay(dead)).status).toBe(409);
    const metrics = await (await ingress.app.request('/metrics')).text();
    expect(metrics).toMatch(/janus_jobs_replayed_total\{job_type="flaky"[^}]*\} 2/);
  }, 40_000);
});
