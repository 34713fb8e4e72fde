import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { loadSettings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { apiKeys, attempts, jobs } from '@janus/db';
import { announceConfigChange } from '@janus/policy';
import { findSecrets, testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, storedMessages, waitFor } from './helpers.js';

const ns = testNamespace('ingress-api');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;
let beta: string;
let rich: string;
let ghost: string;

const POLICY = {
  dependencies: {
    mail: { rate: { limit: 10_000, periodMs: 60_000 } },
    tight: { concurrency: 2 },
    llm: { rate: { limit: 2, periodMs: 60_000 } },
    hooks: { concurrency: 5 },
  },
  tenants: { acme: {}, beta: {}, rich: { budget: { limit: 100, periodMs: 3_600_000 } } },
  jobTypes: {
    email: { dependencies: [{ name: 'mail' }], maxPayloadBytes: 256, timeoutMs: 10_000 },
    slow: { dependencies: [{ name: 'tight' }] },
    limited: { dependencies: [{ name: 'llm' }] },
    costly: { dependencies: [{ name: 'mail', cost: 10 }] },
    hook: { dependencies: [{ name: 'hooks' }] },
  },
};

const req = (path: string, init: RequestInit = {}) => ingress.app.request(path, init);
const auth = (key: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...extra });
const post = (path: string, key: string, body: unknown, headers: Record<string, string> = {}) => req(path, json(body, auth(key, headers)));

async function problemOf(res: Response) {
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  const body = (await res.json()) as { type: string; title: string; status: number; detail?: string; errors?: { path: string; message: string }[] };
  expect(body.status).toBe(res.status);
  expect(typeof body.title).toBe('string');
  expect(body.type.startsWith(PROBLEM_BASE)).toBe(true);
  return body;
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], POLICY);
  acme = (await createKey([ingress], 'acme')).key;
  beta = (await createKey([ingress], 'beta')).key;
  rich = (await createKey([ingress], 'rich')).key;
  ghost = (await createKey([ingress], 'ghost')).key;
});

afterAll(async () => {
  await ingress.close();
  await cleanup(settings, ns);
});

describe('authentication', () => {
  it('401 without a key, with an unknown key, and with a malformed header', async () => {
    for (const headers of [{}, { authorization: 'Bearer jns_nope_nope' }, { authorization: 'Basic abc' }] as Record<string, string>[]) {
      const res = await req('/v1/jobs', json({ type: 'email' }, headers));
      expect(res.status).toBe(401);
      expect((await problemOf(res)).type).toBe(`${PROBLEM_BASE}/unauthorized`);
    }
  });

  it('never echoes a credential: not in a problem body, not in a metric label', async () => {
    const unknownKey = `jns_${'a1'.repeat(6)}_${'k'.repeat(32)}`;
    const forgedToken = `AbCdEfGhIjKl1_1.${'m'.repeat(43)}`;
    const bodies = [
      await (await req('/v1/jobs', json({ type: 'email' }, { authorization: `Bearer ${unknownKey}` }))).text(),
      await (await req('/v1/jobs/x/outcome', json({ jobId: 'x', attempt: 1, leaseToken: forgedToken, outcome: 'failed' }, auth(forgedToken)))).text(),
      await (await req('/v1/jobs', json({ type: 'email', payload: { a: 1 }, cost: -1 }, auth(acme)))).text(),
    ];
    const metrics = await (await req('/metrics')).text();
    for (const text of [...bodies, metrics]) {
      for (const secret of [unknownKey, forgedToken, acme]) expect(text).not.toContain(secret);
      expect(findSecrets(text)).toEqual([]);
    }
  });

  it('403 for a genuine key whose tenant is not in the policy', async () => {
    const res = await post('/v1/jobs', ghost, { type: 'email' });
    expect(res.status).toBe(403);
    expect((await problemOf(res)).type).toBe(`${PROBLEM_BASE}/tenant-not-configured`);
  });

  it('a revoked key stops working within 1 s of the announcement', async () => {
    const { key, keyId } = await createKey([ingress], 'acme');
    expect((await post('/v1/jobs', key, { type: 'email' })).status).toBe(202);
    await ingress.runtime.db.db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.keyId, keyId));
    const revokedAt = Date.now();
    await announceConfigChange(ingress.runtime.nc, ingress.runtime.names, ingress.runtime.policy.version);
    await waitFor(async () => (await post('/v1/jobs', key, { type: 'email' })).status === 401, 1_000);
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
  });
});

describe('input', () => {
  it('415 for a body that is not JSON', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
      const headers: Record<string, string> = auth(acme);
      if (contentType) headers['content-type'] = contentType;
      const res = await req('/v1/jobs', { method: 'POST', headers, body: 'type=email' });
      expect(res.status).toBe(415);
      await problemOf(res);
    }
  });

  it('400 for malformed JSON and for bad fields, naming each bad field', async () => {
    const malformed = await req('/v1/jobs', { method: 'POST', headers: { ...auth(acme), 'content-type': 'application/json' }, body: '{"type":' });
    expect(malformed.status).toBe(400);
    expect((await problemOf(malformed)).type).toBe(`${PROBLEM_BASE}/malformed-json`);

    const bad = await post('/v1/jobs', acme, { type: 'Not A Name', priority: 'urgent', cost: -1, extra: 1 });
    expect(bad.status).toBe(400);
    const p = await problemOf(bad);
    const paths = (p.errors ?? []).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['type', 'priority', 'cost']));
    expect(p.errors!.every((e) => e.message.length > 0)).toBe(true);
  });

  it('400 when the Idempotency-Key header and body idempotencyKey differ, or the header is invalid', async () => {
    const differ = await post('/v1/jobs', acme, { type: 'email', idempotencyKey: 'a' }, { 'idempotency-key': 'b' });
    expect(differ.status).toBe(400);
    expect((await problemOf(differ)).errors?.[0]?.path).toBe('idempotencyKey');
    const tooLong = await post('/v1/jobs', acme, { type: 'email' }, { 'idempotency-key': 'x'.repeat(201) });
    expect(tooLong.status).toBe(400);
    expect((await problemOf(tooLong)).errors?.[0]?.path).toBe('Idempotency-Key');
  });

  it('an idempotency key of any printable characters (1–200 code points) replays; a control character or 201 characters is 400', async () => {
    for (const key of ['clé-ключ-鍵-😀 §dedupe:x', '€'.repeat(200), '😀'.repeat(200)]) {
      const first = await post('/v1/jobs', acme, { type: 'email', idempotencyKey: key });
      expect(first.status).toBe(202);
      const again = await post('/v1/jobs', acme, { type: 'email', idempotencyKey: key });
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ jobId: ((await first.json()) as { jobId: string }).jobId, duplicate: true });
    }
    for (const key of ['tab\there', 'nul\u0000', 'c1\u0085', 'line\u2028', '\ud800lone', '€'.repeat(201)]) {
      const res = await post('/v1/jobs', acme, { type: 'email', idempotencyKey: key });
      expect(res.status).toBe(400);
      expect((await problemOf(res)).errors?.[0]?.path).toBe('idempotencyKey');
    }
  });

  it('405 with Allow for a method a route does not take; 404 for no route', async () => {
    const res = await req('/v1/jobs', { method: 'PUT', headers: auth(acme) });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD, POST');
    expect((await problemOf(res)).errors).toEqual([]);
    expect((await req('/v1/nothing', { headers: auth(acme) })).status).toBe(404);
  });

  it('404 unknown-job-type', async () => {
    const res = await post('/v1/jobs', acme, { type: 'nosuch' });
    expect(res.status).toBe(404);
    const p = await problemOf(res);
    expect(p.type).toBe(`${PROBLEM_BASE}/unknown-job-type`);
    expect(p.errors?.[0]?.path).toBe('type');
    const batch = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'email' }, { type: 'nosuch' }] });
    expect(batch.status).toBe(404);
    expect((await problemOf(batch)).errors?.[0]?.path).toBe('jobs.1.type');
  });

  it("413 for a payload over the job type's limit and for a body over the hard cap", async () => {
    const res = await post('/v1/jobs', acme, { type: 'email', payload: { s: 'x'.repeat(300) } });
    expect(res.status).toBe(413);
    expect((await problemOf(res)).errors?.[0]?.path).toBe('payload');
    const huge = await post('/v1/jobs', acme, { type: 'email', payload: 'x'.repeat(100_000) });
    expect(huge.status).toBe(413);
    await problemOf(huge);
  });

  it('a payload under its limit is not refused for how its JSON was written: every non-ASCII character escaped (Python\'s default) triples the body', async () => {
    // 8,000 × "é": 16,002 bytes as the payload is measured (limit 16,384), 48,000 in the body as \u00e9
    const body = `{"type":"costly","payload":"${'\\u00e9'.repeat(8_000)}"}`;
    expect(body.length).toBeGreaterThan(48_000);
    const res = await req('/v1/jobs', { method: 'POST', headers: auth(acme, { 'content-type': 'application/json' }), body });
    expect(res.status).toBe(202);
  });
});

describe('POST /v1/jobs', () => {
  it('202 admitted only after JetStream stored the job message, with its lease', async () => {
    const res = await post('/v1/jobs', acme, { type: 'email', payload: { to: 'a@b.c' }, priority: 'high' });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { jobId: string; status: string; attempt: number; admittedAt: string };
    expect(body).toEqual({ jobId: expect.any(String), status: 'admitted', attempt: 1, admittedAt: expect.any(String) });
    expect(new Date(body.admittedAt).toISOString()).toBe(body.admittedAt);
    const stored = await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job('email'));
    const msg = stored.find((m) => m.body.jobId === body.jobId);
    expect(msg?.msgID).toBe(`${body.jobId}.1`);
    expect(msg?.body).toMatchObject({ jobId: body.jobId, type: 'email', tenant: 'acme', attempt: 1, priority: 'high', payload: { to: 'a@b.c' }, admittedAt: body.admittedAt });
    const lease = msg?.body.lease as { id: string; token: string; expiresAt: string };
    expect(lease.id).toEqual(expect.any(String));
    expect(lease.token).toEqual(expect.any(String));
    // admittedAt is the admission's Redis time, the lease's clock: expiry is exactly timeoutMs later.
    expect(Date.parse(lease.expiresAt) - Date.parse(body.admittedAt)).toBe(10_000);
  });

  it('429 with Retry-After in whole seconds (rounded up) and the reason', async () => {
    expect((await post('/v1/jobs', acme, { type: 'limited' })).status).toBe(202);
    expect((await post('/v1/jobs', acme, { type: 'limited' })).status).toBe(202);
    const res = await post('/v1/jobs', acme, { type: 'limited' });
    expect(res.status).toBe(429);
    const body = (await res.json()) as { status: string; reason: string; retryAfterMs: number };
    expect(body).toEqual({ status: 'rejected', reason: 'dependency_rate', retryAfterMs: expect.any(Number) });
    expect(body.retryAfterMs).toBeGreaterThan(0);
    expect(res.headers.get('retry-after')).toBe(String(Math.ceil(body.retryAfterMs / 1000)));
  });

  it('mode "queue" is admitted now when it can be (queued answers come with the execution loop)', async () => {
    const res = await post('/v1/jobs', acme, { type: 'email', mode: 'queue' });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { status: string }).status).toBe('admitted');
  });

  it('same idempotency key → 200 with the first body and duplicate: true; another tenant is independent', async () => {
    const first = await post('/v1/jobs', acme, { type: 'email' }, { 'idempotency-key': 'order-1' });
    expect(first.status).toBe(202);
    const firstBody = await first.json();
    const again = await post('/v1/jobs', acme, { type: 'email', idempotencyKey: 'order-1' });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ ...(firstBody as object), duplicate: true });
    const other = await post('/v1/jobs', beta, { type: 'email' }, { 'idempotency-key': 'order-1' });
    expect(other.status).toBe(202);
  });

  it('concurrent requests with one key admit exactly one job; a replay before it is published is 409 in-progress, after it 200', async () => {
    const send = () => post('/v1/jobs', acme, { type: 'email' }, { 'idempotency-key': 'race-1' });
    const answers = await Promise.all(Array.from({ length: 20 }, send));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    // never a 200 for an admission that might still be revoked: until it is published, replays are 409
    expect(statuses.every((s) => s === 202 || s === 200 || s === 409)).toBe(true);
    const conflict = answers.find((r) => r.status === 409);
    if (conflict) {
      expect(conflict.headers.get('retry-after')).toBe('1');
      expect(((await conflict.clone().json()) as { type: string }).type).toBe(`${PROBLEM_BASE}/idempotency-key-in-progress`);
    }
    const ids = new Set(await Promise.all(answers.filter((r) => r.status !== 409).map(async (r) => ((await r.json()) as { jobId: string }).jobId)));
    expect(ids.size).toBe(1);
    const later = await send();
    expect(later.status).toBe(200);
    expect(((await later.json()) as { jobId: string }).jobId).toBe([...ids][0]);
  });
});

describe('POST /v1/jobs/batch', () => {
  it('202 with every job in request order, each published', async () => {
    const res = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'email', payload: 1 }, { type: 'costly', payload: 2 }, { type: 'email', payload: 3 }] });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { jobs: { jobId: string; status: string; attempt: number }[] };
    expect(body.jobs).toHaveLength(3);
    body.jobs.forEach((j) => expect(j).toEqual({ jobId: expect.any(String), status: 'admitted', attempt: 1 }));
    const stored = await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job('email'));
    const payloads = body.jobs.filter((_, i) => i !== 1).map((j) => stored.find((m) => m.body.jobId === j.jobId)?.body.payload);
    expect(payloads).toEqual([1, 3]);
  });

  it('429 names the first job that could not be admitted; nothing is consumed', async () => {
    // one of tight's 2 slots is taken, so the second job of the batch waits (3 jobs would be 422 exceeds-capacity)
    expect((await post('/v1/jobs', beta, { type: 'slow' })).status).toBe(202);
    const before = await ingress.limiter.inspect();
    const res = await post('/v1/jobs/batch', beta, { jobs: [{ type: 'slow' }, { type: 'slow' }] });
    expect(res.status).toBe(429);
    const body = (await res.json()) as { status: string; index: number; reason: string; retryAfterMs: number };
    expect(body).toEqual({ status: 'rejected', index: 1, reason: 'dependency_concurrency', retryAfterMs: expect.any(Number) });
    expect(res.headers.get('retry-after')).toBe(String(Math.ceil(body.retryAfterMs / 1000)));
    const after = await ingress.limiter.inspect();
    expect(after.dependencies.tight?.inFlight).toBe(before.dependencies.tight?.inFlight);

    // counted per job: the refused one with its reason, the others of the batch as refused with it
    const decisions = async () => {
      const text = await (await req('/metrics')).text();
      const count = (reason: string, type: string) =>
        Number(text.split('\n').find((l) => l.startsWith('janus_admission_decisions_total{') && l.includes('decision="rejected"') && l.includes(`reason="${reason}"`) && l.includes(`job_type="${type}"`))?.split(' ').pop() ?? 0);
      return { slowConcurrency: count('dependency_concurrency', 'slow'), emailConcurrency: count('dependency_concurrency', 'email'), emailBatch: count('batch_refused', 'email'), slowBatch: count('batch_refused', 'slow') };
    };
    const counted = await decisions();
    const mixed = await post('/v1/jobs/batch', beta, { jobs: [{ type: 'email' }, { type: 'slow' }, { type: 'slow' }] });
    expect(await mixed.json()).toMatchObject({ index: 2, reason: 'dependency_concurrency' });
    expect(await decisions()).toEqual({ slowConcurrency: counted.slowConcurrency + 1, emailConcurrency: counted.emailConcurrency, emailBatch: counted.emailBatch + 1, slowBatch: counted.slowBatch + 1 });
  });

  it('a job key first used in a batch answers a later single request with duplicate: true', async () => {
    const batch = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'email', idempotencyKey: 'in-batch-1' }, { type: 'email' }] });
    expect(batch.status).toBe(202);
    const first = ((await batch.json()) as { jobs: { jobId: string }[] }).jobs[0]!;
    const single = await post('/v1/jobs', acme, { type: 'email', idempotencyKey: 'in-batch-1' });
    expect(single.status).toBe(200);
    expect(await single.json()).toMatchObject({ jobId: first.jobId, status: 'admitted', attempt: 1, duplicate: true });
  });

  it('a batch Idempotency-Key replays the whole first answer', async () => {
    const first = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'email' }, { type: 'email' }] }, { 'idempotency-key': 'batch-1' });
    expect(first.status).toBe(202);
    const firstBody = await first.json();
    const again = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'email' }, { type: 'email' }] }, { 'idempotency-key': 'batch-1' });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ ...(firstBody as object), duplicate: true });
  });

  it("job messages carry what a state rebuild needs: the producer's cost and the idempotency keys, expiring with the window", async () => {
    const res = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'email', idempotencyKey: 'carried-1', cost: 3 }, { type: 'email' }] }, { 'idempotency-key': 'carried-batch' });
    expect(res.status).toBe(202);
    const [a, b] = ((await res.json()) as { jobs: { jobId: string }[] }).jobs;
    const stored = await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job('email'));
    const first = stored.find((m) => m.body.jobId === a!.jobId)!.body;
    const second = stored.find((m) => m.body.jobId === b!.jobId)!.body;
    const day = 86_400_000;
    const near = (iso: unknown, ms: number) => Math.abs(Date.parse(String(iso)) - ms) < 2_000;
    const admittedAt = Date.parse(String(first.admittedAt));
    expect(first).toMatchObject({ cost: 3, idempotency: { key: 'carried-1', fingerprint: expect.any(String) }, batchIdempotency: { key: 'carried-batch', index: 0, size: 2 } });
    expect(second).toMatchObject({ batchIdempotency: { key: 'carried-batch', index: 1, size: 2 } });
    expect(second.cost).toBeUndefined();
    expect(second.idempotency).toBeUndefined();
    const own = first.idempotency as { expiresAt: string };
    const batch = first.batchIdempotency as { expiresAt: string; fingerprint: string };
    expect(near(own.expiresAt, admittedAt + day)).toBe(true);
    expect(near(batch.expiresAt, admittedAt + day)).toBe(true);
    expect((second.batchIdempotency as { fingerprint: string }).fingerprint).toBe(batch.fingerprint);
  });

  it('400 for an empty batch and for over 1000 jobs', async () => {
    expect((await post('/v1/jobs/batch', acme, { jobs: [] })).status).toBe(400);
    expect((await post('/v1/jobs/batch', acme, { jobs: Array.from({ length: 1001 }, () => ({ type: 'email' })) })).status).toBe(400);
  });
});

describe('budget ledger, usage and outcomes', () => {
  it('publishes reserve at admission and settle at the outcome; usage shows the budget; 409 on a second outcome', async () => {
    const res = await post('/v1/jobs', rich, { type: 'costly' });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const names = ingress.runtime.names;
    const ledger = () => storedMessages(ingress, names.streams.ledger, names.subjects.ledger('rich'));
    const reserve = (await ledger()).find((m) => m.body.jobId === jobId && m.body.kind === 'reserve');
    expect(reserve?.msgID).toBe(`${jobId}.1.reserve`);
    expect(reserve?.body).toMatchObject({ tenant: 'rich', kind: 'reserve', amount: 10, attempt: 1 });

    const usage = await req('/v1/usage', { headers: auth(rich) });
    expect(usage.status).toBe(200);
    const u = (await usage.json()) as { tenant: string; budget: { limit: number; used: number; remaining: number; resetsAt: string }; inFlight: Record<string, number>; queued: number };
    expect(u).toMatchObject({ tenant: 'rich', budget: { limit: 100, used: 10, remaining: 90 }, queued: 0 });
    expect(u.inFlight.mail).toBe(1);
    expect(Date.parse(u.budget.resetsAt)).toBeGreaterThan(Date.now());

    const job = (await storedMessages(ingress, names.streams.jobs, names.subjects.job('costly'))).find((m) => m.body.jobId === jobId)!;
    const token = (job.body.lease as { token: string }).token;
    const outcome = { jobId, attempt: 1, leaseToken: token, outcome: 'succeeded', actualCost: 4 };
    const done = await req(`/v1/jobs/${jobId}/outcome`, json(outcome, auth(token)));
    expect(done.status).toBe(204);
    const event = (await storedMessages(ingress, names.streams.outcomes, names.subjects.outcome('costly'))).find((m) => m.body.jobId === jobId);
    expect(event?.msgID).toBe(`${jobId}.1`);
    expect(event?.body).toMatchObject({ jobId, attempt: 1, outcome: 'succeeded', actualCost: 4, reportedVia: 'http' });
    const settle = (await ledger()).find((m) => m.body.jobId === jobId && m.body.kind === 'settle');
    expect(settle?.body).toMatchObject({ tenant: 'rich', kind: 'settle', amount: 4, attempt: 1 });
    expect(settle?.msgID).toBe(`${jobId}.1.settle`);

    const late = await req(`/v1/jobs/${jobId}/outcome`, json(outcome, auth(token)));
    expect(late.status).toBe(409);
    expect((await problemOf(late)).type).toBe(`${PROBLEM_BASE}/lease-conflict`);
    const after = (await (await req('/v1/usage', { headers: auth(rich) })).json()) as typeof u;
    expect(after.budget.used).toBe(4);
    expect(after.inFlight.mail).toBe(0);
  });

  it('outcome: 401 first (no token, or one not genuine, whatever the body), then 422 when path and body disagree, 400 for a bad body', async () => {
    const names = ingress.runtime.names;
    const res = await post('/v1/jobs', rich, { type: 'costly' });
    expect(res.status).toBe(202);
    const { jobId: x } = (await res.json()) as { jobId: string };
    const job = await waitFor(async () => (await storedMessages(ingress, names.streams.jobs, names.subjects.job('costly'))).find((m) => m.body.jobId === x));
    const token = (job.body.lease as { token: string }).token;

    // authentication comes before the body is read (before: 400 / 415 / 422 for these)
    const forged = await req(`/v1/jobs/${x}/outcome`, json({ jobId: x, attempt: 1, leaseToken: 'abc.def', outcome: 'failed' }, auth('abc.def')));
    expect(forged.status).toBe(401);
    expect((await req(`/v1/jobs/${x}/outcome`, json({ jobId: x, attempt: 1, leaseToken: token, outcome: 'failed' }, auth('abc.def')))).status).toBe(401);
    expect((await req(`/v1/jobs/${x}/outcome`, json({ bogus: true }))).status).toBe(401);
    expect((await req(`/v1/jobs/${x}/outcome`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'nope' })).status).toBe(401);

    const mismatch = await req(`/v1/jobs/${x}/outcome`, json({ jobId: 'y', attempt: 1, leaseToken: token, outcome: 'failed' }, auth(token)));
    expect(mismatch.status).toBe(422);
    expect((await problemOf(mismatch)).errors?.[0]?.path).toBe('jobId');
    const bad = await req(`/v1/jobs/${x}/outcome`, json({ jobId: x, attempt: 1, leaseToken: token, outcome: 'timed_out' }, auth(token)));
    expect(bad.status).toBe(400);
    expect((await problemOf(bad)).errors?.[0]?.path).toBe('outcome');
    const cost = await problemOf(await req(`/v1/jobs/${x}/outcome`, json({ jobId: x, attempt: 1, leaseToken: token, outcome: 'succeeded', actualCost: 2.5 }, auth(token))));
    expect(cost).toMatchObject({ status: 400, errors: [{ path: 'actualCost' }] });
    expect(cost.detail).toMatch(/^invalid body: actualCost: /);
  });

  it('outcome: an error over 2 KiB and a retryAfterMs over a day are read as on NATS (cut to 2 KiB, a day), not refused', async () => {
    const names = ingress.runtime.names;
    const res = await post('/v1/jobs', rich, { type: 'costly' });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const job = (await storedMessages(ingress, names.streams.jobs, names.subjects.job('costly'))).find((m) => m.body.jobId === jobId)!;
    const token = (job.body.lease as { token: string }).token;
    const report = { jobId, attempt: 1, leaseToken: token, outcome: 'failed', error: 'x'.repeat(5_000), throttled: true, retryAfterMs: 5 * 86_400_000 };
    expect((await req(`/v1/jobs/${jobId}/outcome`, json(report, auth(token)))).status).toBe(204);
    const event = (await storedMessages(ingress, names.streams.outcomes, names.subjects.outcome('costly'))).find((m) => m.body.jobId === jobId);
    expect((event?.body.error as string).length).toBe(2048);
    expect(event?.body.retryAfterMs).toBe(86_400_000);
  });

  it("outcome: 409 for a genuine token of another job or attempt, which settles neither; a throttled report keeps its fields", async () => {
    const names = ingress.runtime.names;
    const admitted = async () => {
      const res = await post('/v1/jobs', acme, { type: 'hook' });
      expect(res.status).toBe(202);
      const { jobId } = (await res.json()) as { jobId: string };
      const job = await waitFor(async () => (await storedMessages(ingress, names.streams.jobs, names.subjects.job('hook'))).find((m) => m.body.jobId === jobId));
      return { jobId, token: (job.body.lease as { token: string }).token };
    };
    const a = await admitted();
    const b = await admitted();
    const report = (jobId: string, token: string, attempt = 1, extra: Record<string, unknown> = {}) =>
      req(`/v1/jobs/${jobId}/outcome`, json({ jobId, attempt, leaseToken: token, outcome: 'failed', retryable: false, ...extra }, auth(token)));

    // B's token on A's path: nothing published, nothing settled (both leases still held).
    const foreign = await report(a.jobId, b.token);
    expect(foreign.status).toBe(409);
    expect((await problemOf(foreign)).type).toBe(`${PROBLEM_BASE}/lease-conflict`);
    // A's own token naming another attempt: likewise.
    const otherAttempt = await report(a.jobId, a.token, 7);
    expect(otherAttempt.status).toBe(409);
    const outcomes = await storedMessages(ingress, names.streams.outcomes, names.subjects.outcome('hook'));
    expect(outcomes.filter((m) => m.body.jobId === a.jobId || m.body.jobId === b.jobId)).toEqual([]);
    for (const t of [a.token, b.token]) {
      const s = await ingress.limiter.leaseState(t);
      expect(s.ok && s.lease.state).not.toBe('settled');
    }

    // B's own report, throttled: the event carries what the scheduler needs to wait and adapt.
    const throttled = await report(b.jobId, b.token, 1, { retryable: true, throttled: true, retryAfterMs: 8_000, dependency: 'hooks' });
    expect(throttled.status).toBe(204);
    const event = (await storedMessages(ingress, names.streams.outcomes, names.subjects.outcome('hook'))).find((m) => m.body.jobId === b.jobId);
    expect(event?.body).toMatchObject({ jobId: b.jobId, attempt: 1, outcome: 'failed', throttled: true, retryAfterMs: 8_000, dependency: 'hooks' });
    expect(await report(a.jobId, a.token)).toHaveProperty('status', 204);
  });

  it('usage of a tenant without a budget is budget: null', async () => {
    const res = await req('/v1/usage', { headers: auth(beta) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ tenant: 'beta', budget: null, queued: 0 });
  });
});

describe('a replay after its job type left the policy', () => {
  it('is still the replay within its window (200 with the first answer, 422 for another request), not 404', async () => {
    await setPolicy([ingress], { ...POLICY, jobTypes: { ...POLICY.jobTypes, passing: {} } });
    const first = await post('/v1/jobs', acme, { type: 'passing', payload: { n: 1 } }, { 'idempotency-key': 'gone-type' });
    expect(first.status).toBe(202);
    const firstBody = (await first.json()) as Record<string, unknown>;
    await setPolicy([ingress], POLICY);
    const again = await post('/v1/jobs', acme, { type: 'passing', payload: { n: 1 } }, { 'idempotency-key': 'gone-type' });
    // (before: 404 unknown-job-type, telling a producer whose first answer was lost that nothing was created)
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ ...firstBody, duplicate: true });
    expect((await post('/v1/jobs', acme, { type: 'passing', payload: { n: 2 } }, { 'idempotency-key': 'gone-type' })).status).toBe(422);
    expect((await post('/v1/jobs', acme, { type: 'passing', payload: { n: 1 } }, { 'idempotency-key': 'never-used' })).status).toBe(404);
    expect((await post('/v1/jobs', acme, { type: 'passing', payload: { n: 1 } })).status).toBe(404);
  });
});

describe('GET /v1/jobs/{jobId}', () => {
  it("returns the tenant's own job as stored; another tenant's job is 404", async () => {
    const db = ingress.runtime.db.db;
    const now = new Date();
    await db.insert(jobs).values({ jobId: '01HZZ0GET0000000000000000A', tenant: 'acme', type: 'email', priority: 'normal', status: 'retrying', createdAt: now, updatedAt: now });
    await db.insert(attempts).values([
      { jobId: '01HZZ0GET0000000000000000A', attempt: 1, admittedAt: now, outcome: 'failed', finishedAt: now, error: 'smtp down' },
      { jobId: '01HZZ0GET0000000000000000A', attempt: 2, admittedAt: now },
    ]);
    const res = await req('/v1/jobs/01HZZ0GET0000000000000000A', { headers: auth(acme) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      jobId: '01HZZ0GET0000000000000000A',
      type: 'email',
      status: 'retrying',
      priority: 'normal',
      createdAt: now.toISOString(),
      attempts: [
        { attempt: 1, admittedAt: now.toISOString(), outcome: 'failed', finishedAt: now.toISOString(), error: 'smtp down' },
        { attempt: 2, admittedAt: now.toISOString() },
      ],
      // An extension: the error of the latest failed attempt (no payload was stored).
      lastError: 'smtp down',
      // CONTRACT §3: a retrying job has its notBefore (no due time recorded for this row: now).
      notBefore: expect.any(String),
    });
    const foreign = await req('/v1/jobs/01HZZ0GET0000000000000000A', { headers: auth(beta) });
    expect(foreign.status).toBe(404);
    await problemOf(foreign);
    expect((await req('/v1/jobs/nope', { headers: auth(acme) })).status).toBe(404);
  });
});

describe('service routes', () => {
  it('serves /openapi.json, /docs, /healthz, /readyz and /metrics with decision counters', async () => {
    const doc = (await (await req('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/jobs/batch', '/v1/jobs/{jobId}', '/v1/usage', '/v1/jobs/{jobId}/outcome']));
    expect((await req('/docs')).status).toBe(200);
    expect((await req('/healthz')).status).toBe(200);
    expect((await req('/readyz')).status).toBe(200);
    const metrics = await (await req('/metrics')).text();
    expect(metrics).toMatch(/janus_admission_decisions_total\{decision="admitted",reason="admitted",job_type="email",app="ingress"\} \d+/);
    expect(metrics).toMatch(/janus_admission_decisions_total\{decision="rejected",reason="dependency_rate",job_type="limited",app="ingress"\} 1/);
    expect(metrics).toContain('janus_admission_duration_seconds_bucket');
    expect(metrics).toContain('janus_fail_open_admissions_total');
    expect(metrics).toContain('janus_publish_failures_total');
  });

  it('counts input refusals by route and status, and times a replay as a duplicate (not as an admission)', async () => {
    // a sample's value by its name and labels, whatever their order
    const value = async (name: string, labels: Record<string, string>) => {
      const line = (await (await req('/metrics')).text()).split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const unauthorized = ['janus_ingress_request_errors_total', { route: '/v1/jobs', status: '401' }] as const;
    const unknownType = ['janus_ingress_request_errors_total', { route: '/v1/jobs/batch', status: '404' }] as const;
    const duplicateTimed = ['janus_admission_duration_seconds_count', { decision: 'duplicate' }] as const;
    const admittedTimed = ['janus_admission_duration_seconds_count', { decision: 'admitted' }] as const;
    const before = { unauthorized: await value(...unauthorized), unknownType: await value(...unknownType), duplicateTimed: await value(...duplicateTimed) };
    expect((await req('/v1/jobs', json({ type: 'email' }, { authorization: 'Bearer nope' }))).status).toBe(401);
    expect((await post('/v1/jobs/batch', acme, { jobs: [{ type: 'nosuch' }] })).status).toBe(404);
    expect((await post('/v1/jobs', acme, { type: 'email' }, { 'idempotency-key': 'timed-replay' })).status).toBe(202);
    const admittedBefore = await value(...admittedTimed);
    expect((await post('/v1/jobs', acme, { type: 'email' }, { 'idempotency-key': 'timed-replay' })).status).toBe(200);
    expect(await value(...unauthorized)).toBe(before.unauthorized + 1);
    expect(await value(...unknownType)).toBe(before.unknownType + 1);
    expect(await value(...duplicateTimed)).toBe(before.duplicateTimed + 1);
    expect(await value(...admittedTimed)).toBe(admittedBefore);
  });

  it("moves the dashboard's live stats (admitted and rejected by reason, per dependency)", async () => {
    const redis = ingress.runtime.redis;
    const sum = async (field: string) => {
      const keys = await redis.keys(`${ns}:{${ns}}:stats:*`);
      let total = 0;
      for (const k of keys) total += Number((await redis.hget(k, field)) ?? 0);
      return total;
    };
    await waitFor(async () => (await sum('admitted:mail')) > 0 && (await sum('rejected:llm:dependency_rate')) > 0, 2_000);
  });

  it('an unknown route is a problem+json 404', async () => {
    const res = await req('/v2/nothing');
    expect(res.status).toBe(404);
    await problemOf(res);
  });

  it('repeated bad keys from one client are slowed down with 429 + Retry-After, never 5xx', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await req('/v1/usage', { headers: { authorization: `Bearer bad-${i}` } })).status);
    // Earlier tests in this file already failed a few times from this address.
    const firstBlocked = statuses.indexOf(429);
    expect(firstBlocked).toBeGreaterThan(0);
    expect(firstBlocked).toBeLessThanOrEqual(20);
    expect(statuses.slice(0, firstBlocked).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(firstBlocked).every((s) => s === 429)).toBe(true);
    const blocked = await req('/v1/usage', { headers: { authorization: 'Bearer bad-x' } });
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    // A valid key from the same address still works.
    expect((await req('/v1/usage', { headers: auth(acme) })).status).toBe(200);
  });
});
