/**
 * A bucket remembers the period its stored value is scaled by (includes/bucket.lua): changing a
 * rate's periodMs converts the stored tokens (tokens = stored / old period, rescaled, capped at the
 * new burst) instead of reinterpreting them. When the change happened is not known, so the reading
 * is the conservative one: never more tokens than either "old rate until now" or "new rate since the
 * last write" allows. A bucket written by the previous version (no period) reads as before, and so
 * does a change of limit or burst alone. Every bucket: dependency rate and costRate, per-tenant,
 * tenant, global; at the limit, one over, after refill, from many instances at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { compilePolicy, Keys, limitId, type AdmissionResult, type Limiter } from '../src/index.js';
import { T0, harness, job, leasesOf, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

type Rate = { limit: number; periodMs: number; burst?: number };

/** A policy whose one bucket (at `where`) is `rate`; job type `call` draws 1 from it. */
function docWith(where: string, rate: Rate): PolicyDocumentInput {
  const call = { call: { dependencies: [{ name: 'api', cost: 1 }], timeoutMs: 600_000 } };
  switch (where) {
    case 'dependency rate':
      return { dependencies: { api: { rate, adaptive: { enabled: false } } }, jobTypes: call };
    case 'dependency costRate':
      return { dependencies: { api: { costRate: rate, adaptive: { enabled: false } } }, jobTypes: call };
    case 'per-tenant rate':
      return { dependencies: { api: { perTenant: { rate } } }, jobTypes: call };
    case 'per-tenant costRate':
      return { dependencies: { api: { perTenant: { costRate: rate } } }, jobTypes: call };
    case 'tenant rate':
      return { dependencies: { api: {} }, tenants: { acme: { rate } }, jobTypes: call };
    default:
      return { dependencies: { api: {} }, global: { rate }, jobTypes: call };
  }
}
const WHERE = ['dependency rate', 'dependency costRate', 'per-tenant rate', 'per-tenant costRate', 'tenant rate', 'global rate'];

/** Instances running the new policy (as every instance does once it has it). */
function instances(x: Harness, doc: PolicyDocumentInput, n = 8): Limiter[] {
  const policy = compilePolicy(PolicyDocument.parse(doc), 2);
  x.limiter.setPolicy(policy);
  return [x.limiter, ...Array.from({ length: n - 1 }, () => x.makeLimiter({ policy }))];
}

/** `n` high-priority single-job requests at once, spread over the instances: how many were admitted. */
async function burst(limiters: readonly Limiter[], n: number): Promise<number> {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => limiters[i % limiters.length]!.admit({ jobs: [job('call')] })));
  return results.filter((r) => r.kind === 'admitted').length;
}

describe('changing a bucket rate\'s periodMs converts the stored tokens', () => {
  for (const where of WHERE) {
    it(`${where}: a rested 10/1 s bucket changed to 10/10 s holds its 10 tokens, then refills at 1 per s`, async () => {
      h = await harness('period-10s', docWith(where, { limit: 10, periodMs: 1_000 }));
      expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted'); // stored 9 × 1000 at T0
      h.advance(1_000); // full again
      const limiters = instances(h, docWith(where, { limit: 10, periodMs: 10_000 }));
      if (where === 'dependency rate') expect(await h.limiter.inspect()).toMatchObject({ dependencies: { api: { rate: { capacity: 10, available: 10 } } } });
      // before: 1 (the stored 10 000 read as 1 token of 10 000 ms each)
      expect(await burst(limiters, 100)).toBe(10);
      h.advance(999);
      expect(await burst(limiters, 20)).toBe(0);
      h.advance(1);
      expect(await burst(limiters, 20)).toBe(1);
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 1_000 });
    });
  }

  it('10/1 s changed to 10/100 s: the conservative reading (9.1 tokens: the new rate since the last write), not 0', async () => {
    h = await harness('period-100s', docWith('dependency rate', { limit: 10, periodMs: 1_000 }));
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    h.advance(1_000);
    const limiters = instances(h, docWith('dependency rate', { limit: 10, periodMs: 100_000 }));
    expect(await burst(limiters, 100)).toBe(9);
    // 0.1 token left, 0.1 per s: the next one in 9 s (before: none admitted, the next waited ~9.9 s more)
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_rate', retryAfterMs: 9_000 });
    h.advance(9_000);
    expect(await burst(limiters, 10)).toBe(1);
  });

  it('10/1 s changed to 600/60 s: keeps the old bucket (10), not 50; refills at 10 per s after', async () => {
    h = await harness('period-60s', docWith('dependency rate', { limit: 10, periodMs: 1_000 }));
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    h.advance(5_000);
    const limiters = instances(h, docWith('dependency rate', { limit: 600, periodMs: 60_000 }));
    expect(await burst(limiters, 100)).toBe(10);
    h.advance(1_000);
    expect(await burst(limiters, 100)).toBe(10);
    h.advance(60_000);
    expect(await burst(limiters, 700)).toBe(600);
  });

  it('a costRate bucket in debt keeps its debt across a period change; a settle after the change charges it in the stored scale', async () => {
    const cost = (periodMs: number, limit: number): PolicyDocumentInput => ({ dependencies: { api: { costRate: { limit, periodMs } } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 100 }] } } });
    h = await harness('period-debt', cost(1_000, 100)); // 0.1 unit per ms, bucket 100
    const [l] = leasesOf(await h.admit({ jobs: [job('call')] }));
    instances(h, cost(2_000, 200), 1); // the same 0.1 unit per ms, bucket 200
    expect((await h.limiter.settle(l!.token, 'succeeded', 300)).ok).toBe(true); // 200 units of debt
    // 100 units are there again after 3000 ms (before: 2000, the debt read at half its size)
    expect(await h.limiter.admit({ jobs: [job('call')] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_cost_rate', retryAfterMs: 3_000 });
    h.advance(2_999);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('rejected');
    h.advance(1);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
  });

  it('revoke after a period change gives back what the lease took, converted to the stored scale', async () => {
    h = await harness('period-revoke', docWith('dependency rate', { limit: 10, periodMs: 1_000 }));
    const first = await h.limiter.admit({ jobs: [job('call')] }); // 9 left (× 1000)
    const limiters = instances(h, docWith('dependency rate', { limit: 10, periodMs: 10_000 }));
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted'); // converted: 9 → 8 (× 10 000)
    await h.limiter.revoke(first as Extract<AdmissionResult, { kind: 'admitted' }>);
    // 9 (before: the second admission was already refused, 9 × 1000 read as 0.9 token of 10 000)
    expect(await burst(limiters, 50)).toBe(9);
  });

  it('a bucket written by the previous version (no period) reads as before; a change of limit or burst alone as before', async () => {
    h = await harness('period-compat', docWith('dependency rate', { limit: 10, periodMs: 1_000 }));
    const key = new Keys(h.ns).limit(limitId.depRate('api'));
    await h.redis.hset(key, 't', '3000', 'ts', String(T0)); // 3 tokens, as the previous version stored them
    expect(await burst([h.limiter], 5)).toBe(3);
    h.advance(1_000);
    expect(await h.redis.hgetall(key)).toMatchObject({ p: '1000' }); // written back with its period
    // limit 20, burst 5, same period: capped at the new burst, refilled at the new limit
    const limiters = instances(h, docWith('dependency rate', { limit: 20, periodMs: 1_000, burst: 5 }));
    expect(await burst(limiters, 50)).toBe(5);
    h.advance(100);
    expect(await burst(limiters, 50)).toBe(2);
  });
});
