import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobView, PROBLEM_BASE } from '@janus/contracts';
import { messageIds, publishJson } from '@janus/messaging';
import { startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, setPolicy, start, storedMessages, viewWhen } from './helpers.js';

// Text PostgreSQL cannot store (a lone UTF-16 surrogate, as NUL) through the real path: this
// ingress, and the retry-scheduler and persister as the real apps. A request holding one is 400
// naming the field (never a 202 for a job GET could never show); a worker's error holding one is
// stored with U+FFFD in its place, so the job's status still follows its outcome.
const ns = testNamespace('ingress-text-storable');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;
const processes: AppProcess[] = [];

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
/** Sends `text` as it is: the JSON escapes (`\ud800`) reach the server unchanged. */
const postText = (path: string, text: string, headers: Record<string, string> = {}) =>
  ingress.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(acme), ...headers }, body: text });
const until = (jobId: string, ok: (v: JobView) => boolean, ms = 20_000) => viewWhen(ingress, acme, jobId, ok, ms);

type Problem = { type: string; status: number; errors?: { path: string; message: string }[] };

async function submit(type: string): Promise<{ jobId: string; token: string }> {
  const res = await postText('/v1/jobs', JSON.stringify({ type }));
  expect(res.status).toBe(202);
  const { jobId } = (await res.json()) as { jobId: string };
  const { names } = ingress.runtime;
  const [msg] = (await storedMessages(ingress, names.streams.jobs, names.subjects.job(type))).filter((m) => m.body['jobId'] === jobId);
  return { jobId, token: (msg!.body['lease'] as { token: string }).token };
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: { api: { concurrency: 10 } },
    tenants: { acme: {} },
    jobTypes: {
      j: { dependencies: [{ name: 'api' }] },
      // A long backoff: the job stays `retrying` while the test looks.
      flaky: { dependencies: [{ name: 'api' }], timeoutMs: 30_000, retry: { maxAttempts: 2, baseDelayMs: 60_000, maxDelayMs: 60_000 } },
      once: { dependencies: [{ name: 'api' }], timeoutMs: 30_000, retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 } },
    },
  });
  acme = (await createKey([ingress], 'acme')).key;
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  processes.push(...(await Promise.all([startAppProcess('retry-scheduler', env), startAppProcess('persister', env)])));
}, 90_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('lone UTF-16 surrogates in a request', () => {
  it('are refused with 400 naming the field, in a payload value or key at any depth (single and batch)', async () => {
    const cases: [string, string, string][] = [
      ['/v1/jobs', '{"type":"j","payload":{"s":"\\ud800"}}', 'payload'],
      ['/v1/jobs', '{"type":"j","payload":{"s":"a\\udc00b"}}', 'payload'],
      ['/v1/jobs', '{"type":"j","payload":{"s":"\\ude00\\ud83d"}}', 'payload'],
      ['/v1/jobs', '{"type":"j","payload":"\\uDBFF"}', 'payload'],
      ['/v1/jobs', '{"type":"j","payload":{"a":[{"b":[1,{"\\ud800k":2}]}]}}', 'payload'],
      ['/v1/jobs', '{"type":"j","mode":"queue","payload":["x","\\udfff"]}', 'payload'],
      ['/v1/jobs/batch', '{"jobs":[{"type":"j","payload":1},{"type":"j","payload":{"deep":{"er":"\\ud800"}}}]}', 'jobs.1.payload'],
    ];
    for (const [path, text, field] of cases) {
      const res = await postText(path, text);
      expect(res.status, text).toBe(400);
      const p = (await res.json()) as Problem;
      expect(p.type).toBe(`${PROBLEM_BASE}/invalid-request`);
      expect(p.errors, text).toEqual([{ path: field, message: expect.stringContaining('surrogate') }]);
    }
  });

  it('an idempotency key holding one is refused with 400 naming it (body field and header)', async () => {
    const res = await postText('/v1/jobs', '{"type":"j","idempotencyKey":"k\\ud800"}');
    expect(res.status).toBe(400);
    expect(((await res.json()) as Problem).errors?.[0]?.path).toBe('idempotencyKey');
    const batch = await postText('/v1/jobs/batch', '{"jobs":[{"type":"j","idempotencyKey":"\\udc00"}]}');
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as Problem).errors?.[0]?.path).toBe('jobs.0.idempotencyKey');
  });

  it('a well-formed pair (written as escapes) is admitted and readable as sent', async () => {
    const res = await postText('/v1/jobs', '{"type":"j","payload":{"s":"\\ud83d\\ude00","\\ud83d\\ude01":"\\\\ud800"}}');
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const v = await until(jobId, () => true);
    expect(v.payload).toEqual({ s: '😀', '😁': '\\ud800' });
  });
});

describe("a lone surrogate in a worker's error", () => {
  it('over HTTP: the job still shows its failed attempt (retrying), the error with U+FFFD', async () => {
    const { jobId, token } = await submit('flaky');
    const res = await ingress.app.request(`/v1/jobs/${jobId}/outcome`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: `{"jobId":"${jobId}","attempt":1,"leaseToken":"${token}","outcome":"failed","error":"x\\ud800y"}`,
    });
    expect(res.status).toBe(204);
    const v = await until(jobId, (x) => x.status === 'retrying');
    expect(v.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: 'failed', error: 'x\uFFFDy' })]);
    expect(v.lastError).toBe('x\uFFFDy');
  }, 30_000);

  it('on NATS, with no attempts left: the job is dead, its attempt and dead letter stored (NUL too)', async () => {
    const { names, js } = ingress.runtime;
    const { jobId, token } = await submit('once');
    await publishJson(js, names.subjects.outcome('once'), { jobId, attempt: 1, leaseToken: token, outcome: 'failed', error: 'a\udc00b\u0000c\ud800' }, messageIds.attempt(jobId, 1));
    const v = await until(jobId, (x) => x.status === 'dead');
    expect(v.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: 'failed', error: 'a\uFFFDb\uFFFDc\uFFFD' })]);
    const dead = await waitFor(async () => {
      const r = await ingress.runtime.db.pool.query<{ error: string }>('SELECT error FROM dead_letters WHERE job_id = $1', [jobId]);
      return r.rows[0];
    });
    expect(dead.error).toBe('a\uFFFDb\uFFFDc\uFFFD');
  }, 30_000);
});
