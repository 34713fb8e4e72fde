import { describe, expect, it } from 'vitest';
import { JanusClient, JanusClientError, jittered, retryAfter, type FetchLike } from '../src/index.js';

// What a real ingress cannot easily be made to answer on demand (503, 409 in progress, 5xx, a
// proxy's HTML, a wrong route), and what the client sends: through a stand-in fetch. The real
// answers are covered by ingress.test.ts.

interface Sent {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
  readonly body: unknown;
}

const PROBLEM = 'application/problem+json';

function answer(status: number, body?: unknown, headers: Record<string, string> = {}): Response {
  const text = body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'text/html' : status >= 400 && status !== 429 ? PROBLEM : 'application/json';
  return new Response(text, { status, headers: { ...(text !== null ? { 'content-type': type } : {}), ...headers } });
}

/** A client whose fetch answers from `answers` in turn and records what was sent. */
function stub(...answers: Response[]): { client: JanusClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch: FetchLike = async (url, init) => {
    sent.push({ url, method: init.method ?? 'GET', headers: new Headers(init.headers), body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
    const next = answers.shift();
    if (!next) throw new Error('no more answers');
    return next;
  };
  return { client: new JanusClient({ baseUrl: 'https://janus.example/api/', apiKey: 'jns_key', fetch }), sent };
}

const problem = (name: string, status: number, extra: Record<string, unknown> = {}) => ({ type: `https://janus.dev/problems/${name}`, title: name, status, ...extra });

describe('requests', () => {
  it('sends the key, the idempotency key as a header, mode in the body, under the base path', async () => {
    const { client, sent } = stub(answer(202, { jobId: 'J', status: 'queued', notBefore: '2025-01-01T00:00:00.000Z' }));
    await client.submit({ type: 'email', payload: { to: 'a' }, priority: 'high' }, { idempotencyKey: 'k-1', mode: 'queue' });
    const [s] = sent;
    expect(s?.url).toBe('https://janus.example/api/v1/jobs');
    expect(s?.method).toBe('POST');
    expect(s?.headers.get('authorization')).toBe('Bearer jns_key');
    expect(s?.headers.get('idempotency-key')).toBe('k-1');
    expect(s?.headers.get('content-type')).toBe('application/json');
    expect(s?.body).toEqual({ type: 'email', payload: { to: 'a' }, priority: 'high', mode: 'queue' });
  });

  it('encodes job ids and list filters; ids no path can carry are not sent', async () => {
    const { client, sent } = stub(answer(404, problem('not-found', 404)), answer(200, { jobs: [], next: null }), answer(204), answer(404, problem('not-found', 404)));
    expect(await client.get('a/b?c')).toBeUndefined();
    await client.list({ status: ['dead', 'retrying'], type: 'email', limit: 10, cursor: 'abc' });
    expect(await client.cancel('X')).toEqual({ kind: 'cancelled' });
    expect(await client.get('..')).toBeUndefined();
    // A literal `%2E` is encoded again (`%252E`): a plain segment, sent.
    expect(await client.get('%2E')).toBeUndefined();
    expect(sent.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET https://janus.example/api/v1/jobs/a%2Fb%3Fc',
      'GET https://janus.example/api/v1/jobs?status=dead%2Cretrying&type=email&limit=10&cursor=abc',
      'DELETE https://janus.example/api/v1/jobs/X',
      'GET https://janus.example/api/v1/jobs/%252E',
    ]);
  });

  it('refuses a base URL that is not absolute and a timeout that is not positive', () => {
    expect(() => new JanusClient({ baseUrl: '/v1', apiKey: 'k' })).toThrow(TypeError);
    expect(() => new JanusClient({ baseUrl: 'http://x', apiKey: 'k', timeoutMs: 0 })).toThrow(RangeError);
  });
});

describe('decisions', () => {
  it('503: unavailable with Retry-After, also from a proxy without problem details', async () => {
    const { client } = stub(
      answer(503, problem('service-unavailable', 503, { detail: 'Redis is unreachable' }), { 'retry-after': '3' }),
      answer(503, '<html>bad gateway</html>'),
      answer(503, problem('service-unavailable', 503), { 'retry-after': '2' }),
      answer(503, problem('service-unavailable', 503), { 'retry-after': '1' }),
    );
    expect(await client.submit({ type: 'a' })).toEqual({
      kind: 'unavailable',
      retryAfterMs: 3000,
      problem: { type: 'https://janus.dev/problems/service-unavailable', title: 'service-unavailable', status: 503, detail: 'Redis is unreachable' },
    });
    expect(await client.submitBatch([{ type: 'a' }])).toMatchObject({ kind: 'unavailable', retryAfterMs: 1000, problem: { type: 'about:blank', status: 503, detail: '<html>bad gateway</html>' } });
    expect(await client.cancel('X')).toMatchObject({ kind: 'unavailable', retryAfterMs: 2000 });
    expect(await client.replay('X')).toMatchObject({ kind: 'unavailable', retryAfterMs: 1000 });
  });

  it('409 idempotency-key-in-progress: in_progress, to send again', async () => {
    const { client } = stub(answer(409, problem('idempotency-key-in-progress', 409), { 'retry-after': '1' }));
    expect(await client.submit({ type: 'a' }, { idempotencyKey: 'k' })).toMatchObject({ kind: 'in_progress', retryAfterMs: 1000 });
  });

  it('415 is invalid; an unexpected extension field of a problem is dropped', async () => {
    const { client } = stub(answer(415, problem('unsupported-media-type', 415, { errors: [{ path: 'body', message: 'x' }, 'junk'], extra: 1 })));
    expect(await client.submit({ type: 'a' })).toEqual({
      kind: 'invalid',
      status: 415,
      errors: [{ path: 'body', message: 'x' }],
      problem: { type: 'https://janus.dev/problems/unsupported-media-type', title: 'unsupported-media-type', status: 415, errors: [{ path: 'body', message: 'x' }] },
    });
  });
});

describe('faults', () => {
  const fault = async (p: Promise<unknown>) => {
    const e = await p.then(() => undefined, (error: unknown) => error);
    expect(e).toBeInstanceOf(JanusClientError);
    return e as JanusClientError;
  };

  it('401, 403, 500 and a 404 that is no job type throw, with status and problem', async () => {
    const { client } = stub(
      answer(401, problem('unauthorized', 401)),
      answer(403, problem('tenant-not-configured', 403)),
      answer(500, problem('internal', 500)),
      answer(404, problem('not-found', 404, { detail: 'no route for POST /v1/jobs' })),
      answer(500, problem('internal', 500)),
    );
    expect(await fault(client.submit({ type: 'a' }))).toMatchObject({ code: 'http', status: 401, problem: { type: 'https://janus.dev/problems/unauthorized' } });
    expect(await fault(client.usage())).toMatchObject({ code: 'http', status: 403 });
    expect(await fault(client.get('X'))).toMatchObject({ code: 'http', status: 500 });
    const wrongRoute = await fault(client.submit({ type: 'a' }));
    expect(wrongRoute.status).toBe(404);
    expect(wrongRoute.message).toContain('no route');
    expect(await fault(client.cancel('X'))).toMatchObject({ status: 500 });
  });

  it('a 429 that is no limiter decision (too many failed authentications) throws with its Retry-After', async () => {
    const { client } = stub(new Response(JSON.stringify(problem('too-many-auth-failures', 429)), { status: 429, headers: { 'content-type': PROBLEM, 'retry-after': '60' } }));
    expect(await fault(client.submit({ type: 'a' }))).toMatchObject({ code: 'http', status: 429, retryAfterMs: 60_000 });
  });

  it('a success whose body is not what it promises is a protocol fault', async () => {
    const { client } = stub(answer(202, 'not json'), answer(200, { jobs: 'no' }), answer(200, []));
    expect(await fault(client.submit({ type: 'a' }))).toMatchObject({ code: 'protocol', status: 202 });
    expect(await fault(client.submitBatch([{ type: 'a' }]))).toMatchObject({ code: 'protocol' });
    expect(await fault(client.usage())).toMatchObject({ code: 'protocol' });
  });

  it('a fetch that stalls is a timeout; the caller\'s signal is aborted', async () => {
    const hang: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) => init.signal?.addEventListener('abort', () => reject(init.signal?.reason), { once: true }));
    const client = new JanusClient({ baseUrl: 'http://x', apiKey: 'k', fetch: hang, timeoutMs: 50 });
    expect(await fault(client.usage())).toMatchObject({ code: 'timeout' });
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const aborted = await fault(new JanusClient({ baseUrl: 'http://x', apiKey: 'k', fetch: hang }).usage({ signal: controller.signal }));
    expect(aborted.code).toBe('aborted');
    expect(aborted.cause).toEqual(new Error('stop'));
    const later = new AbortController();
    setTimeout(() => later.abort(), 20);
    expect(await fault(new JanusClient({ baseUrl: 'http://x', apiKey: 'k', fetch: hang }).usage({ signal: later.signal }))).toMatchObject({ code: 'aborted' });
  });
});

describe('submitWithRetry', () => {
  const rejected = (ms: number) => answer(429, { status: 'rejected', reason: 'tenant_rate', retryAfterMs: ms }, { 'retry-after': String(Math.ceil(ms / 1000)) });
  const admitted = answer(202, { jobId: 'J', status: 'admitted', attempt: 1, admittedAt: '2025-01-01T00:00:00.000Z' });

  it('waits retryAfterMs (plus jitter) after each 429, 503 or in-progress, until admitted; the same key every time', async () => {
    const { client, sent } = stub(
      rejected(40),
      answer(503, problem('service-unavailable', 503), { 'retry-after': '0' }),
      answer(409, problem('idempotency-key-in-progress', 409), { 'retry-after': '0' }),
      admitted,
    );
    const started = Date.now();
    const r = await client.submitWithRetry({ type: 'a' }, { maxWaitMs: 5_000, idempotencyKey: 'k', random: () => 0 });
    expect(r.kind).toBe('admitted');
    expect(sent).toHaveLength(4);
    expect(sent.every((s) => s.headers.get('idempotency-key') === 'k')).toBe(true);
    // 40 ms, then 0 ms twice (`Retry-After: 0`); random 0 adds no jitter.
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
  });

  it('returns the last "not now" when the next wait would end past maxWaitMs, and other decisions at once', async () => {
    const { client, sent } = stub(rejected(10_000), answer(400, problem('invalid-request', 400)));
    const started = Date.now();
    expect(await client.submitWithRetry({ type: 'a' }, { maxWaitMs: 1_000 })).toMatchObject({ kind: 'rejected', retryAfterMs: 10_000 });
    expect(Date.now() - started).toBeLessThan(500);
    expect(await client.submitWithRetry({ type: 'a' }, { maxWaitMs: 60_000 })).toMatchObject({ kind: 'invalid' });
    expect(sent).toHaveLength(2);
  });

  it('stops waiting when the signal aborts', async () => {
    const { client } = stub(rejected(5_000));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    await expect(client.submitWithRetry({ type: 'a' }, { maxWaitMs: 60_000, signal: controller.signal })).rejects.toMatchObject({ code: 'aborted' });
  });

  it('jitter: never earlier than retryAfterMs, at most 20% (50 ms to 5 s) later', () => {
    expect(jittered(1000, 0)).toBe(1000);
    expect(jittered(1000, 0.999)).toBeLessThanOrEqual(1200);
    expect(jittered(0, 0.5)).toBe(25);
    expect(jittered(100_000, 0.999)).toBeLessThanOrEqual(105_000);
  });
});

describe('Retry-After', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfter(new Headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfter(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfter(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfter(new Headers(), now)).toBeUndefined();
  });
});
