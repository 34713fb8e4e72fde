import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadSettings, type Settings } from '@janus/config';
import { JobMessage } from '@janus/contracts';
import { Persister } from '@janus/event-store';
import { connectNats, type NatsConnection } from '@janus/messaging';
import { dropNatsNamespace, dropPgNamespace, startRedisServer, testEnv, testNamespace, waitFor, type RedisProcess } from '@janus/testing';
import { Dispatcher } from '@janus/waiting-room';
import { AdmissionPipeline } from '@janus/admission';
import type { AdmissionRequest } from '@janus/limiter';
import { ADMITTED_AT_ADMISSION, dedupeRoomKey, jobIdempotencyRecord } from '@janus/execution';
import type { Ingress } from '../src/ingress.js';
import { createKey, json, setPolicy, start, startDispatcher, storedMessages } from './helpers.js';

/**
 * The waiting room through a Redis restart (its state lost, CONTRACT §6.2/§6.5): jobs waiting in
 * the room are in PostgreSQL, so after the restart and the state rebuild every one of them is
 * admitted, each exactly once.
 */
const ns = testNamespace('room_redis');
let redis: RedisProcess;
let settings: Settings;
let ingress: Ingress;
let dispatcher: Dispatcher;
let persister: Persister;
let nc: NatsConnection;
let key: string;
const N = 60;

beforeAll(async () => {
  redis = await startRedisServer();
  settings = loadSettings(testEnv(ns, { REDIS_URL: redis.url }));
  ingress = await start(ns, { REDIS_URL: redis.url });
  await setPolicy([ingress], {
    dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 2 } } },
    tenants: { acme: {} },
    jobTypes: {
      call: { dependencies: [{ name: 'api' }], timeoutMs: 600_000 },
      // (the in-doubt cases below) a job type whose keyless jobs wait under their payload's key
      deduped: { dependencies: [{ name: 'api' }], timeoutMs: 600_000, dedupe: { by: 'payload', windowMs: 600_000 } },
    },
  });
  key = (await createKey([ingress], 'acme')).key;
  nc = await connectNats(settings, { name: 'room-redis-test' });
  // The persister keeps what a state rebuild reads.
  persister = new Persister({ db: ingress.runtime.db.db, js: jetstream(nc), jsm: ingress.runtime.jsm, names: ingress.runtime.names, logger: pino({ level: 'silent' }), registry: new Registry(), lingerMs: 5 });
  await persister.start();
  const debug = process.env.ROOM_DEBUG ? { fault: (w: string, e: unknown) => console.log('FAULT', w, String(e).slice(0, 200)), dispatched: (d: string, r: { jobId: string }, x: { reason?: string }) => console.log('DISP', d, r.jobId, x.reason ?? '') } : {};
  dispatcher = await startDispatcher(ingress, ns, debug, 10_000);
}, 60_000);

afterAll(async () => {
  await dispatcher?.stop();
  await ingress?.close();
  await persister?.stop();
  await nc?.close();
  await redis?.kill();
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('the waiting room through a Redis restart', () => {
  it('every job waiting when Redis lost its state is admitted afterwards, exactly once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < N; i += 1) {
      const res = await ingress.app.request('/v1/jobs', json({ type: 'call', mode: 'queue', payload: { i } }, { authorization: `Bearer ${key}` }));
      expect(res.status).toBe(202);
      ids.push(String(((await res.json()) as { jobId: string }).jobId));
    }
    // A few are admitted at 10/s; then Redis restarts empty.
    await waitFor(async () => (await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job('call'))).length >= 5, 10_000, 50);
    await redis.restart();
    const before = (await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job('call'))).length;
    expect(before).toBeLessThan(N);

    // Every job (the first were admitted at once, the rest waited in the room) is in the stream.
    const calls = async () => (await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job('call'))).map((m) => JobMessage.parse(m.body));
    await waitFor(async () => new Set((await calls()).map((m) => m.jobId)).size === N, 60_000, 250);
    await new Promise((r) => setTimeout(r, 500)); // nothing more arrives
    const messages = await calls();
    console.log(`[room-redis] ${before} of ${N} admitted before Redis restarted empty; all ${N} admitted once after`);
    expect(messages.map((m) => m.jobId).sort()).toEqual([...ids].sort());
    // One lease each (the rebuild restored those admitted before the loss): none admitted twice
    // behind the stream's msgID dedupe.
    expect((await ingress.limiter.usage('acme')).inFlight.api).toBe(N);
  }, 120_000);

  // The key the dispatcher admits a row under (dispatcher.ts #admit): `room:<jobId>.1` for a row
  // without a producer key, the payload's dedupe key for a job type with `dedupe`.
  it.each([
    { jobId: 'in-doubt-room', type: 'call', roomKey: null, idempotency: { key: 'room:in-doubt-room.1', record: 'room', kind: 'retry' as const } },
    {
      jobId: 'in-doubt-dedupe',
      type: 'deduped',
      roomKey: dedupeRoomKey('payload-1'),
      idempotency: { key: 'payload-1', record: jobIdempotencyRecord({ jobId: 'in-doubt-dedupe', status: 'admitted', attempt: 1, admittedAt: ADMITTED_AT_ADMISSION }, undefined), kind: 'dedupe' as const, windowMs: 600_000 },
    },
  ])('a job a dispatcher admitted and died before recording, through a Redis restart: the next leader admits it once, not twice ($type)', async ({ jobId, type, roomKey, idempotency }) => {
    const rt = ingress.runtime;
    const ofJob = async () =>
      (await storedMessages(ingress, rt.names.streams.jobs, rt.names.subjects.job(type))).filter((m) => JobMessage.parse(m.body).jobId === jobId);
    const rowState = async () => (await rt.db.pool.query<{ state: string }>(`SELECT state FROM waiting_jobs WHERE job_id = $1`, [jobId])).rows[0]?.state;
    // The leader claims the row, admits its job under its key, and dies before recording it.
    await dispatcher.stop();
    await rt.db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, idempotency_key, created_at, queued_at, due_at, not_before, state, updated_at)
       VALUES ($1, 1, 'acme', $2, 1, 'normal', $3, now(), now(), now(), now(), 'dispatching', now())`,
      [jobId, type, roomKey],
    );
    const pipeline = new AdmissionPipeline({ limiter: ingress.limiter, js: rt.js, names: rt.names });
    const request: AdmissionRequest = { jobs: [{ jobId, tenant: 'acme', jobType: type, priority: 'normal', idempotency }] };
    await waitFor(async () => (await pipeline.run({ request, payloads: [undefined] })).kind === 'admitted', 10_000, 100);
    // What a state rebuild reads is stored; then Redis restarts empty and the state is rebuilt.
    await waitFor(async () => (await rt.db.pool.query(`SELECT 1 FROM attempts WHERE job_id = $1`, [jobId])).rowCount === 1, 10_000, 50);
    await redis.restart();
    await waitFor(async () => (await ingress.app.request('/readyz')).status === 200, 30_000, 100);

    // The next leader. Without the key restored, its admission of the row was a fresh one: a stale
    // duplicate of the stored message for JetStream's 2-minute window, then a second message — the
    // job run twice.
    dispatcher = new Dispatcher({ namespace: ns, db: rt.db.db, pool: rt.db.pool, limiter: ingress.limiter, js: rt.js, nc: rt.nc, names: rt.names, leadershipPollMs: 200 });
    dispatcher.start();
    await waitFor(async () => (await rowState()) === 'admitted', 20_000, 100);
    expect(await ofJob()).toHaveLength(1);
  }, 90_000);
});
