import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { spawn } from 'node:child_process';
import { connect } from '@nats-io/transport-node';
import { dropNatsNamespace, freePort, testEnv, testNamespace, waitFor } from '@janus/testing';
import { connectNats, pingNats, type NatsConnection } from './connection.js';
import { natsNames } from './names.js';
import { publishAll, publishFailure, publishJson } from './publish.js';
import { JsonText, jsonWithRaw } from './json.js';
import { AckPublisher, PublishRejected, PublishTimeout } from './ack-publisher.js';
import { ensureServiceConsumer, ensureStreams, ensureWorkerConsumer, streamConfigs, streamsReady } from './streams.js';
import { consumeConcurrently } from './consume.js';
import { jetStreamTimeMs, storedAt } from './stored-time.js';

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
    expect(n.streams).toEqual({ jobs: 'JANUS_JOBS', outcomes: 'JANUS_OUTCOMES', dead: 'JANUS_DEAD', ledger: 'JANUS_LEDGER', applied: 'JANUS_APPLIED', retries: 'JANUS_RETRIES', extensions: 'JANUS_EXTENSIONS' });
    expect(n.subjects.extension('email')).toBe('janus.extensions.email');
    expect(n.consumers.persisterExtensions).toBe('persister-extensions');
    expect(n.subjects.applied('email')).toBe('janus.applied.email');
    expect(n.subjects.retry('email')).toBe('janus.retries.email');
    expect(n.consumers.schedulerRetries).toBe('scheduler-retries');
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
    // Waiting retries: a work queue with no age limit (a retry may wait as long as it must).
    const retries = await jsm.streams.info(names.streams.retries);
    expect(retries.config).toMatchObject({ subjects: [`${ns}.retries.>`], retention: 'workqueue', max_age: 0 });
    expect(info.config.num_replicas).toBe(1);
  });

  it('gives every stream the replicas asked for (JANUS_STREAM_REPLICAS; 1 by default)', async () => {
    expect(streamConfigs(names).map((c) => c.num_replicas)).toEqual(streamConfigs(names).map(() => 1));
    expect(streamConfigs(names, { replicas: 3 }).map((c) => c.num_replicas)).toEqual(streamConfigs(names).map(() => 3));
    // A single server cannot hold 3 replicas: the error says so rather than a stream being made R1.
    await expect(ensureStreams(jsm, natsNames(`${ns}_r3`), { replicas: 3 })).rejects.toThrow(/replicas/i);
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

  it("a message over the server's max_payload is refused (the client never sends it), on both publish paths", async () => {
    const big = { blob: 'x'.repeat((nc.info?.max_payload ?? 1_048_576) + 1) };
    const ack = new AckPublisher(nc);
    try {
      for (const js of [jetstream(nc), ack]) {
        const result = await publishAll(js, [{ subject: names.subjects.job('email'), body: big, msgID: 'job-big.1' }], { timeoutMs: 500 });
        expect(result.ok).toBe(false);
        expect(publishFailure(result.errors[0])).toBe('refused');
      }
    } finally {
      ack.close();
    }
  });

  it('reports a single failed message (the one-message path)', async () => {
    const js = new AckPublisher(nc);
    try {
      const result = await publishAll(js, [{ subject: `${ns}.nostream.y`, body: {}, msgID: 'job-4.1' }], { timeoutMs: 500 });
      expect(result).toEqual({ ok: false, failed: [0], results: [undefined], errors: [expect.any(Error)] });
      // no stream listens on the subject: JetStream said so, nothing was stored
      expect(publishFailure(result.errors[0])).toBe('refused');
      expect(publishFailure(new PublishTimeout('no answer'))).toBe('unknown');
      // a plain request nobody listens to: nats.js's RequestError caused by NoResponders
      const noResponders = await nc.request(`${ns}.nobody.listens`, 'x', { timeout: 1_000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(publishFailure(noResponders)).toBe('refused');
      const ok = await publishAll(js, [{ subject: names.subjects.job('email'), body: { b: 2 }, msgID: 'job-5.1' }], { timeoutMs: 2000 });
      expect(ok.ok).toBe(true);
      expect(ok.results[0]?.seq).toBeGreaterThan(0);
    } finally {
      js.close();
    }
  });

  it('sends a JsonText body as it is, without serializing it again', async () => {
    const js = new AckPublisher(nc);
    try {
      const text = '{"b":1,  "a":[1,2]}';
      const ack = await publishJson(js, names.subjects.job('email'), new JsonText(text), 'job-6.1');
      const stored = await jsm.streams.getMessage(names.streams.jobs, { seq: ack.seq });
      expect(stored?.string()).toBe(text);
      // and an object is serialized
      const ack2 = await publishJson(js, names.subjects.job('email'), { a: 'x' }, 'job-7.1');
      expect((await jsm.streams.getMessage(names.streams.jobs, { seq: ack2.seq }))?.string()).toBe('{"a":"x"}');
    } finally {
      js.close();
    }
  });
});

describe('stored times', () => {
  it('reads a JetStream timestamp in ms, rounded down like timestampNanos / 1e6', () => {
    expect(jetStreamTimeMs('2025-01-02T03:04:05.123456789Z')).toBe(Date.UTC(2025, 0, 2, 3, 4, 5, 123));
    expect(jetStreamTimeMs('2025-01-02T03:04:05.1Z')).toBe(Date.UTC(2025, 0, 2, 3, 4, 5, 100));
    expect(jetStreamTimeMs('2025-01-02T03:04:05Z')).toBe(Date.UTC(2025, 0, 2, 3, 4, 5));
    expect(jetStreamTimeMs('2025-01-02T04:04:05.999999999+01:00')).toBe(Date.UTC(2025, 0, 2, 3, 4, 5, 999));
    expect(jetStreamTimeMs('yesterday')).toBeUndefined();
  });

  it('storedAt is the time a delivered message carries; next_by_subj skips a deleted message', async () => {
    await ensureStreams(jsm, names);
    const js = jetstream(nc);
    const acks = [];
    for (let i = 0; i < 3; i++) acks.push(await publishJson(js, names.subjects.outcome('email'), { i }, `stored-${i}`));
    await jsm.consumers.add(names.streams.outcomes, { durable_name: 'stored-reader', ack_policy: AckPolicy.None });
    const consumer = await js.consumers.get(names.streams.outcomes, 'stored-reader');
    const delivered = new Map<number, number>();
    const batch = await consumer.fetch({ max_messages: 3, expires: 2_000 });
    for await (const m of batch) delivered.set(m.seq, Math.floor(m.info.timestampNanos / 1e6));
    for (const ack of acks) expect(await storedAt(jsm, names.streams.outcomes, ack.seq)).toEqual({ seq: ack.seq, at: delivered.get(ack.seq) });
    await jsm.streams.deleteMessage(names.streams.outcomes, acks[1]!.seq);
    expect(await storedAt(jsm, names.streams.outcomes, acks[1]!.seq)).toBeUndefined();
    expect(await storedAt(jsm, names.streams.outcomes, acks[1]!.seq, names.subjects.allOutcomes)).toEqual({ seq: acks[2]!.seq, at: delivered.get(acks[2]!.seq) });
    expect(await storedAt(jsm, names.streams.outcomes, acks[2]!.seq + 1, names.subjects.allOutcomes)).toBeUndefined();
  });
});

describe('jsonWithRaw', () => {
  it('splices JSON text in as a field, and equals JSON.stringify of the whole', () => {
    const payload = { to: 'ü@example.com', n: [1, { x: null }], s: 'quote " and \\' };
    const raw = JSON.stringify(payload);
    const text = jsonWithRaw({ jobId: 'j', attempt: 1 }, 'payload', raw);
    expect(JSON.parse(text)).toEqual({ jobId: 'j', attempt: 1, payload });
    expect(text).toBe(JSON.stringify({ jobId: 'j', attempt: 1, payload }));
  });

  it('works on an empty object, leaves the field out for undefined, and keeps JSON null', () => {
    expect(jsonWithRaw({}, 'p', '[1]')).toBe('{"p":[1]}');
    expect(jsonWithRaw({ a: 1 }, 'p', undefined)).toBe('{"a":1}');
    expect(JSON.parse(jsonWithRaw({ a: 1 }, 'p', 'null'))).toEqual({ a: 1, p: null });
  });
});

describe('pingNats', () => {
  it('answers ping while connected', async () => {
    expect(await pingNats(nc)).toBe(true);
  });
});

describe('AckPublisher (acked publishes without nats.js request objects)', () => {
  it('stores, acks and dedupes on msgID like js.publish, under many concurrent publishes', async () => {
    await ensureStreams(jsm, names);
    const publisher = new AckPublisher(nc);
    const subject = names.subjects.job('ackpub');
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.publish(subject, JSON.stringify({ i }), `ap-${i}.1`, 2000)));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(500);
    expect(acks.every((a) => !a.duplicate)).toBe(true);
    const again = await publisher.publish(subject, '{}', 'ap-7.1', 2000);
    expect(again).toEqual({ seq: acks[7]!.seq, duplicate: true });
    // the stored message carries its msgID header and the body as sent
    const stored = await jsm.streams.getMessage(names.streams.jobs, { seq: acks[7]!.seq });
    expect(stored?.header.get('Nats-Msg-Id')).toBe('ap-7.1');
    expect(stored?.json()).toEqual({ i: 7 });
    // a msgID that would break the header block is refused before anything is sent
    await expect(publisher.publish(subject, '{}', 'bad\r\nX-Injected: 1', 2000)).rejects.toThrow(/invalid msgID/);
    const info = await jsm.streams.info(names.streams.jobs, { subjects_filter: subject });
    expect(info.state.subjects?.[subject]).toBe(500);
    // the same publisher through publishAll
    const all = await publishAll(publisher, [{ subject, body: { x: 1 }, msgID: 'ap-x.1' }, { subject: `${ns}.nostream.y`, body: {}, msgID: 'ap-y.1' }], { timeoutMs: 500 });
    expect(all.failed).toEqual([1]);
    publisher.close();
  });

  it('rejects at once when no stream listens on the subject', async () => {
    const publisher = new AckPublisher(nc);
    const started = Date.now();
    await expect(publisher.publish(`${ns}.nostream.z`, '{}', 'z.1', 5000)).rejects.toBeInstanceOf(PublishRejected);
    expect(Date.now() - started).toBeLessThan(1000);
    publisher.close();
  });

  it('rejects what the stream refuses: its error answer also names the stream and seq 0, and is no ack', async () => {
    // A stream that stores nothing (every message is over its size limit), as a full stream that
    // discards new messages or any other refusal answers: {"error":{…},"stream":"…","seq":0}.
    const stream = `${names.streams.jobs}_TINY`;
    await jsm.streams.add({ name: stream, subjects: [`${ns}.tiny.>`], max_msg_size: 1 });
    const publisher = new AckPublisher(nc);
    const refused = await publisher.publish(`${ns}.tiny.a`, '{"big":true}', 'tiny.1', 2000).then(
      (ack) => ack,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(PublishRejected);
    expect(publishFailure(refused)).toBe('refused');
    expect((await jsm.streams.info(stream)).state.messages).toBe(0);
    // nats.js's own client agrees
    await expect(jetstream(nc).publish(`${ns}.tiny.a`, '{"big":true}', { msgID: 'tiny.2' })).rejects.toThrow(/size/);
    publisher.close();
    await jsm.streams.delete(stream);
  });

  it('times out when nobody acks (a core subscriber that does not answer), and ignores a late answer', async () => {
    const publisher = new AckPublisher(nc);
    const silent = nc.subscribe(`${ns}.silent`);
    const started = Date.now();
    await expect(publisher.publish(`${ns}.silent`, '{}', 's.1', 200)).rejects.toBeInstanceOf(PublishTimeout);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    silent.unsubscribe();
    publisher.close();
  });

  it('fails what is still waiting when closed', async () => {
    const publisher = new AckPublisher(nc);
    const silent = nc.subscribe(`${ns}.silent2`);
    const waiting = publisher.publish(`${ns}.silent2`, '{}', 's.2', 10_000);
    publisher.close();
    await expect(waiting).rejects.toBeInstanceOf(PublishRejected);
    silent.unsubscribe();
  });
});

describe('consumeConcurrently: a consumer deleted under it', () => {
  it('is unhealthy while gone, is created again by its owner, and delivers what was published meanwhile', async () => {
    await ensureStreams(jsm, names);
    const durable = 'gone-test';
    const ensure = () => ensureServiceConsumer(jsm, names.streams.dead, durable, { ackWaitMs: 5_000 });
    await ensure();
    const js = jetstream(nc);
    const seen: string[] = [];
    let recreate = false;
    let asked = 0;
    const loop = await consumeConcurrently(await js.consumers.get(names.streams.dead, durable), {
      concurrency: 4,
      resumeDelayMs: 100,
      handle: async (msg) => {
        seen.push(msg.string());
        msg.ack();
      },
      onConsumerGone: async () => {
        asked += 1;
        if (recreate) await ensure();
      },
    });
    await js.publish(names.subjects.dead('gone'), 'one');
    await waitFor(() => seen.includes('one'), 5_000, 20);
    expect(loop.healthy).toBe(true);

    await jsm.consumers.delete(names.streams.dead, durable);
    await waitFor(() => !loop.healthy, 5_000, 20);
    await js.publish(names.subjects.dead('gone'), 'two');
    // Not created again (its owner cannot yet): it stays unhealthy, and the owner is asked again.
    await waitFor(() => asked >= 2, 5_000, 20);
    expect(loop.healthy).toBe(false);
    expect(seen).toEqual(['one']);

    recreate = true;
    // Created again from the stream's start: what was published meanwhile arrives (and what was acked before, again).
    await waitFor(() => seen.includes('two'), 10_000, 20);
    expect(loop.healthy).toBe(true);
    await loop.stop();
  }, 30_000);
});

describe('streamsReady (the `jetstream` readiness check)', () => {
  it('is true with every stream there; creates a stream deleted by hand again; fails where JetStream is off', async () => {
    const own = natsNames(`${ns}_ready`);
    await ensureStreams(jsm, own);
    const recreated: string[][] = [];
    expect(await streamsReady(jsm, own, { recreated: (s) => recreated.push(s) })).toBe(true);
    expect(recreated).toEqual([]);
    await jsm.streams.delete(own.streams.jobs);
    expect(await streamsReady(jsm, own, { recreated: (s) => recreated.push(s) })).toBe(true);
    expect(recreated).toEqual([[own.streams.jobs]]);
    expect((await jsm.streams.info(own.streams.jobs)).config.subjects).toEqual([own.subjects.allJobs]);
    for (const name of Object.values(own.streams)) await jsm.streams.delete(name).catch(() => undefined);

    // a server without JetStream: the connection is up, the check is not
    const port = await freePort();
    const server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      const plain = await waitFor(() => connect({ servers: `127.0.0.1:${port}` }).catch(() => undefined), 10_000);
      try {
        expect(await pingNats(plain)).toBe(true);
        await expect(streamsReady(await jetstreamManager(plain, { checkAPI: false }), own)).rejects.toThrow();
      } finally {
        await plain.close();
      }
    } finally {
      server.kill('SIGKILL');
    }
  }, 30_000);
});
