import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdmittedResponse,
  BatchAdmittedResponse,
  BatchRejectedResponse,
  JobListResponse,
  JobView as JobViewSchema,
  ProblemDetails,
  QueuedResponse,
  RejectedResponse,
  ReplayResponse,
  UsageResponse,
  type PolicyDocumentInput,
} from '@janus/contracts';
import { freePort, waitFor } from '@janus/testing';
import { Permanent } from '@janus/worker-sdk';
import { JanusClient, JanusClientError, type JobView, type SubmitResult } from '../src/index.js';
import { openStack, type Stack } from './stack.js';

// The client against a real Janus (ingress, persister and retry-scheduler as child processes, in a
// namespace of this file's own): every method, and every result kind a real ingress can be made to
// answer. Each answer's body is also parsed with the contract's zod schema: the client hands over
// what Janus sent, typed as the contract says.

const policy: PolicyDocumentInput = {
  dependencies: {
    open: { rate: { limit: 1000, periodMs: 1000 } },
    // One job a minute: the second is rejected, with a retryAfterMs of up to a minute.
    strict: { rate: { limit: 1, periodMs: 60_000 } },
    // One job a second: submitWithRetry waits about a second.
    paced: { rate: { limit: 1, periodMs: 1_000 } },
    // One job at a time, and no worker ends it: a second one in mode `queue` waits.
    held: { concurrency: 1 },
    // 10 cost units a minute: a job of cost 11 can never be admitted.
    metered: { costRate: { limit: 10, periodMs: 60_000 } },
  },
  tenants: { acme: { budget: { limit: 1_000_000, periodMs: 3_600_000 } } },
  jobTypes: {
    free: { dependencies: [{ name: 'open' }] },
    tiny: { dependencies: [{ name: 'open' }], maxPayloadBytes: 64 },
    limited: { dependencies: [{ name: 'strict' }] },
    paced: { dependencies: [{ name: 'paced' }] },
    hold: { dependencies: [{ name: 'held' }], timeoutMs: 300_000 },
    metered: { dependencies: [{ name: 'metered' }] },
    doomed: { dependencies: [{ name: 'open' }], retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 } },
  },
};

let stack: Stack;
let client: JanusClient;

beforeAll(async () => {
  stack = await openStack('client', policy, { scheduler: true });
  client = new JanusClient({ baseUrl: stack.ingressUrl, apiKey: stack.apiKey });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

function expectKind<K extends SubmitResult['kind']>(result: SubmitResult, kind: K): Extract<SubmitResult, { kind: K }> {
  expect(result.kind, JSON.stringify(result)).toBe(kind);
  return result as Extract<SubmitResult, { kind: K }>;
}

/** The persister writes views asynchronously: wait until `get` shows the job as `predicate` wants. */
function eventually(jobId: string, predicate: (v: JobView) => boolean): Promise<JobView> {
  return waitFor(async () => {
    const v = await client.get(jobId);
    return v !== undefined && predicate(v) ? v : undefined;
  }, 15_000, 100);
}

describe('submit', () => {
  it('admitted: 202 with the job id, attempt 1 and admittedAt', async () => {
    const r = expectKind(await client.submit({ type: 'free', payload: { order: 1 } }), 'admitted');
    expect(AdmittedResponse.parse(r.body)).toEqual(r.body);
    expect(r.body).toMatchObject({ status: 'admitted', attempt: 1 });
    expect(r.body.duplicate).toBeUndefined();
    expect(r.body.jobId).toMatch(/^[0-9A-Z]{26}$/);
  });

  it('duplicate: the same idempotency key (header option or body field) answers the first job again, 200 duplicate', async () => {
    const first = expectKind(await client.submit({ type: 'free', payload: { order: 2 } }, { idempotencyKey: 'order-2' }), 'admitted');
    const again = expectKind(await client.submit({ type: 'free', payload: { order: 2 } }, { idempotencyKey: 'order-2' }), 'admitted');
    expect(again.body).toEqual({ ...first.body, duplicate: true });
    const viaBody = expectKind(await client.submit({ type: 'free', payload: { order: 2 }, idempotencyKey: 'order-2' }), 'admitted');
    expect(viaBody.body.jobId).toBe(first.body.jobId);
  });

  it('an idempotency key beyond Latin-1 (any printable characters are a key) travels in the body: the same job again', async () => {
    const key = 'заказ-😀-2';
    const first = expectKind(await client.submit({ type: 'free', payload: { order: 'u' } }, { idempotencyKey: key }), 'admitted');
    const again = expectKind(await client.submit({ type: 'free', payload: { order: 'u' } }, { idempotencyKey: key }), 'admitted');
    expect(again.body).toEqual({ ...first.body, duplicate: true });
    // a batch's key has only the header: refused before anything is sent
    await expect(client.submitBatch([{ type: 'free' }], { idempotencyKey: key })).rejects.toThrow(/Latin-1/);
  });

  it('invalid: the same key with another request is 422 idempotency-key-reused, naming the key', async () => {
    const r = expectKind(await client.submit({ type: 'free', payload: { order: 3 } }, { idempotencyKey: 'order-2' }), 'invalid');
    expect(r.status).toBe(422);
    expect(r.problem.type).toBe('https://janus.dev/problems/idempotency-key-reused');
    expect(r.errors).toEqual([expect.objectContaining({ path: 'Idempotency-Key' })]);
  });

  it('rejected: 429 by a rate limit, with its reason and retryAfterMs', async () => {
    expectKind(await client.submit({ type: 'limited' }), 'admitted');
    const r = expectKind(await client.submit({ type: 'limited' }), 'rejected');
    expect(RejectedResponse.parse(r.body)).toEqual(r.body);
    expect(r.reason).toBe('dependency_rate');
    expect(r.retryAfterMs).toBeGreaterThan(50_000);
    expect(r.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(r.body).toEqual({ status: 'rejected', reason: 'dependency_rate', retryAfterMs: r.retryAfterMs });
  });

  it('exceeds_capacity: 422 naming the limit no wait can satisfy', async () => {
    const r = expectKind(await client.submit({ type: 'metered', cost: 11 }), 'exceeds_capacity');
    expect(ProblemDetails.parse(r.problem)).toEqual(r.problem);
    expect(r.problem.status).toBe(422);
    expect(r.limit).toEqual({ scope: 'dependency', dependency: 'metered', kind: 'costRate', per: 'cost', capacity: 10, requested: 11 });
    expect(r.index).toBeUndefined();
    expect(r.problem.errors?.[0]?.path).toBe('cost');
  });

  it('invalid: a schema error (400), an unknown job type (404), a payload over the limit (413), each naming the field', async () => {
    const schema = expectKind(await client.submit({ type: 'free', cost: 0 }), 'invalid');
    expect(schema.status).toBe(400);
    expect(schema.errors.map((e) => e.path)).toEqual(['cost']);
    const unknown = expectKind(await client.submit({ type: 'nope' }), 'invalid');
    expect(unknown.status).toBe(404);
    expect(unknown.problem.type).toBe('https://janus.dev/problems/unknown-job-type');
    expect(unknown.errors.map((e) => e.path)).toEqual(['type']);
    const large = expectKind(await client.submit({ type: 'tiny', payload: 'x'.repeat(100) }), 'invalid');
    expect(large.status).toBe(413);
    expect(large.errors.map((e) => e.path)).toEqual(['payload']);
    const badKey = expectKind(await client.submit({ type: 'free' }, { idempotencyKey: '' }), 'invalid');
    expect(badKey.status).toBe(400);
  });

  it('submitWithRetry waits out a 429 (retryAfterMs plus jitter) until admitted', async () => {
    expectKind(await client.submit({ type: 'paced' }), 'admitted');
    const started = Date.now();
    const r = await client.submitWithRetry({ type: 'paced' }, { maxWaitMs: 10_000 });
    expectKind(r, 'admitted');
    // The bucket refills one job per second: it waited most of that second, not a spin.
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
  });

  it('submitWithRetry gives up at once when the wait would outlast maxWaitMs, answering the rejection', async () => {
    // Spends the minute's one `limited` job, if no test before did.
    await client.submit({ type: 'limited' });
    const started = Date.now();
    const r = expectKind(await client.submitWithRetry({ type: 'limited' }, { maxWaitMs: 2_000 }), 'rejected');
    expect(r.reason).toBe('dependency_rate');
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('the waiting room: queued, get, cancel, usage', () => {
  let holding: string;
  let queued: string;

  beforeAll(async () => {
    holding = expectKind(await client.submit({ type: 'hold' }), 'admitted').body.jobId;
  });

  it('queued: mode queue waits instead of a 429, with notBefore; the same key answers it again, 200 duplicate', async () => {
    expectKind(await client.submit({ type: 'hold' }), 'rejected');
    const r = expectKind(await client.submit({ type: 'hold', payload: { n: 1 } }, { mode: 'queue', idempotencyKey: 'hold-1' }), 'queued');
    expect(QueuedResponse.parse(r.body)).toEqual(r.body);
    expect(Number.isNaN(Date.parse(r.body.notBefore))).toBe(false);
    queued = r.body.jobId;
    const again = expectKind(await client.submit({ type: 'hold', payload: { n: 1 } }, { mode: 'queue', idempotencyKey: 'hold-1' }), 'queued');
    expect(again.body).toMatchObject({ jobId: queued, duplicate: true });
  });

  it('get: the queued job and the admitted one, as the contract shows them; an unknown id is undefined', async () => {
    const waiting = await eventually(queued, (v) => v.status === 'queued');
    expect(JobViewSchema.parse(waiting)).toEqual(waiting);
    expect(waiting).toMatchObject({ jobId: queued, type: 'hold', priority: 'normal', attempts: [] });
    expect(waiting.notBefore).toBeDefined();
    const running = await eventually(holding, (v) => v.status === 'admitted');
    expect(running.attempts).toEqual([expect.objectContaining({ attempt: 1 })]);
    expect(await client.get('01ARZ3NDEKTSV4RRFFQ69G5FAV')).toBeUndefined();
    expect(await client.get('not a job id / at all')).toBeUndefined();
    expect(await client.get('..')).toBeUndefined();
  });

  it('usage: the budget, in-flight jobs per dependency and the queued job', async () => {
    const u = await client.usage();
    expect(UsageResponse.parse(u)).toEqual(u);
    expect(u.tenant).toBe('acme');
    expect(u.budget).toMatchObject({ limit: 1_000_000 });
    expect(u.budget?.used).toBeGreaterThan(0);
    expect(u.inFlight.held).toBe(1);
    expect(u.queued).toBe(1);
    expect(u.queuedByType).toEqual({ hold: 1 });
  });

  it('cancel: the waiting job is cancelled (204, and again: it is idempotent); a running job is not cancellable (409); an unknown one is not found', async () => {
    expect(await client.cancel(queued)).toEqual({ kind: 'cancelled' });
    expect((await client.get(queued))?.status).toBe('cancelled');
    expect(await client.cancel(queued)).toEqual({ kind: 'cancelled' });
    const running = await client.cancel(holding);
    expect(running.kind).toBe('not_cancellable');
    if (running.kind === 'not_cancellable') expect(running.problem.type).toBe('https://janus.dev/problems/not-cancellable');
    const unknown = await client.cancel('01ARZ3NDEKTSV4RRFFQ69G5FAV');
    expect(unknown.kind).toBe('not_found');
    expect((await client.cancel('..')).kind).toBe('not_found');
    expect((await client.usage()).queued).toBe(0);
  });
});

describe('submitBatch', () => {
  it('admitted: 202 with every job in request order; the batch key replays it whole (200 duplicate)', async () => {
    const jobs = [{ type: 'free', payload: 1 }, { type: 'free', payload: 2 }, { type: 'free', payload: 3, priority: 'high' as const }];
    const r = await client.submitBatch(jobs, { idempotencyKey: 'batch-1' });
    if (r.kind !== 'admitted') throw new Error(JSON.stringify(r));
    expect(BatchAdmittedResponse.parse(r.body)).toEqual(r.body);
    expect(r.body.jobs).toHaveLength(3);
    expect(r.body.jobs.every((j) => j.status === 'admitted' && j.attempt === 1)).toBe(true);
    const again = await client.submitBatch(jobs, { idempotencyKey: 'batch-1' });
    expect(again).toEqual({ kind: 'admitted', body: { ...r.body, duplicate: true } });
  });

  it('a job whose own key was seen before is answered as a duplicate, the others are admitted', async () => {
    const first = expectKind(await client.submit({ type: 'free', payload: 'a', idempotencyKey: 'job-a' }), 'admitted');
    const r = await client.submitBatch([{ type: 'free', payload: 'a', idempotencyKey: 'job-a' }, { type: 'free', payload: 'b' }]);
    if (r.kind !== 'admitted') throw new Error(JSON.stringify(r));
    expect(r.body.jobs[0]).toMatchObject({ jobId: first.body.jobId, duplicate: true });
    expect(r.body.jobs[1]?.duplicate).toBeUndefined();
  });

  it('rejected: 429 naming the first job that could not be admitted; nothing was admitted', async () => {
    // Spends the minute's one `limited` job, if no test before did.
    await client.submit({ type: 'limited' });
    const r = await client.submitBatch([{ type: 'free' }, { type: 'limited' }]);
    if (r.kind !== 'rejected') throw new Error(JSON.stringify(r));
    expect(BatchRejectedResponse.parse(r.body)).toEqual(r.body);
    expect(r).toMatchObject({ index: 1, reason: 'dependency_rate' });
    expect(r.retryAfterMs).toBeGreaterThan(0);
  });

  it('exceeds_capacity names the job from which on the batch exceeds the limit', async () => {
    const r = await client.submitBatch([{ type: 'metered', cost: 6 }, { type: 'metered', cost: 6 }]);
    if (r.kind !== 'exceeds_capacity') throw new Error(JSON.stringify(r));
    expect(r.index).toBe(1);
    expect(r.limit).toMatchObject({ dependency: 'metered', kind: 'costRate', capacity: 10, requested: 12 });
  });

  it('invalid: a bad job is named by its index', async () => {
    const r = await client.submitBatch([{ type: 'free' }, { type: 'nope' }]);
    if (r.kind !== 'invalid') throw new Error(JSON.stringify(r));
    expect(r.status).toBe(404);
    expect(r.errors.map((e) => e.path)).toEqual(['jobs.1.type']);
    const empty = await client.submitBatch([]);
    expect(empty.kind).toBe('invalid');
  });
});

describe('list and replay (extensions)', () => {
  it('list: the tenant\'s jobs newest first, filtered by type and status, paged by the cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) ids.push(expectKind(await client.submit({ type: 'tiny', payload: i }), 'admitted').body.jobId);
    await Promise.all(ids.map((id) => eventually(id, (v) => v.status === 'admitted')));
    const first = await client.list({ type: 'tiny', limit: 2 });
    expect(JobListResponse.parse(first)).toEqual(first);
    expect(first.jobs.map((j) => j.jobId)).toEqual([ids[2], ids[1]]);
    expect(first.next).not.toBeNull();
    const second = await client.list({ type: 'tiny', limit: 2, cursor: first.next ?? '' });
    expect(second.jobs.map((j) => j.jobId)).toEqual([ids[0]]);
    expect(second.next).toBeNull();
    const all: string[] = [];
    for await (const j of client.listAll({ type: 'tiny', status: ['admitted', 'succeeded'], limit: 1 })) all.push(j.jobId);
    expect(all).toEqual([ids[2], ids[1], ids[0]]);
    expect((await client.list({ type: 'tiny', status: 'dead' })).jobs).toEqual([]);
  });

  it('list: a bad filter is a fault naming it (400)', async () => {
    const error = await client.list({ limit: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JanusClientError);
    expect(error).toMatchObject({ code: 'http', status: 400 });
    expect((error as JanusClientError).problem?.errors?.map((e) => e.path)).toEqual(['limit']);
  });

  it('replay: a dead job gets a new attempt (202); then, or for a job that is not dead, 409; an unknown one is not found', async () => {
    const worker = await stack.worker('doomed', async () => {
      throw new Permanent('no good');
    });
    const jobId = expectKind(await client.submit({ type: 'doomed', payload: { why: 'replay' } }), 'admitted').body.jobId;
    const dead = await eventually(jobId, (v) => v.status === 'dead');
    expect(dead.lastError).toContain('no good');
    expect(dead.payload).toEqual({ why: 'replay' });
    await worker.stop();
    const r = await client.replay(jobId);
    if (r.kind !== 'replayed') throw new Error(JSON.stringify(r));
    expect(ReplayResponse.parse(r.body)).toEqual(r.body);
    expect(r.body).toMatchObject({ jobId, attempt: 2 });
    const again = await client.replay(jobId);
    if (again.kind !== 'not_replayable') throw new Error(JSON.stringify(again));
    expect(again.jobStatus).not.toBe('dead');
    const notDead = expectKind(await client.submit({ type: 'free' }), 'admitted').body.jobId;
    await eventually(notDead, (v) => v.status === 'admitted');
    const alive = await client.replay(notDead);
    expect(alive).toMatchObject({ kind: 'not_replayable', jobStatus: 'admitted' });
    expect((await client.replay('01ARZ3NDEKTSV4RRFFQ69G5FAV')).kind).toBe('not_found');
  });
});

describe('faults throw a JanusClientError', () => {
  it('an unknown API key: 401, a configuration fault', async () => {
    const wrong = new JanusClient({ baseUrl: stack.ingressUrl, apiKey: 'jns_not_a_key' });
    const error = await wrong.submit({ type: 'free' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JanusClientError);
    expect(error).toMatchObject({ code: 'http', status: 401, problem: { type: 'https://janus.dev/problems/unauthorized' } });
    await expect(wrong.usage()).rejects.toMatchObject({ status: 401 });
  });

  it('no server: a network fault', async () => {
    const port = await freePort();
    const nobody = new JanusClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: stack.apiKey });
    await expect(nobody.submit({ type: 'free' })).rejects.toMatchObject({ name: 'JanusClientError', code: 'network' });
  });

  it('no answer in time: a timeout; an aborted signal: aborted', async () => {
    const server = http.createServer(() => undefined); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const slow = new JanusClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k', timeoutMs: 200 });
      await expect(slow.usage()).rejects.toMatchObject({ code: 'timeout' });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      await expect(slow.get('01ARZ3NDEKTSV4RRFFQ69G5FAV', { signal: controller.signal })).rejects.toMatchObject({ code: 'aborted' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
