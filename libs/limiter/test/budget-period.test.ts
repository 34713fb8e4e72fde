/**
 * A tenant budget whose periodMs changes while its spend is recorded (includes/budget.lua): the
 * stored window is no longer the current one, but what it used may have been spent inside the
 * current one. Its whole use carries into the current window when the stored window reached into
 * it (conservative); otherwise the new window starts from 0. Before (found by a black-box audit),
 * any change of periodMs started the new window from 0: a tenant with 14 of 100 per minute spent,
 * moved to 10 per hour, was admitted 7 more in the same hour (21 against 10). At the limit, one
 * over, after the window ends, from many instances at once; GET /v1/usage reads the same.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { compilePolicy, Keys, limitId, type Limiter } from '../src/index.js';
import { T0, harness, job, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MINUTE = 60_000;
const HOUR = 3_600_000;

function docWith(budget: { limit: number; periodMs: number }) {
  return { dependencies: { api: {} }, tenants: { acme: { budget } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 1 }], timeoutMs: 600_000 } } };
}

/** Every instance runs the new policy, as they all do once it is announced. */
function switchTo(x: Harness, budget: { limit: number; periodMs: number }, n = 8): Limiter[] {
  const policy = compilePolicy(PolicyDocument.parse(docWith(budget)), 2);
  x.limiter.setPolicy(policy);
  return [x.limiter, ...Array.from({ length: n - 1 }, () => x.makeLimiter({ policy }))];
}

/** `n` requests of cost 1 at once over the instances: how many were admitted. */
async function burst(limiters: readonly Limiter[], n: number): Promise<number> {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => limiters[i % limiters.length]!.admit({ jobs: [job('call', { cost: 1 })] })));
  return results.filter((r) => r.kind === 'admitted').length;
}

const admit = async (limiter: Limiter, cost: number) => (await limiter.admit({ jobs: [job('call', { cost })] })).kind;

describe('a budget whose periodMs changes', () => {
  it('lengthened (a minute → an hour): the minute\'s spend counts in the hour; at the limit admitted, one over refused, exactly, from 8 instances', async () => {
    h = await harness('budget-period', docWith({ limit: 100, periodMs: MINUTE }));
    h.advance(30 * MINUTE + 5_000);
    expect(await admit(h.limiter, 7)).toBe('admitted');
    expect(await admit(h.limiter, 7)).toBe('admitted');
    const limiters = switchTo(h, { limit: 20, periodMs: HOUR });
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ limit: 20, used: 14, remaining: 6, resetsAt: T0 + HOUR });
    expect(await burst(limiters, 20)).toBe(6);
    expect(await h.limiter.admit({ jobs: [job('call', { cost: 1 })] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted', retryAfterMs: 30 * MINUTE - 5_000 });
    // the next hour starts from 0
    h.advance(30 * MINUTE - 5_000);
    expect(await burst(limiters, 30)).toBe(20);
  });

  it('shortened (an hour → a minute): the hour\'s spend counts in the current minute, then the next minute starts from 0', async () => {
    h = await harness('budget-period', docWith({ limit: 100, periodMs: HOUR }));
    h.advance(10 * MINUTE);
    expect(await admit(h.limiter, 7)).toBe('admitted');
    h.advance(20 * MINUTE + 30_000);
    expect(await admit(h.limiter, 7)).toBe('admitted');
    const limiters = switchTo(h, { limit: 20, periodMs: MINUTE });
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 14, remaining: 6 });
    expect(await burst(limiters, 20)).toBe(6);
    expect(await admit(h.limiter, 1)).toBe('rejected');
    h.advance(30_000);
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 0, remaining: 20 });
    expect(await burst(limiters, 30)).toBe(20);
  });

  it('unchanged: a window that ended counts nothing in the next; a hash written before the period was stored reads as before', async () => {
    h = await harness('budget-period', docWith({ limit: 10, periodMs: MINUTE }));
    expect(await admit(h.limiter, 10)).toBe('admitted');
    expect(await admit(h.limiter, 1)).toBe('rejected');
    h.advance(MINUTE);
    expect(await admit(h.limiter, 10)).toBe('admitted');
    // the previous layout: w and u only, the previous minute's window
    const key = new Keys(h.ns).limit(limitId.tenantBudget('acme'));
    await h.redis.hdel(key, 'p');
    await h.redis.hset(key, 'w', String(T0), 'u', '10');
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 0 });
    expect(await admit(h.limiter, 10)).toBe('admitted');
    expect(await admit(h.limiter, 1)).toBe('rejected');
  });
});
