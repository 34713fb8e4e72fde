import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import { loadSettings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { rejectedMessages } from '@janus/db';
import { Persister } from '@janus/event-store';
import { messageIds, publishJson } from '@janus/messaging';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, waitFor } from './helpers.js';

// "Exact under faults": inputs that used to give a 5xx, a 202 for a job that could never be read,
// or a replay of the wrong answer. Every check goes through a real ingress, Redis, NATS and
// PostgreSQL (and, for readability, a real persister).

const ns = testNamespace('ingress-inputs');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let persister: Persister;
let acme: string;

const POLICY = {
  dependencies: { mail: { rate: { limit: 100_000, periodMs: 60_000 } }, tight: { concurrency: 1 } },
  tenants: { acme: {} },
  jobTypes: {
    email: { dependencies: [{ name: 'mail' }] },
    sms: { dependencies: [{ name: 'mail' }] },
    slow: { dependencies: [{ name: 'tight' }] },
  },
};

const req = (path: string, init: RequestInit = {}) => ingress.app.request(path, init);
const auth = (key: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...extra });
const post = (path: string, body: unknown, headers: Record<string, string> = {}) => req(path, json(body, auth(acme, headers)));
const postText = (path: string, text: string, headers: Record<string, string> = {}) =>
  req(path, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(acme, headers) }, body: text });

type Problem = { type: string; title: string; status: number; detail?: string; errors?: { path: string; message: string }[] };
async function problemOf(res: Response): Promise<Problem> {
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  const body = (await res.json()) as Problem;
  expect(body.status).toBe(res.status);
  return body;
}

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], POLICY);
  acme = (await createKey([ingress], 'acme')).key;
  const { runtime } = ingress;
  persister = new Persister({ db: runtime.db.db, js: runtime.js, jsm: runtime.jsm, names: runtime.names, logger: pino({ level: 'silent' }), registry: runtime.registry });
  await persister.start();
});

afterAll(async () => {
  await persister.stop();
  await ingress.close();
  await cleanup(settings, ns);
});

async function readable(jobId: string): Promise<Record<string, unknown>> {
  return waitFor(async () => {
    const res = await req(`/v1/jobs/${jobId}`, { headers: auth(acme) });
    return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
  }, 10_000);
}

describe('deeply nested payloads', () => {
  it('5,000 levels is 400 naming payload, never a 5xx (single and batch, arrays and objects)', async () => {
    for (const deep of [nested(5_000), nestedObjects(5_000)]) {
      const single = await postText('/v1/jobs', `{"type":"email","payload":${deep}}`);
      expect(single.status).toBe(400);
      const p = await problemOf(single);
      expect(p.type).toBe(`${PROBLEM_BASE}/invalid-request`);
      expect(p.errors).toEqual([{ path: 'payload', message: expect.stringContaining('nested deeper than 64 levels') }]);

      const batch = await postText('/v1/jobs/batch', `{"jobs":[{"type":"email"},{"type":"email","payload":${deep}}]}`);
      expect(batch.status).toBe(400);
      expect((await problemOf(batch)).errors).toEqual([{ path: 'jobs.1.payload', message: expect.stringContaining('nested deeper than 64 levels') }]);
    }
  });

  it('64 levels is admitted and readable; 65 is 400', async () => {
    const ok = await postText('/v1/jobs', `{"type":"email","payload":${nested(64)}}`);
    expect(ok.status).toBe(202);
    const { jobId } = (await ok.json()) as { jobId: string };
    expect(await readable(jobId)).toMatchObject({ jobId, status: 'admitted' });
    expect((await postText('/v1/jobs', `{"type":"email","payload":${nested(65)}}`)).status).toBe(400);
    expect((await postText('/v1/jobs', `{"type":"email","payload":${nestedObjects(65)}}`)).status).toBe(400);
  });
});

describe('job ids that cannot exist', () => {
  it('GET /v1/jobs/{jobId} is 404 for NUL, wrong characters, case or length — never 503', async () => {
    const ids = ['%00', 'a%00b', '01ARZ3NDEKTSV4RRFFQ69G5FA%00', '01arz3ndektsv4rrffq69g5fav', '01ARZ3NDEKTSV4RRFFQ69G5FAVX', 'x'.repeat(300), '%F0%9F%92%A9', 'job%20x', '%E2%80%AE'];
    for (const id of ids) {
      const res = await req(`/v1/jobs/${id}`, { headers: auth(acme) });
      expect(res.status, id).toBe(404);
      expect((await problemOf(res)).type).toBe(`${PROBLEM_BASE}/not-found`);
    }
    // A well-formed id that was never issued is an ordinary 404 too.
    expect((await req('/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', { headers: auth(acme) })).status).toBe(404);
  });

  it('other routes with a path parameter never answer 5xx for such ids', async () => {
    for (const id of ['%00', 'x'.repeat(300), '%F0%9F%92%A9']) {
      const outcome = await req(`/v1/jobs/${id}/outcome`, json({ jobId: '\u0000', attempt: 1, leaseToken: 'abc.def', outcome: 'succeeded' }, { authorization: 'Bearer abc.def' }));
      expect(outcome.status, id).toBeLessThan(500);
      await problemOf(outcome);
      const del = await req(`/v1/jobs/${id}`, { method: 'DELETE', headers: auth(acme) });
      expect(del.status, id).toBeLessThan(500);
    }
  });
});

describe('NUL characters in a payload', () => {
  it('are refused at the edge with 400 naming payload (in a string or a key; single and batch)', async () => {
    const single = await post('/v1/jobs', { type: 'email', payload: { to: 'a\u0000b' } });
    expect(single.status).toBe(400);
    expect((await problemOf(single)).errors).toEqual([{ path: 'payload', message: expect.stringContaining('U+0000') }]);
    const key = await post('/v1/jobs', { type: 'email', payload: [{ 'k\u0000': 1 }] });
    expect(key.status).toBe(400);
    expect((await problemOf(key)).errors).toEqual([{ path: 'payload', message: expect.stringContaining('U+0000') }]);
    const batch = await post('/v1/jobs/batch', { jobs: [{ type: 'email', payload: 1 }, { type: 'email', payload: '\u0000' }] });
    expect(batch.status).toBe(400);
    expect((await problemOf(batch)).errors).toEqual([{ path: 'jobs.1.payload', message: expect.stringContaining('U+0000') }]);
  });

  it('a number beyond the range of a double (1e309, read as Infinity) is refused with 400 naming payload, not stored as null', async () => {
    for (const body of ['{"type":"email","payload":{"big":1e309}}', '{"type":"email","payload":-1e400}']) {
      const res = await req('/v1/jobs', { method: 'POST', headers: { ...auth(acme), 'content-type': 'application/json' }, body });
      expect(res.status, body).toBe(400);
      expect((await problemOf(res)).errors).toEqual([{ path: 'payload', message: expect.stringContaining('Infinity') }]);
    }
  });

  it('a payload holding the text \\u0000 (a backslash, not a NUL) is admitted and readable', async () => {
    const res = await post('/v1/jobs', { type: 'email', payload: { path: 'C:\\u0000', raw: '\\\\u0000' } });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    expect(await readable(jobId)).toMatchObject({ jobId, type: 'email', status: 'admitted' });
  });

  it('a job message Janus cannot store is rejected and the persister moves on', async () => {
    const { runtime } = ingress;
    const subject = runtime.names.subjects.job('email');
    const base = { type: 'email', tenant: 'acme', attempt: 1, priority: 'normal', admittedAt: new Date().toISOString(), lease: { id: 'l_1', token: 't', expiresAt: new Date().toISOString() } };
    const badId = '01ARZ3NDEKTSV4RRFFQ69G5BAD';
    const goodId = '01ARZ3NDEKTSV4RRFFQ69G5G00';
    await publishJson(runtime.js, subject, { ...base, jobId: badId, payload: { s: '\u0000' } }, messageIds.attempt(badId, 1));
    await publishJson(runtime.js, subject, { ...base, jobId: goodId, payload: { s: 'fine' } }, messageIds.attempt(goodId, 1));
    expect(await readable(goodId)).toMatchObject({ jobId: goodId });
    const rows = await waitFor(async () => {
      const r = await runtime.db.db.select().from(rejectedMessages).where(eq(rejectedMessages.subject, subject));
      return r.some((x) => x.raw.includes(badId)) ? r : undefined;
    });
    expect(rows.find((x) => x.raw.includes(badId))?.reason).toContain('NUL');
  });
});

describe('Idempotency-Key reused with a different request', () => {
  it('single jobs: the same request is 200 duplicate; another type, payload, priority or cost is 422', async () => {
    const first = await post('/v1/jobs', { type: 'email', payload: { a: 1, b: [1, 2] }, cost: 2 }, { 'idempotency-key': 'reuse-1' });
    expect(first.status).toBe(202);
    const firstBody = (await first.json()) as Record<string, unknown>;
    // Equal as canonical JSON (key order does not matter) and with the defaults written out.
    const same = await post('/v1/jobs', { payload: { b: [1, 2], a: 1 }, type: 'email', priority: 'normal', cost: 2 }, { 'idempotency-key': 'reuse-1' });
    expect(same.status).toBe(200);
    expect(await same.json()).toEqual({ ...firstBody, duplicate: true });
    for (const changed of [
      { type: 'sms', payload: { a: 1, b: [1, 2] }, cost: 2 },
      { type: 'email', payload: { a: 1, b: [2, 1] }, cost: 2 },
      { type: 'email', payload: { a: 1, b: [1, 2] } },
      { type: 'email', payload: { a: 1, b: [1, 2] }, cost: 2, priority: 'high' },
      { type: 'email', cost: 2 },
    ]) {
      const res = await post('/v1/jobs', changed, { 'idempotency-key': 'reuse-1' });
      expect(res.status, JSON.stringify(changed)).toBe(422);
      const p = await problemOf(res);
      expect(p.type).toBe(`${PROBLEM_BASE}/idempotency-key-reused`);
      expect(p.errors?.[0]?.path).toBe('Idempotency-Key');
    }
    // The body field names itself.
    const viaBody = await post('/v1/jobs', { type: 'sms', idempotencyKey: 'reuse-1' });
    expect(viaBody.status).toBe(422);
    expect((await problemOf(viaBody)).errors?.[0]?.path).toBe('idempotencyKey');
    // Still the first answer afterwards.
    expect(await (await post('/v1/jobs', { type: 'email', payload: { a: 1, b: [1, 2] }, cost: 2 }, { 'idempotency-key': 'reuse-1' })).json()).toEqual({ ...firstBody, duplicate: true });
  });

  it('batches: a reused batch key or job key with other content is 422 and admits nothing', async () => {
    const jobs = [{ type: 'email', payload: 1 }, { type: 'email', payload: 2 }];
    const first = await post('/v1/jobs/batch', { jobs }, { 'idempotency-key': 'batch-reuse-1' });
    expect(first.status).toBe(202);
    const firstBody = (await first.json()) as Record<string, unknown>;
    const again = await post('/v1/jobs/batch', { jobs }, { 'idempotency-key': 'batch-reuse-1' });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ ...firstBody, duplicate: true });
    const other = await post('/v1/jobs/batch', { jobs: [...jobs, { type: 'email', payload: 3 }] }, { 'idempotency-key': 'batch-reuse-1' });
    expect(other.status).toBe(422);
    expect((await problemOf(other)).type).toBe(`${PROBLEM_BASE}/idempotency-key-reused`);

    // A job key first used alone, then in a batch with a different job: the whole batch is 422 and
    // nothing of it is admitted (the slow job holds the only slot of `tight` if admitted).
    expect((await post('/v1/jobs', { type: 'email', payload: 'x' }, { 'idempotency-key': 'job-reuse-1' })).status).toBe(202);
    const mixed = await post('/v1/jobs/batch', { jobs: [{ type: 'slow' }, { type: 'email', payload: 'y', idempotencyKey: 'job-reuse-1' }] });
    expect(mixed.status).toBe(422);
    const p = await problemOf(mixed);
    expect(p.type).toBe(`${PROBLEM_BASE}/idempotency-key-reused`);
    expect(p.errors?.[0]?.path).toBe('jobs.1.idempotencyKey');
    expect((await ingress.limiter.inspect()).dependencies.tight?.inFlight).toBe(0);
    // The same job in a batch is a replay of its first answer.
    const replay = await post('/v1/jobs/batch', { jobs: [{ type: 'email', payload: 'x', idempotencyKey: 'job-reuse-1' }] });
    expect(replay.status).toBe(200);
  });

  it('concurrent requests with one key: identical ones give one 202 and the rest 200 (409 while it is being published); different ones 422', async () => {
    const same = await Promise.all(Array.from({ length: 2 }, () => post('/v1/jobs', { type: 'email', payload: { n: 1 } }, { 'idempotency-key': 'race-same' })));
    expect([[200, 202], [202, 409]]).toContainEqual(same.map((r) => r.status).sort());
    const different = await Promise.all(Array.from({ length: 8 }, (_, i) => post('/v1/jobs', { type: 'email', payload: { n: i } }, { 'idempotency-key': 'race-diff' })));
    const statuses = different.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 422)).toHaveLength(7);
  });
});
