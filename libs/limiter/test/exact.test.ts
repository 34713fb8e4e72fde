/**
 * "Exact under faults": limits that must hold across policy changes and worker-reported costs,
 * through the real Redis.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { harness, job, leasesOf, type Harness } from './helpers.js';
import { compilePolicy, type AdmissionResult } from '../src/index.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const swap = (x: Harness, doc: PolicyDocumentInput, version: number) => x.limiter.setPolicy(compilePolicy(PolicyDocument.parse(doc), version));

describe('a concurrency limit added while jobs run counts those jobs (CONTRACT §6.1)', () => {
  const base = { dependencies: { api: {} }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 10_000 }, bare: { timeoutMs: 10_000 } } };
  const cases: { name: string; limited: PolicyDocumentInput; reason: string }[] = [
    { name: 'tenant concurrency', limited: { ...base, tenants: { acme: { concurrency: 32 } } }, reason: 'tenant_concurrency' },
    { name: 'global concurrency', limited: { ...base, global: { concurrency: 32 } }, reason: 'global_concurrency' },
    { name: 'dependency concurrency', limited: { ...base, dependencies: { api: { concurrency: 32 } } }, reason: 'dependency_concurrency' },
    { name: 'per-tenant dependency concurrency', limited: { ...base, dependencies: { api: { perTenant: { concurrency: 32 } } } }, reason: 'dependency_concurrency' },
  ];
  for (const c of cases) {
    it(`${c.name}: 30 running, limit 32 added → 2 more, then settle/revoke/expiry keep the pool exact`, async () => {
      h = await harness('exact-pools', base);
      const running = leasesOf(await h.admit({ jobs: Array.from({ length: 30 }, () => job('call')) }));
      swap(h, c.limited, 2);
      expect((await h.admit({ jobs: [job('call'), job('call')] })).kind).toBe('admitted');
      expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });

      // settle frees exactly one slot each
      for (const l of running.slice(0, 3)) expect((await h.limiter.settle(l.token, 'succeeded')).ok).toBe(true);
      const three = await h.admit({ jobs: [job('call'), job('call'), job('call')] });
      expect(three.kind).toBe('admitted');
      expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });
      // revoke gives the slots back
      await h.limiter.revoke(three as Extract<AdmissionResult, { kind: 'admitted' }>);
      expect((await h.admit({ jobs: [job('call'), job('call'), job('call')] })).kind).toBe('admitted');
      expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });
      // an extended lease keeps counting after the others expire, and stops at its new expiry
      expect((await h.limiter.extend(running[3]!.token, 20_000)).ok).toBe(true);
      h.advance(10_000);
      expect(await h.limiter.reapExpired(1000)).toHaveLength(31);
      expect((await h.admit({ jobs: Array.from({ length: 31 }, () => job('call')) })).kind).toBe('admitted');
      expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });
    });
  }

  it('a job type without dependencies counts in the tenant and global pools too', async () => {
    h = await harness('exact-pools', base);
    leasesOf(await h.admit({ jobs: Array.from({ length: 5 }, () => job('bare')) }));
    swap(h, { ...base, tenants: { acme: { concurrency: 6 } }, global: { concurrency: 7 } }, 2);
    expect((await h.admit({ jobs: [job('bare')] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare')] })).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
    expect((await h.admit({ jobs: [job('bare', { tenant: 'other' })] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare', { tenant: 'other' })] })).toMatchObject({ kind: 'rejected', reason: 'global_concurrency' });
    expect(await h.limiter.inspect()).toMatchObject({ global: { inFlight: 7, concurrency: 7 } });
  });
});

describe('a dependency given to a job type while its jobs run counts those jobs (CONTRACT §6.1)', () => {
  const base = { dependencies: { api: {} }, jobTypes: { bare: { timeoutMs: 10_000 } } };
  // api: 9 at once, 6 per tenant; `bare` now calls it.
  const limited = { dependencies: { api: { concurrency: 9, perTenant: { concurrency: 6 } } }, jobTypes: { bare: { dependencies: [{ name: 'api' }], timeoutMs: 10_000 } } };
  const other = { tenant: 'other' };
  const inFlight = async (x: Harness) => (await x.limiter.inspect()).dependencies.api?.inFlight;

  it('5 + 2 running (one not yet confirmed), limit 9 / 6 per tenant given → 1 more for the tenant, 2 in all; settle, revoke and expiry keep the pools exact', async () => {
    h = await harness('attach', base, { attachAgainMs: 60_000 });
    const acme = leasesOf(await h.admit({ jobs: Array.from({ length: 5 }, () => job('bare')) }));
    leasesOf(await h.admit({ jobs: [job('bare', other)] }));
    // admitted, its job message not confirmed yet: it holds its limits all the same
    leasesOf(await h.limiter.admit({ jobs: [job('bare', other)] }));
    // one extended before the change: its lease is indexed on its own (`<lease id>`)
    expect((await h.limiter.extend(acme[0]!.token, 20_000)).ok).toBe(true);

    swap(h, limited, 2);
    // at the tenant's limit, one over: asked at once (admission waits for the running jobs to count)
    const [first, second] = await Promise.all([h.admit({ jobs: [job('bare')] }), h.admit({ jobs: [job('bare')] })]);
    expect([first, second].map((r) => (r.kind === 'rejected' ? r.reason : r.kind)).sort()).toEqual(['admitted', 'dependency_concurrency']);
    expect(await h.limiter.applied()).toEqual({ attach: { ok: true, leases: 7, pools: 14, budgets: 0 } });
    expect(await inFlight(h)).toBe(8);
    // at the dependency's limit, one over
    const last = await h.admit({ jobs: [job('bare', other)] });
    expect(last.kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare', other)] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });

    // settling a job admitted before the change frees its slot in both pools
    expect((await h.limiter.settle(acme[1]!.token, 'succeeded')).ok).toBe(true);
    expect((await h.admit({ jobs: [job('bare')] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare', other)] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    // so does a revoke of one admitted after it
    await h.limiter.revoke(last as Extract<AdmissionResult, { kind: 'admitted' }>);
    expect((await h.admit({ jobs: [job('bare', other)] })).kind).toBe('admitted');
    expect(await inFlight(h)).toBe(9);

    // Expiry: the extended one keeps counting, at its new expiry; the others leave.
    h.advance(10_000);
    expect(await h.limiter.reapExpired(1000)).toHaveLength(8);
    expect(await inFlight(h)).toBe(1);
    expect((await h.admit({ jobs: Array.from({ length: 5 }, () => job('bare')) })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    expect((await h.admit({ jobs: Array.from({ length: 3 }, () => job('bare', other)) })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare', other)] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    h.advance(10_001);
    expect(await h.limiter.reapExpired(1000)).toHaveLength(9);
    expect(await inFlight(h)).toBe(0);
  });

  it('8 instances applying the change at once count each running job once', async () => {
    h = await harness('attach-many', base, { attachAgainMs: 60_000 });
    leasesOf(await h.admit({ jobs: Array.from({ length: 40 }, (_, i) => job('bare', { tenant: `t${i % 8}` })) }));
    const wide = { ...limited, dependencies: { api: { concurrency: 41 } } };
    const instances = Array.from({ length: 8 }, () => h!.makeLimiter());
    for (const l of instances) l.setPolicy(compilePolicy(PolicyDocument.parse(wide), 2));
    const results = await Promise.all(instances.map((l) => l.applied()));
    expect(results.reduce((n, r) => n + (r?.attach?.ok === true ? r.attach.leases : 0), 0)).toBe(40);
    // and the second pass, later, finds nothing left to count
    instances[0]!.setPolicy(compilePolicy(PolicyDocument.parse(base), 3));
    instances[0]!.setPolicy(compilePolicy(PolicyDocument.parse(wide), 4));
    expect(await instances[0]!.applied()).toEqual({ attach: { ok: true, leases: 0, pools: 0, budgets: 0 } });
    h.limiter.setPolicy(compilePolicy(PolicyDocument.parse(wide), 4));
    expect(await inFlight(h)).toBe(40);
    expect((await h.admit({ jobs: [job('bare')] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('bare')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it("an app's first policy is no change (its state was written under it); the next one is", async () => {
    h = await harness('attach-first', base, { attachAgainMs: 60_000 });
    leasesOf(await h.admit({ jobs: Array.from({ length: 3 }, () => job('bare')) }));
    const starting = h.makeLimiter({ policy: undefined });
    starting.setPolicy(compilePolicy(PolicyDocument.parse(base), 1));
    expect(await starting.applied()).toBeUndefined();
    starting.setPolicy(compilePolicy(PolicyDocument.parse(limited), 2));
    expect(await starting.applied()).toEqual({ attach: { ok: true, leases: 3, pools: 6, budgets: 0 } });
  });

  it('a change made while no limiter ran is carried over by the first one to start', async () => {
    h = await harness('attach-offline', base, { attachAgainMs: 60_000 });
    const app = () => h!.makeLimiter({ policy: undefined });
    // the apps start on version 1 (the first start records it), their jobs run, they stop
    const first = app();
    first.setPolicy(compilePolicy(PolicyDocument.parse(base), 1));
    expect(await first.applied()).toBeUndefined();
    leasesOf(await first.admit({ jobs: Array.from({ length: 5 }, () => job('bare')) }));
    // version 2 is stored while none runs; one starts on it and carries it over before admitting
    const next = app();
    next.setPolicy(compilePolicy(PolicyDocument.parse(limited), 2));
    const [a, b] = await Promise.all([next.admit({ jobs: [job('bare')] }), next.admit({ jobs: [job('bare')] })]);
    expect(await next.applied()).toEqual({ attach: { ok: true, leases: 5, pools: 10, budgets: 0 } });
    expect([a.kind, b.kind].sort()).toEqual(['admitted', 'rejected']);
    // the next app to start on version 2 finds it carried over already
    const third = app();
    third.setPolicy(compilePolicy(PolicyDocument.parse(limited), 2));
    expect(await third.applied()).toBeUndefined();
    // 6 of 9 held: 3 more for another tenant, then none
    expect((await third.admit({ jobs: [job('bare', other), job('bare', other), job('bare', other)] })).kind).toBe('admitted');
    expect(await third.admit({ jobs: [job('bare', other)] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('writes nothing while the state is lost (the rebuild counts every lease under the policy then)', async () => {
    h = await harness('attach-lost', base, { attachAgainMs: 60_000 });
    leasesOf(await h.admit({ jobs: Array.from({ length: 3 }, () => job('bare')) }));
    await h.redis.del(h.limiter.keys.epoch);
    swap(h, limited, 2);
    expect(await h.limiter.applied()).toEqual({ attach: { ok: false, reason: 'state_lost' } });
    expect(await h.redis.exists(h.limiter.keys.limit('dep:api:conc'))).toBe(0);
  });
});

describe('a tenant budget added while jobs run counts those jobs (CONTRACT §6.1)', () => {
  // `call` is estimated at 10 units; a producer's cost (kept in the lease's context) overrides it.
  const base = { dependencies: { api: {} }, tenants: { acme: {} }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }], timeoutMs: 10_000 } } };
  const budgeted = { ...base, tenants: { acme: { budget: { limit: 100, periodMs: 3_600_000 } } } };
  const costly = (cost: number) => job('call', { cost, context: JSON.stringify({ tenant: 'acme', type: 'call', priority: 'high', cost }) });

  it('4 × 10 + 1 × 20 running, a budget of 100 added → 40 more, not 100; settle gives back what was not spent', async () => {
    h = await harness('attach-budget', base, { attachAgainMs: 60_000 });
    const running = leasesOf(await h.admit({ jobs: [job('call'), job('call'), job('call'), job('call'), costly(20)] }));
    // another tenant's job is not in acme's budget
    leasesOf(await h.admit({ jobs: [job('call', { tenant: 'other' })] }));

    swap(h, budgeted, 2);
    expect(await h.limiter.applied()).toEqual({ attach: { ok: true, leases: 5, pools: 0, budgets: 5 } });
    expect((await h.admit({ jobs: [job('call'), job('call'), job('call'), job('call')] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });

    // the job of cost 20 reports 2: 18 given back, room for one more of 10 (92 of 100)
    const settled = await h.limiter.settle(running[4]!.token, 'succeeded', 2);
    expect(settled).toMatchObject({ ok: true, lease: { reserved: 20, actual: 2 } });
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });

    // another instance applying the same change (or this one's second pass) reserves nothing twice
    const late = h.makeLimiter();
    late.setPolicy(compilePolicy(PolicyDocument.parse(budgeted), 2));
    expect(await late.applied()).toEqual({ attach: { ok: true, leases: 0, pools: 0, budgets: 0 } });
    expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });

    // the next window starts empty: the attached reservations counted in the window they were made in
    h.advance(3_600_000);
    expect(await h.limiter.reapExpired(1000)).toHaveLength(10);
    expect((await h.admit({ jobs: Array.from({ length: 10 }, () => job('call')) })).kind).toBe('admitted');
  });
});

describe('the actualCost a worker reports settles the costRate buckets (CONTRACT §3)', () => {
  // 100 units per 1000 ms (0.1 per ms), bucket 100: one job of estimate 100 empties it.
  const rate = { limit: 100, periodMs: 1000 };
  const cases: { name: string; doc: PolicyDocumentInput }[] = [
    { name: 'dependency costRate', doc: { dependencies: { api: { costRate: rate } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 100 }] } } } },
    { name: 'per-tenant costRate', doc: { dependencies: { api: { perTenant: { costRate: rate } } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 100 }] } } } },
  ];
  for (const c of cases) {
    it(`${c.name}: estimate 100, actual 300 → the next admission waits for the extra 200 to refill`, async () => {
      h = await harness('exact-cost', c.doc);
      const [l] = leasesOf(await h.admit({ jobs: [job('call')] }));
      expect((await h.limiter.settle(l!.token, 'succeeded', 300)).ok).toBe(true);
      // the bucket is 200 in debt: 300 units (3000 ms) until 100 are there again
      expect(await h.admit({ jobs: [job('call')] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_cost_rate', retryAfterMs: 3000 });
      h.advance(2999);
      expect((await h.admit({ jobs: [job('call')] })).kind).toBe('rejected');
      h.advance(1);
      expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    });

    it(`${c.name}: estimate 100, actual 10 → 90 given back, never above the bucket's capacity`, async () => {
      h = await harness('exact-cost', c.doc);
      const [a] = leasesOf(await h.admit({ jobs: [job('call')] }));
      expect((await h.limiter.settle(a!.token, 'succeeded', 10)).ok).toBe(true);
      // 90 back: 10 units (100 ms) short of the next job
      expect(await h.admit({ jobs: [job('call')] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_cost_rate', retryAfterMs: 100 });
      h.advance(100);
      const [b] = leasesOf(await h.admit({ jobs: [job('call')] }));
      // refilled to full meanwhile: giving back 100 must not make the bucket hold 200
      h.advance(1000);
      expect((await h.limiter.settle(b!.token, 'succeeded', 0)).ok).toBe(true);
      expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
      expect(await h.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 1000 });
    });
  }

  it('a request cost overrides every dependency estimate; the actual cost settles each bucket and the budget alike', async () => {
    h = await harness('exact-cost', {
      dependencies: { a: { costRate: { limit: 1000, periodMs: 1000 } }, b: { costRate: { limit: 1000, periodMs: 1000 } } },
      tenants: { acme: { budget: { limit: 1000, periodMs: 3_600_000 } } },
      jobTypes: { two: { dependencies: [{ name: 'a', cost: 1 }, { name: 'b', cost: 3 }] } },
    });
    const [l] = leasesOf(await h.admit({ jobs: [job('two', { cost: 100 })] }));
    expect((await h.limiter.settle(l!.token, 'succeeded', 400)).ok).toBe(true);
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 400 } });
    const snap = await h.limiter.inspect();
    expect(snap.dependencies['a']?.costRate?.available).toBe(600);
    expect(snap.dependencies['b']?.costRate?.available).toBe(600);
  });

  it('without a request cost the actual cost is split over the dependencies in proportion to their estimates', async () => {
    h = await harness('exact-cost', {
      dependencies: { a: { costRate: { limit: 1000, periodMs: 1000 } }, b: { costRate: { limit: 1000, periodMs: 1000 } } },
      jobTypes: { two: { dependencies: [{ name: 'a', cost: 10 }, { name: 'b', cost: 30 }] } },
    });
    const [l] = leasesOf(await h.admit({ jobs: [job('two')] }));
    expect((await h.limiter.settle(l!.token, 'succeeded', 400)).ok).toBe(true);
    const snap = await h.limiter.inspect();
    expect(snap.dependencies['a']?.costRate?.available).toBe(900);
    expect(snap.dependencies['b']?.costRate?.available).toBe(700);
  });
});

describe('a request no wait can admit is exceeds_capacity, not a rejection to retry forever (CONTRACT §3 v1.1)', () => {
  const doc: PolicyDocumentInput = {
    dependencies: {
      api: { rate: { limit: 60, periodMs: 60_000, burst: 1 }, costRate: { limit: 1000, periodMs: 1000, burst: 500 }, concurrency: 5 },
      per: { perTenant: { costRate: { limit: 50, periodMs: 1000 }, concurrency: 2 } },
    },
    tenants: { acme: { budget: { limit: 800, periodMs: 3_600_000 }, concurrency: 4 } },
    global: { concurrency: 3 },
    jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }] }, per: { dependencies: [{ name: 'per' }] }, free: {} },
  };

  it('a batch of 3 against a burst of 1 (told retryAfterMs 1 forever before)', async () => {
    h = await harness('exact-capacity', doc);
    expect(await h.admit({ jobs: [job('call'), job('call'), job('call')] })).toEqual({
      kind: 'exceeds_capacity',
      index: 1,
      limit: { scope: 'dependency', dependency: 'api', kind: 'rate', per: 'job', capacity: 1, requested: 3 },
    });
    // nothing consumed: one job still fits
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
  });

  it('a cost larger than a costRate bucket, a per-tenant costRate bucket or the budget', async () => {
    h = await harness('exact-capacity', doc);
    expect(await h.admit({ jobs: [job('call', { cost: 501 })] })).toEqual({
      kind: 'exceeds_capacity',
      index: 0,
      limit: { scope: 'dependency', dependency: 'api', kind: 'costRate', per: 'cost', capacity: 500, requested: 501 },
    });
    expect(await h.admit({ jobs: [job('per', { cost: 51 })] })).toMatchObject({
      kind: 'exceeds_capacity',
      limit: { scope: 'dependency', dependency: 'per', tenant: 'acme', kind: 'costRate', capacity: 50, requested: 51 },
    });
    expect(await h.admit({ jobs: [job('free', { cost: 801 })] })).toMatchObject({
      kind: 'exceeds_capacity',
      limit: { scope: 'tenant', tenant: 'acme', kind: 'budget', per: 'cost', capacity: 800, requested: 801 },
    });
    // exactly at capacity is admissible
    expect((await h.admit({ jobs: [job('free', { cost: 800 })] })).kind).toBe('admitted');
  });

  it('more jobs than a concurrency limit: per-tenant dependency, tenant, global', async () => {
    h = await harness('exact-capacity', doc);
    expect(await h.admit({ jobs: [job('per'), job('per'), job('per')] })).toMatchObject({
      kind: 'exceeds_capacity',
      index: 2,
      limit: { scope: 'dependency', dependency: 'per', tenant: 'acme', kind: 'concurrency', capacity: 2, requested: 3 },
    });
    expect(await h.admit({ jobs: Array.from({ length: 4 }, () => job('free', { tenant: 'other' })) })).toMatchObject({
      kind: 'exceeds_capacity',
      index: 3,
      limit: { scope: 'global', kind: 'concurrency', capacity: 3, requested: 4 },
    });
    expect(await h.admit({ jobs: Array.from({ length: 3 }, () => job('free', { tenant: 'other' })) })).toMatchObject({ kind: 'admitted' });
  });
});

describe('exceeds_capacity and idempotency: a replay is answered as one first', () => {
  const doc: PolicyDocumentInput = { dependencies: { api: { rate: { limit: 60, periodMs: 60_000, burst: 2 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } };

  it('a batch over the burst whose over-the-top jobs were admitted before is admitted (they are replays)', async () => {
    h = await harness('exact-capacity-idem', doc);
    const keyed = (k: string) => job('call', { idempotency: { key: k, record: `r-${k}` } });
    expect((await h.admit({ jobs: [keyed('a'), keyed('b')] })).kind).toBe('admitted');
    h.advance(60_000);
    const r = await h.admit({ jobs: [keyed('a'), keyed('b'), keyed('c')] });
    expect(r.kind).toBe('admitted');
    // without the replays, three new jobs can never pass a burst of 2; the index names the first new job over it
    expect(await h.admit({ jobs: [keyed('a'), keyed('x'), keyed('y'), keyed('z')] })).toMatchObject({ kind: 'exceeds_capacity', index: 3, limit: { requested: 3 } });
  });
});
