import { readFileSync } from 'node:fs';
import path from 'node:path';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NAMESPACE_PATTERN } from '@janus/config';
import { TEST_SECRETS, REPO_ROOT, startNatsServer, waitFor, type NatsServerProcess } from '@janus/testing';
import { connectNats } from '../src/connection.js';
import { natsNames } from '../src/names.js';
import { NATS_PASSWORD_VARIABLES, WORKER_INBOX_PREFIX, natsAuthConfig, natsAuthPermissions } from '../src/nats-auth.js';
import { ensureServiceConsumer, ensureStreams, ensureWorkerConsumer } from '../src/streams.js';

/**
 * CONTRACT §4 "Who may do what", checked against a real nats-server (the one on the PATH, 2.9 on
 * the dev machines) of this file's own, configured with the shipped infra/nats-auth.conf — so the
 * namespace is `janus`, which is safe here: nobody else uses this server.
 */
const SHIPPED = readFileSync(path.join(REPO_ROOT, 'infra/nats-auth.conf'), 'utf8');
const APP_PASSWORD = TEST_SECRETS.natsPassword;
const WORKER_PASSWORD = TEST_SECRETS.natsWorkerPassword;
const names = natsNames('janus');

describe('the generator', () => {
  it('infra/nats-auth.conf is exactly its output for namespace janus', () => {
    expect(SHIPPED).toBe(natsAuthConfig('janus'));
  });

  it('derives every subject, stream and consumer from the namespace', () => {
    const { app, worker } = natsAuthPermissions('acme_2');
    expect(app).toEqual({
      user: 'janus',
      passwordVariable: 'JANUS_NATS_PASSWORD',
      publish: { allow: ['acme_2.>', '$JS.API.>', '$JS.ACK.>', '$JS.FC.>', '_INBOX.>', '_INBOX_WORKER.>'] },
      subscribe: { allow: ['acme_2.>', '_INBOX.>'] },
    });
    expect(worker).toEqual({
      user: 'worker',
      passwordVariable: 'JANUS_WORKER_NATS_PASSWORD',
      publish: {
        allow: ['$JS.API.CONSUMER.MSG.NEXT.ACME_2_JOBS.*', '$JS.API.CONSUMER.INFO.ACME_2_JOBS.*', '$JS.ACK.ACME_2_JOBS.*.>', 'acme_2.outcomes.>', 'acme_2.leases.extend'],
        deny: ['$JS.API.CONSUMER.MSG.NEXT.ACME_2_JOBS.persister-jobs', '$JS.API.CONSUMER.INFO.ACME_2_JOBS.persister-jobs', '$JS.ACK.ACME_2_JOBS.persister-jobs.>'],
      },
      subscribe: { allow: ['_INBOX_WORKER.>'] },
    });
    const text = natsAuthConfig('acme_2');
    expect(text).toContain('password: $JANUS_NATS_PASSWORD\n');
    expect(text).toContain('password: $JANUS_WORKER_NATS_PASSWORD\n');
    expect(text).not.toMatch(/"janus\.|JANUS_JOBS/);
  });

  it('accepts exactly the namespaces the apps accept', () => {
    for (const ns of ['janus', 'a', 't_x_0123abcd', 'a'.repeat(40), 'Janus', '1abc', 'a-b', 'a.b', 'a>', 'a*', 'a'.repeat(41), '']) {
      if (NAMESPACE_PATTERN.test(ns)) expect(() => natsAuthConfig(ns), ns).not.toThrow();
      else expect(() => natsAuthConfig(ns), ns).toThrow('must match');
    }
  });
});

describe('infra/nats-auth.conf on a real nats-server', () => {
  let server: NatsServerProcess;
  let app: NatsConnection;
  let jsm: JetStreamManager;
  let worker: NatsConnection;
  const workerErrors: string[] = [];

  const asWorker = (extra: { inboxPrefix?: string; pass?: string } = {}) =>
    connect({ servers: server.url, user: 'worker', pass: WORKER_PASSWORD, inboxPrefix: WORKER_INBOX_PREFIX, reconnect: false, ...extra });

  beforeAll(async () => {
    server = await startNatsServer({
      files: { 'nats-auth.conf': SHIPPED },
      config: 'include ./nats-auth.conf',
      env: { [NATS_PASSWORD_VARIABLES.app]: APP_PASSWORD, [NATS_PASSWORD_VARIABLES.worker]: WORKER_PASSWORD },
    });
    // Everything the apps set up, as the apps' user.
    app = await connectNats({ natsServers: [server.url], natsAuth: { user: 'janus', password: APP_PASSWORD } }, { name: 'nats-auth-test-app' });
    jsm = await jetstreamManager(app);
    await ensureStreams(jsm, names);
    await ensureWorkerConsumer(jsm, names, 'x', 30_000);
    await ensureServiceConsumer(jsm, names.streams.jobs, names.consumers.persisterJobs);
    worker = await asWorker();
    void (async () => {
      for await (const s of worker.status()) if (s.type === 'error') workerErrors.push(s.error.message);
    })();
  });

  afterAll(async () => {
    await worker?.close();
    await app?.close();
    await server?.stop();
  });

  it('refuses a connection without credentials or with a wrong password, and never echoes the password', async () => {
    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow('Authorization Violation');
    await expect(asWorker({ pass: 'wrong-password' })).rejects.toThrow('Authorization Violation');
    const refused = await connectNats({ natsServers: [server.url], natsAuth: { user: 'janus', password: 'NotTheAppPassword' } }, { name: 'x' }).catch((e: unknown) => e as Error);
    expect(refused).toBeInstanceOf(Error);
    expect(String((refused as Error).message)).toContain('Authorization Violation');
    expect(`${(refused as Error).message} ${String((refused as Error).stack)}`).not.toContain('NotTheAppPassword');
  });

  it('the worker cannot publish jobs, dead letters, ledger entries or config events: nothing reaches a subscriber or a stream', async () => {
    const seen: string[] = [];
    const sub = app.subscribe('janus.>', {
      callback: (_e, m: Msg) => {
        seen.push(m.subject);
      },
    });
    await app.flush();
    const jobsBefore = (await jsm.streams.info(names.streams.jobs)).state.messages;
    const forbidden = ['janus.jobs.x', 'janus.dead.x', 'janus.ledger.acme', 'janus.config.changed', 'janus.room.wake', 'janus.retries.x', 'janus.applied.x'];
    for (const subject of forbidden) worker.publish(subject, JSON.stringify({ forged: true }));
    // A permitted message after them, on the same connection: once it arrived, the others would have too.
    worker.publish('janus.leases.extend', 'sync');
    await waitFor(() => seen.includes('janus.leases.extend'), 5_000);
    sub.unsubscribe();
    expect(seen).toEqual(['janus.leases.extend']);
    await waitFor(() => forbidden.every((s) => workerErrors.includes(`Permissions Violation for Publish to "${s}"`)), 5_000);
    // JetStream publishes are refused too, and the streams hold nothing new.
    for (const subject of ['janus.jobs.x', 'janus.dead.x', 'janus.ledger.acme']) {
      await expect(jetstream(worker).publish(subject, '{}', { msgID: `forged-${subject}`, timeout: 2_000 })).rejects.toThrow(`Permissions Violation for Publish to "${subject}"`);
    }
    expect((await jsm.streams.info(names.streams.jobs)).state.messages).toBe(jobsBefore);
    for (const stream of [names.streams.dead, names.streams.ledger]) expect((await jsm.streams.info(stream)).state.messages).toBe(0);
  });

  it('the worker cannot create, change, purge or delete streams and consumers', async () => {
    await expect(jetstreamManager(worker)).rejects.toThrow('Permissions Violation for Publish to "$JS.API.INFO"');
    const wjsm = await jetstreamManager(worker, { checkAPI: false });
    const attempts: [string, () => Promise<unknown>][] = [
      ['stream create', () => wjsm.streams.add({ name: 'EVIL', subjects: ['evil.>'] })],
      ['stream update', () => wjsm.streams.update(names.streams.jobs, { subjects: ['janus.jobs.>', 'evil.>'] })],
      ['stream purge', () => wjsm.streams.purge(names.streams.jobs)],
      ['stream delete', () => wjsm.streams.delete(names.streams.outcomes)],
      ['stream list', () => wjsm.streams.names().next()],
      ['message delete', () => wjsm.streams.deleteMessage(names.streams.jobs, 1)],
      ['consumer create', () => wjsm.consumers.add(names.streams.jobs, { durable_name: 'workers-evil' })],
      ['consumer update', () => wjsm.consumers.update(names.streams.jobs, 'workers-x', { max_deliver: 5 })],
      ['consumer delete', () => wjsm.consumers.delete(names.streams.jobs, 'workers-x')],
      ['other stream consumer info', () => wjsm.consumers.info(names.streams.outcomes, 'workers-x')],
    ];
    for (const [what, attempt] of attempts) await expect(attempt(), what).rejects.toThrow('Permissions Violation for Publish to "$JS.API.');
    // Nothing changed.
    expect((await jsm.streams.info(names.streams.jobs)).config.subjects).toEqual(['janus.jobs.>']);
    expect((await jsm.streams.info(names.streams.outcomes)).config.name).toBe(names.streams.outcomes);
    expect((await jsm.consumers.info(names.streams.jobs, 'workers-x')).config.max_deliver).toBe(1);
    await expect(jsm.streams.info('EVIL')).rejects.toThrow(/not found/i);
  });

  it("the worker cannot use Janus's own consumer, nor read other subjects or the apps' inboxes", async () => {
    await expect(jetstream(worker).consumers.get(names.streams.jobs, names.consumers.persisterJobs)).rejects.toThrow(
      `Permissions Violation for Publish to "$JS.API.CONSUMER.INFO.${names.streams.jobs}.${names.consumers.persisterJobs}"`,
    );
    worker.publish(`$JS.API.CONSUMER.MSG.NEXT.${names.streams.jobs}.${names.consumers.persisterJobs}`, '{"batch":1}', { reply: `${WORKER_INBOX_PREFIX}.steal` });
    worker.publish(`$JS.ACK.${names.streams.jobs}.${names.consumers.persisterJobs}.1.1.1.0.0`, '+ACK');
    for (const subject of ['_INBOX.>', 'janus.>', 'janus.jobs.x', '$JS.ACK.>']) {
      const sub = worker.subscribe(subject);
      await expect(sub.closed).resolves.toEqual(expect.objectContaining({ message: `Permissions Violation for Subscription to "${subject}"` }));
    }
    await waitFor(() => workerErrors.some((e) => e.includes(`MSG.NEXT.${names.streams.jobs}.${names.consumers.persisterJobs}`)), 5_000);
    await waitFor(() => workerErrors.some((e) => e.includes(`$JS.ACK.${names.streams.jobs}.${names.consumers.persisterJobs}`)), 5_000);
    // With the apps' inbox prefix (nats.js's default), a worker cannot even make a request.
    const plain = await asWorker({ inboxPrefix: '_INBOX' });
    try {
      await expect(plain.request(names.subjects.leaseExtend, '{}', { timeout: 2_000 })).rejects.toThrow('Permissions Violation for Subscription to "_INBOX.');
    } finally {
      await plain.close();
    }
  });

  it('the worker can pull from workers-<type>, acknowledge, report an outcome (acked by the stream) and extend a lease', async () => {
    await jetstream(app).publish(names.subjects.job('x'), JSON.stringify({ jobId: 'j1' }), { msgID: 'j1.1' });
    const consumer = await jetstream(worker).consumers.get(names.streams.jobs, names.consumers.workers('x'));
    expect((await consumer.info()).name).toBe('workers-x');
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg?.json()).toEqual({ jobId: 'j1' });
    const ack = await jetstream(worker).publish(names.subjects.outcome('x'), JSON.stringify({ jobId: 'j1', attempt: 1, outcome: 'succeeded' }), { msgID: 'j1.1' });
    expect(ack).toMatchObject({ stream: names.streams.outcomes, duplicate: false });
    expect(await msg?.ackAck()).toBe(true);
    const info = await jsm.consumers.info(names.streams.jobs, 'workers-x');
    expect([info.num_pending, info.num_ack_pending]).toEqual([0, 0]);
    expect((await jsm.streams.info(names.streams.outcomes)).state.messages).toBe(1);

    // The scheduler's side of a lease extension, as the apps' user: it answers into the worker's inbox.
    const responder = app.subscribe(names.subjects.leaseExtend, {
      callback: (_e, m) => {
        if (m.reply) m.respond(JSON.stringify({ ok: true, expiresAt: '2030-01-01T00:00:00.000Z' }));
      },
    });
    await app.flush();
    const reply = await worker.request(names.subjects.leaseExtend, JSON.stringify({ leaseToken: 't', ms: 1 }), { timeout: 2_000 });
    expect(reply.subject.startsWith(`${WORKER_INBOX_PREFIX}.`)).toBe(true);
    expect(reply.json()).toEqual({ ok: true, expiresAt: '2030-01-01T00:00:00.000Z' });
    responder.unsubscribe();
  });
});
