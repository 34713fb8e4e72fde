import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import type { Hono } from 'hono';
import type { OutcomeEvent } from '@janus/contracts';
import { messageIds, publishAll } from '@janus/messaging';
import { limitId } from '@janus/limiter';
import { announceConfigChange } from '@janus/policy';
import { readLiveStats } from '@janus/observability';
import { waitFor } from '@janus/testing';
import { createApp } from '../src/app.js';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The adaptive-protection metrics on the scheduler's /metrics (CONTRACT §2 `adaptive`): throttled
 * outcomes and rate decreases counted per dependency, circuit transitions, and the effective ratio
 * and circuit state read from Redis on scrape — all after real outcomes through the real pipeline.
 */
let bed: TestBed;
let scheduler: Scheduler;
let http: Hono;

beforeAll(async () => {
  bed = await openTestBed('dep_metrics', {
    dependencies: { api: { concurrency: 20 }, flaky: { concurrency: 20 }, quiet: { concurrency: 20 }, steady: { concurrency: 100 } },
    tenants: { acme: { budget: { limit: 1_000, periodMs: 3_600_000 } } },
    jobTypes: {
      call: { dependencies: [{ name: 'api' }], retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
      probe: { dependencies: [{ name: 'flaky' }], retry: { maxAttempts: 1 } },
      solo: { dependencies: [{ name: 'quiet' }] },
      many: { dependencies: [{ name: 'steady' }] },
    },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => scheduler.limiter.policy.version === bed.version, 5_000);
  http = createApp({ readiness: scheduler.readiness, registry: scheduler.runtime.registry });
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

const scrape = async () => (await http.request('/metrics')).text();
/** A histogram series' value, whatever order prom-client prints its labels in. */
const sample = (text: string, metric: string, ...labels: string[]): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && labels.every((x) => l.includes(x)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};
const value = (text: string, metric: string, labels: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{${labels},app="retry-scheduler"} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};

async function fail(jobId: string, jobType: string, extra: Partial<OutcomeEvent>): Promise<void> {
  const job = await bed.submit(jobId, jobType);
  const failed: OutcomeEvent = { jobId, attempt: 1, leaseToken: job.lease.token, outcome: 'failed', error: 'boom', ...extra };
  await publishAll(jetstream(bed.nc), [{ subject: bed.names.subjects.outcome(jobType), body: failed, msgID: messageIds.attempt(jobId, 1) }]);
}

describe('dependency metrics', () => {
  it('a throttled outcome: counted for its dependency, one rate decrease, effective ratio below 1 on scrape', async () => {
    const before = await scrape();
    expect(value(before, 'janus_dependency_effective_ratio', 'dependency="api"')).toBe(1);
    expect(value(before, 'janus_dependency_circuit_open', 'dependency="api"')).toBe(0);

    await fail('dm-thr', 'call', { throttled: true, retryAfterMs: 2_000, error: 'HTTP 429' });
    await waitFor(async () => value(await scrape(), 'janus_dependency_throttled_total', 'dependency="api"') === 1, 10_000, 50);
    const text = await scrape();
    expect(value(text, 'janus_dependency_rate_decreases_total', 'dependency="api"')).toBe(1);
    const ratio = value(text, 'janus_dependency_effective_ratio', 'dependency="api"')!;
    expect(ratio).toBeGreaterThanOrEqual(0.7);
    expect(ratio).toBeLessThan(0.8);
    expect(value(text, 'janus_dependency_effective_ratio', 'dependency="flaky"')).toBe(1);
    // …and in the live counters the dashboard charts (per dependency and second, in Redis).
    await waitFor(async () => (await readLiveStats(bed.redis, bed.limiter.keys, 30, { includeCurrent: true })).dependencies['api']?.throttled === 1, 5_000, 50);
  }, 30_000);

  it('failures that open the outage circuit: a transition to opened, and circuit_open 1', async () => {
    // The circuit opens once 10 outcomes within 10 s are at least half failures.
    await Promise.all(Array.from({ length: 10 }, (_, i) => fail(`dm-flaky-${i}`, 'probe', {})));
    await waitFor(async () => value(await scrape(), 'janus_dependency_circuit_transitions_total', 'dependency="flaky",to="opened"') === 1, 10_000, 50);
    const text = await scrape();
    // Open for 1 s, then half-open: either way not closed.
    expect(value(text, 'janus_dependency_circuit_open', 'dependency="flaky"')).toBe(1);
    expect(value(text, 'janus_dependency_circuit_open', 'dependency="api"')).toBe(0);
    // Failures that are not throttling are not throttle signals.
    expect(value(text, 'janus_dependency_throttled_total', 'dependency="flaky"')).toBeUndefined();
    for (const name of ['janus_dependency_throttled_total', 'janus_dependency_circuit_transitions_total', 'janus_dependency_rate_decreases_total', 'janus_dependency_effective_ratio', 'janus_dependency_circuit_open', 'janus_dependency_in_flight']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  }, 30_000);

  it('what people alert on: in flight per dependency, admission-to-start and admission-to-outcome latency', async () => {
    const job = await bed.submit('dm-lat', 'solo');
    await waitFor(async () => value(await scrape(), 'janus_dependency_in_flight', 'dependency="quiet"') === 1, 5_000, 50);
    // The worker SDK's claim before it runs the job: the lease's first claim is the job's start.
    const claim = await bed.nc.request(bed.names.subjects.leaseExtend, JSON.stringify({ leaseToken: job.lease.token, ms: 1 }), { timeout: 2_000 });
    expect(claim.json<{ ok: boolean }>().ok).toBe(true);
    const done: OutcomeEvent = { jobId: 'dm-lat', attempt: 1, leaseToken: job.lease.token, outcome: 'succeeded' };
    await publishAll(jetstream(bed.nc), [{ subject: bed.names.subjects.outcome('solo'), body: done, msgID: messageIds.attempt('dm-lat', 1) }]);
    await waitFor(async () => sample(await scrape(), 'janus_job_admission_to_outcome_seconds_count', 'type="solo"', 'outcome="succeeded"') === 1, 10_000, 50);
    const text = await scrape();
    expect(sample(text, 'janus_job_start_delay_seconds_count', 'type="solo"')).toBe(1);
    expect(sample(text, 'janus_job_start_delay_seconds_sum', 'type="solo"')).toBeLessThan(5);
    expect(value(text, 'janus_dependency_in_flight', 'dependency="quiet"')).toBe(0);
    // Budget use per tenant: every job admitted so far reserved its estimate (1), settled to actual.
    expect(value(text, 'janus_tenant_budget_limit', 'tenant="acme"')).toBe(1_000);
    expect(value(text, 'janus_tenant_budget_used', 'tenant="acme"')).toBeGreaterThanOrEqual(1);
  }, 30_000);
  it('successes of one moment are counted exactly in the outage circuit, told in fewer feedback calls than outcomes', async () => {
    const n = 40;
    const jobs = await Promise.all(Array.from({ length: n }, (_, i) => bed.submit(`dm-ok-${i}`, 'many')));
    const feedback = scheduler.limiter.feedback.bind(scheduler.limiter);
    let calls = 0;
    scheduler.limiter.feedback = (...args: Parameters<typeof feedback>) => {
      if (args[0] === 'many') calls += 1;
      return feedback(...args);
    };
    try {
      const done = jobs.map((job, i) => {
        const body: OutcomeEvent = { jobId: `dm-ok-${i}`, attempt: 1, leaseToken: job.lease.token, outcome: 'succeeded' };
        return { subject: bed.names.subjects.outcome('many'), body, msgID: messageIds.attempt(`dm-ok-${i}`, 1) };
      });
      await publishAll(jetstream(bed.nc), done);
      // The guard's ring (includes/ring.lua): successes per second in fields o<slot>.
      const guard = bed.limiter.keys.limit(limitId.depGuard('steady'));
      const successes = async () => Object.entries(await bed.redis.hgetall(guard)).reduce((sum, [field, v]) => (/^o\d+$/.test(field) ? sum + Number(v) : sum), 0);
      await waitFor(async () => ((await successes()) === n ? true : undefined), 10_000, 50);
      await new Promise((r) => setTimeout(r, 200));
      expect(await successes()).toBe(n);
      expect(calls).toBeGreaterThan(0);
      expect(calls).toBeLessThan(n);
    } finally {
      scheduler.limiter.feedback = feedback;
    }
  }, 30_000);
});
