import { z } from 'zod';
import { IdempotencyKey, Name, Priority } from './names.js';
import { JobPayload } from './payload.js';

export const REJECT_REASONS = [
  'dependency_rate',
  'dependency_cost_rate',
  'dependency_concurrency',
  'tenant_rate',
  'tenant_concurrency',
  'global_rate',
  'global_concurrency',
  'budget_exhausted',
  'shed',
  'queue_full',
  /** v1.1: the tenant has a credit account whose unreserved balance does not cover the estimate (§2 Tenant "Credits"). */
  'credits_exhausted',
  /** v1.1: the dependency's outage circuit is open (§2 `adaptive`). */
  'dependency_unavailable',
  /** v1.1: an admin paused the dependency or job type (§5). */
  'paused',
  /** Internal: a retry over its dependency's retry budget (§2 `retryBudget`) waits; producers never see it. */
  'retry_budget',
] as const;
export const RejectReason = z.enum(REJECT_REASONS);
export type RejectReason = z.infer<typeof RejectReason>;

export const JobRequest = z.strictObject({
  type: Name,
  payload: JobPayload.optional(),
  priority: Priority.default('normal'),
  /** An int ≥ 1 (CONTRACT §3): a cost of 0 would pass every costRate and budget check. */
  cost: z.number().int().min(1).optional(),
  mode: z.enum(['now', 'queue']).default('now'),
  idempotencyKey: IdempotencyKey.optional(),
});
export type JobRequest = z.infer<typeof JobRequest>;

export const BatchJobRequest = JobRequest.omit({ mode: true });
export type BatchJobRequest = z.infer<typeof BatchJobRequest>;

export const BatchRequest = z.strictObject({
  jobs: z.array(BatchJobRequest).min(1).max(1000),
});
export type BatchRequest = z.infer<typeof BatchRequest>;

export const AdmittedResponse = z.object({
  jobId: z.string(),
  status: z.literal('admitted'),
  attempt: z.number().int(),
  admittedAt: z.string(),
  duplicate: z.boolean().optional(),
});
export type AdmittedResponse = z.infer<typeof AdmittedResponse>;

export const QueuedResponse = z.object({
  jobId: z.string(),
  status: z.literal('queued'),
  notBefore: z.string(),
  duplicate: z.boolean().optional(),
});
export type QueuedResponse = z.infer<typeof QueuedResponse>;

export const RejectedResponse = z.object({
  status: z.literal('rejected'),
  reason: RejectReason,
  retryAfterMs: z.number().int().min(0),
});
export type RejectedResponse = z.infer<typeof RejectedResponse>;

export const BatchAdmittedResponse = z.object({
  jobs: z.array(z.object({ jobId: z.string(), status: z.literal('admitted'), attempt: z.number().int() })),
  duplicate: z.boolean().optional(),
});
export const BatchRejectedResponse = RejectedResponse.extend({ index: z.number().int().min(0) });

export const JobStatus = z.enum(['queued', 'admitted', 'succeeded', 'retrying', 'dead', 'cancelled']);
export type JobStatus = z.infer<typeof JobStatus>;

export const JobView = z.object({
  jobId: z.string(),
  type: z.string(),
  status: JobStatus,
  priority: Priority,
  createdAt: z.string(),
  /** A `queued` or `retrying` job: Janus's current estimate of its admission (never earlier). */
  notBefore: z.string().optional(),
  attempts: z.array(
    z.object({
      attempt: z.number().int(),
      admittedAt: z.string(),
      outcome: z.enum(['succeeded', 'failed', 'timed_out']).optional(),
      finishedAt: z.string().optional(),
      error: z.string().optional(),
    }),
  ),
  /**
   * Extension (docs/api.md): the job's payload as Janus stored it (absent when it had none). Any
   * JSON; typed `unknown` because zod's recursive JSON type sends the OpenAPI generator into
   * endless recursion.
   */
  payload: z.unknown().optional(),
  /** Extension (docs/api.md): the error of the latest failed or timed-out attempt, if it reported one. */
  lastError: z.string().optional(),
});
export type JobView = z.infer<typeof JobView>;

/** Extension (docs/api.md): `GET /v1/jobs`, the caller's jobs newest first; `next` pages on (null: no more). */
export const JobListResponse = z.object({
  jobs: z.array(JobView),
  next: z.string().nullable(),
});
export type JobListResponse = z.infer<typeof JobListResponse>;

/** Extension (docs/api.md): `POST /v1/jobs/{jobId}/replay` → 202, a dead job's new attempt waiting for admission. */
export const ReplayResponse = z.object({
  jobId: z.string(),
  status: z.enum(['retrying', 'queued']),
  attempt: z.number().int(),
  notBefore: z.string(),
});
export type ReplayResponse = z.infer<typeof ReplayResponse>;

/** RFC 9457 problem details, with `errors` listing each bad field. */
export const ProblemDetails = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  /**
   * Every Janus answer has it (CONTRACT §3; `problem()` of @janus/http requires it); optional here
   * because the client also reads problems that did not come from Janus (a proxy's 503).
   */
  detail: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
export type ProblemDetails = z.infer<typeof ProblemDetails>;

export const PROBLEM_BASE = 'https://janus.dev/problems';

/** `GET /v1/usage`: the caller's tenant. */
export const UsageResponse = z.object({
  tenant: z.string(),
  budget: z
    .object({ limit: z.number().int(), used: z.number().int(), remaining: z.number().int(), resetsAt: z.string() })
    .nullable(),
  /** v1.1: prepaid credits (§2 Tenant "Credits"); null when the tenant has no credit account. Optional for older servers. */
  credits: z.object({ balance: z.number().int(), reserved: z.number().int() }).nullable().optional(),
  inFlight: z.record(z.string(), z.number().int()),
  /** The tenant's jobs waiting in mode `queue` (first attempts in the room: what `maxQueued` bounds). */
  queued: z.number().int(),
  /** The same per job type. */
  queuedByType: z.record(z.string(), z.number().int()).optional(),
  /** Retries waiting in the room (due, not yet admitted); not counted in `queued` nor against `maxQueued`. */
  retrying: z.number().int().optional(),
  /** When the tenant's oldest job waiting in the room (queued or retrying) arrived (absent when none waits). */
  oldestQueuedAt: z.string().optional(),
});
export type UsageResponse = z.infer<typeof UsageResponse>;

/** `POST /v1/tenants/{id}/keys` → 201. The key is shown once and stored only as a hash. */
export const ApiKeyCreated = z.object({ keyId: z.string(), key: z.string() });
export type ApiKeyCreated = z.infer<typeof ApiKeyCreated>;
