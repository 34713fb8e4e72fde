import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { dropNatsNamespace, testEnv, testNamespace } from '@janus/testing';
import { connectNats, pingNats, type NatsConnection } from './connection.js';
import { natsNames } from './names.js';
import { publishAll, publishJson } from './publish.js';
import { ensureStreams, ensureWorkerConsumer } from './streams.js';

const ns = testNamespace('messaging');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nc = await connectNats(settings, { name: 'messaging-test' });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc.close();
  await dropNatsNamespace([...settings.natsServers], ns);
});

describe('natsNames', () => {
  it('derives the contract names from the namespace', () => {
    const n = natsNames('janus');
    expect(n.streams).toEqual({ jobs: 'JANUS_JOBS', outcomes: 'JANUS_OUTCOMES', dead: 'JANUS_DEAD', ledger: 'JANUS_LEDGER' });
    expect(n.subjects.job('email')).toBe('janus.jobs.email');
    expect(n.subjects.outcome('email')).toBe('janus.outcomes.email');
    expect(n.subjects.dead('email')).toBe('janus.dead.email');
    expect(n.subjects.ledger('acme')).toBe('janus.ledger.acme');
    expect(n.subjects.configChanged).toBe('janus.config.changed');
    expect(n.consumers.workers('email')).toBe('workers-email');
  });
});

describe('ensureStreams', () => {
  it('is idempotent and safe when many instances run it at once', async () => {
    await Promise.all(Array.from({ length: 6 }, () => ensureStreams(jsm, names)));
    await ensureStreams(jsm, names);
    const streams: string[] = [];
    for await (const s of jsm.streams.names()) if (s.startsWith(`${ns.toUpperCase()}_`)) streams.push(s);
    expect(streams.sort()).toEqual(Object.values(names.streams).sort());
    const info = await jsm.streams.info(names.streams.jobs);
    expect(info.config.subjects).toEqual([`${ns}.jobs.>`]);
  });

  it('creates the workers consumer with no redelivery', async () => {
    await ensureStreams(jsm, names);
    await Promise.all([ensureWorkerConsumer(jsm, names, 'email', 5_000), ensureWorkerConsumer(jsm, names, 'email', 5_000)]);
    const info = await jsm.consumers.info(names.streams.jobs, 'workers-email');
    expect(info.config.filter_subject).toBe(`${ns}.jobs.email`);
    expect(info.config.max_deliver).toBe(1);
  });
});

describe('publish', () => {
  it('dedupes on msgID', async () => {
    await ensureStreams(jsm, names);
    const js = jetstream(nc);
    const first = await publishJson(js, names.subjects.job('email'), { a: 1 }, 'job-1.1');
    const again = await publishJson(js, names.subjects.job('email'), { a: 1 }, 'job-1.1');
    expect(first.duplicate).toBe(false);
    expect(again.duplicate).toBe(true);
    expect(again.seq).toBe(first.seq);
  });

  it('reports which messages of a batch failed', async () => {
    const js = jetstream(nc);
    const result = await publishAll(
      js,
      [
        { subject: names.subjects.job('email'), body: {}, msgID: 'job-2.1' },
        { subject: `${ns}.nostream.x`, body: {}, msgID: 'job-3.1' },
      ],
      { timeoutMs: 500 },
    );
    expect(result.ok).toBe(false);
    expect(result.failed).toEqual([1]);
  });

  it('answers ping while connected', async () => {
    expect(await pingNats(nc)).toBe(true);
  });
});
