/**
 * Read models: what a tenant uses (`usage`) and what the limits hold (`inspect`), read without
 * changing anything. Concurrency pools are counted by count-n.lua; buckets and budget windows are
 * read directly and computed the way the scripts do (includes/bucket.lua, budget windows aligned to
 * periodMs).
 */
import type { Rate } from '@janus/contracts';
import type { CompiledPolicy } from './policy.js';
import type { Clock } from './clock.js';
import { limitId, type Keys } from './keys.js';
import type { ScriptStore } from './store.js';
import type { BucketView, CreditsState, LimiterSnapshot, TenantUsage } from './types.js';

export class ReadModels {
  constructor(
    private readonly store: ScriptStore,
    private readonly keys: Keys,
    private readonly clock: Clock,
  ) {}

  async usage(policy: CompiledPolicy, tenant: string): Promise<TenantUsage> {
    const at = await this.clock.read();
    const deps = Object.keys(policy.document.dependencies);
    const budgetPolicy = policy.document.tenants[tenant]?.budget;
    const [live, budgetRow, credits] = await Promise.all([
      this.#liveCounts(deps.map((d) => limitId.depTenantConcurrency(d, tenant)), at),
      budgetPolicy ? this.store.guard(this.store.redis.hmget(this.keys.limit(limitId.tenantBudget(tenant)), 'w', 'u', 'p', 'l')) : undefined,
      this.credits(tenant),
    ]);
    const inFlight: Record<string, number> = {};
    deps.forEach((d, i) => (inFlight[d] = live[i] ?? 0));
    let budget: TenantUsage['budget'] = null;
    if (budgetPolicy) {
      const [w, u, p, l] = (budgetRow ?? []).map((x) => (x === null || x === undefined ? undefined : Number(x)));
      const ws = at - (at % budgetPolicy.periodMs);
      // as admission reads it (includes/budget.lua): after a change of periodMs, a stored window
      // that reached into the current one carries its use; an earlier window over its limit, its debt
      let used = 0;
      if (w !== undefined && (w === ws || (p !== undefined && w + p > ws))) used = u ?? 0;
      else if (w !== undefined && w < ws && p !== undefined && p > 0 && l !== undefined) used = Math.max(0, Math.ceil((u ?? 0) - (l * (ws - w)) / p));
      budget = { limit: budgetPolicy.limit, used, remaining: Math.max(0, budgetPolicy.limit - used), resetsAt: ws + budgetPolicy.periodMs };
    }
    return { tenant, at, budget, credits: credits.account ? { balance: credits.balance, reserved: credits.reserved } : null, inFlight };
  }

  /**
   * The units the token buckets with these ids hold now (fractions included; a missing bucket is
   * full): read only, as admission would read them (includes/bucket.lua). What a queued job's
   * `notBefore` starts from (the waiting room's estimate).
   */
  async bucketLevels(specs: readonly { readonly id: string; readonly limit: number; readonly periodMs: number; readonly capacity: number }[]): Promise<Map<string, number>> {
    if (specs.length === 0) return new Map();
    const pipeline = this.store.redis.pipeline();
    for (const spec of specs) pipeline.hmget(this.keys.limit(spec.id), 't', 'ts', 'p', 'r', 'c');
    const [at, rows] = await Promise.all([this.clock.read(), this.store.guard(pipeline.exec()).then((r) => r ?? [])]);
    return new Map(specs.map((spec, i) => [spec.id, bucketUnits({ limit: spec.limit, periodMs: spec.periodMs, burst: spec.capacity }, rows[i]?.[1], at)]));
  }

  /** A tenant's prepaid credits (`account: false`: none, which does not limit; then both 0). */
  async credits(tenant: string): Promise<CreditsState> {
    const [b, r] = await this.store.guard(this.store.redis.hmget(this.keys.credits(tenant), 'b', 'r'));
    if (b === null || b === undefined) return { account: false, balance: 0, reserved: 0 };
    return { account: true, balance: Number(b), reserved: Number(r ?? 0) };
  }

  async inspect(policy: CompiledPolicy): Promise<LimiterSnapshot> {
    const at = await this.clock.read();
    const doc = policy.document;
    const pipeline = this.store.redis.pipeline();
    const deps = Object.entries(doc.dependencies);
    for (const [name] of deps) {
      pipeline.hmget(this.keys.limit(limitId.depRate(name)), 't', 'ts', 'p', 'r', 'c');
      pipeline.hmget(this.keys.limit(limitId.depCostRate(name)), 't', 'ts', 'p', 'r', 'c');
    }
    pipeline.hmget(this.keys.limit(limitId.globalRate()), 't', 'ts', 'p', 'r', 'c');
    // A window rate is a pool of admissions that expire periodMs later (src/lua/admit-n.lua): counted like one.
    const windows = deps.flatMap(([name, p]) => [p.rate?.kind === 'window' ? `${limitId.depRate(name)}:win` : undefined, p.costRate?.kind === 'window' ? `${limitId.depCostRate(name)}:win` : undefined]);
    const windowIds = windows.filter((id): id is string => id !== undefined);
    const [rows, live, inWindows] = await Promise.all([
      this.store.guard(pipeline.exec()).then((r) => r ?? []),
      this.#liveCounts([...deps.map(([name]) => limitId.depConcurrency(name)), limitId.globalConcurrency()], at),
      this.#liveCounts(windowIds, at),
    ]);
    const used = new Map(windowIds.map((id, i) => [id, inWindows[i] ?? 0]));
    const cell = (i: number) => rows[i]?.[1];
    const view = (rate: Rate | undefined, i: number): BucketView | null => {
      if (rate === undefined) return null;
      const windowId = windows[i];
      if (windowId !== undefined) return { capacity: rate.limit, available: Math.max(0, rate.limit - (used.get(windowId) ?? 0)) };
      return bucketView(rate, cell(i), at);
    };
    const dependencies: Record<string, LimiterSnapshot['dependencies'][string]> = {};
    deps.forEach(([name, p], i) => {
      dependencies[name] = {
        inFlight: live[i] ?? 0,
        concurrency: p.concurrency ?? null,
        rate: view(p.rate, i * 2),
        costRate: view(p.costRate, i * 2 + 1),
      };
    });
    const g = deps.length * 2;
    return {
      at,
      policyVersion: policy.version,
      dependencies,
      global: {
        inFlight: live[deps.length] ?? 0,
        concurrency: doc.global.concurrency ?? null,
        rate: doc.global.rate ? bucketView(doc.global.rate, cell(g), at) : null,
      },
    };
  }

  /** Live leases of the concurrency pools with these limit ids at `at`. */
  async #liveCounts(ids: readonly string[], at: number): Promise<number[]> {
    if (ids.length === 0) return [];
    const keys = ids.flatMap((id) => [this.keys.limit(id), this.keys.poolExpiries(this.keys.limit(id))]);
    return ((await this.store.run('count', keys, [at])) as number[]).map(Number);
  }
}

/**
 * A bucket's whole tokens at `at` from its HMGET t ts p r c row (a missing bucket is full), as
 * includes/bucket.lua's bucket_read computes them: stored at another period (p), the conservative
 * conversion; else (same period, or no p: written by an earlier version) refilled at the rate.
 */
function bucketView(rate: { limit: number; periodMs: number; burst?: number | undefined }, cell: unknown, at: number): BucketView {
  const capacity = rate.burst ?? rate.limit;
  return { capacity, available: Math.floor(bucketUnits(rate, cell, at)) };
}

/** What bucketView floors: the bucket's units at `at`, fractions included. */
function bucketUnits(rate: { limit: number; periodMs: number; burst?: number | undefined }, cell: unknown, at: number): number {
  const capacity = rate.burst ?? rate.limit;
  const [t, ts, p, r, c] = (Array.isArray(cell) ? cell : []) as (string | null | undefined)[];
  const full = capacity * rate.periodMs;
  if (t === null || t === undefined) return capacity;
  const stored = Number(t);
  const dt = Math.max(0, at - Number(ts ?? at));
  const period = p === null || p === undefined ? Number.NaN : Number(p);
  let tokens: number;
  if (!(period > 0) || period === rate.periodMs) {
    tokens = Math.min(full, stored + dt * rate.limit);
  } else {
    let old = stored + dt * Number(r ?? 0);
    if (c !== null && c !== undefined && old > Number(c)) old = Number(c);
    tokens = Math.floor(Math.min(full, (old * rate.periodMs) / period, (stored * rate.periodMs) / period + dt * rate.limit));
  }
  return tokens / rate.periodMs;
}
