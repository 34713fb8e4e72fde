/**
 * A budget's debt (includes/budget.lua; CONTRACT §3: the actual cost settles the budget as it does
 * a costRate, "which may go into debt so that later admissions wait"): workers that report more
 * than the estimates put a window over its limit, and the part over it is used in the next window,
 * and so on. Before, every window started from 0: jobs that all cost three times their estimate
 * spent three times the budget every period. At the limit, one over, after the debt is paid back,
 * from many instances at once; a settle after its window ended; GET /v1/usage reads the same.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Limiter } from '../src/index.js';
import { harness, job, leasesOf, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MINUTE = 60_000;
const doc = { dependencies: { api: {} }, tenants: { acme: { budget: { limit: 100, periodMs: MINUTE } } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 1 }], timeoutMs: 600_000 } } };

/** `n` jobs of estimate 10 asked at once over the instances: how many were admitted. */
async function burst(limiters: readonly Limiter[], n: number): Promise<number> {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => limiters[i % limiters.length]!.admit({ jobs: [job('call', { cost: 10 })] })));
  return results.filter((r) => r.kind === 'admitted').length;
}

/** Admits `n` jobs of estimate 10 (all running at once), then settles each at `actual`. */
async function spend(x: Harness, n: number, actual: number): Promise<void> {
  const leases = leasesOf(await x.admit({ jobs: Array.from({ length: n }, () => job('call', { cost: 10 })) }));
  for (const lease of leases) expect(await x.limiter.settle(lease.token, 'succeeded', actual)).toMatchObject({ ok: true });
}

describe('a budget whose jobs cost more than their estimates', () => {
  it('carries the part over the limit into the next windows: three times the estimate takes three periods', async () => {
    h = await harness('budget-debt', doc);
    await spend(h, 10, 30); // 300 used of 100
    expect(await h.limiter.admit({ jobs: [job('call', { cost: 10 })] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });
    h.advance(MINUTE);
    // 200 left over: the whole minute is used, and the next (the refusal says when there is room again)
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 200, remaining: 0 });
    expect(await h.limiter.admit({ jobs: [job('call', { cost: 10 })] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted', retryAfterMs: 2 * MINUTE });
    h.advance(MINUTE);
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 100, remaining: 0 });
    expect(await h.limiter.admit({ jobs: [job('call', { cost: 10 })] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted', retryAfterMs: MINUTE });
    h.advance(MINUTE);
    const limiters = [h.limiter, ...Array.from({ length: 7 }, () => h!.makeLimiter())];
    expect(await burst(limiters, 20)).toBe(10);
  });

  it('a partial debt leaves exactly the rest of the limit, from 8 instances at once; a window at its limit leaves none', async () => {
    h = await harness('budget-debt', doc);
    await spend(h, 10, 14); // 140 used of 100: 40 over
    h.advance(MINUTE);
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 40, remaining: 60 });
    const limiters = [h.limiter, ...Array.from({ length: 7 }, () => h!.makeLimiter())];
    expect(await burst(limiters, 20)).toBe(6);
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 100, remaining: 0 });
    // that window ends at exactly its limit: nothing carried
    h.advance(MINUTE);
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 0, remaining: 100 });
    expect(await burst(limiters, 20)).toBe(10);
  });

  it('a settle after its window ended adds its cost over the reservation to the current window', async () => {
    h = await harness('budget-debt', doc);
    const [lease] = leasesOf(await h.admit({ jobs: [job('call', { cost: 10 })] }));
    h.advance(MINUTE);
    expect(await burst([h.limiter], 1)).toBe(1); // the new window: 10 used
    expect(await h.limiter.settle(lease!.token, 'succeeded', 60)).toMatchObject({ ok: true });
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 60, remaining: 40 });
    expect(await burst([h.limiter], 10)).toBe(4);
  });
});
