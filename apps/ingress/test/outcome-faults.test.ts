import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { OutcomeProcessor, RetryProcessor } from '@janus/execution';
import { consumeConcurrently, connectNats, ensureServiceConsumer, natsNames, type NatsConnection } from '@janus/messaging';
import { TcpProxy, testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, storedMessages, waitFor } from './helpers.js';

/**
 * The HTTP outcome route never drops a retry or a dead letter: when its publish fails (NATS cut
 * for ingress), nothing is settled and the worker's report again succeeds; the scheduler then
 * retries the job as its policy says.
 */
const ns = testNamespace('ingress-outcome-faults');
const settings = loadSettings(testEnv(ns));
const natsUrl = new URL(settings.natsServers[0]!);
let proxy: TcpProxy;
let ingress: Ingress;
let nc: NatsConnection;
let key: string;

beforeAll(async () => {
  proxy = await TcpProxy.start({ host: natsUrl.hostname, port: Number(natsUrl.port || 4222) });
  ingress = await start(ns, { NATS_URL: proxy.url(settings.natsServers[0]!) }, { publishTimeoutMs: 500 });
  await setPolicy([ingress], {
    dependencies: { api: { concurrency: 5 } },
    tenants: { acme: {} },
    jobTypes: { work: { dependencies: [{ name: 'api' }], timeoutMs: 20_000, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } } },
  });
  key = (await createKey([ingress], 'acme')).key;
  nc = await connectNats(settings, { name: 'outcome-faults-test' });
});

afterAll(async () => {
  await ingress.close();
  await nc.close();
  await proxy.close();
  await cleanup(settings, ns);
});

describe('POST /v1/jobs/{jobId}/outcome while JetStream is unreachable', () => {
  it('answers 503 having settled nothing; the report again is 204, and the job is retried', async () => {
    const res = await ingress.app.request('/v1/jobs', json({ type: 'work' }, { authorization: `Bearer ${key}` }));
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const names = natsNames(ns);
    const job = (await storedMessages(ingress, names.streams.jobs, names.subjects.job('work'))).find((m) => m.body.jobId === jobId)!;
    const token = (job.body.lease as { token: string }).token;
    const report = () => ingress.app.request(`/v1/jobs/${jobId}/outcome`, json({ jobId, attempt: 1, leaseToken: token, outcome: 'failed', error: 'smtp down' }, { authorization: `Bearer ${token}` }));

    await proxy.cut();
    expect((await report()).status).toBe(503);
    await proxy.restore();
    await waitFor(() => ingress.runtime.nc.info !== undefined && !ingress.runtime.nc.isClosed(), 10_000);

    const again = await waitFor(async () => {
      const r = await report();
      return r.status === 503 ? undefined : r; // until ingress has reconnected
    }, 15_000, 250);
    expect(again.status).toBe(204);

    // The scheduler's part: the outcome becomes a retry (attempt 2 is admitted and published).
    const js = jetstream(nc);
    await ensureServiceConsumer(ingress.runtime.jsm, names.streams.outcomes, 'test-scheduler');
    const processor = new OutcomeProcessor({ limiter: ingress.limiter, js, names });
    const loop = await consumeConcurrently(await js.consumers.get(names.streams.outcomes, 'test-scheduler'), {
      concurrency: 4,
      handle: async (msg) => void (await processor.process(msg)),
    });
    // … which waits in RETRIES until due, then is admitted.
    await ensureServiceConsumer(ingress.runtime.jsm, names.streams.retries, 'test-scheduler-retries', { maxAckPending: -1 });
    const retrier = new RetryProcessor({ limiter: ingress.limiter, js, names });
    const retryLoop = await consumeConcurrently(await js.consumers.get(names.streams.retries, 'test-scheduler-retries'), {
      concurrency: 4,
      handle: async (msg) => void (await retrier.process(msg)),
    });
    try {
      await waitFor(async () => {
        const attempts = (await storedMessages(ingress, names.streams.jobs, names.subjects.job('work'))).filter((m) => m.body.jobId === jobId);
        return attempts.some((m) => m.body.attempt === 2) ? true : undefined;
      }, 10_000, 100);
    } finally {
      await Promise.all([loop.stop(), retryLoop.stop()]);
    }
  }, 60_000);
});
