import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { countRows } from '@janus/event-store';
import { dropNatsNamespace, dropPgNamespace, prng, shuffle, syntheticWorkload, type SyntheticWorkload, TcpProxy, testEnv, testNamespace } from '@janus/testing';
import { connectNats, ensureStreams, natsNames, type NatsConnection } from '@janus/messaging';
import { publishConcurrently, waitForEveryEvent, startChildPersister, waitFor, type ChildPersister, type Publishable } from './helpers.js';

/**
 * PostgreSQL "stopped" for 20 s in the middle of a stream, from the persister's point of view only:
 * the persister (a real child process) reaches PostgreSQL through a TCP proxy this test cuts and
 * restores, so the shared PostgreSQL other test files use is never disturbed.
 */
const ns = testNamespace('persister_outage');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let nc: NatsConnection;
let js: JetStreamClient;
let handle: DbHandle;
let proxy: TcpProxy;
let child: ChildPersister | undefined;

beforeAll(async () => {
  await migrate(settings);
  handle = createDb(settings, { max: 2 });
  nc = await connectNats(settings, { name: 'persister-outage-test' });
  await ensureStreams(await jetstreamManager(nc), names);
  js = jetstream(nc);
  const pgUrl = new URL(settings.databaseUrl);
  proxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
});

afterAll(async () => {
  if (child && child.process.exitCode === null) {
    child.process.kill('SIGKILL');
    await child.exited;
  }
  await proxy?.close();
  await nc?.drain();
  await handle?.close();
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

function withDuplicates(w: SyntheticWorkload, seed: number): Publishable[] {
  const random = prng(seed);
  const originals = w.messages.map((m) => ({ subject: m.subject, body: m.body, msgID: m.msgID }));
  const dupes = shuffle([...originals], random)
    .slice(0, Math.round(originals.length * 0.1))
    .map((m, i) => ({ ...m, msgID: `${m.msgID}.again${i}` }));
  return shuffle([...originals, ...dupes], random);
}

describe('persister through a PostgreSQL outage', () => {
  it('stores every event exactly once after PostgreSQL comes back, and says so on /readyz meanwhile', async () => {
    child = await startChildPersister(ns, { DATABASE_URL: proxy.url(settings.databaseUrl) });
    const w = syntheticWorkload(names, 3_000);
    const all = withDuplicates(w, 11);
    const third = Math.ceil(all.length / 3);

    await publishConcurrently(js, all.slice(0, third));
    await waitFor('some rows before the outage', async () => (await countRows(handle.db)).ledger > 0, 20_000);

    const cutAt = Date.now();
    await proxy.cut();
    await publishConcurrently(js, all.slice(third, 2 * third));
    const notReady = await waitFor(
      '/readyz to report the outage',
      async () => {
        const r = await child?.readyz();
        return r && r.status === 503 ? r : undefined;
      },
      10_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nexit: ${String(child?.process.exitCode)}\n${child?.output()}`);
    });
    expect(notReady.body.down).toEqual(expect.arrayContaining(['postgres']));
    const during = await countRows(handle.db);
    await new Promise((r) => setTimeout(r, Math.max(0, 20_000 - (Date.now() - cutAt))));
    // Nothing was written while the persister could not reach PostgreSQL.
    expect(await countRows(handle.db)).toEqual(during);
    expect(child.process.exitCode).toBeNull();
    await proxy.restore();

    await publishConcurrently(js, all.slice(2 * third));
    const { counts: counts, mustBe } = await waitForEveryEvent(handle.db, w.expected, 'every event after the outage', 40_000);
    expect(counts).toEqual(mustBe);
    await waitFor('/readyz to recover', async () => (await child?.readyz())?.status === 200, 15_000);
    const metrics = await (await fetch(`http://127.0.0.1:${child.port}/metrics`)).text();
    expect(metrics).toMatch(/janus_persister_db_errors_total\{stream="[A-Z0-9_]+",kind="transient",app="persister"\} [1-9]/);

    // SIGTERM: stops consuming, finishes the batch in hand, exits cleanly.
    child.process.kill('SIGTERM');
    expect(await child.exited).toBe(0);
  }, 90_000);
});
