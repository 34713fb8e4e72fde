import type { RejectReason } from '@janus/contracts';
import { amountFor, type CompiledPolicy } from '@janus/limiter';
import type { Units } from './store.js';

/** Rate reasons: their `retryAfterMs` is exact (token refill), not a guess. */
const RATE_REASONS: ReadonlySet<RejectReason> = new Set(['dependency_rate', 'dependency_cost_rate', 'tenant_rate', 'global_rate', 'budget_exhausted']);

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
 * `notBefore` (CONTRACT §3): a lower bound of the job's admission. The tenant's own jobs ahead of it
 * (same type, same or higher priority) go first; even with the whole binding rate to itself the
 * tenant needs their units to pass through it. After a rate refusal the bucket was empty: the job
 * waits the refusal's `retryAfterMs` and then the units ahead at the rate. Without one (the job
 * joined a non-empty room) the bucket may hold up to its burst, which the estimate grants. Other
 * tenants' shares only make it later; so does a concurrency limit (a slot may free at any moment,
 * which gives no bound). Measured in `npm run bench:queue` (admitted − notBefore).
 */
export function notBefore(now: number, pace: Pace, unitsIncludingSelf: number, selfUnits: number, refused: { reason: RejectReason; retryAfterMs: number } | undefined): Date {
  if (pace.unitsPerMs === undefined) return new Date(now);
  if (refused !== undefined && RATE_REASONS.has(refused.reason)) {
    return new Date(now + refused.retryAfterMs + Math.floor(Math.max(0, unitsIncludingSelf - selfUnits) / pace.unitsPerMs));
  }
  return new Date(now + Math.floor(Math.max(0, unitsIncludingSelf - pace.burst) / pace.unitsPerMs));
}
