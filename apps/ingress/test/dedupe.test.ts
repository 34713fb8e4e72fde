import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobMessage, PROBLEM_BASE, payloadDedupeKey } from '@janus/contracts';
import { testEnv, testNamespace } from '@janus/testing';
import type { Dispatcher } from '@janus/waiting-room';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, startDispatcher, storedMessages, waitFor } from './helpers.js';

// CONTRACT §2 job type `dedupe: { by: "payload", windowMs }`: a job whose payload equals (as
// canonical JSON) one of the same tenant and job type admitted or queued within the window is an
// idempotent replay of it, decided in the admission's one atomic step. Real Redis, NATS, PostgreSQL.
const ns = testNamespace('ingress-dedupe');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let dispatcher: Dispatcher;
/** How the dispatcher reported each job it took out of the room (its metric's label). */
const dispositions = new Map<string, string>();
const keys: Record<string, string> = {};

type Answer = { status: number; body: Record<string, unknown> };

async function post(tenant: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await ingress.app.request(path, json(body, { authorization: `Bearer ${keys[tenant]}`, ...headers }));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const submit = (tenant: string, body: Record<string, unknown>, headers?: Record<string, string>) => post(tenant, '/v1/jobs', body, headers);
const batch = (tenant: string, jobs: Record<string, unknown>[], headers?: Record<string, string>) => post(tenant, '/v1/jobs/batch', { jobs }, headers);

async function usage(tenant: string): Promise<{ inFlight: Record<string, number>; queued: number }> {
  const res = await ingress.app.request('/v1/usage', { headers: { authorization: `Bearer ${keys[tenant]}` } });
  return (await res.json()) as { inFlight: Record<string, number>; queued: number };
}

/** The job messages in JetStream for a job type. */
async function messages(type: string): Promise<JobMessage[]> {
  const stored = await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job(type));
  return stored.map((m) => JobMessage.parse(m.body));
}

/** The same object with its keys in another order, at every level. */
function shuffled(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => shuffled(v, seed + i));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  const n = entries.length;
  const rotated = entries.map((_, i) => entries[(i + seed) % n]!);
  if (seed % 2 === 1) rotated.reverse();
  return Object.fromEntries(rotated.map(([k, v]) => [k, shuffled(v, seed + 1)]));
}

async function availableTokens(dependency: string): Promise<number> {
  return (await ingress.limiter.inspect()).dependencies[dependency]?.rate?.available ?? Number.NaN;
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: {
      // A bucket that refills 1 000 a day: what an admission takes stays visible for the test's length.
      api: { rate: { limit: 1_000, periodMs: 86_400_000 }, concurrency: 1_000 },
      other: { rate: { limit: 1_000, periodMs: 86_400_000 } },
      held: { concurrency: 1 },
      // low priority may use 4 of its 5 slots (global shedding low 0.8), high all 5
      shared: { concurrency: 5 },
    },
    tenants: { acme: {}, beta: {} },
    jobTypes: {
      report: { dependencies: [{ name: 'api' }], dedupe: { by: 'payload', windowMs: 60_000 } },
      brief: { dependencies: [{ name: 'other' }], dedupe: { by: 'payload', windowMs: 400 } },
      plain: { dependencies: [{ name: 'other' }] },
      queued: { dependencies: [{ name: 'held' }], dedupe: { by: 'payload', windowMs: 60_000 } },
      tiered: { dependencies: [{ name: 'shared' }], dedupe: { by: 'payload', windowMs: 60_000 } },
    },
  });
  for (const t of ['acme', 'beta']) keys[t] = (await createKey([ingress], t)).key;
  dispatcher = await startDispatcher(ingress, ns, { dispatched: (disposition, row) => dispositions.set(row.jobId, disposition) });
}, 60_000);

afterAll(async () => {
  await dispatcher?.stop();
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('payload dedupe (mode now)', () => {
  const payload = { customer: { id: 42, name: 'Ada', tags: ['a', 'b'] }, period: '2026-11', options: { pdf: true, lang: 'en' } };

  it('40 concurrent identical payloads (key order shuffled): one 202, 39 × 200 duplicate with the same job id; one unit taken', async () => {
    const tokensBefore = await availableTokens('api');
    expect((await usage('acme')).inFlight.api).toBe(0);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => submit('acme', { type: 'report', payload: shuffled(payload, i) })));
    const fresh = answers.filter((a) => a.status === 202);
    const replays = answers.filter((a) => a.status === 200);
    expect(answers.map((a) => a.status).sort()).toEqual([...Array<number>(39).fill(200), 202]);
    expect(fresh).toHaveLength(1);
    const first = fresh[0]!.body;
    expect(first).toMatchObject({ status: 'admitted', attempt: 1 });
    expect(first.duplicate).toBeUndefined();
    for (const r of replays) expect(r.body).toEqual({ ...first, duplicate: true });
    // The dependency's rate and concurrency took exactly one unit; JetStream holds one job.
    expect((await usage('acme')).inFlight.api).toBe(1);
    expect(await availableTokens('api')).toBe(tokensBefore - 1);
    const stored = await messages('report');
    expect(stored.map((m) => m.jobId)).toEqual([first.jobId]);
    expect(stored[0]!.payload).toEqual(payload);
  });

  it('a replay whose priority or cost differs is still the replay (the payload identifies it), not 422', async () => {
    const again = await submit('acme', { type: 'report', payload: shuffled(payload, 7), priority: 'high', cost: 3 });
    expect(again.status).toBe(200);
    expect(again.body.duplicate).toBe(true);
    expect(again.body.jobId).toBe((await messages('report'))[0]!.jobId);
  });

  it('a different payload is a new job; so is another tenant\'s identical payload', async () => {
    const [mine] = await messages('report');
    const different = await submit('acme', { type: 'report', payload: { ...payload, period: '2026-12' } });
    expect(different.status).toBe(202);
    expect(different.body.jobId).not.toBe(mine!.jobId);
    // Numbers are compared as JSON.parse reads them: 42 and 42.0 are the same, "42" is not.
    const stringly = await submit('acme', { type: 'report', payload: { ...payload, customer: { ...payload.customer, id: '42' } } });
    expect(stringly.status).toBe(202);
    const theirs = await submit('beta', { type: 'report', payload });
    expect(theirs.status).toBe(202);
    expect(theirs.body.jobId).not.toBe(mine!.jobId);
    const theirsAgain = await submit('beta', { type: 'report', payload: shuffled(payload, 3) });
    expect(theirsAgain).toEqual({ status: 200, body: { ...theirs.body, duplicate: true } });
    const raw = await ingress.app.request('/v1/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.acme}` },
      body: '{ "payload": { "period": "2026-11", "options": { "lang": "en", "pdf": true }, "customer": { "tags": ["a", "b"], "name": "Ada", "id": 42.0 } }, "type": "report" }',
    });
    expect(raw.status).toBe(200);
    expect(((await raw.json()) as Record<string, unknown>).jobId).toBe(mine!.jobId);
  });

  it('the same payload after windowMs is a new job', async () => {
    const first = await submit('acme', { type: 'brief', payload: { n: 1 } });
    expect(first.status).toBe(202);
    const within = await submit('acme', { type: 'brief', payload: { n: 1 } });
    expect(within).toEqual({ status: 200, body: { ...first.body, duplicate: true } });
    await new Promise((r) => setTimeout(r, 450));
    const after = await submit('acme', { type: 'brief', payload: { n: 1 } });
    expect(after.status).toBe(202);
    expect(after.body.jobId).not.toBe(first.body.jobId);
  });

  it('jobs sent without a payload are each other\'s replays; a null payload is another payload', async () => {
    const none = await submit('acme', { type: 'report' });
    expect(none.status).toBe(202);
    expect((await submit('acme', { type: 'report' })).body).toEqual({ ...none.body, duplicate: true });
    const nul = await submit('acme', { type: 'report', payload: null });
    expect(nul.status).toBe(202);
    expect(nul.body.jobId).not.toBe(none.body.jobId);
  });

  it('a job type without dedupe is unaffected: identical payloads are separate jobs', async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, () => submit('acme', { type: 'plain', payload: { same: true } })));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    expect(new Set(answers.map((a) => a.body.jobId)).size).toBe(5);
  });
});

describe('payload dedupe and an explicit Idempotency-Key', () => {
  const payload = { invoice: 'INV-7' };

  it('mode now: the key answers for its request and the payload still identifies the job, whatever the keys', async () => {
    const keyed = await submit('acme', { type: 'report', payload }, { 'idempotency-key': 'inv-7-a' });
    expect(keyed.status).toBe(202);
    // The keyed job's payload is recorded too: the same payload without a key, or under another key, is its replay …
    expect(await submit('acme', { type: 'report', payload: shuffled(payload, 1) })).toEqual({ status: 200, body: { ...keyed.body, duplicate: true } });
    expect(await submit('acme', { type: 'report', payload }, { 'idempotency-key': 'inv-7-b' })).toEqual({ status: 200, body: { ...keyed.body, duplicate: true } });
    // … and the key answers as the contract says: the same request is its replay, another one 422.
    expect(await submit('acme', { type: 'report', payload }, { 'idempotency-key': 'inv-7-a' })).toEqual({ status: 200, body: { ...keyed.body, duplicate: true } });
    const reused = await submit('acme', { type: 'report', payload: { invoice: 'INV-8' } }, { 'idempotency-key': 'inv-7-a' });
    expect(reused.status).toBe(422);
    expect(reused.body.type).toBe(`${PROBLEM_BASE}/idempotency-key-reused`);
    // A new key with a new payload is a new job; its payload is recorded under it too.
    const other = await submit('acme', { type: 'report', payload: { invoice: 'INV-9' } }, { 'idempotency-key': 'inv-9' });
    expect(other.status).toBe(202);
    expect(other.body.jobId).not.toBe(keyed.body.jobId);
    expect((await submit('acme', { type: 'report', payload: { invoice: 'INV-9' } })).body).toEqual({ ...other.body, duplicate: true });
  });

  it('ten concurrent requests with the same payload under ten different keys: one job', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => submit('acme', { type: 'report', payload: { invoice: 'INV-10' } }, { 'idempotency-key': `inv-10-${i}` })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 202]);
    expect(new Set(answers.map((a) => a.body.jobId)).size).toBe(1);
  });

  it('a producer key and a payload key never meet, however the producer key is spelled', async () => {
    const first = await submit('acme', { type: 'report', payload: { spelled: 1 } });
    expect(first.status).toBe(202);
    // The payload's own dedupe key text, sent as a producer key with another payload: a new job, not a replay (nor a 422).
    const keyed = await submit('acme', { type: 'report', payload: { spelled: 2 } }, { 'idempotency-key': payloadDedupeKey('report', { spelled: 1 }) });
    expect(keyed.status).toBe(202);
    expect(keyed.body.jobId).not.toBe(first.body.jobId);
    expect((await submit('acme', { type: 'report', payload: { spelled: 1 } })).body).toEqual({ ...first.body, duplicate: true });
  });
});

describe('payload dedupe in a batch', () => {
  it('identical payloads within a batch: the second is a replay of the first; against an earlier job: its replay', async () => {
    const a = { doc: 'a', v: [1, 2] };
    const b = { doc: 'b' };
    const one = await batch('acme', [
      { type: 'report', payload: a },
      { type: 'report', payload: b },
      { type: 'report', payload: shuffled(a, 1) },
      { type: 'plain', payload: a },
      { type: 'plain', payload: a },
    ]);
    expect(one.status).toBe(202);
    const jobs = one.body.jobs as Record<string, unknown>[];
    expect(jobs[0]).toMatchObject({ status: 'admitted', attempt: 1 });
    expect(jobs[0]!.duplicate).toBeUndefined();
    expect(jobs[1]!.duplicate).toBeUndefined();
    expect(jobs[2]).toMatchObject({ jobId: jobs[0]!.jobId, duplicate: true });
    expect(jobs[3]!.jobId).not.toBe(jobs[4]!.jobId);
    expect(new Set(jobs.map((j) => j.jobId)).size).toBe(4);

    const two = await batch('acme', [
      { type: 'report', payload: b },
      { type: 'report', payload: { doc: 'c' } },
    ]);
    expect(two.status).toBe(202);
    const jobs2 = two.body.jobs as Record<string, unknown>[];
    expect(jobs2[0]).toMatchObject({ jobId: jobs[1]!.jobId, duplicate: true });
    expect(jobs2[1]!.duplicate).toBeUndefined();

    // Every job of it a replay: 200, nothing admitted.
    const three = await batch('acme', [{ type: 'report', payload: a }, { type: 'report', payload: { doc: 'c' } }]);
    expect(three.status).toBe(200);
    expect((three.body.jobs as Record<string, unknown>[]).map((j) => [j.jobId, j.duplicate])).toEqual([
      [jobs[0]!.jobId, true],
      [jobs2[1]!.jobId, true],
    ]);
    const ids = (await messages('report')).map((m) => m.jobId);
    for (const id of [jobs[0]!.jobId, jobs[1]!.jobId, jobs2[1]!.jobId]) expect(ids.filter((x) => x === id)).toHaveLength(1);
  });
});

describe('payload dedupe in mode queue', () => {
  it('while the first waits: a replay (queue or now) answers it, queued, with its id; once admitted too (the first answer)', async () => {
    // The only slot of `held` is taken: what comes next waits in the room.
    const holder = await submit('acme', { type: 'queued', payload: { holder: true } });
    expect(holder.status).toBe(202);
    const payload = { export: 'all', format: { kind: 'csv', sep: ';' } };
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => submit('acme', { type: 'queued', mode: 'queue', payload: shuffled(payload, i) })));
    expect(answers.map((a) => a.status).sort()).toEqual([...Array<number>(9).fill(200), 202]);
    const first = answers.find((a) => a.status === 202)!.body;
    expect(first).toMatchObject({ status: 'queued' });
    for (const a of answers.filter((x) => x.status === 200)) expect(a.body).toMatchObject({ jobId: first.jobId, status: 'queued', duplicate: true });
    expect((await usage('acme')).queued).toBe(1);

    const now = await submit('acme', { type: 'queued', payload: shuffled(payload, 5) });
    expect(now).toEqual({ status: 200, body: { jobId: first.jobId, status: 'queued', notBefore: expect.any(String), duplicate: true } });
    // Another tenant's identical payload is its own job (it waits too).
    const theirs = await submit('beta', { type: 'queued', mode: 'queue', payload });
    expect(theirs.status).toBe(202);
    expect(theirs.body.jobId).not.toBe(first.jobId);

    // The slot frees (each job admitted is settled at once, beta's too, which may go first): the
    // dispatcher admits the waiting job, whose payload the limiter answers for from then on.
    const settled = new Set<string>();
    await waitFor(async () => {
      const stored = await messages('queued');
      for (const m of stored) {
        if (m.jobId === first.jobId || settled.has(m.jobId)) continue;
        settled.add(m.jobId);
        expect((await ingress.limiter.settle(m.lease.token, 'succeeded')).ok).toBe(true);
        dispatcher.wake();
      }
      return stored.some((m) => m.jobId === first.jobId);
    }, 10_000);
    const later = await submit('acme', { type: 'queued', mode: 'queue', payload: shuffled(payload, 2) });
    expect(later.status).toBe(200);
    // the first response's body (CONTRACT §3), also now that it was admitted: queued, with its notBefore
    expect(later.body).toEqual({ jobId: first.jobId, status: 'queued', notBefore: first.notBefore, duplicate: true });
    expect((await messages('queued')).filter((m) => m.jobId === first.jobId)).toHaveLength(1);
  }, 30_000);

  it('a waiting job whose payload a batch got admitted meanwhile leaves the room cancelled (and is counted so), as that job\'s duplicate, and never runs', async () => {
    for (let i = 0; i < 4; i += 1) expect((await submit('acme', { type: 'tiered', priority: 'high', payload: { fill: i } })).status).toBe(202);
    const payload = { tier: 'low', n: 1 };
    // low: shed (4 of 5 slots used), so it waits
    const waiting = await submit('acme', { type: 'tiered', mode: 'queue', priority: 'low', payload });
    expect(waiting.body).toMatchObject({ status: 'queued' });
    // A batch is not checked against the room: its identical payload (high: the 5th slot) is admitted.
    const viaBatch = await batch('acme', [{ type: 'tiered', priority: 'high', payload: shuffled(payload, 1) }]);
    expect(viaBatch.status).toBe(202);
    const admittedId = (viaBatch.body.jobs as Record<string, unknown>[])[0]!.jobId;
    dispatcher.wake();
    const auth = { authorization: `Bearer ${keys.acme}` };
    const view = await waitFor(async () => {
      const res = await ingress.app.request(`/v1/jobs/${String(waiting.body.jobId)}`, { headers: auth });
      const body = (await res.json()) as Record<string, unknown>;
      return body.status === 'cancelled' ? body : undefined;
    }, 10_000);
    expect(view).toMatchObject({ jobId: waiting.body.jobId, status: 'cancelled', attempts: [] });
    const row = await ingress.runtime.db.pool.query<{ state: string; reason: string }>('SELECT state, reason FROM waiting_jobs WHERE job_id = $1', [waiting.body.jobId]);
    expect(row.rows).toEqual([{ state: 'cancelled', reason: `superseded by job ${String(admittedId)}: admitted with the same payload (job type dedupe), runs in this job's place` }]);
    expect((await messages('tiered')).filter((m) => m.jobId === waiting.body.jobId)).toEqual([]);
    expect(dispositions.get(String(waiting.body.jobId))).toBe('cancelled');
    // From now on the payload answers for the admitted job.
    expect((await submit('acme', { type: 'tiered', mode: 'queue', payload })).body).toMatchObject({ jobId: admittedId, status: 'admitted', duplicate: true });
  }, 30_000);
});
