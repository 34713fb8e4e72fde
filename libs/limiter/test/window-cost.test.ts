/**
 * A `window` costRate settles the reported actualCost (CONTRACT §3): settle replaces the job's
 * estimate in each window it entered with its share of the actual cost, at the same expiry (periodMs
 * after admission). More than the estimate takes more of the window; what that puts over its limit
 * is a debt that leaves as many periods later as it holds limits' worth (so the limit per period
 * holds over time); less gives back. Each at the limit, one over, after the entries left, and from
 * many instances at once; the clock is pinned (harness).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PolicyDocumentInput } from '@janus/contracts';
import { Keys, limitId, type AdmissionResult, type Lease, type Limiter } from '../src/index.js';
import { harness, job, leasesOf, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Admits `n` single-job requests one after another; returns the leases admitted. */
async function admitEach(x: Harness, n: number, extra: Parameters<typeof job>[1] = {}): Promise<Lease[]> {
  const out: Lease[] = [];
  for (let i = 0; i < n; i++) {
    const r = await x.admit({ jobs: [job('call', extra)] });
    if (r.kind === 'admitted') out.push(r.jobs[0]!.lease!);
  }
  return out;
}

/** `n` single-job requests at once, spread over the given limiters; how many were admitted. */
async function burst(limiters: readonly Limiter[], n: number): Promise<number> {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => limiters[i % limiters.length]!.admit({ jobs: [job('call')] })));
  return results.filter((r) => r.kind === 'admitted').length;
}

// 100 cost units in any 30 s; a job's estimate is 10
const WINDOW = { limit: 100, periodMs: 30_000, kind: 'window' as const };
const cases: { name: string; doc: PolicyDocumentInput; key: string }[] = [
  { name: 'dependency costRate window', doc: { dependencies: { api: { costRate: WINDOW } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }], timeoutMs: 60_000 } } }, key: `${limitId.depCostRate('api')}:win` },
  {
    name: 'per-tenant costRate window',
    doc: { dependencies: { api: { perTenant: { costRate: WINDOW } } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }], timeoutMs: 60_000 } } },
    key: `${limitId.depTenantCostRate('api', 'acme')}:win`,
  },
];

describe('a window costRate settles the actual cost (CONTRACT §3)', () => {
  for (const c of cases) {
    it(`${c.name}: 5 jobs of estimate 10 settled at 20 each fill the window (100 of 100) until they leave it`, async () => {
      h = await harness('wcost-over', c.doc);
      const leases = await admitEach(h, 5);
      expect(leases).toHaveLength(5);
      for (const l of leases) expect((await h.limiter.settle(l.token, 'succeeded', 20)).ok).toBe(true);
      h.advance(1_500);
      // before: 5 more admitted (150 actual units in 30 s against 100)
      expect(await h.limiter.admit({ jobs: [job('call')] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_cost_rate', retryAfterMs: 28_500 });
      expect(await admitEach(h, 20)).toHaveLength(0);
      h.advance(28_499);
      expect(await admitEach(h, 1)).toHaveLength(0);
      h.advance(1); // the five entries (now 20 each) leave at exactly 30 s after their admission
      expect(await admitEach(h, 11)).toHaveLength(10);
    });

    it(`${c.name}: more than the window holds puts it over its limit; the part over it is a debt that leaves a period later`, async () => {
      h = await harness('wcost-debt', c.doc);
      const [a] = await admitEach(h, 1); // t = 0
      h.advance(10_000);
      const later = await admitEach(h, 5); // t = 10 s: 60 in the window
      expect(later).toHaveLength(5);
      // 200 in the window, 100 over its limit: those 100 leave at t = 60 s, the rest of a's 150 at 30 s
      expect((await h.limiter.settle(a!.token, 'succeeded', 150)).ok).toBe(true);
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 50_000 });
      h.advance(30_000); // t = 40 s: a's 50 and the five's 50 left; the debt's 100 remain
      expect(await admitEach(h, 5)).toHaveLength(0);
      h.advance(19_999);
      expect(await admitEach(h, 1)).toHaveLength(0);
      h.advance(1); // t = 60 s: 200 actual units over [0, 60 s), two limits' worth
      expect(await admitEach(h, 11)).toHaveLength(10);
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 30_000 });
    });

    it(`${c.name}: jobs that all cost 3 × their estimate take 3 periods, not 1: the window's limit per period holds over time`, async () => {
      h = await harness('wcost-rate', c.doc);
      let units = 0;
      for (let t = 0; t < 12; t += 1) {
        // every 10 s for 2 minutes, as many as are admitted, each settled at 30 (estimate 10)
        for (const l of await admitEach(h, 20)) {
          expect((await h.limiter.settle(l.token, 'succeeded', 30)).ok).toBe(true);
          units += 30;
        }
        h.advance(10_000);
      }
      // before: 100 at their estimates every 30 s, 300 actual each time (1,200 in 2 minutes)
      expect(units).toBeGreaterThanOrEqual(300);
      expect(units).toBeLessThanOrEqual(100 * (120_000 / 30_000) + 200);
    });

    it(`${c.name}: less than the estimate is given back: 10 admitted (full), 5 settled at 1 → 4 more, one over`, async () => {
      h = await harness('wcost-under', c.doc);
      const leases = await admitEach(h, 10);
      expect(leases).toHaveLength(10);
      expect(await admitEach(h, 1)).toHaveLength(0);
      for (const l of leases.slice(0, 5)) expect((await h.limiter.settle(l.token, 'succeeded', 1)).ok).toBe(true);
      h.advance(1_000);
      // 55 in the window: 4 jobs of 10 fit (95), the fifth does not (before: 0 admitted)
      expect(await admitEach(h, 5)).toHaveLength(4);
      expect(await h.limiter.inspect()).toMatchObject(c.name.startsWith('dependency') ? { dependencies: { api: { costRate: { capacity: 100, available: 5 } } } } : {});
      // settling with the estimate, or without an actual cost, changes nothing
      expect((await h.limiter.settle(leases[5]!.token, 'succeeded', 10)).ok).toBe(true);
      expect((await h.limiter.settle(leases[6]!.token, 'succeeded')).ok).toBe(true);
      expect(await admitEach(h, 1)).toHaveLength(0);
      h.advance(29_000); // t = 30 s: every entry of t = 0 left, the 4 of t = 1 s remain
      expect(await admitEach(h, 7)).toHaveLength(6);
      h.advance(1_000);
      expect(await admitEach(h, 5)).toHaveLength(4);
    });
  }

  it('the actual cost is shared over the windows in proportion to their estimates (actual × amount / estimate)', async () => {
    h = await harness('wcost-share', {
      dependencies: { a: { costRate: { limit: 100, periodMs: 30_000, kind: 'window' } }, b: { costRate: { limit: 300, periodMs: 30_000, kind: 'window' } } },
      jobTypes: { call: { dependencies: [{ name: 'a', cost: 10 }, { name: 'b', cost: 30 }] }, 'only-a': { dependencies: [{ name: 'a', cost: 10 }] }, 'only-b': { dependencies: [{ name: 'b', cost: 30 }] } },
    });
    const [l] = leasesOf(await h.admit({ jobs: [job('call')] }));
    expect((await h.limiter.settle(l!.token, 'succeeded', 200)).ok).toBe(true); // a: 50, b: 150
    // a holds 50: 5 jobs of 10 fit; b holds 150: 5 jobs of 30 fit
    let a = 0;
    let b = 0;
    for (let i = 0; i < 6; i++) if ((await h.admit({ jobs: [job('only-a')] })).kind === 'admitted') a += 1;
    for (let i = 0; i < 6; i++) if ((await h.admit({ jobs: [job('only-b')] })).kind === 'admitted') b += 1;
    expect([a, b]).toEqual([5, 5]);
    // a request cost overrides every dependency estimate: then each window takes the whole actual cost
    h.advance(30_000);
    const [m] = leasesOf(await h.admit({ jobs: [job('call', { cost: 5 })] }));
    expect((await h.limiter.settle(m!.token, 'succeeded', 60)).ok).toBe(true);
    expect(await h.limiter.inspect()).toMatchObject({ dependencies: { a: { costRate: { available: 40 } }, b: { costRate: { available: 240 } } } });
  });

  it('a window entry that has already left is not charged again; revoke and expiry keep the estimate as before', async () => {
    h = await harness('wcost-left', { dependencies: { api: { costRate: { limit: 100, periodMs: 1_000, kind: 'window' } } }, jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }], timeoutMs: 60_000 } } });
    const [a] = await admitEach(h, 1);
    h.advance(1_000); // a's entry left the window
    expect((await h.limiter.settle(a!.token, 'succeeded', 90)).ok).toBe(true);
    expect(await admitEach(h, 11)).toHaveLength(10);
    h.advance(1_000);
    // revoke never gave window entries back (conservative: a revoked admission may still have reached the API)
    const r = await h.admit({ jobs: [job('call'), job('call')] });
    await h.limiter.revoke(r as Extract<AdmissionResult, { kind: 'admitted' }>);
    expect(await admitEach(h, 9)).toHaveLength(8);
    // a lease that expires unsettled keeps its estimate (and a late settle changes nothing)
    h.advance(1_000);
    const [e] = await admitEach(h, 1);
    h.advance(60_000);
    await h.limiter.reapExpired(100);
    expect(await h.limiter.settle(e!.token, 'succeeded', 1)).toEqual({ ok: false, reason: 'expired' });
  });

  it('a lease admitted by the previous version (no window entry in its record) still settles and leaves the window as it is', async () => {
    const c = cases[0]!;
    h = await harness('wcost-compat', c.doc);
    const keys = new Keys(h.ns);
    const leases = await admitEach(h, 10);
    // rewrite the records as the previous version wrote them: no window entry in `rate`
    const entry = `${keys.limit(c.key)} window 10 10 30000 100`;
    for (const l of leases) {
      const at = keys.leaseLocation(l.id)!;
      const raw = (await h.redis.hget(at.key, at.field))!;
      expect(raw).toContain(`${Buffer.byteLength(entry)}:${entry}`);
      await h.redis.hset(at.key, at.field, raw.replace(`${Buffer.byteLength(entry)}:${entry}`, '0:'));
    }
    for (const l of leases.slice(0, 5)) expect(await h.limiter.settle(l.token, 'succeeded', 1)).toMatchObject({ ok: true, lease: { actual: 1 } });
    expect(await admitEach(h, 1)).toHaveLength(0); // the window keeps the estimates
  });

  it('from many instances at once: parallel settles and a parallel burst admit exactly what the window holds', async () => {
    h = await harness('wcost-par', cases[0]!.doc);
    const limiters = Array.from({ length: 8 }, () => h!.makeLimiter());
    const leases = leasesOf(await h.admit({ jobs: Array.from({ length: 10 }, () => job('call')) }));
    // 8 instances settle at once: 6 at 1 (gives back 54), 4 at 10
    await Promise.all(leases.map((l, i) => limiters[i % 8]!.settle(l.token, 'succeeded', i < 6 ? 1 : 10)));
    h.advance(1_000);
    expect(await burst(limiters, 80)).toBe(5); // 46 in the window: 5 more (96)
    h.advance(29_000); // t = 30 s: the first ten left; the five of t = 1 s remain
    const more = leasesOf(await h.admit({ jobs: Array.from({ length: 5 }, () => job('call')) }));
    await Promise.all(more.map((l, i) => limiters[i % 8]!.settle(l.token, 'succeeded', 20))); // 50 + 100 in the window
    expect(await burst(limiters, 80)).toBe(0);
    h.advance(1_000); // t = 31 s: the five of t = 1 s left, 100 remain (50 of them over the limit, a debt)
    expect(await burst(limiters, 80)).toBe(0);
    h.advance(29_000); // t = 60 s: 50 left, the debt's 50 stay a period more
    expect(await burst(limiters, 80)).toBe(5);
    h.advance(30_000); // t = 90 s: the debt and the five of t = 60 s left together
    expect(await burst(limiters, 80)).toBe(10);
  });
});
