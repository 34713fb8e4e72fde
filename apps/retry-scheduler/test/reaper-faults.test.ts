import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { loadSettings } from '@janus/config';
import type { JobMessage, PolicyDocumentInput } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { encodeRetryContext, reapOnce } from '@janus/execution';
import { connectNats, ensureStreams, messageIds, natsNames, publishJson, type NatsConnection } from '@janus/messaging';
import { PolicyStore, announceConfigChange } from '@janus/policy';
import { createRedis } from '@janus/runtime';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, TcpProxy, testEnv, testNamespace } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { Limiter, compilePolicy } from '@janus/limiter';
import { startScheduler, type Scheduler } from '../src/scheduler.js';

/**
 * The reaper never drops a retry or a dead letter: a scheduler that loses NATS while it reaps, and
 * dies before NATS is back, leaves the expired lease to be reaped again by the next instance.
 */
const ns = testNamespace('reaperfault');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 10 } },
  tenants: { acme: {} },
  jobTypes: { work: { dependencies: [{ name: 'api' }], timeoutMs: 500, retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 } } },
};

let nc: NatsConnection;
let jsm: JetStreamManager;
let db: DbHandle;
let limiter: Limiter;
let scheduler: Scheduler | undefined;
let version = 0;
const redis = createRedis(settings, 'reaper-faults-test');

async function submit(jobId: string): Promise<void> {
  const result = await limiter.admit({
    jobs: [{ jobId, tenant: 'acme', jobType: 'work', priority: 'normal', context: encodeRetryContext({ tenant: 'acme', type: 'work', priority: 'normal' }) }],
  });
  if (result.kind !== 'admitted' || !result.jobs[0]?.lease) throw new Error(`not admitted: ${JSON.stringify(result)}`);
  const j = result.jobs[0];
  const lease = j.lease!;
  const message: JobMessage = {
    jobId,
    type: 'work',
    tenant: 'acme',
    attempt: 1,
    priority: 'normal',
    admittedAt: new Date(j.admittedAt).toISOString(),
    lease: { id: lease.id, token: lease.token, expiresAt: new Date(lease.expiresAt).toISOString() },
  };
  await publishJson(jetstream(nc), names.subjects.job('work'), message, messageIds.attempt(jobId, 1));
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  await migrate(settings);
  db = createDb(settings);
  nc = await connectNats(settings, { name: 'reaper-faults-test' });
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  const saved = await new PolicyStore(db.db).update(() => policyDoc as never, { actor: 'test', action: 'seed' });
  if (!saved.ok) throw new Error('seed failed');
  version = saved.policy.version;
  await redis.connect();
  limiter = new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy: compilePolicy(saved.policy.document, saved.policy.version) });
  await limiter.init({ fresh: true });
});

afterAll(async () => {
  await scheduler?.close();
  await nc.close();
  redis.disconnect();
  await db.close();
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('reaping under a NATS outage', () => {
  it('an expired lease whose timed_out could not be published is reaped again: the job is retried, not stuck', async () => {
    await submit('j-reap');
    // The lease expires with no worker around.
    await new Promise((r) => setTimeout(r, 700));

    // A scheduler instance reaps while its NATS connection is cut, and dies before it comes back.
    const natsUrl = new URL(settings.natsServers[0]!);
    const proxy = await TcpProxy.start({ host: natsUrl.hostname, port: Number(natsUrl.port || 4222) });
    const doomed = await connectNats({ natsServers: [proxy.url(settings.natsServers[0]!)] }, { name: 'doomed-scheduler' });
    await proxy.cut();
    const failures: string[] = [];
    await reapOnce({ limiter, js: jetstream(doomed), names, publishTimeoutMs: 300, onPublishFailure: (lease) => failures.push(lease.jobId) });
    expect(failures).toContain('j-reap');
    await doomed.close(); // the crash: whatever it buffered is gone
    await proxy.restore();
    await proxy.close();

    // The next instance (real NATS) takes over: the attempt times out, and the retry runs.
    scheduler = await startScheduler(settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
    await announceConfigChange(nc, names, version);
    await waitFor(() => jsm.consumers.info(names.streams.jobs, 'workers-work').catch(() => undefined));
    const seen: string[] = [];
    const worker = await startWorker({ nc, namespace: ns, jobType: 'work', handler: async (job) => void seen.push(`${job.jobId}.${job.attempt}`) });
    await waitFor(async () => (seen.includes('j-reap.2') ? true : undefined), 15_000);
    await worker.stop();
    expect(seen).toEqual(['j-reap.2']); // attempt 1's message had an expired lease: not run
    const stored = await jsm.streams.info(names.streams.outcomes, { subjects_filter: names.subjects.outcome('work') });
    expect(stored.state.subjects?.[names.subjects.outcome('work')]).toBe(2); // 1: timed_out, 2: succeeded
  }, 60_000);
});
