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
 * A dependency's retry budget (CONTRACT §2 `retryBudget`), through the scheduler and the waiting
 * room: 60 jobs fail at once; their retries may use at most ratio × first attempts + minPerSec × 10
 * per sliding 10 s (here 0 × … + 3 × 10 = 30). The rest wait — none is dropped — and first attempts
 * are never held back by it.
 */
const N = 60;
let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('retry_budget', {
    // adaptive off: 60 failures would also open the outage circuit, which is not what is measured here
    dependencies: { api: { concurrency: 1000, retryBudget: { ratio: 0, minPerSec: 3 }, adaptive: { enabled: false } } },
    tenants: { acme: {} },
    jobTypes: { call: { dependencies: [{ name: 'api' }], retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 } } },
  });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }), reapIntervalMs: 100 });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(async () => scheduler.limiter.policy.version === bed.version, 10_000);
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

const count = async (sql: string): Promise<number> => Number((await bed.db.pool.query<{ n: string }>(sql)).rows[0]?.n ?? 0);

describe('retry budget', () => {
  it('admits at most the budget of retries per sliding 10 s; the others wait and are admitted later; first attempts pass', async () => {
    const outcomes = [];
    for (let i = 0; i < N; i++) {
      const jobId = `rb-${i}`;
      const job = await bed.submit(jobId, 'call');
      const failed: OutcomeEvent = { jobId, attempt: 1, leaseToken: job.lease.token, outcome: 'failed', error: 'HTTP 500' };
      outcomes.push({ subject: bed.names.subjects.outcome('call'), body: failed, msgID: messageIds.attempt(jobId, 1) });
    }
    await publishAll(jetstream(bed.nc), outcomes);
    const retried = () => count(`SELECT count(*) AS n FROM waiting_jobs WHERE attempt = 2 AND state = 'admitted'`);
    await waitFor(async () => (await retried()) > 0, 10_000, 50);
    const first = Date.now();
    // Within the first window: at most 30 of the 60 retries.
    let most = 0;
    while (Date.now() - first < 8_000) {
      most = Math.max(most, await retried());
      await new Promise((r) => setTimeout(r, 250));
    }
    const state = await scheduler.limiter.dependencyState('api');
    console.log(`[retry budget] retries admitted in the first 8 s: ${most} of ${N} (budget 30 per 10 s); state ${JSON.stringify(state?.retryBudget)}`);
    expect(most).toBeLessThanOrEqual(30);
    expect(most).toBeGreaterThanOrEqual(25);
    // A first attempt is not held back by the budget of retries.
    expect((await bed.limiter.admit({ jobs: [{ jobId: 'fresh', tenant: 'acme', jobType: 'call', priority: 'normal' }] })).kind).toBe('admitted');
    // The others waited, none dropped: all are admitted once the window slides.
    await waitFor(async () => (await retried()) === N, 30_000, 250);
    expect(Date.now() - first).toBeGreaterThanOrEqual(8_000);
    expect(await count(`SELECT count(*) AS n FROM waiting_jobs WHERE state = 'dead'`)).toBe(0);
  }, 90_000);
});
