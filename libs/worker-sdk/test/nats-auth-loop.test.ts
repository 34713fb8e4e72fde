import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { connectNats, natsAuthConfig, natsAuthPermissions, natsNames, type NatsConnection } from '@janus/messaging';
import { TEST_SECRETS, dropPgNamespace, dropRedisNamespace, findSecrets, startAppProcess, startNatsServer, testEnv, testNamespace, waitFor, type AppName, type AppProcess, type NatsServerProcess } from '@janus/testing';
import { UnknownJobType, WORKER_INBOX_PREFIX, WorkerConfigError, connectWorker, startWorker, type Worker } from '../src/index.js';

/**
 * CONTRACT §4 "Who may do what", end to end: a nats-server of this file's own with the generated
 * users for this file's namespace (Redis and PostgreSQL are shared, so the namespace is a fresh
 * one, and JANUS_NAMESPACE names the NATS subjects too); the four apps as child processes, each
 * connected as user `janus` (NATS_USER/NATS_PASSWORD); a worker through the SDK as user `worker`.
 * A job submitted over HTTP fails once, is retried by Janus, extends its lease and succeeds.
 */
const ns = testNamespace('natsauth');
const names = natsNames(ns);
const APP_PASSWORD = TEST_SECRETS.natsPassword;
const WORKER_PASSWORD = TEST_SECRETS.natsWorkerPassword;
const POLICY = {
  dependencies: { mail: { concurrency: 10 } },
  tenants: { acme: {} },
  jobTypes: { flaky: { dependencies: [{ name: 'mail' }], timeoutMs: 5_000, retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } } },
};

let server: NatsServerProcess;
let env: Record<string, string>;
let app: NatsConnection | undefined;
const apps: Partial<Record<AppName, AppProcess>> = {};
const workers: Worker[] = [];
const workerConnections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer({
    files: { 'nats-auth.conf': natsAuthConfig(ns) },
    config: 'include ./nats-auth.conf',
    env: { JANUS_NATS_PASSWORD: APP_PASSWORD, JANUS_WORKER_NATS_PASSWORD: WORKER_PASSWORD },
  });
  env = testEnv(ns, { NATS_URL: server.url, NATS_USER: 'janus', NATS_PASSWORD: APP_PASSWORD, LOG_LEVEL: 'info', JANUS_LOG_FORMAT: 'json' });
  // policy-admin first: it migrates the namespace's schema; then the others side by side.
  apps['policy-admin'] = await startAppProcess('policy-admin', env, { readyTimeoutMs: 90_000 });
  const rest = await Promise.all((['ingress', 'retry-scheduler', 'persister'] as const).map((a) => startAppProcess(a, env, { readyTimeoutMs: 90_000 })));
  for (const p of rest) apps[p.app] = p;
}, 180_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
  await Promise.all(workerConnections.map((c) => c.close().catch(() => undefined)));
  await app?.close();
  await Promise.all(Object.values(apps).map((p) => p.kill('SIGKILL').catch(() => undefined)));
  await server?.stop();
  const settings = loadSettings(testEnv(ns));
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropPgNamespace(settings.databaseUrl, ns);
}, 60_000);

async function admin<T>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${apps['policy-admin']?.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${env.JANUS_ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

describe('least privilege on NATS, the whole loop', () => {
  it('connectWorker reads NATS_URL, NATS_USER and NATS_PASSWORD; both or neither', async () => {
    const nc = await connectWorker({ env: { NATS_URL: server.url, NATS_USER: 'worker', NATS_PASSWORD: WORKER_PASSWORD } });
    workerConnections.push(nc);
    expect(nc.info?.server_id).toBeDefined();
    // Its inbox is the worker's: a request's reply subject says so.
    const replies: string[] = [];
    const probe = await connectNats({ natsServers: [server.url], natsAuth: { user: 'janus', password: APP_PASSWORD } }, { name: 'probe' });
    probe.subscribe(names.subjects.leaseExtend, {
      callback: (_e, m) => {
        replies.push(m.reply ?? '');
        m.respond('{}');
      },
    });
    await probe.flush();
    await nc.request(names.subjects.leaseExtend, '{}', { timeout: 2_000 });
    await probe.close();
    expect(replies[0]?.startsWith(`${WORKER_INBOX_PREFIX}.`)).toBe(true);

    await expect(connectWorker({ env: { NATS_URL: server.url, NATS_USER: 'worker' } })).rejects.toThrow(new WorkerConfigError('NATS_PASSWORD (or the password option) is required when NATS_USER is set'));
    const noUser = await connectWorker({ env: { NATS_URL: server.url, NATS_PASSWORD: WORKER_PASSWORD } }).catch((e: unknown) => e as Error);
    expect(noUser).toBeInstanceOf(WorkerConfigError);
    expect(String(noUser)).not.toContain(WORKER_PASSWORD);
    await expect(connectWorker({ env: { NATS_URL: 'http://x' } })).rejects.toThrow('NATS_URL: "http://x" must be a URL with scheme nats://');
    await expect(connectWorker({ env: { NATS_URL: server.url, NATS_USER: 'worker', NATS_PASSWORD: 'wrong' }, connectOptions: { reconnect: false } })).rejects.toThrow('Authorization Violation');
    await expect(connectWorker({ servers: server.url, connectOptions: { reconnect: false } })).rejects.toThrow('Authorization Violation');

    // A worker's own nats.js connection without the worker inbox prefix: startWorker says what to do.
    const plain = await connect({ servers: server.url, user: 'worker', pass: WORKER_PASSWORD, reconnect: false });
    workerConnections.push(plain);
    await expect(startWorker({ nc: plain, namespace: ns, jobType: 'flaky', handler: async () => undefined })).rejects.toThrow(
      `NATS refused this connection's reply inbox: as the worker user, connect with inboxPrefix "${WORKER_INBOX_PREFIX}" (connectWorker() does)`,
    );
  });

  it('submit over HTTP → the SDK as user worker → a failure retried by Janus → a lease extension → succeeded; apps as user janus', async () => {
    const applied = await admin<{ version: number }>('PUT', '/v1/policy', POLICY);
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    const key = await admin<{ key: string }>('POST', '/v1/tenants/acme/keys', {});
    expect(key.status, JSON.stringify(key.body)).toBe(201);

    const nc = await connectWorker({ servers: server.url, user: 'worker', password: WORKER_PASSWORD, name: 'loop-worker' });
    workerConnections.push(nc);
    const seen: number[] = [];
    const extended: Date[] = [];
    // The consumer appears once the scheduler has read the new policy.
    const worker = await waitFor(
      () =>
        startWorker({
          nc,
          namespace: ns,
          jobType: 'flaky',
          handler: async (job, ctx) => {
            seen.push(job.attempt);
            if (job.attempt === 1) throw new Error('the mail server said no');
            extended.push(await ctx.extendLease(10_000));
          },
        }).catch((error: unknown) => {
          if (error instanceof UnknownJobType) return undefined;
          throw error;
        }),
      30_000,
      200,
    );
    workers.push(worker);

    // Until ingress has loaded the new policy (within a second) it refuses the unknown job type.
    let last = '';
    const submitted = await waitFor(
      async () => {
        const res = await fetch(`${apps.ingress?.url}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key.body.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'flaky', payload: { to: 'someone@example.com' } }),
        });
        last = `${res.status} ${await res.clone().text()}`;
        return res.status === 202 ? ((await res.json()) as { jobId: string }) : undefined;
      },
      10_000,
      100,
    ).catch(() => {
      throw new Error(`not admitted: ${last}`);
    });

    type View = { status: string; attempts: { attempt: number; outcome?: string; error?: string }[] };
    const view = await waitFor(
      async () => {
        const r = await fetch(`${apps.ingress?.url}/v1/jobs/${submitted.jobId}`, { headers: { authorization: `Bearer ${key.body.key}` } });
        const v = (await r.json()) as View;
        return v.status === 'succeeded' && v.attempts.length === 2 && v.attempts.every((a) => a.outcome !== undefined) ? v : undefined;
      },
      30_000,
      200,
    );
    expect(view.attempts.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(view.attempts[0]?.error).toBe('the mail server said no');
    expect(seen).toEqual([1, 2]);
    expect(extended).toHaveLength(1);
    expect(worker.processed).toBe(2);

    // Every consumer Janus keeps on the jobs stream that is not a worker's is one the file denies to workers.
    app = await connectNats({ natsServers: [server.url], natsAuth: { user: 'janus', password: APP_PASSWORD } }, { name: 'loop-check' });
    const jsm = await jetstreamManager(app);
    const denied = natsAuthPermissions(ns).worker.publish.deny ?? [];
    const consumers: string[] = [];
    for await (const c of jsm.consumers.list(names.streams.jobs)) consumers.push(c.name);
    expect(consumers).toContain('workers-flaky');
    for (const c of consumers.filter((n) => !n.startsWith('workers-'))) expect(denied).toContain(`$JS.API.CONSUMER.MSG.NEXT.${names.streams.jobs}.${c}`);

    // Each app logged in as janus (nothing was refused), and no password reached a log line.
    for (const p of Object.values(apps)) {
      expect(p.output(), p.app).not.toMatch(/Authorization Violation|Permissions Violation/);
      const leaks = p
        .output()
        .split('\n')
        .flatMap((line) => findSecrets(line, [APP_PASSWORD, WORKER_PASSWORD]));
      expect(leaks, p.app).toEqual([]);
    }
  });
});
