import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { pino } from 'pino';
import { loadSettings } from '@janus/config';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { countRows, Persister } from '@janus/event-store';
import { dropNatsNamespace, dropPgNamespace, prng, shuffle, type SyntheticMessage, syntheticWorkload, testEnv, testNamespace } from '@janus/testing';
import { connectNats, ensureStreams, natsNames, type NatsConnection } from '@janus/messaging';
import { createMetricsRegistry } from '@janus/observability';
import { createApp } from '../src/app.js';
import { publishConcurrently, waitForEveryEvent, waitFor, type Publishable } from './helpers.js';

const ns = testNamespace('persister_once');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let nc: NatsConnection;
let js: JetStreamClient;
let handle: DbHandle;
let persister: Persister;
const registry = createMetricsRegistry('persister-test');

beforeAll(async () => {
  await migrate(settings);
  handle = createDb(settings, { max: 8 });
  nc = await connectNats(settings, { name: 'persister-test' });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  js = jetstream(nc);
  persister = new Persister({ db: handle.db, js, jsm, names, logger: pino({ level: 'silent' }), registry });
  await persister.start();
});

afterAll(async () => {
  await persister?.stop();
  await nc?.drain();
  await handle?.close();
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

const toPublishable = (m: SyntheticMessage): Publishable => ({ subject: m.subject, body: m.body, msgID: m.msgID });

describe('persister, exactly once', () => {
  it('stores 50,000 events with 10% duplicated (re-published with other msgIDs) as exactly one row each', async () => {
    // applied outcomes as the scheduler publishes them: several in one message
    const w = syntheticWorkload(names, 9_450, { appliedPerMessage: 25 });
    const random = prng(2024);
    const originals = w.messages.map(toPublishable);
    // 10% duplicates under NEW msgIDs: JetStream stores them again, so only the database's natural
    // keys can keep them out; a few also with the SAME msgID (JetStream's own dedupe).
    const dupes = shuffle([...originals], random)
      .slice(0, Math.round(originals.length * 0.1))
      .map((m, i) => (i % 10 === 0 ? m : { ...m, msgID: `${m.msgID}.dup${i}` }));
    // Shuffled: outcomes, dead letters and ledger entries often arrive before their admission.
    const all = shuffle([...originals, ...dupes], random);
    expect(originals.length).toBeGreaterThanOrEqual(50_000);

    const t0 = Date.now();
    await publishConcurrently(js, all);
    const { counts: stored, mustBe } = await waitForEveryEvent(handle.db, w.expected, 'every row', 80_000);
    const seconds = (Date.now() - t0) / 1000;
    expect(stored).toEqual(mustBe);
    // Every published message (duplicates included) was acked as stored: nothing left pending.
    await waitFor('all messages acked', async () => persister.stats().stored >= all.length - Math.ceil(dupes.length / 10), 10_000);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/janus_persister_events_stored_total\{stream="[A-Z0-9_]+_JOBS",app="persister-test"\} \d+/);
    expect(metrics).toMatch(/janus_persister_batch_size_bucket/);
    console.log(`50k test: ${all.length} messages published and stored in ${seconds.toFixed(1)} s`);
  }, 120_000);

  it('keeps a malformed message in rejected_messages and still stores the events after it', async () => {
    const before = await countRows(handle.db);
    const bad: Publishable[] = [
      { subject: names.subjects.job('email'), body: 'not an object', msgID: 'bad-1' },
      { subject: names.subjects.outcome('email'), body: { jobId: 'x' }, msgID: 'bad-2' },
      { subject: names.subjects.ledger('acme'), body: { tenant: 'other', kind: 'reserve', amount: 1, jobId: 'j', attempt: 1, at: new Date().toISOString() }, msgID: 'bad-3' },
    ];
    await publishConcurrently(js, bad);
    await js.publish(names.subjects.job('email'), '{this is not json', { msgID: 'bad-4' });
    const after = syntheticWorkload(names, 100, { prefix: 'after' });
    await publishConcurrently(js, after.messages.map(toPublishable));
    const counts = await waitFor(
      'the events after the malformed ones',
      async () => {
        const c = await countRows(handle.db);
        return c.completeAttempts === before.completeAttempts + after.expected.attempts && c.ledger === before.ledger + after.expected.ledger && c.rejected === 4 ? c : undefined;
      },
      20_000,
    );
    expect(counts.jobs).toBe(before.jobs + 100);
    const rows = await handle.pool.query<{ stream: string; subject: string; reason: string }>('SELECT stream, subject, reason FROM rejected_messages ORDER BY reason');
    expect(rows.rows).toEqual([
      { stream: names.streams.jobs, subject: names.subjects.job('email'), reason: 'body is not JSON' },
      { stream: names.streams.jobs, subject: names.subjects.job('email'), reason: expect.stringMatching(/^not a JobMessage: /) },
      { stream: names.streams.outcomes, subject: names.subjects.outcome('email'), reason: expect.stringMatching(/^not an OutcomeEvent: /) },
      { stream: names.streams.ledger, subject: names.subjects.ledger('acme'), reason: 'subject tenant acme does not match body tenant other' },
    ]);
    expect(await registry.metrics()).toMatch(/janus_persister_rejected_messages_total\{stream="[A-Z0-9_]+_JOBS",app="persister-test"\} 2/);
  });

  it('serves health, readiness (including the consumers and the store) and metrics', async () => {
    const app = createApp({ readiness: persister.readiness, registry });
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { consumers: 'up', store: 'up' } });
    expect((await app.request('/metrics')).status).toBe(200);
  });
});
