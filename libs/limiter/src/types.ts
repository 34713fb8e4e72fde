import type { Priority, RejectReason } from '@janus/contracts';
import type { IdempotencyKind } from './keys.js';

export interface JobAdmission {
  readonly jobId: string;
  readonly tenant: string;
  readonly jobType: string;
  readonly priority: Priority;
  /** Overrides every dependency cost of the job type and is the budget estimate. */
  readonly cost?: number;
  /** Default 1. */
  readonly attempt?: number;
  /**
   * Per-job idempotency: `record` is the caller's opaque first answer, returned on replays. `kind`
   * (default `producer`) picks the key space: retries dedupe apart from producers' keys.
   */
  readonly idempotency?: { readonly key: string; readonly record: string; readonly kind?: IdempotencyKind };
  /** Opaque caller data kept with the lease (the scheduler keeps what a retry needs here). */
  readonly context?: string;
}

export interface AdmissionRequest {
  /** 1 to 1000 jobs, admitted all or nothing. */
  readonly jobs: readonly JobAdmission[];
  /** Request-level idempotency (a whole batch), scoped to `tenant`, kept `windowMs`. */
  readonly idempotency?: { readonly key: string; readonly tenant: string; readonly record: string; readonly windowMs: number };
}

export interface Lease {
  readonly id: string;
  readonly token: string;
  /** Redis ms. */
  readonly expiresAt: number;
}

interface AdmittedJobBase {
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly jobType: string;
  readonly priority: Priority;
  /** Redis ms. */
  readonly admittedAt: number;
}

export type AdmittedJob =
  | (AdmittedJobBase & { readonly duplicate?: undefined; readonly lease: Lease; readonly budgetReserved: number })
  /** The job's own idempotency key was already recorded: it was not admitted again. */
  | (AdmittedJobBase & { readonly duplicate: { readonly record: string }; readonly lease?: undefined; readonly budgetReserved: 0 });

export interface Admitted {
  readonly kind: 'admitted';
  readonly at: number;
  readonly jobs: readonly AdmittedJob[];
}

/** Which limit of the policy a LimitSpec is: its scope (a per-tenant dependency limit names both), its kind, and what it counts. */
export interface LimitRef {
  readonly scope: 'dependency' | 'tenant' | 'global';
  readonly dependency?: string;
  readonly tenant?: string;
  readonly kind: 'rate' | 'costRate' | 'concurrency' | 'budget';
  /** What one job takes of it: one unit per job, or its cost. */
  readonly per: 'job' | 'cost';
}

/**
 * A request that no wait can admit (CONTRACT §3 v1.1, 422 `exceeds-capacity`): from job `index` on,
 * the request takes more of `limit` than its capacity (a rate's burst, a costRate's bucket, a budget's
 * limit, a concurrency limit). `requested` is what the whole request takes of it.
 */
export interface ExceedsCapacity {
  readonly kind: 'exceeds_capacity';
  readonly index: number;
  readonly limit: LimitRef & { readonly capacity: number; readonly requested: number };
}

export type AdmissionResult =
  | Admitted
  | { readonly kind: 'duplicate'; readonly record: string }
  | { readonly kind: 'rejected'; readonly index: number; readonly reason: RejectReason; readonly retryAfterMs: number }
  | { readonly kind: 'unknown_job_type'; readonly index: number }
  | ExceedsCapacity;

export type Outcome = 'succeeded' | 'failed' | 'timed_out';

export interface LeaseInfo {
  readonly id: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly jobType: string;
  /** Budget reserved at admission. */
  readonly reserved: number;
}

export type LeaseFailure = 'invalid_token' | 'unknown' | 'expired' | 'already_settled';

export interface SettleOptions {
  /**
   * When the outcome was reported, in ms: its JetStream timestamp (`msg.info.timestampNanos`, or the
   * stored message's time). The lease must have been unexpired then; omitted (or later than now):
   * now. A lease already reaped stays reaped.
   */
  readonly reportedAt?: number;
}

export type SettleResult =
  | { readonly ok: true; readonly lease: LeaseInfo & { readonly actual: number; readonly settledAt: number; readonly context?: string } }
  | { readonly ok: false; readonly reason: LeaseFailure };

export type ExtendResult =
  | { readonly ok: true; readonly lease: LeaseInfo & { readonly expiresAt: number } }
  | { readonly ok: false; readonly reason: LeaseFailure };

export interface ExpiredLease extends LeaseInfo {
  readonly expiresAt: number;
  /** The lease's token, so that a `timed_out` outcome can name it like a worker's outcome would. */
  readonly token: string;
  readonly context?: string;
}

/** One expiry-index entry of a `findExpired` batch: its leases that were active and past expiry. */
export interface ExpiredEntry {
  readonly member: string;
  readonly key: string;
  readonly field: string;
  readonly leases: readonly ExpiredLease[];
}

export interface FindExpiredOptions {
  /**
   * List only leases that expired at or before this time (ms; never later than now). The reaper
   * passes the time before which every reported outcome has been processed.
   */
  readonly upTo?: number;
}

/** What `findExpired` listed, at one Redis time (`now`, or `upTo` when earlier; kept for `markExpired`). */
export interface ExpiredBatch {
  readonly now: string;
  readonly entries: readonly ExpiredEntry[];
}

export type LeaseStateName = 'active' | 'settled' | 'expired' | 'revoked';

/** What a lease record says now (kept for the retention period after it finished). */
export type LeaseStateResult =
  | {
      readonly ok: true;
      readonly lease: LeaseInfo & {
        readonly state: LeaseStateName;
        readonly outcome?: Outcome;
        /** The cost the lease was settled at (settled leases only). */
        readonly actual?: number;
        readonly expiresAt: number;
        readonly context?: string;
      };
    }
  | { readonly ok: false; readonly reason: 'invalid_token' | 'unknown' };

export interface TenantUsage {
  readonly tenant: string;
  readonly at: number;
  readonly budget: { readonly limit: number; readonly used: number; readonly remaining: number; readonly resetsAt: number } | null;
  /** Live leases per dependency of the policy. */
  readonly inFlight: Readonly<Record<string, number>>;
}

export interface BucketView {
  readonly capacity: number;
  /** Whole tokens available now. */
  readonly available: number;
}

export interface LimiterSnapshot {
  readonly at: number;
  readonly policyVersion: number;
  readonly dependencies: Readonly<
    Record<string, { readonly inFlight: number; readonly concurrency: number | null; readonly rate: BucketView | null; readonly costRate: BucketView | null }>
  >;
  readonly global: { readonly inFlight: number | null; readonly concurrency: number | null; readonly rate: BucketView | null };
}
