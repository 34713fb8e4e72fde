import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { OutcomeEvent, type JobMessage } from '@janus/contracts';
import { connectNats, ensureStreams, ensureWorkerConsumer, natsNames, publishJson, type NatsConnection } from '@janus/messaging';
import { dropNatsNamespace, testEnv, testNamespace } from '@janus/testing';
import { LeaseRefused, Permanent, Throttled, UnknownJobType, retryAfterMs, startWorker, type WorkerLogger } from './worker.js';

const ns = testNamespace('worker_sdk');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let nc: NatsConnection;
let jsm: JetStreamManager;

const claimOk = () => ({ ok: true, expiresAt: new Date(Date.now() + 10_000).toISOString() });
/** Janus's side of a claim (the scheduler answers lease extensions): its answer per token, or undefined for none. */
let claimAnswer: (token: string) => object | undefined = claimOk;
/** Whether the responder knows the batch form (an old scheduler answers `malformed`). */
let claimBatches = true;
/** Tokens per answered claim request. */
let claimRequests: number[] = [];

function job(jobId: string, extra: Partial<JobMessage> = {}): JobMessage {
  return {
    jobId,
    type: 'email',
    tenant: 'acme',
    attempt: 1,
    priority: 'normal',
    payload: { to: 'x@example.com' },
    admittedAt: new Date().toISOString(),
    lease: { id: `lease-${jobId}`, token: `token-${jobId}`, expiresAt: new Date(Date.now() + 10_000).toISOString() },
    ...extra,
  };
}

async function outcomes(count: number): Promise<OutcomeEvent[]> {
  await jsm.consumers.add(names.streams.outcomes, { durable_name: 'test-reader', ack_policy: AckPolicy.None });
  const consumer = await jetstream(nc).consumers.get(names.streams.outcomes, 'test-reader');
  const got: OutcomeEvent[] = [];
  const batch = await consumer.fetch({ max_messages: count, expires: 3_000 });
  for await (const m of batch) got.push(OutcomeEvent.parse(m.json()));
  return got;
}

/** Waits until the workers consumer has delivered and had acked every job; its info then. */
async function drained() {
  for (;;) {
    const i = await jsm.consumers.info(names.streams.jobs, 'workers-email');
    if (i.num_pending === 0 && i.num_ack_pending === 0) return i;
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  nc = await connectNats(settings, { name: 'worker-sdk-test' });
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  await ensureWorkerConsumer(jsm, names, 'email', 10_000);
  nc.subscribe(names.subjects.leaseExtend, {
    callback: (_err, msg) => {
      const body = msg.json<{ leaseToken?: string; leaseTokens?: string[] }>();
      if (body.leaseTokens && !claimBatches) {
        msg.respond(JSON.stringify({ ok: false, reason: 'malformed' }));
        return;
      }
      const answers = (body.leaseTokens ?? [body.leaseToken ?? '']).map((t) => claimAnswer(t));
      if (answers.some((a) => a === undefined)) return; // no answer at all
      claimRequests.push(answers.length);
      msg.respond(JSON.stringify(body.leaseTokens ? { results: answers } : answers[0]));
    },
  });
});

afterAll(async () => {
  await nc.close();
  await dropNatsNamespace([...settings.natsServers], ns);
});

describe('startWorker', () => {
  it('runs the handler once per job and publishes each outcome with the lease token', async () => {
    const js = jetstream(nc);
    await publishJson(js, names.subjects.job('email'), job('ok-1'), 'ok-1.1');
    await publishJson(js, names.subjects.job('email'), job('bad-1'), 'bad-1.1');
    await publishJson(js, names.subjects.job('email'), job('cost-1'), 'cost-1.1');
    const seen: string[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'email',
      concurrency: 2,
      handler: async (j) => {
        seen.push(j.jobId);
        if (j.jobId.startsWith('bad')) throw new Error('smtp said no '.repeat(300));
        if (j.jobId.startsWith('cost')) return { actualCost: 7 };
      },
    });
    const got = await outcomes(3);
    await worker.stop();

    expect(seen.sort()).toEqual(['bad-1', 'cost-1', 'ok-1']);
    const byJob = Object.fromEntries(got.map((o) => [o.jobId, o]));
    expect(byJob['ok-1']).toEqual({ jobId: 'ok-1', attempt: 1, leaseToken: 'token-ok-1', outcome: 'succeeded' });
    expect(byJob['cost-1']?.actualCost).toBe(7);
    expect(byJob['bad-1']?.outcome).toBe('failed');
    expect(Buffer.byteLength(byJob['bad-1']?.error ?? '')).toBeLessThanOrEqual(2048);
    expect(byJob['bad-1']?.error).toMatch(/^smtp said no/);
    expect(worker.processed).toBe(3);

    // Acks are fire-and-forget: JetStream counts them a moment later (the test's timeout bounds it).
    const info = await drained();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it('a Permanent error reports retryable:false; a job whose lease already expired is not run and not reported', async () => {
    const js = jetstream(nc);
    const expired = new Date(Date.now() - 1).toISOString();
    claimAnswer = (token) => (token === 'token-stale-1' ? undefined : claimOk()); // no scheduler answers its claim
    await publishJson(js, names.subjects.job('email'), job('stale-1', { lease: { id: 'l-stale', token: 'token-stale-1', expiresAt: expired } }), 'stale-1.1');
    await publishJson(js, names.subjects.job('email'), job('perm-1'), 'perm-1.1');
    const seen: string[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'email',
      handler: async (j) => {
        seen.push(j.jobId);
        throw new Permanent('address does not exist');
      },
    });
    const info = await drained();
    await worker.stop();
    claimAnswer = claimOk;
    expect(info.num_ack_pending).toBe(0);
    expect(seen).toEqual(['perm-1']);
    const got = (await outcomes(10)).filter((o) => o.jobId === 'perm-1' || o.jobId === 'stale-1');
    expect(got).toEqual([{ jobId: 'perm-1', attempt: 1, leaseToken: 'token-perm-1', outcome: 'failed', error: 'address does not exist', retryable: false }]);
  });
  it('a job whose claim no scheduler answers before its lease nears its end is not run, and reported as not started while the lease holds', async () => {
    const js = jetstream(nc);
    // The SDK gives up a second before the lease ends and reports while it holds: the lease is long
    // enough that a loaded machine (CI) still delivers the job and decides within it (with 2 s, a
    // delivery late by over 1.5 s found the lease over: nothing to report, and the test failed).
    const expiresAt = Date.now() + 6_000;
    claimAnswer = (token) => (token === 'token-unanswered-1' ? undefined : claimOk());
    await publishJson(js, names.subjects.job('email'), job('unanswered-1', { lease: { id: 'l-unanswered', token: 'token-unanswered-1', expiresAt: new Date(expiresAt).toISOString() } }), 'unanswered-1.1');
    const seen: string[] = [];
    const worker = await startWorker({ nc, namespace: ns, jobType: 'email', handler: async (j) => void seen.push(j.jobId) });
    const info = await drained();
    await worker.stop();
    claimAnswer = claimOk;
    expect(info.num_ack_pending).toBe(0);
    expect(seen).toEqual([]);
    const got = (await outcomes(20)).filter((o) => o.jobId === 'unanswered-1');
    expect(got).toMatchObject([{ jobId: 'unanswered-1', attempt: 1, leaseToken: 'token-unanswered-1', outcome: 'failed', started: false }]);
    expect(got[0]!.error).toMatch(/^not started: /);
  });
  it('reports a handler error to onError (with its job) and to the logger; a job type without a consumer fails at start, by name', async () => {
    const js = jetstream(nc);
    await publishJson(js, names.subjects.job('email'), job('err-1'), 'err-1.1');
    const errors: { error: unknown; jobId: string | undefined }[] = [];
    const lines: { level: string; msg: string; obj: object }[] = [];
    const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj });
    const logger: WorkerLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'email',
      logger,
      onError: (error, j) => {
        errors.push({ error, jobId: j?.jobId });
        throw new Error('a throwing onError does not stop the worker');
      },
      handler: async () => {
        throw new Error('smtp down');
      },
    });
    await drained();
    await worker.stop();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.jobId).toBe('err-1');
    expect((errors[0]?.error as Error).message).toBe('smtp down');
    expect(lines.filter((l) => l.level === 'warn')).toEqual([{ level: 'warn', msg: 'job failed', obj: expect.objectContaining({ jobId: 'err-1', attempt: 1 }) as object }]);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['worker started', 'job started', 'worker stopped']));
    expect((await outcomes(10)).find((o) => o.jobId === 'err-1')).toMatchObject({ outcome: 'failed', error: 'smtp down' });

    const missing = startWorker({ nc, namespace: ns, jobType: 'not-in-policy', handler: async () => undefined });
    await expect(missing).rejects.toBeInstanceOf(UnknownJobType);
    await expect(missing).rejects.toThrow(/no job type "not-in-policy" in Janus namespace/);
  });

  it('throttling: a Throttled error or a 429 / 503-with-Retry-After Response reports throttled with retryAfterMs; other Responses fail or succeed', async () => {
    const js = jetstream(nc);
    for (const id of ['thr-1', 'thr-2', 'thr-3', 'thr-4']) await publishJson(js, names.subjects.job('email'), job(id), `${id}.1`);
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'email',
      concurrency: 4,
      handler: async (j) => {
        switch (j.jobId) {
          case 'thr-1':
            throw new Throttled({ retryAfterMs: 2500, dependency: 'smtp' });
          case 'thr-2':
            return new Response('slow down', { status: 429, headers: { 'retry-after': '3' } });
          case 'thr-3':
            return new Response('down', { status: 503 });
          default:
            return new Response('ok', { status: 200 });
        }
      },
    });
    await drained();
    await worker.stop();
    const got = new Map((await outcomes(10)).filter((o) => o.jobId.startsWith('thr-')).map((o) => [o.jobId, o]));
    expect(got.get('thr-1')).toMatchObject({ outcome: 'failed', throttled: true, retryAfterMs: 2500, dependency: 'smtp' });
    expect(got.get('thr-2')).toMatchObject({ outcome: 'failed', throttled: true, retryAfterMs: 3000, error: 'HTTP 429 from the dependency' });
    expect(got.get('thr-3')).toMatchObject({ outcome: 'failed', error: 'HTTP 503 from the dependency' });
    expect(got.get('thr-3')?.throttled).toBeUndefined();
    expect(got.get('thr-4')).toMatchObject({ outcome: 'succeeded' });
  });

  it('reads Retry-After in seconds or as an HTTP date', () => {
    const now = Date.parse('2026-11-30T00:00:00Z');
    expect(retryAfterMs('7', now)).toBe(7000);
    expect(retryAfterMs('Mon, 30 Nov 2026 00:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  it('claims each lease before running: a refused lease is not run; without an answer a job waits, runs once Janus answers, and is not run if its lease runs out first', async () => {
    let janusBack = false;
    claimAnswer = (token) => {
      if (token === 'token-claim-refused') return { ok: false, reason: 'already_settled' };
      if (token === 'token-claim-lost') return undefined; // never answered
      if (token === 'token-claim-late') return janusBack ? claimOk() : { ok: false, reason: 'store_unavailable' };
      return claimOk();
    };
    const js = jetstream(nc);
    await publishJson(js, names.subjects.job('email'), job('claim-refused'), 'claim-refused.1');
    await publishJson(js, names.subjects.job('email'), job('claim-ok'), 'claim-ok.1');
    await publishJson(js, names.subjects.job('email'), job('claim-late'), 'claim-late.1');
    await publishJson(js, names.subjects.job('email'), job('claim-lost', { lease: { id: 'lease-claim-lost', token: 'token-claim-lost', expiresAt: new Date(Date.now() + 3_000).toISOString() } }), 'claim-lost.1');
    const seen: string[] = [];
    const refused: string[] = [];
    const unclaimed: string[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'email',
      concurrency: 4,
      handler: async (j) => {
        seen.push(j.jobId);
      },
      onError: (error, j) => {
        if (error instanceof LeaseRefused && j) refused.push(j.jobId);
        else if (j) unclaimed.push(j.jobId);
      },
    });
    const until = async (done: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    await until(() => seen.includes('claim-ok') && refused.length > 0);
    await new Promise((r) => setTimeout(r, 1_000)); // several unanswered claims later
    expect(seen).toEqual(['claim-ok']); // neither claim-late (store unavailable) nor claim-lost (no answer) ran
    janusBack = true;
    await until(() => seen.includes('claim-late') && unclaimed.includes('claim-lost'));
    await worker.stop();
    claimAnswer = claimOk;
    expect(seen.sort()).toEqual(['claim-late', 'claim-ok']);
    expect(refused).toEqual(['claim-refused']);
    expect(unclaimed).toEqual(['claim-lost']); // its lease ran out unclaimed: acknowledged, not run
    expect((await drained()).num_ack_pending).toBe(0);
  });

  it('pulls no more jobs than it runs: while its handlers are busy, the others stay in the stream (their leases are not taken)', async () => {
    const js = jetstream(nc);
    const ids = Array.from({ length: 6 }, (_, i) => `busy-${i}`);
    for (const id of ids) await publishJson(js, names.subjects.job('email'), job(id), `${id}.1`);
    const release: (() => void)[] = [];
    const seen: string[] = [];
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'email',
      concurrency: 2,
      handler: (j) =>
        new Promise<void>((resolve) => {
          seen.push(j.jobId);
          release.push(resolve);
        }),
    });
    const deadline = Date.now() + 10_000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500)); // time for any pull ahead to arrive
    const busy = await jsm.consumers.info(names.streams.jobs, 'workers-email');
    expect(seen).toHaveLength(2);
    expect(busy.num_ack_pending).toBe(2); // delivered = running: nothing waits in the worker's buffer
    expect(busy.num_pending).toBe(4);
    while (seen.length < ids.length && Date.now() < deadline) {
      release.splice(0).forEach((done) => done());
      await new Promise((r) => setTimeout(r, 20));
    }
    release.splice(0).forEach((done) => done());
    await worker.stop();
    expect(seen.sort()).toEqual([...ids].sort());
    expect((await drained()).num_ack_pending).toBe(0);
  });

  it('claims the jobs it was delivered together in one request; an old scheduler (no batches) gets one request per claim', async () => {
    for (const batches of [true, false]) {
      claimBatches = batches;
      claimRequests = [];
      const js = jetstream(nc);
      const ids = Array.from({ length: 20 }, (_, i) => `batch-${batches}-${i}`);
      await Promise.all(ids.map((id) => publishJson(js, names.subjects.job('email'), job(id), `${id}.1`)));
      const seen: string[] = [];
      const worker = await startWorker({ nc, namespace: ns, jobType: 'email', concurrency: 20, handler: async (j) => void seen.push(j.jobId) });
      const deadline = Date.now() + 10_000;
      while (seen.length < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await worker.stop();
      claimBatches = true;
      const requests = claimRequests;
      expect(seen.sort()).toEqual([...ids].sort());
      // every job claimed once
      expect(requests.reduce((a, b) => a + b, 0)).toBe(ids.length);
      if (batches) expect(requests.length).toBeLessThan(ids.length / 2);
      else expect(requests.every((n) => n === 1)).toBe(true);
    }
  });
});
