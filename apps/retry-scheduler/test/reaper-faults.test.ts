import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import type { Settings } from '@janus/config';
import type { PolicyDocumentInput } from '@janus/contracts';
import { outcomeHorizon, reapOnce } from '@janus/execution';
import { connectNats, type NatsConnection, type NatsNames } from '@janus/messaging';
import { announceConfigChange } from '@janus/policy';
import { TcpProxy, waitFor } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import type { Limiter } from '@janus/limiter';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The reaper never drops a retry or a dead letter: a scheduler that loses NATS while it reaps, and
 * dies before NATS is back, leaves the expired lease to be reaped again by the next instance.
 */
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 10 } },
  tenants: { acme: {} },
  jobTypes: { work: { dependencies: [{ name: 'api' }], timeoutMs: 500, retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 } } },
};

let bed: TestBed;
let nc: NatsConnection;
let ns: string;
let names: NatsNames;
let jsm: JetStreamManager;
let settings: Settings;
let limiter: Limiter;
let scheduler: Scheduler | undefined;
const submit = (jobId: string) => bed.submit(jobId, 'work');

beforeAll(async () => {
  bed = await openTestBed('reaperfault', policyDoc);
  ({ nc, ns, names, jsm, settings, limiter } = bed);
});

afterAll(async () => {
  await scheduler?.close();
  await bed.close();
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
    // The horizon is read over the healthy connection: NATS goes away between it and the publish
    // (with NATS already gone, reaping stops at the horizon and nothing is published at all).
    await reapOnce({
      limiter,
      js: jetstream(doomed),
      names,
      horizon: outcomeHorizon(jsm, names),
      publishTimeoutMs: 300,
      onPublishFailure: (lease) => failures.push(lease.jobId),
    });
    expect(failures).toContain('j-reap');
    await doomed.close(); // the crash: whatever it buffered is gone
    await proxy.restore();
    await proxy.close();

    // The next instance (real NATS) takes over: the attempt times out, and the retry runs.
    scheduler = await startScheduler(settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
    await announceConfigChange(nc, names, bed.version);
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
