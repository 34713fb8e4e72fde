/**
 * Tenant shards (src/shards.ts): a namespace's tenants' own limits — rate, concurrency, budget — in
 * K slots of their own, decided in a second atomic step after the namespace's slot (the home).
 * The promises: each limit exact at its limit, one over, after refill, from many instances at once;
 * a refusal in a shard leaves nothing held anywhere; an extension keeps the shard's hold at least as
 * long as the home's; a settle frees both; a lost shard closes its own tenants only; the state of
 * one shard count is never read with another. On one Redis server here (the slots are keys with
 * their own hash tags); tools/cluster-tests runs the same over three primaries.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { shardTag, StateLost, tenantShardOf, type AdmissionResult, type Limiter } from '../src/index.js';
import { harness, job, leasesOf, type Harness } from './helpers.js';

const SHARDS = 4;
const MINUTE = 60_000;

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Tenant names that fall in `count` different shards. */
function tenantsInDistinctShards(count: number): string[] {
  const seen = new Map<number, string>();
  for (let i = 0; seen.size < count; i++) {
    const name = `t${i}`;
    const k = tenantShardOf(name, SHARDS);
    if (!seen.has(k)) seen.set(k, name);
  }
  return [...seen.values()];
}

const [A, B] = tenantsInDistinctShards(2) as [string, string];

function policy(tenants: Record<string, object>, dep: object = {}, timeoutMs = 10_000) {
  return { dependencies: { api: dep }, tenants, jobTypes: { call: { dependencies: [{ name: 'api', cost: 1 }], timeoutMs } } };
}

/** `n` one-job admissions asked at once over `limiters`: how many were admitted (each confirmed). */
async function burst(limiters: readonly Limiter[], n: number, tenant: string, cost?: number): Promise<number> {
  const results = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const l = limiters[i % limiters.length]!;
      const request = { jobs: [job('call', { tenant, ...(cost ? { cost } : {}) })] };
      const r = await l.admit(request);
      if (r.kind === 'admitted') await l.confirm(request, r);
      return r;
    }),
  );
  return results.filter((r) => r.kind === 'admitted').length;
}

async function instances(x: Harness, n: number): Promise<Limiter[]> {
  return [x.limiter, ...Array.from({ length: n - 1 }, () => x.makeLimiter())];
}

describe('tenant limits in their shard', () => {
  it('concurrency: exactly at the limit from 8 instances at once, one over refused, one more once one ends', async () => {
    h = await harness('shards-conc', policy({ [A]: { concurrency: 5 } }), { tenantShards: SHARDS });
    const limiters = await instances(h, 8);
    expect(await burst(limiters, 40, A)).toBe(5);
    const over = await h.limiter.admit({ jobs: [job('call', { tenant: A })] });
    expect(over).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
    // the pool is in the tenant's shard, not in the namespace's slot
    const k = tenantShardOf(A, SHARDS);
    expect(await h.redis.exists(`${h.ns}:{${shardTag(h.ns, k)}}:tenant:${A}:conc`)).toBe(1);
    expect(await h.redis.exists(`${h.ns}:{${h.ns}}:tenant:${A}:conc`)).toBe(0);
    // one of A's five ends: one more fits, not two
    const one = await h.admit({ jobs: [job('call', { tenant: B })] });
    expect(one.kind).toBe('admitted');
    const [running] = await h.redis.hkeys(`${h.ns}:{${shardTag(h.ns, k)}}:tenant:${A}:conc`).then((f) => f.filter((x) => x !== 'n'));
    expect(running).toBeDefined();
    h.advance(10_001); // every lease of A expires at once (one admission time)
    expect(await burst(limiters, 40, A)).toBe(5);
  });

  it('rate: exactly the bucket from 8 instances, one over refused, one more after its refill', async () => {
    h = await harness('shards-rate', policy({ [A]: { rate: { limit: 20, periodMs: MINUTE } } }), { tenantShards: SHARDS });
    const limiters = await instances(h, 8);
    expect(await burst(limiters, 40, A)).toBe(20);
    expect(await h.limiter.admit({ jobs: [job('call', { tenant: A })] })).toMatchObject({ kind: 'rejected', reason: 'tenant_rate' });
    h.advance(MINUTE / 20);
    expect(await burst(limiters, 8, A)).toBe(1);
    // another tenant, in another shard, was never limited
    expect(await burst(limiters, 30, B)).toBe(30);
  });

  it('budget: exactly the limit from 8 instances, the job carries what its shard reserved, and the next period has it all again', async () => {
    h = await harness('shards-budget', policy({ [A]: { budget: { limit: 100, periodMs: MINUTE } } }), { tenantShards: SHARDS });
    const limiters = await instances(h, 8);
    expect(await burst(limiters, 40, A, 10)).toBe(10);
    const over = await h.limiter.admit({ jobs: [job('call', { tenant: A, cost: 10 })] });
    expect(over).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });
    expect((await h.limiter.usage(A)).budget).toMatchObject({ used: 100, remaining: 0 });
    h.advance(MINUTE);
    const r = await h.limiter.admit({ jobs: [job('call', { tenant: A, cost: 10 })] });
    expect(r).toMatchObject({ kind: 'admitted', jobs: [{ budgetReserved: 10 }] });
    expect(await burst(limiters, 20, A, 10)).toBe(9);
  });

  it('a job over its tenant limit and another fine in one batch: all or nothing, and the refusal leaves nothing held in the home or the shard', async () => {
    h = await harness('shards-batch', policy({ [A]: { concurrency: 2 }, [B]: { concurrency: 1 } }, { concurrency: 4 }), { tenantShards: SHARDS });
    expect(await burst([h.limiter], 1, B)).toBe(1);
    // B is full: the batch of A, A, B is refused (in B's shard, after the home and A's shard admitted it)
    const refused = await h.limiter.admit({ jobs: [job('call', { tenant: A }), job('call', { tenant: A }), job('call', { tenant: B })] });
    expect(refused).toMatchObject({ kind: 'rejected', index: 2, reason: 'tenant_concurrency' });
    // nothing of it is held: A's two slots and the dependency's (home) two are free
    expect(await burst([h.limiter], 5, A)).toBe(2);
    expect(await burst([h.limiter], 5, `${A}-other`)).toBe(1); // the dependency (4) holds B's 1 and A's 2
  });

  it('a refusal in the shard frees the request idempotency key and the dependency slot the home took', async () => {
    h = await harness('shards-undo', policy({ [A]: { concurrency: 1 } }, { concurrency: 5 }), { tenantShards: SHARDS });
    expect(await burst([h.limiter], 1, A)).toBe(1);
    const keyed = job('call', { tenant: A, idempotency: { key: 'k-1', record: '{"jobId":"x"}', windowMs: MINUTE } });
    expect(await h.limiter.admit({ jobs: [keyed] })).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
    expect(await h.limiter.idempotencyKeyLive(A, 'k-1')).toBe(false);
    // the dependency holds A's one running job, not two: four others fit
    expect(await burst([h.limiter], 10, B)).toBe(4);
  });
});

describe('one tenant over its limits, others sharing its dependency', () => {
  it("a tenant storming past its own concurrency takes none of the dependency's slots from the others, even for a moment", async () => {
    h = await harness('shards-fair', policy({ [A]: { concurrency: 2 } }, { concurrency: 10 }), { tenantShards: SHARDS });
    const limiters = await instances(h, 4);
    expect(await burst(limiters, 2, A)).toBe(2);
    // A asks 400 times while B asks for the dependency's 8 other slots, all at once
    const [a, b] = await Promise.all([burst(limiters, 400, A), burst(limiters, 8, B)]);
    expect(a).toBe(0);
    expect(b).toBe(8);
  });

  it('a replay is answered as one when its tenant is at its limits (its key decides first)', async () => {
    h = await harness('shards-replay', policy({ [A]: { concurrency: 1 } }), { tenantShards: SHARDS });
    const keyed = () => ({ jobs: [job('call', { tenant: A, jobId: 'same', idempotency: { key: 'k-9', record: '{"jobId":"same"}', windowMs: MINUTE } })] });
    expect((await h.admit(keyed())).kind).toBe('admitted');
    expect(await h.limiter.admit(keyed())).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: '{"jobId":"same"}' } }] });
    expect(await h.limiter.admit({ jobs: [job('call', { tenant: A })] })).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
  });
});

describe('a lease in two slots', () => {
  it('an extension reaches the shard: the tenant slot stays held past the admission timeout, and a settle frees it in both', async () => {
    h = await harness('shards-extend', policy({ [A]: { concurrency: 1 } }), { tenantShards: SHARDS });
    const [lease] = leasesOf(await h.admit({ jobs: [job('call', { tenant: A })] }));
    expect(await h.limiter.extend(lease!.token, 60_000)).toMatchObject({ ok: true });
    h.advance(30_000); // past the 10 s the admission gave it
    expect(await h.limiter.admit({ jobs: [job('call', { tenant: A })] })).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
    expect(await h.limiter.settle(lease!.token, 'succeeded')).toMatchObject({ ok: true });
    expect(await burst([h.limiter], 3, A)).toBe(1);
  });

  it('a lease that expires frees its shard slot too, and the shard reaps it', async () => {
    h = await harness('shards-expire', policy({ [A]: { concurrency: 1 } }), { tenantShards: SHARDS });
    expect(await burst([h.limiter], 1, A)).toBe(1);
    h.advance(10_000 + 1_001);
    expect(await h.limiter.reapExpired(100)).toHaveLength(1);
    expect(await burst([h.limiter], 3, A)).toBe(1);
  });

  it('a revoked admission (its publish failed) is undone in the shard too', async () => {
    h = await harness('shards-revoke', policy({ [A]: { concurrency: 1, rate: { limit: 2, periodMs: MINUTE } } }), { tenantShards: SHARDS });
    const r = await h.limiter.admit({ jobs: [job('call', { tenant: A })] });
    expect(r.kind).toBe('admitted');
    await h.limiter.revoke(r as Extract<AdmissionResult, { kind: 'admitted' }>);
    // slot and rate token given back: two more fit in the rate, one at a time in the slot
    expect(await burst([h.limiter], 3, A)).toBe(1);
  });
});

describe('the shards as a whole', () => {
  it('a shard whose state is lost closes its own tenants, not the others, and reopens after its fail-closed window', async () => {
    h = await harness('shards-lost', policy({ [A]: { concurrency: 5 }, [B]: { concurrency: 5 } }), { tenantShards: SHARDS });
    const lostKeys = await h.redis.keys(`${h.ns}:{${shardTag(h.ns, tenantShardOf(A, SHARDS))}}:*`);
    expect(lostKeys.length).toBeGreaterThan(0); // its epoch, at least
    await h.redis.del(...lostKeys);
    await expect(h.limiter.admit({ jobs: [job('call', { tenant: A })] })).rejects.toBeInstanceOf(StateLost);
    expect(await burst([h.limiter], 2, B)).toBe(2);
    await expect(h.limiter.admit({ jobs: [job('call', { tenant: A })] })).rejects.toBeInstanceOf(StateLost);
    h.advance(10_000 + 1); // the longest timeoutMs: every lease it held has expired
    await expect.poll(async () => (await h!.limiter.admit({ jobs: [job('call', { tenant: A })] })).kind, { timeout: 5_000, interval: 200 }).toBe('admitted');
  });

  it('the state of one shard count is never read with another', async () => {
    h = await harness('shards-layout', policy({ [A]: { concurrency: 5 } }), { tenantShards: SHARDS });
    await expect(h.makeLimiter({ tenantShards: 2 }).init()).rejects.toThrow(/holds the state of 4 tenant shards, not 2/);
    await expect(h.makeLimiter({ tenantShards: 0 }).checkLayout()).rejects.toThrow(RangeError);
    await expect(h.makeLimiter().checkLayout()).resolves.toBeUndefined();
  });

  it('many tenants over every shard, 8 instances: each tenant exactly at its limits', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
    expect(new Set(names.map((n) => tenantShardOf(n, SHARDS))).size).toBe(SHARDS);
    const tenants = Object.fromEntries(names.map((n) => [n, { concurrency: 3, rate: { limit: 5, periodMs: MINUTE } }]));
    h = await harness('shards-many', policy(tenants), { tenantShards: SHARDS });
    const limiters = await instances(h, 8);
    const counts = await Promise.all(names.map((n) => burst(limiters, 12, n)));
    expect(counts).toEqual(names.map(() => 3));
    h.advance(MINUTE); // the leases expired, the buckets refilled: the concurrency limit again
    const after = await Promise.all(names.map((n) => burst(limiters, 12, n)));
    expect(after).toEqual(names.map(() => 3));
  });
});
