import { afterEach, describe, expect, it } from 'vitest';
import type { PolicyDocumentInput } from '@janus/contracts';
import { harness, job, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function admitOne(x: Harness, extra: Parameters<typeof job>[1] = {}, jobType = 'call') {
  return x.limiter.admit({ jobs: [job(jobType, extra)] });
}

interface RateCase {
  name: string;
  doc: PolicyDocumentInput;
  reason: string;
  /** Admissions that fit exactly. */
  fits: number;
  /** Exact wait until one more fits. */
  waitMs: number;
  cost?: number;
}

const rateCases: RateCase[] = [
  {
    name: 'dependency rate (burst 5, 10/s)',
    doc: { dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 5 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } },
    reason: 'dependency_rate',
    fits: 5,
    waitMs: 100,
  },
  {
    name: 'dependency cost rate (100 units/s, cost 30)',
    doc: { dependencies: { api: { costRate: { limit: 100, periodMs: 1000 } } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 30 }] } } },
    reason: 'dependency_cost_rate',
    fits: 3,
    waitMs: 200, // 10 units left, 30 needed: 20 units at 0.1/ms
  },
  {
    name: 'per-tenant dependency rate (3 per 7 s)',
    doc: { dependencies: { api: { perTenant: { rate: { limit: 3, periodMs: 7000 } } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } },
    reason: 'dependency_rate',
    fits: 3,
    waitMs: 2334, // one token per 2333.33 ms, rounded up
  },
  {
    name: 'tenant rate (2/s)',
    doc: { tenants: { acme: { rate: { limit: 2, periodMs: 1000 } } }, jobTypes: { call: {} } },
    reason: 'tenant_rate',
    fits: 2,
    waitMs: 500,
  },
  {
    name: 'global rate (4 per minute, burst 1)',
    doc: { global: { rate: { limit: 4, periodMs: 60_000, burst: 1 } }, jobTypes: { call: {} } },
    reason: 'global_rate',
    fits: 1,
    waitMs: 15_000,
  },
];

describe('rate limits: exactly at the limit, one over, after refill', () => {
  for (const c of rateCases) {
    it(c.name, async () => {
      h = await harness('limits', c.doc);
      for (let i = 0; i < c.fits; i++) expect((await admitOne(h)).kind).toBe('admitted');
      const over = await admitOne(h);
      expect(over).toEqual({ kind: 'rejected', index: 0, reason: c.reason, retryAfterMs: c.waitMs });
      h.advance(c.waitMs - 1);
      expect((await admitOne(h)).kind).toBe('rejected');
      h.advance(1);
      expect((await admitOne(h)).kind).toBe('admitted');
      expect((await admitOne(h)).kind).toBe('rejected');
    });
  }

  it('uses Redis TIME when no clock is given: retryAfterMs is within 5 ms of the real wait', async () => {
    h = await harness('limits', {
      dependencies: { api: { rate: { limit: 20, periodMs: 1000, burst: 2 } } },
      jobTypes: { call: { dependencies: [{ name: 'api' }] } },
    });
    const real = h.makeLimiter({ now: undefined });
    await real.admit({ jobs: [job('call'), job('call')] });
    // The decision happened at some Redis instant d0 between sending (s0) and receiving (r0) the call.
    const s0 = Date.now();
    const over = await real.admit({ jobs: [job('call')] });
    const r0 = Date.now();
    if (over.kind !== 'rejected') throw new Error(`expected a rejection, got ${over.kind}`);
    expect(over.retryAfterMs).toBeGreaterThan(40);
    expect(over.retryAfterMs).toBeLessThanOrEqual(50);
    // Poll until admitted. Bracketing each poll by its send and return times keeps the test's own
    // delays (a loaded machine, timer granularity) out of the verdict: if retryAfterMs is right to
    // 5 ms, no poll sent later than d0 + retryAfterMs + 5 is rejected, and none returning before
    // d0 + retryAfterMs − 5 is admitted.
    let lastRejectedSentAfter = 0;
    let admittedReturnedAfter = -1;
    while (Date.now() - s0 < 500) {
      const sent = Date.now();
      const kind = (await real.admit({ jobs: [job('call')] })).kind;
      const returned = Date.now();
      if (kind === 'admitted') {
        admittedReturnedAfter = returned - s0;
        break;
      }
      lastRejectedSentAfter = sent - r0;
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(admittedReturnedAfter).toBeGreaterThanOrEqual(over.retryAfterMs - 5);
    expect(lastRejectedSentAfter).toBeLessThanOrEqual(over.retryAfterMs + 5);
  });
});

describe('concurrency limits', () => {
  const cases: { name: string; doc: PolicyDocumentInput; reason: string; cap: number }[] = [
    { name: 'dependency', doc: { dependencies: { api: { concurrency: 3 } }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 5000 } } }, reason: 'dependency_concurrency', cap: 3 },
    { name: 'per tenant on a dependency', doc: { dependencies: { api: { perTenant: { concurrency: 2 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 5000 } } }, reason: 'dependency_concurrency', cap: 2 },
    { name: 'tenant', doc: { tenants: { acme: { concurrency: 2 } }, jobTypes: { call: { timeoutMs: 5000 } } }, reason: 'tenant_concurrency', cap: 2 },
    { name: 'global', doc: { global: { concurrency: 4 }, jobTypes: { call: { timeoutMs: 5000 } } }, reason: 'global_concurrency', cap: 4 },
  ];
  for (const c of cases) {
    it(`${c.name}: at the limit, one over (retry at the earliest lease expiry), slot back after settle`, async () => {
      h = await harness('conc', c.doc);
      const tokens: string[] = [];
      for (let i = 0; i < c.cap; i++) {
        const r = await admitOne(h);
        if (r.kind !== 'admitted' || !r.jobs[0]?.lease) throw new Error('expected admission');
        tokens.push(r.jobs[0].lease.token);
        h.advance(10);
      }
      const over = await admitOne(h);
      expect(over).toEqual({ kind: 'rejected', index: 0, reason: c.reason, retryAfterMs: 5000 - 10 * c.cap });
      expect((await h.limiter.settle(tokens[1]!, 'succeeded')).ok).toBe(true);
      expect((await admitOne(h)).kind).toBe('admitted');
      expect((await admitOne(h)).kind).toBe('rejected');
      // Expired leases stop counting at their expiry, even before the reaper runs.
      h.advance(5000);
      expect((await admitOne(h)).kind).toBe('admitted');
    });
  }

  it('per-tenant caps leave other tenants alone', async () => {
    h = await harness('conc', { dependencies: { api: { concurrency: 3, perTenant: { concurrency: 2 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });
    expect((await admitOne(h)).kind).toBe('admitted');
    expect((await admitOne(h)).kind).toBe('admitted');
    expect(await admitOne(h)).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    expect((await admitOne(h, { tenant: 'other' })).kind).toBe('admitted');
    expect(await admitOne(h, { tenant: 'other' })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    const usage = await h.limiter.usage('acme');
    expect(usage.inFlight).toEqual({ api: 2 });
    const snapshot = await h.limiter.inspect();
    expect(snapshot.dependencies['api']).toMatchObject({ inFlight: 3, concurrency: 3 });
  });
});

describe('budget', () => {
  it('reserves the estimate: at the limit, one over until the window resets', async () => {
    h = await harness('budget', {
      dependencies: { api: {}, db: {} },
      tenants: { acme: { budget: { limit: 10, periodMs: 60_000 } } },
      jobTypes: { call: { dependencies: [{ name: 'api', cost: 3 }, { name: 'db', cost: 2 }] } },
    });
    h.advance(15_000);
    const first = await admitOne(h);
    expect(first).toMatchObject({ kind: 'admitted', jobs: [{ budgetReserved: 5 }] });
    expect((await admitOne(h)).kind).toBe('admitted');
    expect(await admitOne(h, { cost: 1 })).toEqual({ kind: 'rejected', index: 0, reason: 'budget_exhausted', retryAfterMs: 45_000 });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { limit: 10, used: 10, remaining: 0, resetsAt: h.clock.now + 45_000 } });
    h.advance(45_000);
    expect(await admitOne(h, { cost: 10 })).toMatchObject({ kind: 'admitted', jobs: [{ budgetReserved: 10 }] });
  });
});

describe('retryAfterMs covers every rate and budget, not only the first failing one', () => {
  it('reports the longest wait', async () => {
    h = await harness('retry', {
      dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 1 } } },
      global: { rate: { limit: 2, periodMs: 1000, burst: 1 } },
      jobTypes: { call: { dependencies: [{ name: 'api' }] } },
    });
    expect((await admitOne(h)).kind).toBe('admitted');
    // The dependency bucket refills in 100 ms, the global one in 500 ms.
    expect(await admitOne(h)).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_rate', retryAfterMs: 500 });
    h.advance(100);
    expect(await admitOne(h)).toEqual({ kind: 'rejected', index: 0, reason: 'global_rate', retryAfterMs: 400 });
    h.advance(400);
    expect((await admitOne(h)).kind).toBe('admitted');
  });

  it("a full concurrency pool's guess (its earliest lease expiry) never stretches a rate's exact wait", async () => {
    h = await harness('retry', {
      dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 1 }, concurrency: 1 } },
      jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 60_000 } },
    });
    expect((await admitOne(h)).kind).toBe('admitted');
    // Both the bucket (refills in 100 ms) and the one slot (its lease expires in 60 s) are taken.
    expect(await admitOne(h)).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_rate', retryAfterMs: 100 });
    h.advance(100);
    // Only the slot now: its best estimate, the lease's expiry.
    expect(await admitOne(h)).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_concurrency', retryAfterMs: 59_900 });
  });

  it('for a batch, the wait is for the whole batch', async () => {
    h = await harness('retry', { dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 5 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });
    for (let i = 0; i < 5; i++) await admitOne(h);
    const batch = { jobs: [job('call'), job('call'), job('call')] };
    expect(await h.admit(batch)).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_rate', retryAfterMs: 300 });
    h.advance(299);
    expect(await h.admit(batch)).toMatchObject({ kind: 'rejected', index: 2 });
    h.advance(1);
    expect((await h.admit(batch)).kind).toBe('admitted');
  });
});

describe('idempotency', () => {
  it('replays the first decision for a job key and consumes nothing more', async () => {
    h = await harness('idem', { dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 2 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }], idempotencyWindowMs: 10_000 } } });
    const key = { key: 'order-1', record: '{"jobId":"a"}' };
    const [a, b] = await Promise.all([admitOne(h, { idempotency: key }), admitOne(h, { idempotency: { ...key, record: 'second' } })]);
    expect(a).toMatchObject({ kind: 'admitted', jobs: [{ lease: { id: expect.any(String) } }] });
    // a concurrent replay comes before the first admission is confirmed (its job message published)
    expect(b).toEqual({ kind: 'in_progress', index: 0, record: '{"jobId":"a"}' });
    if (a.kind === 'admitted') await h.limiter.confirm({ jobs: [job('call', { idempotency: key })] }, a);
    expect(await admitOne(h, { idempotency: { ...key, record: 'third' } })).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: '{"jobId":"a"}' } }] });
    expect((await h.limiter.inspect()).dependencies['api']?.rate?.available).toBe(1);
    // Another tenant with the same key is a different record.
    expect(await admitOne(h, { tenant: 'other', idempotency: key })).toMatchObject({ kind: 'admitted', jobs: [{ lease: {} }] });
    h.advance(10_000);
    expect(await admitOne(h, { idempotency: key })).toMatchObject({ kind: 'admitted', jobs: [{ lease: {} }] });
  });

  it('request-level keys: a rejection stores nothing, an admission is replayed', async () => {
    h = await harness('idem', { dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 1 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });
    const req = (record: string) => ({ jobs: [job('call'), job('call')], idempotency: { key: 'batch-1', tenant: 'acme', record, windowMs: 60_000 } });
    // two jobs can never pass a burst of 1: exceeds_capacity (it was 'rejected', retryAfterMs 1, forever)
    expect((await h.admit(req('one'))).kind).toBe('exceeds_capacity');
    h.advance(100);
    const r = await h.admit({ jobs: [job('call')], idempotency: { key: 'batch-1', tenant: 'acme', record: 'two', windowMs: 60_000 } });
    expect(r.kind).toBe('admitted');
    expect(await h.admit(req('three'))).toEqual({ kind: 'duplicate', record: 'two' });
  });
});

describe('admit edge cases', () => {
  it('names an unknown job type and coalesces concurrent calls without mixing their decisions', async () => {
    h = await harness('edge', { dependencies: { api: { concurrency: 2 } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });
    expect(await h.admit({ jobs: [job('call'), job('nope')] })).toEqual({ kind: 'unknown_job_type', index: 1 });
    const results = await Promise.all([admitOne(h), admitOne(h), admitOne(h), h.admit({ jobs: [job('call'), job('call')] })]);
    expect(results.map((r) => r.kind)).toEqual(['admitted', 'admitted', 'rejected', 'rejected']);
    await expect(h.admit({ jobs: [] })).rejects.toMatchObject({ code: 'invalid_admission' });
  });
});
