import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { countRows } from '@janus/event-store';
import { dropNatsNamespace, dropPgNamespace, prng, shuffle, syntheticWorkload, testEnv, testNamespace } from '@janus/testing';
import { connectNats, ensureStreams, natsNames, type NatsConnection } from '@janus/messaging';
import { publishConcurrently, waitForEveryEvent, startChildPersister, waitFor, type ChildPersister } from './helpers.js';

/** The persister (a real child process) killed with SIGKILL mid-stream, then restarted. */
const ns = testNamespace('persister_kill');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let nc: NatsConnection;
let js: JetStreamClient;
let handle: DbHandle;
const children: ChildPersister[] = [];

beforeAll(async () => {
  await migrate(settings);
  handle = createDb(settings, { max: 2 });
  nc = await connectNats(settings, { name: 'persister-kill-test' });
  await ensureStreams(await jetstreamManager(nc), names);
  js = jetstream(nc);
});

afterAll(async () => {
  for (const c of children) {
    if (c.process.exitCode === null && c.process.signalCode === null) {
      c.process.kill('SIGKILL');
      await c.exited;
    }
  }
  await nc?.drain();
  await handle?.close();
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('persister killed with SIGKILL mid-batch', () => {
  it('stores every event exactly once after a restart', async () => {
    const w = syntheticWorkload(names, 4_000, { appliedPerMessage: 25 });
    const random = prng(5);
    const originals = w.messages.map((m) => ({ subject: m.subject, body: m.body, msgID: m.msgID }));
    const dupes = shuffle([...originals], random)
      .slice(0, Math.round(originals.length * 0.1))
      .map((m, i) => ({ ...m, msgID: `${m.msgID}.re${i}` }));
    const all = shuffle([...originals, ...dupes], random);
    // Everything is in the streams before the first persister starts, so it is busy writing
    // batch after batch when it is killed.
    await publishConcurrently(js, all);

    const first = await startChildPersister(ns);
    children.push(first);
    const total = w.expected.ledger + w.expected.attempts;
    const partial = await waitFor(
      'the first persister to be part-way through',
      async () => {
        const c = await countRows(handle.db);
        const done = c.ledger + c.completeAttempts;
        return done > total * 0.1 ? c : undefined;
      },
      30_000,
      20,
    );
    first.process.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    const atKill = await countRows(handle.db);
    expect(atKill.ledger + atKill.completeAttempts).toBeLessThan(total);
    expect(partial.ledger).toBeGreaterThan(0);

    const second = await startChildPersister(ns);
    children.push(second);
    const { counts: counts, mustBe } = await waitForEveryEvent(handle.db, w.expected, 'every event after the restart', 45_000);
    expect(counts).toEqual(mustBe);
    second.process.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 90_000);
});
