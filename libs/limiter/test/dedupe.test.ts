import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, type Harness } from './helpers.js';

// A payload dedupe key (kind `dedupe`) through the admit script: its own key space, and its own
// window (JobAdmission.idempotency.windowMs) beside a producer key's (the job type's
// idempotencyWindowMs), in one call.
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const policy = {
  dependencies: { api: { concurrency: 100 } },
  jobTypes: { report: { dependencies: [{ name: 'api' }], idempotencyWindowMs: 86_400_000, dedupe: { by: 'payload' as const, windowMs: 5_000 } } },
};

describe('payload dedupe keys in the limiter', () => {
  it('keep their own window and key space; a replay within it takes nothing, after it the payload is new', async () => {
    h = await harness('dedupe', policy);
    const dedupe = { key: 'report:abc', kind: 'dedupe' as const, windowMs: 5_000 };
    const first = await h.admit({
      jobs: [
        job('report', { idempotency: { ...dedupe, record: 'first' } }),
        job('report', { idempotency: { key: 'report:abc', record: 'producer' } }),
        job('report', { idempotency: { ...dedupe, record: 'second' } }),
      ],
    });
    expect(first.kind).toBe('admitted');
    if (first.kind !== 'admitted') return;
    // The producer key spelled like the payload key is another key; the batch's second identical payload is a replay.
    expect(first.jobs.map((j) => j.duplicate?.record)).toEqual([undefined, undefined, 'first']);
    const k = h.limiter.keys;
    expect(await h.redis.pttl(k.idempotency('acme', 'report:abc', 'dedupe'))).toBeLessThanOrEqual(5_000);
    expect(await h.redis.pttl(k.idempotency('acme', 'report:abc', 'dedupe'))).toBeGreaterThan(4_000);
    expect(await h.redis.pttl(k.idempotency('acme', 'report:abc'))).toBeGreaterThan(86_000_000);
    expect(await h.limiter.idempotencyKeyLive('acme', 'report:abc', 'dedupe')).toBe(true);
    expect((await h.limiter.usage('acme')).inFlight.api).toBe(2);

    h.advance(4_999);
    const replay = await h.admit({ jobs: [job('report', { idempotency: { ...dedupe, record: 'third' } })] });
    expect(replay.kind === 'admitted' && replay.jobs[0]?.duplicate?.record).toBe('first');
    expect((await h.limiter.usage('acme')).inFlight.api).toBe(2);

    h.advance(1);
    const after = await h.admit({ jobs: [job('report', { idempotency: { ...dedupe, record: 'fourth' } })] });
    expect(after.kind === 'admitted' && after.jobs[0]?.duplicate).toBeUndefined();
    expect((await h.limiter.usage('acme')).inFlight.api).toBe(3);
    // Another tenant's identical payload is its own key.
    expect(k.idempotency('beta', 'report:abc', 'dedupe')).not.toBe(k.idempotency('acme', 'report:abc', 'dedupe'));
  });

  it('idempotencyState: none, then in progress while the admission is unconfirmed, then recorded', async () => {
    h = await harness('idem_state', policy);
    const request = { jobs: [job('report', { idempotency: { key: 'k-1', record: '{"jobId":"j-1"}' } })] };
    expect(await h.limiter.idempotencyState('acme', 'k-1')).toEqual({ state: 'none' });
    const admitted = await h.limiter.admit(request);
    if (admitted.kind !== 'admitted') throw new Error(admitted.kind);
    expect(await h.limiter.idempotencyState('acme', 'k-1')).toEqual({ state: 'in_progress', record: '{"jobId":"j-1"}' });
    expect(await h.limiter.idempotencyState('acme', 'k-1', 'dedupe')).toEqual({ state: 'none' });
    await h.limiter.confirm(request, admitted);
    expect(await h.limiter.idempotencyState('acme', 'k-1')).toEqual({ state: 'recorded', record: '{"jobId":"j-1"}' });
  });
});
