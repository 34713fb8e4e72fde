/**
 * The wire types of the producer API (CONTRACT §3, docs/api.md), declared here rather than imported
 * from @janus/contracts: this package is published on its own and must not pull zod (or anything)
 * in at runtime. test/types.test.ts asserts each of them equal to the contract's zod schemas, so
 * they cannot drift apart silently.
 */

/** Any JSON value (what zod's `z.json()` accepts). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type Priority = 'high' | 'normal' | 'low';

export type SubmitMode = 'now' | 'queue';

/**
 * One job as a producer sends it (`POST /v1/jobs` without `mode`, which is a per-call option here,
 * and each element of a batch). Defaults apply server-side: `priority` normal, `cost` the job
 * type's estimate.
 */
export interface JobInput {
  /** A job type of the running policy (`^[a-z0-9][a-z0-9_-]{0,63}$`). */
  type: string;
  /** Any JSON, nested at most 64 levels, without U+0000 in a string or key (docs/api.md). */
  payload?: JsonValue;
  priority?: Priority;
  /** An int ≥ 1: replaces the job type's cost estimate for every dependency. */
  cost?: number;
  /** 1–200 printable characters; the same key again within the window replays the first answer. */
  idempotencyKey?: string;
}

/** Why a limit refused a job (CONTRACT §3). */
export type RejectReason =
  | 'dependency_rate'
  | 'dependency_cost_rate'
  | 'dependency_concurrency'
  | 'tenant_rate'
  | 'tenant_concurrency'
  | 'global_rate'
  | 'global_concurrency'
  | 'budget_exhausted'
  | 'shed'
  | 'queue_full'
  | 'credits_exhausted'
  | 'dependency_unavailable'
  | 'paused';

/** 202 (or 200 with `duplicate: true`) for a job admitted now. */
export interface AdmittedBody {
  jobId: string;
  status: 'admitted';
  attempt: number;
  /** ISO 8601. */
  admittedAt: string;
  duplicate?: boolean;
}

/** 202 (or 200 with `duplicate: true`) for a job waiting in the room (mode `queue`). */
export interface QueuedBody {
  jobId: string;
  status: 'queued';
  /** ISO 8601: Janus's estimate of the admission; never earlier. */
  notBefore: string;
  duplicate?: boolean;
}

/** 429 body of a single submission. */
export interface RejectedBody {
  status: 'rejected';
  reason: RejectReason;
  /** The earliest time (ms from now) at which the same request could be admitted. */
  retryAfterMs: number;
}

/** One job of an admitted batch, in request order. */
export interface BatchEntry {
  jobId: string;
  status: 'admitted';
  attempt: number;
  /**
   * Set on a job whose own idempotency key was seen before (docs/api.md "Idempotency in a batch"):
   * it carries its first answer, so it may also carry `admittedAt`. Not in the contract's schema.
   */
  duplicate?: boolean;
  /** Only on a per-job duplicate of a single submission (see `duplicate`). Not in the contract's schema. */
  admittedAt?: string;
}

/** 202 (or 200 when every job, or the whole batch by its key, was a duplicate). */
export interface BatchAdmittedBody {
  jobs: BatchEntry[];
  duplicate?: boolean;
}

/** 429 body of a batch: the first job that could not be admitted; nothing was admitted. */
export interface BatchRejectedBody {
  status: 'rejected';
  reason: RejectReason;
  retryAfterMs: number;
  index: number;
}

export type JobStatus = 'queued' | 'admitted' | 'succeeded' | 'retrying' | 'dead' | 'cancelled';

export interface JobAttempt {
  attempt: number;
  admittedAt: string;
  outcome?: 'succeeded' | 'failed' | 'timed_out';
  finishedAt?: string;
  error?: string;
}

/** `GET /v1/jobs/{jobId}`: the job as the persister stored it (eventually consistent). */
export interface JobView {
  jobId: string;
  type: string;
  status: JobStatus;
  priority: Priority;
  createdAt: string;
  /** A `queued` or `retrying` job: its current estimate of admission. */
  notBefore?: string;
  attempts: JobAttempt[];
  /** Extension (docs/api.md): the payload as Janus stored it (absent when it had none). */
  payload?: JsonValue;
  /** Extension (docs/api.md): the error of the latest failed or timed-out attempt, if it reported one. */
  lastError?: string;
}

/** Extension (docs/api.md): `GET /v1/jobs` filters. */
export interface ListQuery {
  /** Only jobs with this status (as `get` shows it), or any of these. */
  status?: JobStatus | readonly JobStatus[];
  /** Only jobs of this job type. */
  type?: string;
  /** Jobs per page, 1–500 (Janus's default 50). */
  limit?: number;
  /** The `next` of the previous page (opaque); absent for the first page. */
  cursor?: string;
}

/** Extension (docs/api.md): a page of `GET /v1/jobs`, newest first. */
export interface JobPage {
  jobs: JobView[];
  /** The cursor of the next page; null on the last one. */
  next: string | null;
}

/** Extension (docs/api.md): `POST /v1/jobs/{jobId}/replay` → 202, a dead job's new attempt waiting for admission. */
export interface ReplayBody {
  jobId: string;
  status: 'retrying' | 'queued';
  attempt: number;
  notBefore: string;
}

/** `GET /v1/usage`: the caller's tenant. */
export interface Usage {
  tenant: string;
  budget: { limit: number; used: number; remaining: number; resetsAt: string } | null;
  /** Prepaid credits (v1.1); null when the tenant has no credit account (absent from older servers). */
  credits?: { balance: number; reserved: number } | null;
  /** Admitted jobs whose outcome is not known yet, per dependency. */
  inFlight: Record<string, number>;
  /** The tenant's jobs waiting in mode `queue` (what `maxQueued` bounds). */
  queued: number;
  queuedByType?: Record<string, number>;
  /** The tenant's retries waiting in the room (not counted in `queued`). */
  retrying?: number;
  oldestQueuedAt?: string;
}

export interface FieldError {
  /** Dotted path of the bad field (`payload`, `jobs.3.type`, `Idempotency-Key`). */
  path: string;
  message: string;
}

/** RFC 9457 problem details as Janus answers them (`application/problem+json`). */
export interface Problem {
  /** `https://janus.dev/problems/<name>` */
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
}

/**
 * The limit a 422 `exceeds-capacity` names (an extension field of the problem): its scope, its kind,
 * whether it counts jobs or cost, its capacity and what the request takes of it.
 */
export interface CapacityLimit {
  scope: 'dependency' | 'tenant' | 'global';
  dependency?: string;
  tenant?: string;
  kind: 'rate' | 'costRate' | 'concurrency' | 'budget';
  per: 'job' | 'cost';
  capacity: number;
  requested: number;
  /**
   * When the bound is the request's priority's share of the limit (priority shedding), not its
   * capacity: the priority, its share and `ceil(share × capacity)`, what that priority may use.
   */
  priorityShare?: { readonly priority: 'low' | 'normal'; readonly share: number; readonly capacity: number };
}
