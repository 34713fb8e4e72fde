import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import type { PolicyDocumentInput } from '@janus/contracts';
import { outcomeHorizon } from '@janus/execution';
import { ensureServiceConsumer, publishJson, storedAt } from '@janus/messaging';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The outcome horizon the reaper reaps up to: the time before which every outcome stored in
 * OUTCOMES has been processed (acked) by `scheduler-outcomes`.
 */
const policyDoc: PolicyDocumentInput = { tenants: { acme: {} }, jobTypes: { work: {} } };
let bed: TestBed;

beforeAll(async () => {
  bed = await openTestBed('horizon', policyDoc);
});

afterAll(async () => {
  await bed.close();
});

describe('outcomeHorizon', () => {
  it('is the first unprocessed outcome’s time, or now when none waits; a missing consumer has processed nothing', async () => {
    const { jsm, names } = bed;
    const horizon = outcomeHorizon(jsm, names);
    const now = Date.now() + 60_000;
    // No outcome at all, no consumer yet.
    expect(await horizon(now)).toBe(now);

    const js = jetstream(bed.nc);
    const acks = [];
    for (let i = 0; i < 3; i++) {
      acks.push(await publishJson(js, names.subjects.outcome('work'), { i }, `h-${i}`));
      await new Promise((r) => setTimeout(r, 5));
    }
    const at = await Promise.all(acks.map(async (a) => (await storedAt(jsm, names.streams.outcomes, a.seq))!.at));
    // No consumer yet: it will deliver everything, so nothing is processed.
    expect(await horizon(now)).toBe(at[0]);
    // Never later than now.
    expect(await horizon(at[0]! - 1)).toBe(at[0]! - 1);

    await ensureServiceConsumer(jsm, names.streams.outcomes, names.consumers.schedulerOutcomes);
    const consumer = await js.consumers.get(names.streams.outcomes, names.consumers.schedulerOutcomes);
    expect(await horizon(now)).toBe(at[0]); // pending, not delivered
    const batch = await consumer.fetch({ max_messages: 3, expires: 2_000 });
    const delivered = [];
    for await (const m of batch) delivered.push(m);
    expect(delivered).toHaveLength(3);
    expect(await horizon(now)).toBe(at[0]); // delivered, none acked
    // Acked out of order: the floor is still before the first.
    await delivered[1]!.ackAck();
    expect(await horizon(now)).toBe(at[0]);
    await delivered[0]!.ackAck();
    expect(await horizon(now)).toBe(at[2]); // 0 and 1 processed: the floor moved past both
    await delivered[2]!.ackAck();
    expect(await horizon(now)).toBe(now);
  });
});
