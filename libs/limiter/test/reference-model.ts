// A small, independent TypeScript model of the admission rules, for the property test.
// It knows one fixed policy (MODEL_POLICY) and implements CONTRACT §2 literally: shedding first,
// then dependency, tenant and budget limits; integer token buckets; leases that stop counting at expiry.
import type { Priority } from '@janus/contracts';
import { shareCapacity } from '../src/index.js';

export const MODEL_POLICY = {
  dependencies: { api: { rate: { limit: 5, periodMs: 100, burst: 3 }, concurrency: 3, perTenant: { concurrency: 2 } } },
  tenants: { a: { budget: { limit: 20, periodMs: 1000 } }, b: { rate: { limit: 2, periodMs: 100 } } },
  global: { shedding: { low: 0.5, normal: 0.8 } },
  jobTypes: { call: { dependencies: [{ name: 'api', cost: 2 }], timeoutMs: 300 } },
};
const SHARE = { high: 1, normal: 0.8, low: 0.5 } as const;
const TIMEOUT = 300;

interface Bucket {
  cap: number; // tokens × periodMs
  refill: number; // per ms
  scale: number;
  t: number | null;
  ts: number;
}
interface ModelLease {
  id: number;
  tenant: string;
  exp: number;
  reserved: number;
  window: number | null;
  state: 'active' | 'settled' | 'expired';
}
type Limit =
  | { kind: 'rate'; reason: string; bucket: Bucket; burst: number }
  | { kind: 'conc'; reason: string; cap: number; pool: (l: ModelLease) => boolean }
  | { kind: 'budget'; reason: string; cap: number; period: number };

export type ModelDecision = { kind: 'admitted'; id: number } | { kind: 'rejected'; reason: string; retryAfterMs: number };

export class ReferenceModel {
  leases: ModelLease[] = [];
  depRate: Bucket = { cap: 300, refill: 5, scale: 100, t: null, ts: 0 };
  tenantBRate: Bucket = { cap: 200, refill: 2, scale: 100, t: null, ts: 0 };
  budgetA = { w: -1, u: 0 };

  private tokens(b: Bucket, now: number): number {
    if (b.t === null) return b.cap;
    return now > b.ts ? Math.min(b.cap, b.t + (now - b.ts) * b.refill) : b.t;
  }

  private limitsFor(tenant: string): Limit[] {
    const limits: Limit[] = [
      { kind: 'rate', reason: 'dependency_rate', bucket: this.depRate, burst: 3 },
      { kind: 'conc', reason: 'dependency_concurrency', cap: 3, pool: () => true },
      { kind: 'conc', reason: 'dependency_concurrency', cap: 2, pool: (l) => l.tenant === tenant },
    ];
    if (tenant === 'b') limits.push({ kind: 'rate', reason: 'tenant_rate', bucket: this.tenantBRate, burst: 2 });
    if (tenant === 'a') limits.push({ kind: 'budget', reason: 'budget_exhausted', cap: 20, period: 1000 });
    return limits;
  }

  private live(now: number, pool: (l: ModelLease) => boolean): ModelLease[] {
    return this.leases.filter((l) => l.state === 'active' && l.exp > now && pool(l));
  }

  /** Used units, share capacity and amount of one limit, all in the limit's own units. */
  private view(limit: Limit, priority: Priority, now: number, cost: number) {
    switch (limit.kind) {
      case 'rate':
        return { used: limit.bucket.cap - this.tokens(limit.bucket, now), cap: limit.bucket.cap, capP: shareCapacity(SHARE[priority], limit.burst) * limit.bucket.scale, amount: limit.bucket.scale };
      case 'conc':
        return { used: this.live(now, limit.pool).length, cap: limit.cap, capP: shareCapacity(SHARE[priority], limit.cap), amount: 1 };
      case 'budget': {
        const ws = now - (now % limit.period);
        return { used: this.budgetA.w === ws ? this.budgetA.u : 0, cap: limit.cap, capP: shareCapacity(SHARE[priority], limit.cap), amount: cost };
      }
    }
  }

  admit(id: number, tenant: string, priority: Priority, cost: number | undefined, now: number): ModelDecision {
    const limits = this.limitsFor(tenant);
    const estimate = cost ?? 2;
    const views = limits.map((l) => this.view(l, priority, now, estimate));
    let reason: string | undefined;
    views.forEach((v) => {
      if (reason === undefined && v.capP < v.cap && v.used + v.amount > v.capP) reason = 'shed';
    });
    views.forEach((v, i) => {
      if (reason === undefined && v.used + v.amount > v.cap) reason = limits[i]!.reason;
    });
    if (reason !== undefined) {
      // A full pool's earliest expiry is only a guess: it counts only when no rate or budget is over.
      let wait = 0;
      let guess = 0;
      limits.forEach((limit, i) => {
        const v = views[i]!;
        const slack = v.capP - v.amount;
        if (v.used <= slack) return;
        let w: number;
        if (limit.kind === 'rate') w = Math.ceil((slack < 0 ? v.used : v.used - slack) / limit.bucket.refill);
        else if (limit.kind === 'budget') w = now - (now % limit.period) + limit.period - now;
        else {
          const exps = this.live(now, limit.pool).map((l) => l.exp);
          guess = Math.max(guess, exps.length > 0 ? Math.min(...exps) - now : 1000);
          return;
        }
        wait = Math.max(wait, w);
      });
      return { kind: 'rejected', reason, retryAfterMs: Math.max(1, wait >= 1 ? wait : guess) };
    }
    let window: number | null = null;
    limits.forEach((limit) => {
      if (limit.kind === 'rate') {
        limit.bucket.t = this.tokens(limit.bucket, now) - limit.bucket.scale;
        limit.bucket.ts = now;
      } else if (limit.kind === 'budget') {
        const ws = now - (now % limit.period);
        if (this.budgetA.w !== ws) this.budgetA = { w: ws, u: 0 };
        this.budgetA.u += estimate;
        window = ws;
      }
    });
    this.leases.push({ id, tenant, exp: now + TIMEOUT, reserved: tenant === 'a' ? estimate : 0, window, state: 'active' });
    return { kind: 'admitted', id };
  }

  settle(id: number, actual: number | undefined, now: number): 'ok' | 'expired' | 'already_settled' {
    const lease = this.leases.find((l) => l.id === id)!;
    if (lease.state === 'expired') return 'expired';
    if (lease.state !== 'active') return 'already_settled';
    if (lease.exp <= now) return 'expired';
    lease.state = 'settled';
    if (actual !== undefined && lease.window !== null && this.budgetA.w === lease.window) {
      this.budgetA.u = Math.max(0, this.budgetA.u + actual - lease.reserved);
    }
    return 'ok';
  }

  reap(now: number): number[] {
    const out = this.leases.filter((l) => l.state === 'active' && l.exp <= now);
    for (const l of out) l.state = 'expired';
    return out.map((l) => l.id).sort((x, y) => x - y);
  }
}
