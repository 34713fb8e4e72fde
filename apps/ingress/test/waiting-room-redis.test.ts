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
import type { Ingress } from '../src/ingress.js';
import { createKey, json, setPolicy, start, storedMessages } from './helpers.js';

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
    jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 600_000 } },
  });
  key = (await createKey([ingress], 'acme')).key;
  nc = await connectNats(settings, { name: 'room-redis-test' });
  // The persister keeps what a state rebuild reads.
  persister = new Persister({ db: ingress.runtime.db.db, js: jetstream(nc), jsm: ingress.runtime.jsm, names: ingress.runtime.names, logger: pino({ level: 'silent' }), registry: new Registry(), lingerMs: 5 });
  await persister.start();
  const rt = ingress.runtime;
  dispatcher = new Dispatcher({ namespace: ns, db: rt.db.db, pool: rt.db.pool, limiter: ingress.limiter, js: rt.js, nc: rt.nc, names: rt.names, leadershipPollMs: 200, events: process.env.ROOM_DEBUG ? { fault: (w, e) => console.log('FAULT', w, String(e).slice(0, 200)), dispatched: (d, r, x) => console.log('DISP', d, r.jobId, x.reason ?? '') } : {} });
  dispatcher.start();
  await waitFor(() => dispatcher.leading, 10_000);
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
});
