import { z } from 'zod';
import { MAX_DEDUPE_WINDOW_MS } from './dedupe.js';
import { Name } from './names.js';

const positiveInt = z.number().int().min(1);

/**
 * `kind` (v1.1): `bucket` (absent = bucket) is a token bucket of `burst` (default `limit`) refilled at
 * `limit` per `periodMs` — up to `burst + limit` in one period; `window` admits at most `limit` in
 * ANY `periodMs` (a sliding window; `burst` does not apply and is ignored).
 */
export const Rate = z.strictObject({
  limit: positiveInt,
  periodMs: positiveInt,
  burst: positiveInt.optional(),
  kind: z.enum(['bucket', 'window']).optional(),
});
export type Rate = z.infer<typeof Rate>;

export const DependencyPolicy = z.strictObject({
  rate: Rate.optional(),
  costRate: Rate.optional(),
  concurrency: positiveInt.optional(),
  perTenant: z
    .strictObject({
      rate: Rate.optional(),
      costRate: Rate.optional(),
      concurrency: positiveInt.optional(),
    })
    .optional(),
  failMode: z.enum(['closed', 'open']).default('closed'),
  /**
   * v1.1: over any sliding 10 s, retries admitted to this dependency ≤ ratio × first attempts
   * admitted + minPerSec × 10; a retry over budget waits. Absent: the defaults apply.
   */
  retryBudget: z
    .strictObject({ ratio: z.number().min(0).max(100).default(0.2), minPerSec: z.number().min(0).max(1_000_000).default(10) })
    .optional(),
  /**
   * v1.1: throttled outcomes close the dependency for the `retryAfterMs` asked and lower its effective
   * rate (never below `minRatio` × declared); it climbs back while no throttling is reported; errors
   * and timeouts on most attempts open its outage circuit. Absent: enabled with the defaults.
   */
  adaptive: z.strictObject({ enabled: z.boolean().default(true), minRatio: z.number().gt(0).max(1).default(0.1) }).optional(),
});
export type DependencyPolicy = z.infer<typeof DependencyPolicy>;
export type DependencyPolicyInput = z.input<typeof DependencyPolicy>;

export const TenantPolicy = z.strictObject({
  weight: z.number().positive().default(1),
  rate: Rate.optional(),
  concurrency: positiveInt.optional(),
  budget: z.strictObject({ limit: positiveInt, periodMs: positiveInt }).optional(),
  maxQueued: z.number().int().min(0).optional(),
});
export type TenantPolicy = z.infer<typeof TenantPolicy>;
export type TenantPolicyInput = z.input<typeof TenantPolicy>;

export const RetryPolicy = z.strictObject({
  maxAttempts: positiveInt.default(3),
  baseDelayMs: z.number().int().min(0).default(1000),
  maxDelayMs: z.number().int().min(0).default(60_000),
});
export type RetryPolicy = z.infer<typeof RetryPolicy>;

export const JobTypePolicy = z.strictObject({
  dependencies: z
    .array(z.strictObject({ name: Name, cost: z.number().int().min(0).default(1) }))
    .default([]),
  timeoutMs: positiveInt.default(30_000),
  retry: RetryPolicy.default({ maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000 }),
  /** Priority given to retries of this job type (CONTRACT §2: retries are `low` unless their job type says otherwise). */
  retryPriority: z.enum(['high', 'normal', 'low']).default('low'),
  maxPayloadBytes: positiveInt.default(16_384),
  idempotencyWindowMs: positiveInt.default(86_400_000),
  /**
   * v1.1: a job of this type from the same tenant whose payload equals (as canonical JSON, see
   * payloadDedupeKey) one admitted or queued within `windowMs` is an idempotent replay of it.
   */
  dedupe: z.strictObject({ by: z.literal('payload'), windowMs: positiveInt.max(MAX_DEDUPE_WINDOW_MS) }).optional(),
});
export type JobTypePolicy = z.infer<typeof JobTypePolicy>;
export type JobTypePolicyInput = z.input<typeof JobTypePolicy>;

const share = z.number().min(0).max(1);
export const GlobalPolicy = z.strictObject({
  rate: Rate.optional(),
  concurrency: positiveInt.optional(),
  shedding: z
    .strictObject({ low: share.default(0.8), normal: share.default(1) })
    .default({ low: 0.8, normal: 1 }),
});
export type GlobalPolicy = z.infer<typeof GlobalPolicy>;
export type GlobalPolicyInput = z.input<typeof GlobalPolicy>;

const nameRecord = <T extends z.ZodType>(value: T) => z.record(Name, value);

/** The whole declarative policy: what `PUT /v1/policy` takes and what every app compiles. */
export const PolicyDocument = z
  .strictObject({
    dependencies: nameRecord(DependencyPolicy).default({}),
    tenants: nameRecord(TenantPolicy).default({}),
    jobTypes: nameRecord(JobTypePolicy).default({}),
    global: GlobalPolicy.default({ shedding: { low: 0.8, normal: 1 } }),
  })
  .superRefine((doc, ctx) => {
    for (const [jobType, policy] of Object.entries(doc.jobTypes)) {
      policy.dependencies.forEach((dep, i) => {
        if (!(dep.name in doc.dependencies)) {
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
export type PolicyDocument = z.infer<typeof PolicyDocument>;
export type PolicyDocumentInput = z.input<typeof PolicyDocument>;

export const EMPTY_POLICY: PolicyDocument = PolicyDocument.parse({});

/** A stored policy: the document and its version number (monotonic, starts at 1; 0 = nothing stored yet). */
export interface VersionedPolicy {
  readonly version: number;
  readonly document: PolicyDocument;
}
