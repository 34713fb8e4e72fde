import { z } from 'zod';
import { MAX_DEDUPE_WINDOW_MS } from './dedupe.js';
import { Name, NAME_PATTERN } from './names.js';

/**
 * Upper bounds of every number in the policy model (docs/policy.md "Bounds"): what the admin API
 * accepts (`AcceptedPolicy`), so that every accepted policy works — every date Janus computes from
 * it is a valid date, and the limiter's integer arithmetic (Lua doubles, exact below 2^53) stays
 * exact. A policy stored before these bounds still loads (`PolicyDocument` does not check them).
 */
export const POLICY_BOUNDS = {
  /**
   * Any duration — a rate's or a budget's `periodMs`, retry delays, `idempotencyWindowMs` — and how
   * far ahead a pause's `until` may be: 10 years of 365 days. `now + duration` stays far inside a
   * JavaScript Date (±8.64e15 ms) and far below 2^53 in Lua's ms arithmetic.
   */
  maxDurationMs: 315_360_000_000,
  /**
   * A job type's `timeoutMs` (its lease): 7 days. Also the NATS consumer's `ack_wait`, and how long
   * admission stays closed after a Redis state loss that cannot be rebuilt (the longest timeout).
   */
  maxTimeoutMs: 604_800_000,
  /** A count: a rate's `limit` and `burst`, a `concurrency`, a dependency `cost`, `maxQueued`: 10^9. */
  maxCount: 1_000_000_000,
  /**
   * A token bucket (rate `kind: "bucket"`) is stored as tokens × periodMs (libs/limiter/src/lua/includes/bucket.lua):
   * its capacity `(burst ?? limit) × periodMs` must be at most 2^53 − 1, so that every amount
   * (cost × periodMs ≤ the capacity) is an exact integer in Lua and TypeScript.
   */
  maxBucketScaled: Number.MAX_SAFE_INTEGER,
  /** A budget's `limit` in cost units: 10^15 (used + reserved stay exact integers below 2^53). */
  maxBudget: 1_000_000_000_000_000,
  /**
   * `maxPayloadBytes`: 1,000,000. The job message (CONTRACT §4) wraps the payload in about 1 KiB of
   * JSON and must fit NATS's default max_payload of 1 MiB (1,048,576 bytes).
   */
  maxPayloadBytes: 1_000_000,
  /** `retry.maxAttempts`: 100. */
  maxAttempts: 100,
  /** A tenant's `weight`: 0.001 to 1000 (the waiting room's fair shares are weight ratios). */
  minWeight: 0.001,
  maxWeight: 1000,
  /** `adaptive.minRatio` ≥ 10^-6: the limiter keeps ratios in parts per million. */
  minMinRatio: 0.000_001,
  /**
   * One credits top-up's `amount` (`POST /v1/tenants/{id}/credits`): 10^12, so that a balance stays
   * an exact integer (below 2^53) through thousands of maximal top-ups.
   */
  maxCreditsTopUp: 1_000_000_000_000,
} as const;

/**
 * The keys of a policy record (dependencies, tenants, job types) are names, reported as zod's
 * records report a bad key (`invalid_key` at the key's path), and checked even when a value is
 * invalid, so that every problem is listed at once. The records are `z.object({}).catchall(…)`
 * with this check rather than `z.record(Name, …)`: zod's record refuses an object with an own
 * `constructor` member ("expected record, received object"), and `constructor` is a valid name.
 */
const keysAreNames = z.check<Record<string, unknown>>((payload) => {
  const bad: z.core.$ZodRawIssue[] = [];
  for (const key of Object.keys(payload.value)) {
    const name = Name.safeParse(key);
    if (!name.success) bad.push({ code: 'invalid_key', origin: 'record', issues: name.error.issues, input: key, path: [key], message: 'Invalid key in record' });
  }
  // before the values' issues (this record's own), as zod's record lists a bad key at its place
  payload.issues.unshift(...bad);
});
// Run even when a value is invalid (zod skips a check once there is an issue): every problem at once.
keysAreNames._zod.def.when = (payload) => typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value);

/**
 * A check across the fields of an object (`baseDelayMs` ≤ `maxDelayMs` …), on the write path only
 * (AcceptedPolicy): it runs once every field is valid on its own, so that a field out of its range
 * is reported alone, and names the field with `issue(field, message)`.
 */
function acrossFields<T>(check: (value: T, issue: (field: string, message: string) => void) => void): z.core.$ZodCheck<T> {
  return z.check<T>((payload) => {
    if (payload.issues.length > 0) return;
    check(payload.value, (field, message) => payload.issues.push({ code: 'custom', path: [field], message, input: payload.value }));
  });
}

/**
 * The policy schemas. `bounded` (what the admin API accepts): every number within POLICY_BOUNDS,
 * and a job type's `dependencies` required (CONTRACT §2). Unbounded: how a stored policy is read
 * back, so that a policy stored before the bounds (or without `dependencies`, read as `[]`) loads.
 */
function policySchemas(bounded: boolean) {
  const B = POLICY_BOUNDS;
  const int = (min: number, max: number) => (bounded ? z.number().int().min(min).max(max) : z.number().int().min(min));
  const count = (min = 1) => int(min, B.maxCount);
  const duration = (min = 1, max: number = B.maxDurationMs) => int(min, max);

  /**
   * `kind` (v1.1): `bucket` (absent = bucket) is a token bucket of `burst` (default `limit`) refilled at
   * `limit` per `periodMs` — up to `burst + limit` in one period; `window` admits at most `limit` in
   * ANY `periodMs` (a sliding window; `burst` does not apply and is ignored).
   */
  const RateShape = z.strictObject({
    limit: count(),
    periodMs: duration(),
    burst: count().optional(),
    kind: z.enum(['bucket', 'window']).optional(),
  });
  const Rate = bounded
    ? RateShape.superRefine((r, ctx) => {
        if (r.kind === 'window') return;
        const size = r.burst ?? r.limit;
        if (size * r.periodMs > B.maxBucketScaled) {
          ctx.addIssue({
            code: 'custom',
            path: [r.burst === undefined ? 'limit' : 'burst'],
            message: `${r.burst === undefined ? 'limit' : 'burst'} × periodMs must be at most 2^53 − 1 (${B.maxBucketScaled}): with periodMs ${r.periodMs}, at most ${Math.floor(B.maxBucketScaled / r.periodMs)}`,
          });
        }
      })
    : RateShape;

  const RetryBudgetShape = z.strictObject({ ratio: z.number().min(0).max(100).default(0.2), minPerSec: z.number().min(0).max(1_000_000).default(10) });
  /**
   * Accepted only if some retry can be admitted: with `ratio` 0 the allowance `floor(minPerSec × 10)`
   * (libs/limiter/src/policy.ts) must be at least 1, since a retry over the budget waits — with no
   * budget at all it would wait for ever. (A stored one loads as it is.)
   */
  const RetryBudget = bounded
    ? RetryBudgetShape.check(
        acrossFields((b, issue) => {
          if (b.ratio === 0 && Math.floor(b.minPerSec * 10) < 1) {
            issue('minPerSec', 'with ratio 0, must be at least 0.1 (one retry per 10 s): no retry could ever be admitted, and retries over the budget wait, so they would wait for ever');
          }
        }),
      )
    : RetryBudgetShape;

  const DependencyPolicy = z.strictObject({
    rate: Rate.optional(),
    costRate: Rate.optional(),
    concurrency: count().optional(),
    perTenant: z
      .strictObject({
        rate: Rate.optional(),
        costRate: Rate.optional(),
        concurrency: count().optional(),
      })
      .optional(),
    failMode: z.enum(['closed', 'open']).default('closed'),
    /**
     * v1.1: over any sliding 10 s, retries admitted to this dependency ≤ ratio × first attempts
     * admitted + minPerSec × 10; a retry over budget waits. Absent: the defaults apply.
     */
    retryBudget: RetryBudget.optional(),
    /**
     * v1.1: throttled outcomes close the dependency for the `retryAfterMs` asked and lower its effective
     * rate (never below `minRatio` × declared); it climbs back while no throttling is reported; errors
     * and timeouts on most attempts open its outage circuit. Absent: enabled with the defaults.
     */
    adaptive: z
      .strictObject({ enabled: z.boolean().default(true), minRatio: (bounded ? z.number().min(B.minMinRatio) : z.number().gt(0)).max(1).default(0.1) })
      .optional(),
  });

  const TenantPolicy = z.strictObject({
    weight: (bounded ? z.number().min(B.minWeight).max(B.maxWeight) : z.number().positive()).default(1),
    rate: Rate.optional(),
    concurrency: count().optional(),
    budget: z.strictObject({ limit: int(1, B.maxBudget), periodMs: duration() }).optional(),
    maxQueued: count(0).optional(),
  });

  const RetryShape = z.strictObject({
    maxAttempts: int(1, B.maxAttempts).default(3),
    baseDelayMs: duration(0).default(1000),
    maxDelayMs: duration(0).default(60_000),
  });
  /** Accepted only with `baseDelayMs` ≤ `maxDelayMs` (defaults applied). (A stored one loads as it is.) */
  const RetryPolicy = bounded
    ? RetryShape.check(
        acrossFields((r, issue) => {
          if (r.baseDelayMs > r.maxDelayMs) issue('baseDelayMs', `must be at most retry.maxDelayMs (${r.maxDelayMs}): the first retry's delay cannot exceed the longest one`);
        }),
      )
    : RetryShape;

  const DependencyList = z.array(z.strictObject({ name: Name, cost: count(0).default(1) }));
  const DefaultedDependencyList = DependencyList.default([]);
  const JobTypePolicy = z.strictObject({
    /**
     * Required in what the admin API accepts (CONTRACT §2; `[]` is allowed); a stored policy without
     * it reads as `[]`. (One static type for both: the input types are those of the stored schemas.)
     */
    dependencies: (bounded ? DependencyList : DefaultedDependencyList) as typeof DefaultedDependencyList,
    timeoutMs: duration(1, B.maxTimeoutMs).default(30_000),
    retry: RetryPolicy.default({ maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000 }),
    /** Priority given to retries of this job type (CONTRACT §2: retries are `low` unless their job type says otherwise). */
    retryPriority: z.enum(['high', 'normal', 'low']).default('low'),
    maxPayloadBytes: int(1, B.maxPayloadBytes).default(16_384),
    idempotencyWindowMs: duration().default(86_400_000),
    /**
     * v1.1: a job of this type from the same tenant whose payload equals (as canonical JSON, see
     * payloadDedupeKey) one admitted or queued within `windowMs` is an idempotent replay of it.
     */
    dedupe: z.strictObject({ by: z.literal('payload'), windowMs: z.number().int().min(1).max(MAX_DEDUPE_WINDOW_MS) }).optional(),
  });

  const share = z.number().min(0).max(1);
  const SheddingShape = z.strictObject({ low: share.default(0.8), normal: share.default(1) });
  /** Accepted only with `low` ≤ `normal` (defaults applied): low-priority work never gets more headroom. (A stored one loads as it is.) */
  const Shedding = bounded
    ? SheddingShape.check(
        acrossFields((sh, issue) => {
          if (sh.low > sh.normal) issue('low', `must be at most shedding.normal (${sh.normal}): low-priority work cannot be given more headroom than normal`);
        }),
      )
    : SheddingShape;
  const GlobalPolicy = z.strictObject({
    rate: Rate.optional(),
    concurrency: count().optional(),
    shedding: Shedding.default({ low: 0.8, normal: 1 }),
  });

  const nameRecord = <T extends z.ZodType>(value: T) =>
    z.object({}).catchall(value).check(keysAreNames).meta({ propertyNames: { type: 'string', pattern: NAME_PATTERN.source } });

  /** The whole declarative policy: what `PUT /v1/policy` takes and what every app compiles. */
  const PolicyDocument = z
    .strictObject({
      dependencies: nameRecord(DependencyPolicy).default({}),
      tenants: nameRecord(TenantPolicy).default({}),
      jobTypes: nameRecord(JobTypePolicy).default({}),
      global: GlobalPolicy.default({ shedding: { low: 0.8, normal: 1 } }),
    })
    .superRefine((doc, ctx) => {
      for (const [jobType, policy] of Object.entries(doc.jobTypes)) {
        policy.dependencies.forEach((dep, i) => {
          if (!Object.hasOwn(doc.dependencies, dep.name)) {
            ctx.addIssue({
              code: 'custom',
              path: ['jobTypes', jobType, 'dependencies', i, 'name'],
              message: `unknown dependency "${dep.name}"`,
            });
          }
        });
        const seen = new Set<string>();
        policy.dependencies.forEach((dep, i) => {
          if (seen.has(dep.name)) {
            ctx.addIssue({
              code: 'custom',
              path: ['jobTypes', jobType, 'dependencies', i, 'name'],
              message: `dependency "${dep.name}" listed twice`,
            });
          }
          seen.add(dep.name);
        });
      }
    });

  return { Rate, DependencyPolicy, TenantPolicy, RetryPolicy, JobTypePolicy, GlobalPolicy, PolicyDocument };
}

/**
 * What the admin API accepts (every PUT of policy-admin, and `janus policy apply`): every number
 * within POLICY_BOUNDS, a job type's `dependencies` required. The same shapes and defaults as below.
 */
export const AcceptedPolicy = policySchemas(true);

/**
 * How every app reads a policy (stored versions, tests, tools): the shapes, defaults and
 * cross-references of the contract, without POLICY_BOUNDS, and a job type without `dependencies`
 * reads as `[]` — so a policy stored before the bounds still loads. New policies are checked with
 * `AcceptedPolicy` by the admin API.
 */
const stored = policySchemas(false);

export const Rate = stored.Rate;
export type Rate = z.infer<typeof Rate>;

export const DependencyPolicy = stored.DependencyPolicy;
export type DependencyPolicy = z.infer<typeof DependencyPolicy>;
export type DependencyPolicyInput = z.input<typeof DependencyPolicy>;

export const TenantPolicy = stored.TenantPolicy;
export type TenantPolicy = z.infer<typeof TenantPolicy>;
export type TenantPolicyInput = z.input<typeof TenantPolicy>;

export const RetryPolicy = stored.RetryPolicy;
export type RetryPolicy = z.infer<typeof RetryPolicy>;

export const JobTypePolicy = stored.JobTypePolicy;
export type JobTypePolicy = z.infer<typeof JobTypePolicy>;
export type JobTypePolicyInput = z.input<typeof JobTypePolicy>;

export const GlobalPolicy = stored.GlobalPolicy;
export type GlobalPolicy = z.infer<typeof GlobalPolicy>;
export type GlobalPolicyInput = z.input<typeof GlobalPolicy>;

export const PolicyDocument = stored.PolicyDocument;
export type PolicyDocument = z.infer<typeof PolicyDocument>;
export type PolicyDocumentInput = z.input<typeof PolicyDocument>;
export const EMPTY_POLICY: PolicyDocument = PolicyDocument.parse({});

/** A stored policy: the document and its version number (monotonic, starts at 1; 0 = nothing stored yet). */
export interface VersionedPolicy {
  readonly version: number;
  readonly document: PolicyDocument;
}
