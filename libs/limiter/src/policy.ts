import type { JobTypePolicy, PolicyDocument, Priority, Rate, RejectReason, RetryPolicy } from '@janus/contracts';
import { limitId } from './keys.js';
import type { AdmissionRequest, ExceedsCapacity, LimitRef, PriorityShare } from './types.js';

/** What a limit counts per job: one job, the job's cost on one dependency, or its budget estimate. */
export type LimitAmount = { readonly per: 'job' } | { readonly per: 'cost'; readonly defaultCost: number } | { readonly per: 'estimate' };

export interface RateLimitSpec {
  /** Which limit of the policy this is (named in an `exceeds_capacity` answer). */
  readonly ref: LimitRef;
  readonly kind: 'rate';
  readonly id: string;
  readonly reason: RejectReason;
  /** Bucket size (`burst`, default `limit`). */
  readonly capacity: number;
  readonly limit: number;
  readonly periodMs: number;
  readonly amount: LimitAmount;
  /** The id of its dependency's guard when the dependency is adaptive: the guard's ratio scales it. */
  readonly guard?: string;
}

/** A sliding window (rate `kind: "window"`): at most `capacity` (the rate's limit) units in any `periodMs`. */
export interface WindowSpec {
  readonly ref: LimitRef;
  readonly kind: 'window';
  readonly id: string;
  readonly reason: RejectReason;
  readonly capacity: number;
  readonly periodMs: number;
  readonly amount: LimitAmount;
  /** As for a rate. */
  readonly guard?: string;
}

/**
 * A dependency's or job type's guard: an admin's pause (CONTRACT §5 v1.1) and, for an adaptive
 * dependency (§2 `adaptive`), its cooldown, effective-rate ratio and outage circuit, set by worker
 * feedback (Limiter.feedback). No capacity of its own.
 */
export interface GuardSpec {
  readonly ref: LimitRef;
  readonly kind: 'guard';
  readonly id: string;
  /** What it guards: a dependency, or a job type (only pausable). */
  readonly guards: { readonly dependency: string } | { readonly jobType: string };
  readonly reason: 'dependency_unavailable';
  readonly capacity: null;
  readonly adaptive: boolean;
  readonly minRatio: number;
  readonly amount: LimitAmount;
}

/**
 * A dependency's attempt counters: first attempts are counted, retries (attempt > 1) are checked
 * against the retry budget (CONTRACT §2 `retryBudget`): over the last 10 s, retries ≤ ratio × first
 * attempts + minPerSec × 10.
 */
export interface AttemptsSpec {
  readonly ref: LimitRef;
  readonly kind: 'attempts';
  readonly id: string;
  readonly dependency: string;
  readonly reason: 'retry_budget';
  readonly capacity: null;
  readonly ratio: number;
  /** minPerSec × 10: retries allowed over the window whatever the first attempts. */
  readonly allowance: number;
  readonly amount: LimitAmount;
}

export interface ConcurrencySpec {
  /** Which limit of the policy this is (named in an `exceeds_capacity` answer). */
  readonly ref: LimitRef;
  readonly kind: 'concurrency';
  readonly id: string;
  readonly reason: RejectReason;
  /** Null when the pool is only tracked (for usage and inspect), not limited. */
  readonly capacity: number | null;
  readonly amount: LimitAmount;
}

export interface BudgetSpec {
  /** Which limit of the policy this is (named in an `exceeds_capacity` answer). */
  readonly ref: LimitRef;
  readonly kind: 'budget';
  readonly id: string;
  readonly reason: 'budget_exhausted';
  readonly capacity: number;
  readonly periodMs: number;
  readonly amount: LimitAmount;
}

/**
 * A tenant's prepaid credits (CONTRACT §2 Tenant "Credits"): in every tenant's list, but it limits
 * only a tenant with a credit account (its balance is the cap, state in Redis; no capacity in the
 * policy, so never `exceeds_capacity`). A job reserves its estimate, as for a budget.
 */
export interface CreditsSpec {
  readonly ref: LimitRef;
  readonly kind: 'credits';
  readonly id: string;
  readonly reason: 'credits_exhausted';
  readonly capacity: null;
  readonly amount: LimitAmount;
}

export type LimitSpec = RateLimitSpec | WindowSpec | ConcurrencySpec | BudgetSpec | GuardSpec | AttemptsSpec | CreditsSpec;

export interface CompiledJobType {
  readonly name: string;
  readonly dependencies: readonly { readonly name: string; readonly cost: number }[];
  readonly timeoutMs: number;
  readonly idempotencyWindowMs: number;
  readonly maxPayloadBytes: number;
  readonly retry: RetryPolicy;
  readonly retryPriority: Priority;
  /** Budget reserved at admission when the request gives no cost: the sum of dependency costs, or 1. */
  readonly estimate: number;
  /** True when every dependency is `failMode: open` (and there is at least one): callers may admit when Redis is down. */
  readonly failOpen: boolean;
}

export interface CompiledPolicy {
  readonly version: number;
  readonly document: PolicyDocument;
  readonly jobTypes: ReadonlyMap<string, CompiledJobType>;
  readonly shedding: { readonly low: number; readonly normal: number };
  /** Longest job type timeout: how long state-loss recovery keeps admission closed. */
  readonly maxTimeoutMs: number;
  jobType(name: string): CompiledJobType | undefined;
  /** Every limit a job touches, in the contract's admission order. Undefined for an unknown job type. */
  limitsFor(tenant: string, jobType: string): readonly LimitSpec[] | undefined;
  /** `ceil(share × capacity)` for the priority (high: capacity). */
  shareOf(priority: Priority, capacity: number): number;
}

/** How many units of a limit one job consumes. `cost` (from the request) overrides every dependency cost. */
export function amountFor(spec: LimitSpec, jobType: CompiledJobType, cost: number | undefined): number {
  switch (spec.amount.per) {
    case 'job':
      return 1;
    case 'cost':
      return cost ?? spec.amount.defaultCost;
    case 'estimate':
      return cost ?? jobType.estimate;
  }
}

/**
 * Whether a request can never be admitted, however long it waits (CONTRACT §3 v1.1): its jobs
 * together take more of some limit than the limit's capacity (a rate's burst, a costRate's bucket, a
 * budget's limit, a concurrency limit), or, for a `low` or `normal` job, more than its priority's
 * share of it (priority shedding: then the answer's limit carries `priorityShare`). Capacities are static, so this is decided from the compiled
 * policy before Redis is asked. Names the job at which the request first goes over (ties: the first
 * limit in admission order) and what the whole request takes of that limit. Undefined when every
 * limit could hold the request, or a job type is unknown (the caller answers that).
 * Tracked-only pools (no limit) are never over; idempotent replays are counted like new jobs.
 */
export function exceedsCapacity(policy: CompiledPolicy, request: AdmissionRequest): ExceedsCapacity | undefined {
  const { jobs } = request;
  let taken: Map<string, number> | undefined;
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    const jt = policy.jobType(job.jobType);
    const specs = policy.limitsFor(job.tenant, job.jobType);
    if (jt === undefined || specs === undefined) return undefined;
    for (const spec of specs) {
      if (spec.capacity === null) continue;
      const amount = amountFor(spec, jt, job.cost);
      let total = amount;
      if (jobs.length > 1) {
        taken ??= new Map();
        total += taken.get(spec.id) ?? 0;
        taken.set(spec.id, total);
      }
      // Priority shedding (CONTRACT §2 Global): a `low` or `normal` job is admitted only while the
      // limit, after it, uses at most its priority's share, ceil(share × capacity). Even an empty
      // limit (the earlier jobs of the request in it) cannot admit a job over that bound.
      const bound = policy.shareOf(job.priority, spec.capacity);
      if (total > bound) {
        const limit: CapacityLimit = { ...spec.ref, capacity: spec.capacity, requested: requestedOf(policy, request, spec) };
        const shed: PriorityShare | undefined =
          bound < spec.capacity && job.priority !== 'high' ? { priority: job.priority, share: policy.shedding[job.priority], capacity: bound } : undefined;
        return { kind: 'exceeds_capacity', index: i, limit: shed === undefined ? limit : { ...limit, priorityShare: shed } };
      }
    }
  }
  return undefined;
}

type CapacityLimit = ExceedsCapacity['limit'];

/** The priority share an `exceeds_capacity` limit names, if the share (not the capacity) is the bound. */
export function priorityShareOf(limit: CapacityLimit): PriorityShare | undefined {
  return limit.priorityShare;
}

/** What every job of a request takes of one limit. */
function requestedOf(policy: CompiledPolicy, request: AdmissionRequest, spec: LimitSpec): number {
  let total = 0;
  for (const job of request.jobs) {
    const jt = policy.jobType(job.jobType);
    if (jt !== undefined && policy.limitsFor(job.tenant, job.jobType)?.some((s) => s.id === spec.id)) total += amountFor(spec, jt, job.cost);
  }
  return total;
}

/** Budget reserved for one job. */
export function estimateFor(jobType: CompiledJobType, cost: number | undefined): number {
  return cost ?? jobType.estimate;
}

/** `ceil(share × capacity)`, immune to binary noise such as 0.7 × 100 = 70.00000000000001. */
export function shareCapacity(share: number, capacity: number): number {
  return Math.max(0, Math.min(capacity, Math.ceil(share * capacity - 1e-9)));
}

function compileJobType(name: string, policy: JobTypePolicy, doc: PolicyDocument): CompiledJobType {
  const dependencies = Object.freeze(policy.dependencies.map((d) => Object.freeze({ name: d.name, cost: d.cost })));
  const sum = dependencies.reduce((total, d) => total + d.cost, 0);
  return Object.freeze({
    name,
    dependencies,
    timeoutMs: policy.timeoutMs,
    idempotencyWindowMs: policy.idempotencyWindowMs,
    maxPayloadBytes: policy.maxPayloadBytes,
    retry: Object.freeze({ ...policy.retry }),
    retryPriority: policy.retryPriority,
    estimate: dependencies.length === 0 ? 1 : sum,
    failOpen: dependencies.length > 0 && dependencies.every((d) => own(doc.dependencies, d.name)?.failMode === 'open'),
  });
}

const JOB = Object.freeze({ per: 'job' as const });
const ESTIMATE = Object.freeze({ per: 'estimate' as const });

function buildLimits(doc: PolicyDocument, tenant: string, jobType: CompiledJobType): readonly LimitSpec[] {
  // The job type's guard first: a paused job type answers `paused` before anything else.
  const limits: LimitSpec[] = [
    { kind: 'guard', id: limitId.jobTypeGuard(jobType.name), guards: { jobType: jobType.name }, reason: 'dependency_unavailable', capacity: null, adaptive: false, minRatio: 1, amount: JOB, ref: Object.freeze({ scope: 'global', kind: 'rate', per: 'job' }) },
  ];
  // A window keeps its state under its own key (':win'), so that changing a rate's kind starts afresh.
  const rate = (id: string, reason: RejectReason, r: Rate, amount: LimitAmount, ref: LimitRef, guard?: string) =>
    limits.push(
      r.kind === 'window'
        ? { kind: 'window', id: `${id}:win`, reason, capacity: r.limit, periodMs: r.periodMs, amount, ref: Object.freeze(ref), ...(guard ? { guard } : {}) }
        : { kind: 'rate', id, reason, capacity: r.burst ?? r.limit, limit: r.limit, periodMs: r.periodMs, amount, ref: Object.freeze(ref), ...(guard ? { guard } : {}) },
    );
  const ref = (scope: LimitRef['scope'], kind: LimitRef['kind'], names: { dependency?: string; tenant?: string } = {}): LimitRef =>
    Object.freeze({ scope, ...names, kind, per: kind === 'costRate' || kind === 'budget' ? 'cost' : 'job' });
  for (const dep of jobType.dependencies) {
    const p = own(doc.dependencies, dep.name);
    if (p === undefined) continue; // impossible for a validated document
    const cost = Object.freeze({ per: 'cost' as const, defaultCost: dep.cost });
    const d = { dependency: dep.name };
    const dt = { dependency: dep.name, tenant };
    // A dependency's guard comes first: a pause, a cooldown or an open circuit answers before any count.
    const adaptive = p.adaptive?.enabled ?? true;
    const guard = limitId.depGuard(dep.name);
    limits.push({ kind: 'guard', id: guard, guards: { dependency: dep.name }, reason: 'dependency_unavailable', capacity: null, adaptive, minRatio: p.adaptive?.minRatio ?? 0.1, amount: JOB, ref: ref('dependency', 'rate', d) });
    if (p.rate) rate(limitId.depRate(dep.name), 'dependency_rate', p.rate, JOB, ref('dependency', 'rate', d), guard);
    if (p.costRate) rate(limitId.depCostRate(dep.name), 'dependency_cost_rate', p.costRate, cost, ref('dependency', 'costRate', d), guard);
    // Every concurrency pool a job belongs to is always tracked (written; checked only when limited), so
    // that usage() and inspect() report in-flight jobs and a limit added later counts running jobs.
    limits.push({
      kind: 'concurrency',
      id: limitId.depConcurrency(dep.name),
      reason: 'dependency_concurrency',
      capacity: p.concurrency ?? null,
      amount: JOB,
      ref: ref('dependency', 'concurrency', d),
    });
    if (p.perTenant?.rate) rate(limitId.depTenantRate(dep.name, tenant), 'dependency_rate', p.perTenant.rate, JOB, ref('dependency', 'rate', dt));
    if (p.perTenant?.costRate) rate(limitId.depTenantCostRate(dep.name, tenant), 'dependency_cost_rate', p.perTenant.costRate, cost, ref('dependency', 'costRate', dt));
    limits.push({
      kind: 'concurrency',
      id: limitId.depTenantConcurrency(dep.name, tenant),
      reason: 'dependency_concurrency',
      capacity: p.perTenant?.concurrency ?? null,
      amount: JOB,
      ref: ref('dependency', 'concurrency', dt),
    });
    limits.push({
      kind: 'attempts',
      id: limitId.depAttempts(dep.name),
      dependency: dep.name,
      reason: 'retry_budget',
      capacity: null,
      ratio: p.retryBudget?.ratio ?? 0.2,
      allowance: Math.floor((p.retryBudget?.minPerSec ?? 10) * 10),
      amount: JOB,
      ref: ref('dependency', 'rate', d),
    });
  }
  const t = own(doc.tenants, tenant);
  const tn = { tenant };
  if (t?.rate) rate(limitId.tenantRate(tenant), 'tenant_rate', t.rate, JOB, ref('tenant', 'rate', tn));
  // The tenant and global pools are tracked for every job too, limited or not: a concurrency limit
  // added while jobs run then counts those jobs (CONTRACT §6.1).
  limits.push({
    kind: 'concurrency',
    id: limitId.tenantConcurrency(tenant),
    reason: 'tenant_concurrency',
    capacity: t?.concurrency ?? null,
    amount: JOB,
    ref: ref('tenant', 'concurrency', tn),
  });
  if (doc.global.rate) rate(limitId.globalRate(), 'global_rate', doc.global.rate, JOB, ref('global', 'rate'));
  limits.push({
    kind: 'concurrency',
    id: limitId.globalConcurrency(),
    reason: 'global_concurrency',
    capacity: doc.global.concurrency ?? null,
    amount: JOB,
    ref: ref('global', 'concurrency'),
  });
  if (t?.budget) {
    limits.push({
      kind: 'budget',
      id: limitId.tenantBudget(tenant),
      reason: 'budget_exhausted',
      capacity: t.budget.limit,
      periodMs: t.budget.periodMs,
      amount: ESTIMATE,
      ref: ref('tenant', 'budget', tn),
    });
  }
  // Credits come last: checked with every other limit, limiting only a tenant with an account.
  limits.push({ kind: 'credits', id: limitId.tenantCredits(tenant), reason: 'credits_exhausted', capacity: null, amount: ESTIMATE, ref: ref('tenant', 'budget', tn) });
  return Object.freeze(limits.map((l) => Object.freeze(l)));
}

/**
 * Compiles a validated policy document into an immutable structure. Swap it into a running
 * Limiter with `setPolicy` (one reference assignment: admissions see the old or the new policy,
 * never a mix). Per-tenant limit lists are built on first use and memoised inside the compiled
 * policy, so an unknown tenant (no tenant entry) simply has no tenant limits.
 */
export function compilePolicy(doc: PolicyDocument, version: number): CompiledPolicy {
  const jobTypes = new Map<string, CompiledJobType>();
  for (const [name, jt] of Object.entries(doc.jobTypes)) jobTypes.set(name, compileJobType(name, jt, doc));
  const memo = new Map<string, readonly LimitSpec[]>();
  const shedding = Object.freeze({ low: doc.global.shedding.low, normal: doc.global.shedding.normal });
  const maxTimeoutMs = Math.max(0, ...[...jobTypes.values()].map((j) => j.timeoutMs));
  const frozenDoc = deepFreeze(withNamedRecords(structuredClone(doc)));
  const compiled: CompiledPolicy = {
    version,
    document: frozenDoc,
    jobTypes,
    shedding,
    maxTimeoutMs,
    jobType: (name) => jobTypes.get(name),
    limitsFor(tenant, jobTypeName) {
      const jt = jobTypes.get(jobTypeName);
      if (jt === undefined) return undefined;
      const memoKey = `${tenant}\u0000${jobTypeName}`;
      let limits = memo.get(memoKey);
      if (limits === undefined) {
        limits = buildLimits(frozenDoc, tenant, jt);
        if (memo.size > 100_000) memo.clear();
        memo.set(memoKey, limits);
      }
      return limits;
    },
    shareOf(priority, capacity) {
      if (priority === 'high') return capacity;
      return shareCapacity(priority === 'low' ? shedding.low : shedding.normal, capacity);
    },
  };
  return Object.freeze(compiled);
}

/** A record's own entry: a name such as `constructor` never finds a member of Object.prototype. */
function own<T>(record: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

/**
 * The document's named records without a prototype, so that every reader of `policy.document`
 * (`document.tenants[tenant]`, `name in document.jobTypes` …) finds only the policy's own entries,
 * whatever the name (`constructor` is one).
 */
function withNamedRecords(doc: PolicyDocument): PolicyDocument {
  const bare = <T>(record: Record<string, T>): Record<string, T> => Object.assign(Object.create(null) as Record<string, T>, record);
  return { ...doc, dependencies: bare(doc.dependencies), tenants: bare(doc.tenants), jobTypes: bare(doc.jobTypes) };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
