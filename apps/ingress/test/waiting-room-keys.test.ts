import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobView } from '@janus/contracts';
import { startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import type { Ingress } from '../src/ingress.js';
import { fingerprint, jobContent } from '../src/fingerprint.js';
import { newJobId } from '../src/ids.js';
import { cleanup, createKey, json, setPolicy, start, storedMessages } from './helpers.js';

// A producer idempotency key whose job waits in the room (mode `queue`) and the same key sent in
// mode `now` (CONTRACT §3: "same idempotency key again … after an admitted or queued decision → 200,
// the first response's body plus duplicate: true"; §6.2: every job answered 202 ends succeeded, dead
// or cancelled). Through the real path: this ingress, the retry-scheduler (its dispatcher admits the
// waiting jobs) and the persister as the real apps in child processes, and worker SDK workers.
const ns = testNamespace('ingress-room-keys');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
const keys: Record<string, string> = {};
const processes: AppProcess[] = [];
const workers: Worker[] = [];
/** Lets the blocker (the job holding the one slot of `dep`) finish. */
let releaseBlocker: () => void = () => {};
const blockerReleased = new Promise<void>((resolve) => (releaseBlocker = resolve));

type Answer = { status: number; body: Record<string, unknown> };
const auth = (tenant: string) => ({ authorization: `Bearer ${keys[tenant]}` });

async function post(tenant: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await ingress.app.request(path, json(body, { ...auth(tenant), ...headers }));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const submit = (tenant: string, body: unknown, headers: Record<string, string> = {}) => post(tenant, '/v1/jobs', body, headers);
const batch = (tenant: string, body: unknown, headers: Record<string, string> = {}) => post(tenant, '/v1/jobs/batch', body, headers);

async function view(tenant: string, jobId: string): Promise<JobView | undefined> {
  const res = await ingress.app.request(`/v1/jobs/${jobId}`, { headers: auth(tenant) });
  return res.status === 200 ? JobView.parse(await res.json()) : undefined;
}
const until = (tenant: string, jobId: string, ok: (v: JobView) => boolean, ms = 30_000) =>
  waitFor(async () => {
    const v = await view(tenant, jobId);
    return v !== undefined && ok(v) ? v : undefined;
  }, ms, 100);

/** The job ids of the job messages stored for a job type (one per admitted attempt). */
async function ran(type: string): Promise<string[]> {
  const { names } = ingress.runtime;
  return (await storedMessages(ingress, names.streams.jobs, names.subjects.job(type))).map((m) => String(m.body['jobId']));
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: {
      dep: { concurrency: 1 },
      paced: { rate: { limit: 5, periodMs: 1000, burst: 1 } },
    },
    tenants: { acme: {}, other: {} },
    jobTypes: {
      held: { dependencies: [{ name: 'dep' }], timeoutMs: 120_000 },
      paced: { dependencies: [{ name: 'paced' }] },
      plain: {},
    },
  });
  for (const t of ['acme', 'other']) keys[t] = (await createKey([ingress], t)).key;
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  processes.push(...(await Promise.all([startAppProcess('retry-scheduler', env), startAppProcess('persister', env)])));
  // The scheduler creates each job type's workers consumer once it runs the policy.
  const started = (jobType: string, handler: Parameters<typeof startWorker>[0]['handler']) =>
    waitFor(() => startWorker({ nc: ingress.runtime.nc, namespace: ns, jobType, concurrency: 4, handler }).catch(() => undefined), 30_000, 100);
  workers.push(
    await started('held', async (job) => {
      if ((job.payload as { blocker?: boolean } | undefined)?.blocker === true) await blockerReleased;
    }),
    await started('paced', async () => {}),
    await started('plain', async () => {}),
  );
}, 90_000);

afterAll(async () => {
  releaseBlocker();
  await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('a producer key whose job waits in the room, sent again in mode now', () => {
  it('is answered 200 with the queued job (single and batch, header or body key), 422 for another request; no second job runs, and the queued one runs once a slot frees', async () => {
    // The one slot of `dep` is held by another tenant's job, in a worker.
    const blocker = await submit('other', { type: 'held', payload: { blocker: true } });
    expect(blocker).toMatchObject({ status: 202, body: { status: 'admitted' } });
    const blockerId = String(blocker.body.jobId);

    const queued = await submit('acme', { type: 'held', mode: 'queue', payload: { a: 1 } }, { 'idempotency-key': 'K1' });
    expect(queued).toMatchObject({ status: 202, body: { status: 'queued' } });
    const x = String(queued.body.jobId);
    const replay = { status: 200, body: { ...queued.body, duplicate: true } };
    expect(await submit('acme', { type: 'held', mode: 'queue', payload: { a: 1 } }, { 'idempotency-key': 'K1' })).toEqual(replay);

    // Mode now, explicit or by default, the key in the header or the body: the queued job's answer
    // (before the fix: 429 dependency_concurrency).
    expect(await submit('acme', { type: 'held', mode: 'now', payload: { a: 1 } }, { 'idempotency-key': 'K1' })).toEqual(replay);
    expect(await submit('acme', { type: 'held', payload: { a: 1 } }, { 'idempotency-key': 'K1' })).toEqual(replay);
    expect(await submit('acme', { type: 'held', payload: { a: 1 }, idempotencyKey: 'K1' })).toEqual(replay);
    // Another request under the key: 422, nothing admitted.
    const reused = await submit('acme', { type: 'held', payload: { a: 2 } }, { 'idempotency-key': 'K1' });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ type: expect.stringContaining('idempotency-key-reused'), errors: [{ path: 'Idempotency-Key' }] });
    const reusedPriority = await submit('acme', { type: 'held', payload: { a: 1 }, priority: 'high', idempotencyKey: 'K1' });
    expect(reusedPriority.status).toBe(422);
    expect(reusedPriority.body).toMatchObject({ errors: [{ path: 'idempotencyKey' }] });

    // A batch: the job under K1 answers the queued job; the others are admitted as usual.
    const alone = await batch('acme', { jobs: [{ type: 'held', payload: { a: 1 }, idempotencyKey: 'K1' }] });
    expect(alone).toEqual({ status: 200, body: { jobs: [{ ...queued.body, duplicate: true }] } });
    const mixed = await batch('acme', { jobs: [{ type: 'plain', payload: { b: 1 } }, { type: 'held', payload: { a: 1 }, idempotencyKey: 'K1' }, { type: 'plain', payload: { b: 2 } }] });
    expect(mixed.status).toBe(202);
    const entries = mixed.body.jobs as Record<string, unknown>[];
    expect(entries[0]).toMatchObject({ status: 'admitted', attempt: 1 });
    expect(entries[1]).toEqual({ ...queued.body, duplicate: true });
    expect(entries[2]).toMatchObject({ status: 'admitted', attempt: 1 });
    // In a batch, a different request under K1 is 422 naming the job, and nothing of the batch is admitted.
    const plainBefore = (await ran('plain')).length;
    const batchReused = await batch('acme', { jobs: [{ type: 'plain', payload: { b: 3 } }, { type: 'held', payload: { a: 9 }, idempotencyKey: 'K1' }] });
    expect(batchReused.status).toBe(422);
    expect(batchReused.body).toMatchObject({ errors: [{ path: 'jobs.1.idempotencyKey' }] });
    // With a batch key (its record can hold only admitted jobs): 409, send again later; nothing admitted.
    const keyedBatch = await batch('acme', { jobs: [{ type: 'plain', payload: { b: 4 } }, { type: 'held', payload: { a: 1 }, idempotencyKey: 'K1' }] }, { 'idempotency-key': 'B1' });
    expect(keyedBatch.status).toBe(409);
    expect(keyedBatch.body).toMatchObject({ errors: [{ path: 'jobs.1.idempotencyKey' }] });
    expect((await ran('plain')).length).toBe(plainBefore);

    // No second job of K1: only the blocker was admitted on `dep` so far.
    expect(await ran('held')).toEqual([blockerId]);
    expect(await until('acme', x, (v) => v.status === 'queued')).toMatchObject({ status: 'queued', attempts: [] });

    // The slot frees: the queued job is admitted, runs and succeeds — once.
    releaseBlocker();
    const done = await until('acme', x, (v) => v.status === 'succeeded');
    expect(done.attempts).toHaveLength(1);
    expect(await ran('held')).toEqual([blockerId, x]);
    // Now admitted, the key still answers the first response's body (CONTRACT §3): queued, with its
    // notBefore (before: the admission's body; GET /v1/jobs/{id} is what tells the job's status).
    const after = await submit('acme', { type: 'held', payload: { a: 1 } }, { 'idempotency-key': 'K1' });
    expect(after).toEqual({ status: 200, body: { ...queued.body, duplicate: true } });
  }, 60_000);

  it('behind a rate: looping the mode-now request while the keyed job waits behind ten others never admits a second job', async () => {
    // burst 1 at 5/s: the first of ten may be admitted at once, the rest wait about 2 s.
    for (let i = 0; i < 10; i += 1) expect((await submit('acme', { type: 'paced', mode: 'queue', payload: { i } })).status).toBe(202);
    const queued = await submit('acme', { type: 'paced', mode: 'queue', payload: { v: 1 } }, { 'idempotency-key': 'K2' });
    expect(queued).toMatchObject({ status: 202, body: { status: 'queued' } });
    const x = String(queued.body.jobId);
    // Before the fix the loop got a 202 admitted with a new jobId after about 130 ms.
    const answers: Answer[] = [];
    let afterAdmission = 0;
    const stopAt = Date.now() + 8_000;
    while (Date.now() < stopAt && afterAdmission < 5) {
      const wasAdmitted = (await ran('paced')).includes(x);
      answers.push(await submit('acme', { type: 'paced', payload: { v: 1 } }, { 'idempotency-key': 'K2' }));
      if (wasAdmitted) afterAdmission += 1;
      await new Promise((r) => setTimeout(r, 10));
    }
    // Every answer, while it waited and after the dispatcher admitted it, is the first one: queued,
    // with its id and notBefore (CONTRACT §3).
    expect(afterAdmission).toBe(5);
    const odd = answers.filter((a) => a.status !== 200 || a.body.jobId !== x || a.body.duplicate !== true || a.body.status !== 'queued' || a.body.notBefore !== queued.body.notBefore);
    expect(odd).toEqual([]);
    await until('acme', x, (v) => v.status === 'succeeded');
    const paced = await ran('paced');
    expect(paced.filter((id) => id === x)).toHaveLength(1);
    expect(paced).toHaveLength(11);
  }, 60_000);
});

describe('a waiting job whose key another job took meanwhile (the queueing raced a mode-now admission)', () => {
  it('leaves the room cancelled, naming the job that ran under its key; GET shows it, DELETE is 409, it never runs', async () => {
    // Y is admitted under K3 in mode now; X waits in the room under K3 (as if its queueing had
    // raced Y's admission: both answered 202).
    const y = await submit('acme', { type: 'plain', payload: { c: 1 } }, { 'idempotency-key': 'K3' });
    expect(y).toMatchObject({ status: 202, body: { status: 'admitted' } });
    const yId = String(y.body.jobId);
    const x = newJobId();
    const fp = fingerprint(jobContent({ type: 'plain', priority: 'normal', payload: { c: 1 } }));
    await ingress.runtime.db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, payload, idempotency_key, fingerprint, created_at, queued_at, due_at, not_before, state, updated_at)
       VALUES ($1, 1, 'acme', 'plain', 1, 'normal', '{"c":1}', 'K3', $2, now(), now(), now(), now(), 'queued', now())`,
      [x, fp],
    );
    ingress.runtime.nc.publish(ingress.runtime.names.subjects.roomWake, 'job');
    // The dispatcher tries it. Before the fix: `admitted` with no attempt, for ever (stranded).
    const final = await until('acme', x, (v) => v.status !== 'queued');
    expect(final).toMatchObject({ jobId: x, status: 'cancelled', attempts: [] });
    const row = await ingress.runtime.db.pool.query<{ state: string; reason: string }>(`SELECT state, reason FROM waiting_jobs WHERE job_id = $1`, [x]);
    expect(row.rows[0]?.state).toBe('cancelled');
    expect(row.rows[0]?.reason).toContain(yId);
    // Finished, not waiting: DELETE is 409 as for any finished job (not a 204 for a producer's cancel).
    const del = await ingress.app.request(`/v1/jobs/${x}`, { method: 'DELETE', headers: auth('acme') });
    expect(del.status).toBe(409);
    expect(await del.json()).toMatchObject({ type: expect.stringContaining('not-cancellable') });
    // Y ran and succeeded; X never ran; the key still answers Y.
    await until('acme', yId, (v) => v.status === 'succeeded');
    expect((await ran('plain')).filter((id) => id === x || id === yId)).toEqual([yId]);
    expect(await submit('acme', { type: 'plain', payload: { c: 1 } }, { 'idempotency-key': 'K3' })).toMatchObject({ status: 200, body: { jobId: yId, duplicate: true } });
    expect(await view('acme', x)).toMatchObject({ status: 'cancelled' });
  }, 60_000);

  it('until its turn comes, the key answers the job that was admitted under it (mode now and queue), not the waiting one', async () => {
    const y = await submit('acme', { type: 'plain', payload: { d: 1 } }, { 'idempotency-key': 'K4' });
    expect(y).toMatchObject({ status: 202, body: { status: 'admitted' } });
    const x = newJobId();
    const fp = fingerprint(jobContent({ type: 'plain', priority: 'normal', payload: { d: 1 } }));
    // Not due for 3 s: the dispatcher leaves it waiting meanwhile.
    await ingress.runtime.db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, payload, idempotency_key, fingerprint, created_at, queued_at, due_at, not_before, state, updated_at)
       VALUES ($1, 1, 'acme', 'plain', 1, 'normal', '{"d":1}', 'K4', $2, now(), now(), now() + interval '3 seconds', now() + interval '3 seconds', 'queued', now())`,
      [x, fp],
    );
    ingress.runtime.nc.publish(ingress.runtime.names.subjects.roomWake, 'job');
    expect(await view('acme', x)).toMatchObject({ status: 'queued' });
    const answersY = { status: 200, body: { ...y.body, duplicate: true } };
    expect(await submit('acme', { type: 'plain', payload: { d: 1 } }, { 'idempotency-key': 'K4' })).toEqual(answersY);
    expect(await submit('acme', { type: 'plain', mode: 'queue', payload: { d: 1 } }, { 'idempotency-key': 'K4' })).toEqual(answersY);
    expect(await batch('acme', { jobs: [{ type: 'plain', payload: { d: 1 }, idempotencyKey: 'K4' }] })).toEqual({ status: 200, body: { jobs: [{ ...y.body, duplicate: true }] } });
    // Its turn: it leaves the room cancelled, naming Y.
    expect(await until('acme', x, (v) => v.status !== 'queued', 15_000)).toMatchObject({ status: 'cancelled', attempts: [] });
    expect((await ran('plain')).filter((id) => id === x)).toEqual([]);
  }, 60_000);
});
