import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { jetstream } from '@nats-io/jetstream';
import { announceConfigChange } from '@janus/policy';
import { waitFor } from '@janus/testing';
import { startScheduler, type Scheduler } from '../src/scheduler.js';
import { openTestBed, type TestBed } from './harness.js';

/**
 * How many jobs of one type workers may hold at once is for Janus's limits to say: the
 * `workers-<jobType>` consumer does not stop at JetStream's default of 1,000 unacknowledged
 * messages (found by a black-box audit: with no limit in the way, 1,050 jobs were admitted and only
 * 1,000 delivered until workers acknowledged some).
 */
let bed: TestBed;
let scheduler: Scheduler;

beforeAll(async () => {
  bed = await openTestBed('workers_consumer', { tenants: { acme: {} }, jobTypes: { many: { dependencies: [], timeoutMs: 120_000 } } });
  scheduler = await startScheduler(bed.settings, { logger: pino({ level: 'silent' }) });
  await announceConfigChange(bed.nc, bed.names, bed.version);
  await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-many').catch(() => undefined), 10_000);
}, 60_000);

afterAll(async () => {
  await scheduler?.close();
  await bed?.close();
});

describe('the workers consumer of a job type', () => {
  it('delivers more than 1,000 jobs to workers that hold them all unacknowledged', async () => {
    const n = 1_050;
    for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => bed.submit(`many-${i + k}`, 'many')));
    const consumer = await jetstream(bed.nc).consumers.get(bed.names.streams.jobs, 'workers-many');
    const held = new Set<string>();
    const deadline = Date.now() + 20_000;
    while (held.size < n && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: 200, expires: 1_000 });
      for await (const m of batch) held.add(m.json<{ jobId: string }>().jobId); // never acknowledged
    }
    expect(held.size).toBe(n);
  }, 60_000);
});
