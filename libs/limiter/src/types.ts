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
   * A retry none of whose earlier attempts was charged (all throttled, or failed under an open
   * outage circuit): the dependencies' guards pace it already, so it neither counts against nor
   * waits for their retry budgets, which exist to stop storms of failures.
   */
  readonly budgetExempt?: boolean;
  /**
   * Per-job idempotency: `record` is the caller's opaque first answer, returned on replays. `kind`
   * (default `producer`) picks the key space: retries dedupe apart from producers' keys.
   */
  readonly idempotency?: {
    readonly key: string;
    readonly record: string;
    readonly kind?: IdempotencyKind;
    /** How long the record is kept (ms); default the job type's `idempotencyWindowMs` (a payload dedupe key: its `dedupe.windowMs`). */
    readonly windowMs?: number;
  };
  /** Opaque caller data kept with the lease (the scheduler keeps what a retry needs here). */
  readonly context?: string;
}

export interface AdmissionRequest {
  /** 1 to 1000 jobs, admitted all or nothing. */
  readonly jobs: readonly JobAdmission[];
  /** Request-level idempotency (a whole batch), scoped to `tenant`, kept `windowMs`. */
  /**
   * The request's own key (a batch's `Idempotency-Key`; or, for one job whose producer key is its
   * own, the job's payload dedupe key: `kind: 'dedupe'`). When every job of the request replays an
   * earlier admission, no record is written for it (its replay replays each job again).
   */
  readonly idempotency?: { readonly key: string; readonly tenant: string; readonly record: string; readonly windowMs: number; readonly kind?: IdempotencyKind };
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
/**
 * Carried by an `exceeds_capacity` answer's `limit` when the bound that no wait can pass is the
 * priority's share of the limit (priority shedding), not the limit's capacity: the job's priority,
 * its share and `ceil(share × capacity)`, what a job of that priority may use.
 */
export interface PriorityShare {
  readonly priority: 'low' | 'normal';
  readonly share: number;
  readonly capacity: number;
}

export interface ExceedsCapacity {
  readonly kind: 'exceeds_capacity';
  readonly index: number;
  readonly limit: LimitRef & { readonly capacity: number; readonly requested: number; readonly priorityShare?: PriorityShare };
}

export type AdmissionResult =
  | Admitted
  | { readonly kind: 'duplicate'; readonly record: string }
  /**
   * An idempotency key of the request (job `index`, or -1 for the request's own key) names an
   * admission whose job message is not yet confirmed in JetStream: it may still be revoked, so the
   * replay cannot be answered yet. Nothing was taken.
   */
  | { readonly kind: 'in_progress'; readonly index: number; readonly record: string }
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
  /**
   * The job and attempt the outcome names: a lease of another job or attempt is not settled
   * (`invalid_token`: the token is genuine, but not this outcome's). Read from the lease record the
   * settle reads anyway; no extra Redis call.
   */
  readonly expect?: { readonly jobId: string; readonly attempt: number };
}

export type SettleResult =
  | { readonly ok: true; readonly lease: LeaseInfo & { readonly actual: number; readonly settledAt: number; readonly admittedAt: number; readonly context?: string; readonly credits?: CreditsCharge } }
  | { readonly ok: false; readonly reason: LeaseFailure };

export type ExtendResult =
  | {
      readonly ok: true;
      /** `started`: this claim was the lease's first (its job starts now). `admittedAt`: Redis ms. */
      readonly lease: LeaseInfo & { readonly expiresAt: number; readonly admittedAt: number; readonly started: boolean };
    }
  | { readonly ok: false; readonly reason: LeaseFailure };

export interface ExpiredLease extends LeaseInfo {
  readonly expiresAt: number;
  /** The lease's token, so that a `timed_out` outcome can name it like a worker's outcome would. */
  readonly token: string;
  readonly context?: string;
  /**
   * False for a lease that was still pending: its job message was never confirmed in JetStream
   * (the admitting instance died or answered 503). It is no attempt: no `timed_out` outcome, no
   * retry; marking it revokes it and frees its idempotency keys.
   */
  readonly confirmed: boolean;
}

/** One expiry-index entry of a `findExpired` batch: its leases that were active and past expiry. */
export interface ExpiredEntry {
  readonly member: string;
  readonly key: string;
  readonly field: string;
  readonly leases: readonly ExpiredLease[];
  /** The idempotency records of its pending leases (marking deletes them). */
  readonly idempotencyKeys: readonly string[];
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

export type LeaseStateName = 'pending' | 'withdrawn' | 'active' | 'running' | 'settled' | 'expired' | 'revoked';

/** A confirmed lease no worker has claimed, about to expire (`findUnclaimed`). */
export interface UnclaimedLease {
  readonly id: string;
  readonly token: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly jobType: string;
  readonly expiresAt: number;
  /** The job message's sequence in the jobs stream. */
  readonly seq: number;
}

/** What `confirm` found: how many leases it confirmed, and those no longer held (revoked or reaped while pending). */
export interface ConfirmResult {
  readonly confirmed: number;
  readonly notHeld: readonly string[];
}

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
  /** Prepaid credits; null when the tenant has no credit account. */
  readonly credits: { readonly balance: number; readonly reserved: number } | null;
  /** Live leases per dependency of the policy. */
  readonly inFlight: Readonly<Record<string, number>>;
}

/** A tenant's prepaid credits as Redis holds them (CONTRACT §2 Tenant "Credits"). */
export interface CreditsState {
  /** False: the tenant has no credit account (credits do not limit it); balance and reserved are 0. */
  readonly account: boolean;
  readonly balance: number;
  readonly reserved: number;
}

/** What a top-up did (`applied: false`: the key was used before, nothing changed). */
export interface TopUpResult {
  readonly applied: boolean;
  readonly balance: number;
  readonly reserved: number;
  /** The ledger entry of the top-up (the relay publishes it too; its id is the JetStream msgID). */
  readonly entry: CreditEntry;
}

/** One credits movement, as the outbox holds it and the ledger records it. */
export interface CreditEntry {
  /** `<jobId>.<attempt>.credits.<kind>.<leaseId>` or `topup.<tenant>.<digest>`: the JetStream msgID and PostgreSQL key. */
  readonly id: string;
  readonly tenant: string;
  readonly kind: 'topup' | 'reserve' | 'settle' | 'overrun' | 'release';
  readonly amount: number;
  /** Absent for a top-up. */
  readonly jobId?: string;
  readonly attempt?: number;
  readonly leaseId?: string;
  /** Redis ms. */
  readonly at: number;
}

/** What a settle did to the lease's credit reservation (absent when it reserved none). */
export interface CreditsCharge {
  readonly reserved: number;
  readonly charged: number;
  /** The charge beyond the balance (the balance stopped at 0). */
  readonly overrun: number;
  readonly balance: number;
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

/** Whether the limiter's state is trusted; if not, when the fail-closed fallback ends (if set yet). */
export type StateStatus = { readonly trusted: true } | { readonly trusted: false; readonly recoveringUntil?: number };

/** A lease that was live (or expired without an outcome) when Redis lost its state, as the durable record has it. */
export interface RestoredLease {
  /** The id admission issued (`<call id>_<n>`): the record goes back where it was, so its token still works. */
  readonly leaseId: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly jobType: string;
  /** The priority the attempt was admitted at. */
  readonly priority: Priority;
  /** The producer's cost override, if any. */
  readonly cost?: number;
  /** Ms. */
  readonly admittedAt: number;
  /** Ms: the later of the admitted expiry and the last extension recorded. */
  readonly expiresAt: number;
  /** Budget reserved at admission (the ledger's), settled with the actual cost. */
  readonly reserved: number;
  /** The budget window (start ms) the reservation counts in. */
  readonly budgetWindow?: number;
  /** What a retry needs (the retry context), kept with the lease as admission keeps it. */
  readonly context?: string;
  /**
   * The job message's sequence in the jobs stream (the record's `fin` once confirmed): with it, a
   * job no worker was delivered keeps waiting after the rebuild (extend-n.lua 'wait').
   */
  readonly seq?: number;
}

/** A tenant's budget used in the window starting at `windowStart` (ms), from the ledger. */
export interface RestoredBudget {
  readonly tenant: string;
  readonly windowStart: number;
  readonly used: number;
}

/** An idempotency record as admission wrote it, live until `expiresAt` (ms). */
export interface RestoredIdempotency {
  readonly tenant: string;
  /** The caller's key (producer's, or the scheduler's `retry:<jobId>.<n>`). */
  readonly key: string;
  readonly kind: IdempotencyKind;
  readonly record: string;
  readonly expiresAt: number;
}

/** A tenant's prepaid credits as PostgreSQL's ledger has them (docs/credits.md "Redis loss"). */
export interface RestoredCredits {
  readonly tenant: string;
  /** Σ topup − Σ settle + Σ overrun. */
  readonly balance: number;
  /** Restored leases holding a reservation; `unrecorded`: its reserve entry was lost (reserved again, recorded). */
  readonly reservations: readonly { readonly leaseId: string; readonly amount: number; readonly jobId: string; readonly attempt: number; readonly unrecorded: boolean }[];
  /** Open reservations whose lease is not restored: charged at their amount (conservative). */
  readonly orphans: readonly { readonly leaseId: string; readonly amount: number; readonly jobId: string; readonly attempt: number }[];
  /**
   * Top-ups whose marker would still be kept (`at` within `CREDITS.topupMarkerTtlMs`): their markers
   * are written back, so that a key used before the loss still tops up once (`digest`: of the key).
   */
  readonly topups?: readonly { readonly digest: string; readonly amount: number; readonly at: number }[];
}

/** Everything a rebuild writes back before admission reopens. */
export interface RestoredState {
  readonly leases: readonly RestoredLease[];
  readonly budgets: readonly RestoredBudget[];
  readonly idempotency: readonly RestoredIdempotency[];
  /** Tenants whose rate buckets restart EMPTY, besides the policy's (dependency and global buckets always do). */
  readonly bucketTenants: readonly string[];
  /** Prepaid credit accounts (absent: none to restore). */
  readonly credits?: readonly RestoredCredits[];
  /**
   * Every attempt admitted within the longest sliding window of the policy (rate `kind: "window"`),
   * finished or not: what the windows counted before the loss (absent: none).
   */
  readonly admissions?: readonly RestoredAdmission[];
}

/** An attempt admitted lately, as the durable record has it: what it counted in the sliding windows it touched. */
export interface RestoredAdmission {
  readonly tenant: string;
  readonly jobType: string;
  /** The producer's cost override, if any. */
  readonly cost?: number;
  /** Ms (Redis time, as admission stamped it). */
  readonly admittedAt: number;
  /** The actual cost its applied outcome reported, if any (a costRate window then holds its share of it). */
  readonly actualCost?: number;
}

export type RestoreResult =
  | {
      readonly ok: true;
      /** Lease records written, and found already written (a rebuild taken over). */
      readonly leases: number;
      readonly existing: number;
      readonly budgets: number;
      readonly idempotency: number;
      readonly buckets: number;
      /** Sliding-window entries (one per window and expiry ms) written. */
      readonly windows: number;
      /** Leases whose id admission could not have issued (e.g. fail-open leases): nothing to restore. */
      readonly skipped: number;
    }
  /** `lock_lost`: another instance holds the rebuild lock now; `state_open`: the state is trusted again. */
  | { readonly ok: false; readonly reason: 'lock_lost' | 'state_open' };

/** Limiter.adoptLeases: records written, found written already, and ids no admission issued; or nothing written (Redis lost its state: a rebuild writes the leases). */
export type AdoptResult =
  | { readonly ok: true; readonly adopted: number; readonly existing: number; readonly skipped: number }
  | { readonly ok: false; readonly reason: 'state_lost' };

export type OpenResult =
  | { readonly kind: 'opened' }
  | { readonly kind: 'already_open' }
  | { readonly kind: 'lock_lost' }
  /** A fallback before the end of the fail-closed window. */
  | { readonly kind: 'too_early'; readonly recoveringUntil: number };

/** What a worker's outcome says about its dependencies (Limiter.feedback). */
export type FeedbackSignal = 'succeeded' | 'failed' | 'throttled';

/** A guard's change after feedback: its outage circuit opened, closed or reopened, or its effective rate decreased. */
export type Transition = 'none' | 'opened' | 'closed' | 'reopened' | 'decreased';

export interface FeedbackResult {
  /** A circuit the outcome concerns was open and stays so (a failure from before it opened): the attempt proves nothing about the job and is not charged. A probe's failure, reopening it, is charged. */
  readonly uncharged: boolean;
  readonly transitions: readonly { readonly dependency: string; readonly transition: Exclude<Transition, 'none'> }[];
}

/** A dependency's live state (CONTRACT §5 v1.1 `GET /v1/dependencies/{name}/state`); times in ms. */
export interface DependencyState {
  readonly dependency: string;
  readonly at: number;
  readonly adaptive: boolean;
  readonly declared: {
    readonly rate: { readonly limit: number; readonly periodMs: number; readonly burst?: number; readonly kind?: 'bucket' | 'window' } | null;
    readonly costRate: { readonly limit: number; readonly periodMs: number; readonly burst?: number; readonly kind?: 'bucket' | 'window' } | null;
    readonly concurrency: number | null;
  };
  /** ratio × the declared rates: what admission allows now (the declared policy is a ceiling). */
  readonly effective: {
    readonly ratio: number;
    readonly rate: { readonly limit: number; readonly periodMs: number } | null;
    readonly costRate: { readonly limit: number; readonly periodMs: number } | null;
  };
  /** Closed to new admissions until then (a throttled outcome asked for it); null when open. */
  readonly cooldownUntil: number | null;
  /** Paused by an admin (CONTRACT §5 v1.1): until then (ms), `Infinity` until resumed; null when not paused. */
  readonly pausedUntil: number | null;
  /** The outage circuit; probeAt: when the next probe may be admitted (open), or now (half-open). */
  readonly circuit: { readonly state: 'closed' | 'open' | 'half_open'; readonly probeAt: number | null };
  readonly inFlight: number;
  /** Over the last windowMs: first attempts and retries admitted, and the retries the budget allows. */
  readonly retryBudget: { readonly windowMs: number; readonly firstAttempts: number; readonly retries: number; readonly allowed: number };
}

/** What an admin may pause (CONTRACT §5 v1.1): a dependency or a job type. */
export type PauseTarget = { readonly dependency: string } | { readonly jobType: string };

/** A pause as it stands: `until` in ms, `Infinity` until resumed; not paused: `{ paused: false }`. */
export type PauseState = { readonly paused: true; readonly until: number } | { readonly paused: false };

/**
 * What an idempotency key holds (Limiter.idempotencyState): nothing, an admission whose job message
 * is not yet confirmed in JetStream, or a confirmed admission's record (what replays are answered).
 */
export type IdempotencyState = { readonly state: 'none' } | { readonly state: 'in_progress' | 'recorded'; readonly record: string };
