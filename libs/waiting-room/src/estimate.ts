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
}

/**
 * The slowest rate a tenant's job of this type passes through (jobs per ms, in the units that rate
 * counts): the limit that decides how fast the tenant's backlog can drain at best.
 */
export function paceOf(policy: CompiledPolicy, tenant: string, type: string, cost: number | undefined): Pace {
  const jt = policy.jobType(type);
  const specs = policy.limitsFor(tenant, type);
  if (jt === undefined || specs === undefined) return { units: { perJob: true, estimate: 1 }, unitsPerMs: undefined };
  let slowest: { jobsPerMs: number; unitsPerMs: number; perJob: boolean; estimate: number } | undefined;
  for (const spec of specs) {
    if (spec.kind !== 'rate') continue;
    const unitsPerMs = spec.limit / spec.periodMs;
    const amount = Math.max(amountFor(spec, jt, cost), 1);
    const jobsPerMs = unitsPerMs / amount;
    if (slowest === undefined || jobsPerMs < slowest.jobsPerMs) {
      slowest = { jobsPerMs, unitsPerMs, perJob: spec.amount.per === 'job', estimate: Math.max(amountFor(spec, jt, undefined), 1) };
    }
  }
  if (slowest === undefined) return { units: { perJob: true, estimate: 1 }, unitsPerMs: undefined };
  return { units: { perJob: slowest.perJob, estimate: slowest.estimate }, unitsPerMs: slowest.unitsPerMs };
}

/**
 * `notBefore` (CONTRACT §3): the earliest the job can be admitted. The tenant's own jobs ahead of it
 * (same type, same or higher priority) go first; even with the whole binding rate to itself the
 * tenant needs `units ahead / rate` to pass them, and this job itself cannot pass before the refused
 * admission's `retryAfterMs` (exact for a rate or budget refusal). Other tenants' shares only make it
 * later, so the job is never admitted before this estimate — the dispatcher also holds it until then.
 * A concurrency limit alone gives no lower bound: a slot may free at any moment.
 */
export function notBefore(now: number, pace: Pace, unitsIncludingSelf: number, selfUnits: number, refused: { reason: RejectReason; retryAfterMs: number } | undefined): Date {
  const wait = refused !== undefined && RATE_REASONS.has(refused.reason) ? refused.retryAfterMs : 0;
  const drain = pace.unitsPerMs === undefined ? 0 : Math.max(0, unitsIncludingSelf - selfUnits) / pace.unitsPerMs;
  return new Date(now + wait + Math.floor(drain));
}
