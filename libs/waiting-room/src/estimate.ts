import type { RejectReason } from '@janus/contracts';
import { amountFor, type CompiledPolicy } from '@janus/limiter';
import type { Units } from './store.js';

export interface Pace {
  /** What a job of this type takes of its binding limit. */
  readonly units: Units;
  /** The binding rate in units per ms, or undefined when no rate limits the type for this tenant. */
  readonly unitsPerMs: number | undefined;
  /** Its bucket's size: at best that many units pass at once. */
  readonly burst: number;
}

/**
 * The slowest rate a tenant's job of this type passes through (jobs per ms, in the units that rate
 * counts): the limit that decides how fast the tenant's backlog can drain at best.
 */
export function paceOf(policy: CompiledPolicy, tenant: string, type: string, cost: number | undefined): Pace {
  const jt = policy.jobType(type);
  const specs = policy.limitsFor(tenant, type);
  if (jt === undefined || specs === undefined) return { units: { perJob: true, estimate: 1 }, unitsPerMs: undefined, burst: 0 };
  let slowest: { jobsPerMs: number; unitsPerMs: number; perJob: boolean; estimate: number; burst: number } | undefined;
  for (const spec of specs) {
    if (spec.kind !== 'rate') continue;
    const unitsPerMs = spec.limit / spec.periodMs;
    const amount = Math.max(amountFor(spec, jt, cost), 1);
    const jobsPerMs = unitsPerMs / amount;
    if (slowest === undefined || jobsPerMs < slowest.jobsPerMs) {
      slowest = { jobsPerMs, unitsPerMs, perJob: spec.amount.per === 'job', estimate: Math.max(amountFor(spec, jt, undefined), 1), burst: spec.capacity };
    }
  }
  if (slowest === undefined) return { units: { perJob: true, estimate: 1 }, unitsPerMs: undefined, burst: 0 };
  return { units: { perJob: slowest.perJob, estimate: slowest.estimate }, unitsPerMs: slowest.unitsPerMs, burst: slowest.burst };
}

/**
 * What bounds, from below, when a tenant's job of this type can be admitted: the rates that count
 * JOBS on its way (CONTRACT §2 `rate`, per dependency, per tenant on a dependency, tenant, global).
 * Nothing counted in cost units gives a bound — `costRate`s and budgets are settled later at the
 * actual cost, which may give units back at any moment (CONTRACT §3) — nor does a concurrency limit
 * (a slot may free at any moment).
 */
export interface JobBound {
  /**
   * The token buckets counting jobs: refill per ms, size, and the reason a refusal by one names;
   * and what the limiter needs to read how full each is now (`id`, `limit`, `periodMs`, `capacity`:
   * Limiter.bucketLevels).
   */
  readonly buckets: readonly JobBucket[];
  /** The reasons of sliding windows counting jobs: a refusal by one gives no bound (an entry may leave at any moment). */
  readonly windowReasons: ReadonlySet<RejectReason>;
}

export interface JobBucket {
  readonly perMs: number;
  readonly burst: number;
  readonly reason: RejectReason;
  readonly id: string;
  readonly limit: number;
  readonly periodMs: number;
  readonly capacity: number;
}

const SCOPE_REASON: Readonly<Record<'dependency' | 'tenant' | 'global', RejectReason>> = { dependency: 'dependency_rate', tenant: 'tenant_rate', global: 'global_rate' };

export function jobBoundOf(policy: CompiledPolicy, tenant: string, type: string): JobBound {
  const buckets: JobBucket[] = [];
  const windowReasons = new Set<RejectReason>();
  for (const spec of policy.limitsFor(tenant, type) ?? []) {
    if ((spec.kind !== 'rate' && spec.kind !== 'window') || spec.amount.per !== 'job') continue;
    const reason = SCOPE_REASON[spec.ref.scope];
    if (spec.kind === 'window') windowReasons.add(reason);
    else buckets.push({ perMs: spec.limit / spec.periodMs, burst: spec.capacity, reason, id: spec.id, limit: spec.limit, periodMs: spec.periodMs, capacity: spec.capacity });
  }
  return { buckets, windowReasons };
}

/**
 * `notBefore` (CONTRACT §3: "it is never admitted earlier"): a lower bound of the admission of a job
 * with `jobsIncludingSelf − 1` of its tenant's jobs of its type ahead of it (same or higher priority:
 * they go first). Every job-counting bucket on its way lets at most what it holds at once and then
 * its declared rate (an adaptive dependency's effective rate is never higher), so the n jobs need at
 * least (n − held) / rate: `held` is what the bucket holds now when `levels` says (read after `now`:
 * Limiter.bucketLevels; other tenants only take from it, and it refills no faster), else its size.
 * Before levels were read (until 2026-12-02), jobs queued behind others on an empty bucket were told
 * a whole bucket earlier than they could run. A refusal by such a bucket (`refused`, the answer of the admission tried
 * just before) says it held less than one job's worth: then (n − 1) / rate — from the slowest of the
 * buckets the reason may name, as a reason does not say which one refused. The dispatcher never admits
 * a job before its `notBefore` (jobs ahead that are cancelled do not make the others early), so the
 * bound is kept low rather than likely: measured in `npm run bench:queue` (admitted − notBefore).
 */
export function notBefore(now: number, bound: JobBound, jobsIncludingSelf: number, refused?: { reason: RejectReason; retryAfterMs: number }, levels?: ReadonlyMap<string, number>): Date {
  const n = jobsIncludingSelf;
  let ms = 0;
  for (const b of bound.buckets) ms = Math.max(ms, (n - Math.min(b.burst, levels?.get(b.id) ?? b.burst)) / b.perMs);
  if (refused !== undefined && !bound.windowReasons.has(refused.reason)) {
    const named = bound.buckets.filter((b) => b.reason === refused.reason);
    if (named.length > 0) ms = Math.max(ms, Math.min(...named.map((b) => (n - 1) / b.perMs)));
  }
  // A job rate's refusal also says when it has a job's worth again (`retryAfterMs`, counted from the
  // limiter's decision, after `now`): its refill is fixed, nothing gives its units back early (a
  // revoke aside). A cost rate's is not a bound (a settle below the estimate gives units back), nor a
  // concurrency's, a budget's or a pause's (a lease ends, a resume comes when it comes).
  if (refused !== undefined && RATE_REFILL_REASONS.has(refused.reason) && Number.isFinite(refused.retryAfterMs)) ms = Math.max(ms, refused.retryAfterMs);
  return new Date(now + Math.max(0, Math.floor(ms)));
}

/** Refusals whose `retryAfterMs` is when a job-counting rate has room again (see notBefore). */
const RATE_REFILL_REASONS: ReadonlySet<RejectReason> = new Set<RejectReason>(['dependency_rate', 'tenant_rate', 'global_rate']);
