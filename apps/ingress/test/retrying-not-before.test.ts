import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobView } from '@janus/contracts';
import { startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, storedMessages, viewWhen } from './helpers.js';

// CONTRACT §3: GET /v1/jobs/{jobId} shows a `retrying` job's current `notBefore`, also while its
// retry waits (before it is due) in JANUS_RETRIES. Through the real path: this ingress, a worker
// (the SDK), and the retry-scheduler and persister as the real apps in child processes.
const ns = testNamespace('ingress-retrying-not-before');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;
const processes: AppProcess[] = [];
let worker: Worker | undefined;
/** Lets the hanging handlers end (after their lease expired) when the test stops the worker. */
let release: () => void = () => {};
const released = new Promise<void>((resolve) => (release = resolve));

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const until = (jobId: string, ok: (v: JobView) => boolean, ms = 30_000) => viewWhen(ingress, acme, jobId, ok, ms);
async function submit(type: string, payload: unknown): Promise<string> {
  const res = await ingress.app.request('/v1/jobs', json({ type, payload }, auth(acme)));
  expect(res.status).toBe(202);
  return ((await res.json()) as { jobId: string }).jobId;
}
/** The due time of the job's waiting retry, as the RetryMessage on JANUS_RETRIES carries it. */
async function dueAtOf(type: string, jobId: string): Promise<string> {
  const { names } = ingress.runtime;
  const retry = await waitFor(async () => (await storedMessages(ingress, names.streams.retries, names.subjects.retry(type))).find((m) => m.body['jobId'] === jobId));
  return retry.body['dueAt'] as string;
}

beforeAll(async () => {
  ingress = await start(ns);
  // A long backoff (30–60 s with jitter): the retry waits in JANUS_RETRIES while the test looks.
  const retry = { maxAttempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 };
  await setPolicy([ingress], {
    dependencies: { api: { concurrency: 10 } },
    tenants: { acme: {} },
    jobTypes: {
      hangs: { dependencies: [{ name: 'api' }], timeoutMs: 1_000, retry },
      fails: { dependencies: [{ name: 'api' }], timeoutMs: 30_000, retry },
    },
  });
  acme = (await createKey([ingress], 'acme')).key;
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  processes.push(...(await Promise.all([startAppProcess('retry-scheduler', env), startAppProcess('persister', env)])));
  const started = (jobType: string, handler: Parameters<typeof startWorker>[0]['handler']) =>
    waitFor(() => startWorker({ nc: ingress.runtime.nc, namespace: ns, jobType, concurrency: 4, handler }).catch(() => undefined), 30_000, 100);
  // Claims the job, then never reports: its lease expires, a `timed_out` attempt.
  const hanging = await started('hangs', async (_job, ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
    await released;
  });
  const failing = await started('fails', async (job) => {
    throw new Error(`boom ${job.attempt}`);
  });
  worker = { stop: async () => void (await Promise.all([hanging.stop(), failing.stop()])) } as Worker;
}, 90_000);

afterAll(async () => {
  release();
  await worker?.stop().catch(() => undefined);
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('GET /v1/jobs/{jobId} of a retrying job', () => {
  it('after a timed_out attempt: notBefore is the waiting retry\'s due time', async () => {
    const jobId = await submit('hangs', { n: 1 });
    const v = await until(jobId, (x) => x.status === 'retrying' && x.attempts[0]?.outcome === 'timed_out');
    const dueAt = await dueAtOf('hangs', jobId);
    const seen = await until(jobId, (x) => x.notBefore !== undefined, 5_000);
    expect(seen.notBefore).toBe(dueAt);
    expect(Date.parse(dueAt) - Date.parse(v.attempts[0]!.finishedAt!)).toBeGreaterThan(25_000);
    // The listing shows it too.
    const listed = (await (await ingress.app.request('/v1/jobs?status=retrying', { headers: auth(acme) })).json()) as { jobs: JobView[] };
    expect(listed.jobs.find((j) => j.jobId === jobId)?.notBefore).toBe(dueAt);
  }, 40_000);

  it('after a failure the worker reported: notBefore is the waiting retry\'s due time', async () => {
    const jobId = await submit('fails', { n: 2 });
    const v = await until(jobId, (x) => x.status === 'retrying' && x.attempts[0]?.outcome === 'failed');
    expect(v.attempts[0]?.error).toBe('boom 1');
    const dueAt = await dueAtOf('fails', jobId);
    const seen = await until(jobId, (x) => x.notBefore !== undefined, 5_000);
    expect(seen).toMatchObject({ status: 'retrying', notBefore: dueAt });
  }, 40_000);
});
