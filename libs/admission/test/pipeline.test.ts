/**
 * The admission pipeline through its failure paths, against real Redis and JetStream. Each test
 * states the promise: a job answered "unavailable" never runs (no ghost) and a job whose message
 * may be in the stream never loses its limits; nothing answered "admitted" is missing from the stream.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { PolicyDocument, type JobMessage, type LedgerEntry } from '@janus/contracts';
import { compilePolicy, Limiter, StoreUnavailable, type AdmissionRequest } from '@janus/limiter';
import { AckPublisher, ensureStreams, natsNames, PublishTimeout, storedJobReader, type JetStreamTarget, type NatsNames, type PublishResult } from '@janus/messaging';
import { dropNatsNamespace, dropRedisNamespace, testNamespace } from '@janus/testing';
import { AdmissionPipeline } from '../src/index.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const ns = testNamespace('admission-pipeline');
/** The job type's timeoutMs: longer than a pipeline run with lost answers (3 tries of 300 ms). */
const LEASE_MS = 1500;

const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: { api: { concurrency: 2 } },
    tenants: { acme: { budget: { limit: 1000, periodMs: 3_600_000 } }, free: {} },
    jobTypes: { call: { dependencies: [{ name: 'api', cost: 1 }], timeoutMs: LEASE_MS } },
  }),
  1,
);

let redis: Redis;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let names: NatsNames;
let limiter: Limiter;
let n = 0;

beforeAll(async () => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  nc = await connect({ servers: NATS_URL });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  names = natsNames(ns);
  limiter = new Limiter({ redis, namespace: ns, signingKey: 'pipeline-test-signing-key-0123456789abcdef', policy });
  await limiter.init({ fresh: true });
});

beforeEach(async () => {
  await ensureStreams(jsm, names);
  for (const stream of [names.streams.jobs, names.streams.ledger]) await jsm.streams.purge(stream);
});

// Every lease of a test has expired (timeoutMs LEASE_MS) and been reaped before the next one starts.
afterEach(async () => {
  await new Promise((r) => setTimeout(r, LEASE_MS + 100));
  await limiter.reapExpired(1000);
});

afterAll(async () => {
  redis.disconnect();
  await nc.close();
  await dropRedisNamespace(REDIS_URL, ns);
  await dropNatsNamespace(NATS_URL, ns);
});

const request = (tenant: string, count = 1): AdmissionRequest => ({
  jobs: Array.from({ length: count }, () => ({ jobId: `job-${++n}`, tenant, jobType: 'call', priority: 'normal' as const })),
});
const inFlight = async (tenant = 'acme') => (await limiter.usage(tenant)).inFlight['api'] ?? 0;
const jobsInStream = async () => (await jsm.streams.info(names.streams.jobs)).state.messages;
const pipelineOn = (target: JetStreamTarget, opts: { readStored?: boolean } = {}) =>
  new AdmissionPipeline({ limiter, js: target, names, publishTimeoutMs: 300, answerDeadlineMs: 1_000, ...(opts.readStored ? { storedJob: storedJobReader(jsm, names.streams.jobs) } : {}) });

/**
 * An admission that published its job message and then "died" before confirming it, with no worker
 * claiming it before its lease lapsed: the reaper released it as no attempt. Returns the request
 * (its job's idempotency key frees for a re-admission of the same attempt) and the stored message.
 */
async function lapsedAfterPublish(tenant: string, key: string): Promise<{ req: AdmissionRequest; stored: JobMessage }> {
  const req: AdmissionRequest = { jobs: [{ jobId: `job-${++n}`, tenant, jobType: 'call', priority: 'normal', idempotency: { key, record: 'first' } }] };
  const first = await limiter.admit(req);
  if (first.kind !== 'admitted' || first.jobs[0]?.lease === undefined) throw new Error(`not admitted: ${first.kind}`);
  const pipeline = pipelineOn(js);
  const job = first.jobs[0];
  expect(await pipeline.publish([pipeline.jobMessage(job, '{"v":1}')], 'jobs', false)).toBe('stored');
  await new Promise((r) => setTimeout(r, LEASE_MS + 100));
  expect((await limiter.reapExpired(10)).map((l) => [l.jobId, l.confirmed])).toEqual([[job.jobId, false]]);
  const stored = (await jsm.streams.getMessage(names.streams.jobs, { last_by_subj: names.subjects.job('call') }))?.json<JobMessage>();
  if (stored === undefined) throw new Error('no stored job message');
  return { req, stored };
}

/** Stores every message for real, but the acknowledgement of the first `lose` tries is lost. */
function losingAcks(lose: number): JetStreamTarget & { tries: number } {
  const target = {
    tries: 0,
    async publish(subject: string, data: string, opts: { msgID: string; timeout: number }): Promise<PublishResult> {
      target.tries += 1;
      const ack = await js.publish(subject, data, { msgID: opts.msgID });
      if (target.tries <= lose) throw new PublishTimeout('JetStream did not acknowledge in time (ack dropped by the test)');
      return { seq: ack.seq, duplicate: ack.duplicate };
    },
  };
  return target as unknown as JetStreamTarget & { tries: number };
}

describe('the admission pipeline', () => {
  it('the ledger refuses: every job is answered unavailable, none is in the stream, no limit is held', async () => {
    await jsm.streams.delete(names.streams.ledger);
    const pipeline = pipelineOn(js);
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await pipeline.run({ request: request('acme'), payloads: [undefined] }));
    expect(results.map((r) => r.kind)).toEqual(Array(6).fill('unavailable'));
    expect(results.map((r) => (r.kind === 'unavailable' ? r.cause : r.kind))).toEqual(Array(6).fill('ledger_failed'));
    expect(await jobsInStream()).toBe(0);
    expect(await inFlight()).toBe(0);
    expect((await limiter.usage('acme')).budget?.used).toBe(0);
  });

  it('the job stream refuses: unavailable, nothing held, and the reservation is released on the ledger', async () => {
    await jsm.streams.delete(names.streams.jobs);
    const result = await pipelineOn(js).run({ request: request('acme'), payloads: [undefined] });
    expect(result).toMatchObject({ kind: 'unavailable', cause: 'job_refused' });
    expect(await inFlight()).toBe(0);
    await ensureStreams(jsm, names);
    const ledger = await jsm.streams.info(names.streams.ledger);
    expect(ledger.state.messages).toBe(2); // reserve, then release
    const last = await jsm.streams.getMessage(names.streams.ledger, { seq: ledger.state.last_seq });
    expect(last?.json<LedgerEntry>().kind).toBe('release');
  });

  it('the job stream refuses with an error answer, through the hot path\'s publisher: unavailable, nothing held', async () => {
    // A stream that is there but stores nothing (over its size limit; a full stream that discards
    // new messages answers alike): {"error":{…},"stream":"…","seq":0}, which once read as stored.
    const { config } = await jsm.streams.info(names.streams.jobs);
    await jsm.streams.update(names.streams.jobs, { ...config, max_msg_size: 1 });
    const publisher = new AckPublisher(nc);
    try {
      const result = await pipelineOn(publisher).run({ request: request('acme'), payloads: [undefined] });
      expect(result).toMatchObject({ kind: 'unavailable', cause: 'job_refused' });
      expect(await inFlight()).toBe(0);
      expect(await jobsInStream()).toBe(0);
    } finally {
      publisher.close();
      await jsm.streams.update(names.streams.jobs, { ...config, max_msg_size: -1 });
    }
  });

  it('an acknowledgement lost on the way: the same msgID again finds the message stored; admitted once, confirmed', async () => {
    const target = losingAcks(1);
    const result = await pipelineOn(target).run({ request: request('free'), payloads: ['{"x":1}'] });
    expect(result.kind).toBe('admitted');
    expect(target.tries).toBe(2);
    expect(await jobsInStream()).toBe(1);
    const stored = await jsm.streams.getMessage(names.streams.jobs, { last_by_subj: names.subjects.job('call') });
    const job = stored?.json<JobMessage>();
    expect(job?.payload).toEqual({ x: 1 });
    // confirmed: its expiry is an attempt
    await new Promise((r) => setTimeout(r, LEASE_MS + 100));
    expect((await limiter.reapExpired(10)).map((l) => [l.jobId, l.confirmed])).toEqual([[job?.jobId, true]]);
  });

  it('no answer ever: unavailable; the message reached the stream, so the job keeps its limits, but a worker claiming it is refused and its expiry is no attempt', async () => {
    const target = losingAcks(Number.MAX_SAFE_INTEGER);
    const before = await inFlight('free');
    const result = await pipelineOn(target).run({ request: request('free'), payloads: [undefined] });
    expect(result).toMatchObject({ kind: 'unavailable', cause: 'job_unknown' });
    expect(await jobsInStream()).toBe(1);
    expect(await inFlight('free')).toBe(before + 1);
    const token = (await jsm.streams.getMessage(names.streams.jobs, { last_by_subj: names.subjects.job('call') }))?.json<JobMessage>().lease.token ?? '';
    // what the worker SDK does before running: claim the lease (an extension)
    expect(await limiter.extend(token, 1)).toEqual({ ok: false, reason: 'already_settled' });
    expect(await limiter.settle(token, 'succeeded')).toEqual({ ok: false, reason: 'already_settled' });
    await new Promise((r) => setTimeout(r, LEASE_MS + 100));
    expect((await limiter.reapExpired(10)).map((l) => l.confirmed)).toEqual([false]);
    expect(await inFlight('free')).toBe(before);
  });

  it('an instance that dies between admission and publish (or whose Redis reply was lost): the lease expires as no attempt and its key is free', async () => {
    const req: AdmissionRequest = { jobs: [{ jobId: `job-${++n}`, tenant: 'free', jobType: 'call', priority: 'normal', idempotency: { key: 'died', record: 'first' } }] };
    expect((await limiter.admit(req)).kind).toBe('admitted'); // and nothing more: the process "died"
    expect((await limiter.admit(req)).kind).toBe('in_progress');
    await new Promise((r) => setTimeout(r, LEASE_MS + 100));
    const reaped = await limiter.reapExpired(10);
    expect(reaped.map((l) => l.confirmed)).toEqual([false]);
    const again = await pipelineOn(js).run({ request: { jobs: req.jobs.map((j) => ({ ...j, jobId: `job-${++n}` })) }, payloads: [undefined] });
    expect(again).toMatchObject({ kind: 'admitted', fresh: 1 });
  });

  it('under parallel load every admitted job is in the stream exactly once and every other holds nothing', async () => {
    const pipeline = pipelineOn(js);
    const results = await Promise.all(Array.from({ length: 40 }, () => pipeline.run({ request: request('free'), payloads: [undefined] })));
    const admitted = results.filter((r) => r.kind === 'admitted');
    expect(admitted).toHaveLength(2); // concurrency 2
    expect(results.filter((r) => r.kind === 'rejected')).toHaveLength(38);
    expect(await jobsInStream()).toBe(2);
    expect((await limiter.usage('free')).inFlight['api']).toBe(2);
  });

  it('a re-admission of an attempt whose stored message\'s lease lapsed unconfirmed takes that lease over: the job runs once, holding its slot', async () => {
    const { req, stored } = await lapsedAfterPublish('free', 'lapsed');
    // The stored message's lease is gone: a worker that gets it is refused.
    expect(await limiter.extend(stored.lease.token, 1)).toEqual({ ok: false, reason: 'already_settled' });
    const before = await inFlight('free');
    const again = await pipelineOn(js, { readStored: true }).run({ request: req, payloads: ['{"v":1}'] });
    expect(again).toMatchObject({ kind: 'admitted', fresh: 1 });
    expect(await jobsInStream()).toBe(1); // the stored message is the job's one message
    expect(await inFlight('free')).toBe(before + 1); // counted once
    // The request is now a duplicate, and the worker that gets the stored message may run it.
    const replay = await limiter.admit(req);
    expect(replay.kind === 'admitted' && replay.jobs[0]?.duplicate !== undefined).toBe(true);
    expect((await limiter.extend(stored.lease.token, 1)).ok).toBe(true);
    expect((await limiter.settle(stored.lease.token, 'succeeded')).ok).toBe(true);
    expect(await inFlight('free')).toBe(before);
  });

  it('without reading the stored message, the same re-admission is a stale duplicate: unavailable, nothing held', async () => {
    const { req, stored } = await lapsedAfterPublish('free', 'lapsed-unread');
    const before = await inFlight('free');
    const again = await pipelineOn(js).run({ request: req, payloads: ['{"v":1}'] });
    expect(again).toMatchObject({ kind: 'unavailable', cause: 'stale_duplicate' });
    expect(await inFlight('free')).toBe(before);
    expect(await limiter.extend(stored.lease.token, 1)).toEqual({ ok: false, reason: 'already_settled' });
  });

  it('a job that reserved budget is not taken over (the ledger keeps one reservation per attempt): a stale duplicate as before', async () => {
    const { req, stored } = await lapsedAfterPublish('acme', 'lapsed-budget');
    const before = await inFlight('acme');
    const again = await pipelineOn(js, { readStored: true }).run({ request: req, payloads: ['{"v":1}'] });
    expect(again).toMatchObject({ kind: 'unavailable', cause: 'stale_duplicate' });
    expect(await inFlight('acme')).toBe(before);
    expect(await limiter.extend(stored.lease.token, 1)).toEqual({ ok: false, reason: 'already_settled' });
  });

  it('the job is stored but Redis fails the confirm: admitted all the same (it will run); a worker claiming it confirms it', async () => {
    const failingConfirm = { admit: limiter.admit.bind(limiter), revoke: limiter.revoke.bind(limiter), withdraw: limiter.withdraw.bind(limiter), takeOver: limiter.takeOver.bind(limiter), confirm: () => Promise.reject(new StoreUnavailable('Redis went away (injected)')) };
    const pipeline = new AdmissionPipeline({ limiter: failingConfirm, js, names, publishTimeoutMs: 300, answerDeadlineMs: 300 });
    const result = await pipeline.run({ request: request('free'), payloads: [undefined] });
    expect(result).toMatchObject({ kind: 'admitted', fresh: 1 });
    expect(await jobsInStream()).toBe(1);
    const token = (await jsm.streams.getMessage(names.streams.jobs, { last_by_subj: names.subjects.job('call') }))?.json<JobMessage>().lease.token ?? '';
    expect((await limiter.extend(token, 1)).ok).toBe(true); // the worker's claim
    await new Promise((r) => setTimeout(r, LEASE_MS + 100));
    expect((await limiter.reapExpired(10)).map((l) => l.confirmed)).toEqual([true]); // an attempt: it ran
  });
});

