import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { pino } from 'pino';
import type { OutcomeEvent } from '@janus/contracts';
import { messageIds, publishAll } from '@janus/messaging';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * A throttled failure (CONTRACT §4 v1.1: the dependency answered 429 with `Retry-After`) is retried
 * no earlier than the dependency asked, however short the job type's backoff; any other failure
 * keeps the backoff.
 */
let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('throttled', {
    // A throttle closes its dependency for everyone (cooldown): the throttled job and the plain
    // failure compared with it use different dependencies, so that one does not hold the other.
    dependencies: { api: { concurrency: 10 }, busy: { concurrency: 10 }, paced: { rate: { limit: 100, periodMs: 1000 } } },
    tenants: { acme: {} },
    jobTypes: {
      call: { dependencies: [{ name: 'api' }], retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
      'busy-call': { dependencies: [{ name: 'busy' }], retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
      'paced-call': { dependencies: [{ name: 'paced' }], retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 200 } },
    },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

/** Fails attempt 1 of a fresh job with `extra`; resolves with how long until its attempt 2 was in the stream. */
async function retriedAfter(jobId: string, extra: Partial<OutcomeEvent>, jobType = 'call'): Promise<number> {
  const job = await bed.submit(jobId, jobType);
  const failed: OutcomeEvent = { jobId, attempt: 1, leaseToken: job.lease.token, outcome: 'failed', error: 'HTTP 429', ...extra };
  const sent = Date.now();
  await publishAll(jetstream(bed.nc), [{ subject: bed.names.subjects.outcome(jobType), body: failed, msgID: messageIds.attempt(jobId, 1) }]);
  await waitFor(async () => {
    const r = await bed.db.pool.query(`SELECT 1 FROM waiting_jobs WHERE job_id = $1 AND attempt = 2 AND state = 'admitted'`, [jobId]);
    return (r.rowCount ?? 0) > 0;
  }, 20_000, 20);
  return Date.now() - sent;
}

describe('throttled outcomes', () => {
  it('are retried no earlier than retryAfterMs; other failures after the backoff', async () => {
    const [throttled, plain, noHint] = await Promise.all([
      retriedAfter('thr-a', { throttled: true, retryAfterMs: 3_000, dependency: 'busy' }, 'busy-call'),
      retriedAfter('thr-b', {}),
      retriedAfter('thr-c', { throttled: true }),
    ]);
    console.log(`[throttled] retried after ${throttled} ms (asked 3000), a plain failure after ${plain} ms, throttled without a hint after ${noHint} ms (backoff 50–100 ms)`);
    expect(throttled).toBeGreaterThanOrEqual(3_000);
    expect(throttled).toBeLessThan(5_000);
    expect(plain).toBeLessThan(1_500);
    expect(noHint).toBeLessThan(1_500);
  }, 60_000);

  it('close the dependency for retryAfterMs, for every instance: a new admission is refused with the remaining wait', async () => {
    const job = await bed.submit('thr-d', 'paced-call');
    const failed: OutcomeEvent = { jobId: 'thr-d', attempt: 1, leaseToken: job.lease.token, outcome: 'failed', error: 'HTTP 429', throttled: true, retryAfterMs: 2_000 };
    await publishAll(jetstream(bed.nc), [{ subject: bed.names.subjects.outcome('paced-call'), body: failed, msgID: messageIds.attempt('thr-d', 1) }]);
    const refused = await waitFor(async () => {
      const r = await bed.limiter.admit({ jobs: [{ jobId: 'probe', tenant: 'acme', jobType: 'paced-call', priority: 'high' }] });
      return r.kind === 'rejected' ? r : undefined;
    }, 5_000, 20);
    expect(refused).toMatchObject({ reason: 'dependency_rate' });
    expect(refused.retryAfterMs).toBeGreaterThan(1_500);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(2_010);
  }, 30_000);

  it('reported over HTTP (the lease settled by ingress before the scheduler reads the event): the same wait and the same cooldown', async () => {
    const job = await bed.submit('thr-e', 'call');
    // What POST /v1/jobs/{id}/outcome does: publish the event and settle the lease itself. Settled
    // first here, so that the scheduler surely reads an event whose lease is settled (publishing
    // first raced with the scheduler's own settle under load).
    const failed: OutcomeEvent = { jobId: 'thr-e', attempt: 1, leaseToken: job.lease.token, outcome: 'failed', error: 'HTTP 429', throttled: true, retryAfterMs: 3_000, dependency: 'api' };
    const sent = Date.now();
    expect((await bed.limiter.settle(job.lease.token, 'failed')).ok).toBe(true);
    await publishAll(jetstream(bed.nc), [{ subject: bed.names.subjects.outcome('call'), body: { ...failed, reportedVia: 'http' }, msgID: messageIds.attempt('thr-e', 1) }]);
    const refused = await waitFor(async () => {
      const r = await bed.limiter.admit({ jobs: [{ jobId: 'probe-e', tenant: 'acme', jobType: 'call', priority: 'high' }] });
      return r.kind === 'rejected' ? r : undefined;
    }, 5_000, 20);
    expect(refused.retryAfterMs).toBeGreaterThan(1_500);
    await waitFor(async () => {
      const r = await bed.db.pool.query(`SELECT 1 FROM waiting_jobs WHERE job_id = $1 AND attempt = 2 AND state = 'admitted'`, ['thr-e']);
      return (r.rowCount ?? 0) > 0;
    }, 20_000, 20);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(3_000);
  }, 30_000);
});
