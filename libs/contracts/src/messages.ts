import { z } from 'zod';
import { IdempotencyKey, Name, Priority } from './names.js';

export const Lease = z.object({
  id: z.string(),
  token: z.string(),
  expiresAt: z.string(),
});
export type Lease = z.infer<typeof Lease>;

/**
 * An idempotency key a job was admitted under, as the limiter holds it until `expiresAt` (the
 * admission time plus the window): `fingerprint` is the request's content hash that a replay must
 * match. Carried by attempt 1 so that the persister keeps it and a rebuilt limiter still answers
 * the key as a replay after Redis lost its state (docs/guarantees.md §5).
 */
export const JobIdempotency = z.object({
  key: IdempotencyKey,
  fingerprint: z.string().min(1).max(100),
  expiresAt: z.iso.datetime(),
});
export type JobIdempotency = z.infer<typeof JobIdempotency>;

/** A batch's own idempotency key, and this job's place in the batch (`index` of `size`). */
export const BatchIdempotency = JobIdempotency.extend({
  index: z.number().int().min(0).max(999),
  size: z.number().int().min(1).max(1000),
});
export type BatchIdempotency = z.infer<typeof BatchIdempotency>;

/**
 * `janus.jobs.<jobType>`, header `Nats-Msg-Id: <jobId>.<attempt>`. Beyond the contract's fields,
 * Janus adds what a rebuild of its limiter needs from the durable record (workers may ignore
 * them): the producer's `cost` override, and the idempotency keys the job was admitted under.
 */
export const JobMessage = z.object({
  jobId: z.string().min(1),
  type: Name,
  tenant: Name,
  attempt: z.number().int().min(1),
  priority: Priority,
  payload: z.json().optional(),
  admittedAt: z.string(),
  lease: Lease,
  /** The producer's cost override, which applies to every attempt. */
  cost: z.number().int().min(0).optional(),
  /** The job's own idempotency key (attempt 1 only). */
  idempotency: JobIdempotency.optional(),
  /** Its batch's idempotency key (attempt 1 only). */
  batchIdempotency: BatchIdempotency.optional(),
  /**
   * Admitted while Redis could not be reached, every dependency being `failMode: open`: Janus holds
   * no record of its lease until the retry-scheduler adopts it (seconds after Redis answers again),
   * so a claim of it is answered "ask again" until then (the worker SDK keeps asking).
   */
  failOpen: z.literal(true).optional(),
});
export type JobMessage = z.infer<typeof JobMessage>;

/** The most of a report's `error` Janus keeps (CONTRACT §4: ≤ 2 KiB). */
export const MAX_OUTCOME_ERROR_LENGTH = 2048;
/** The longest `retryAfterMs` honoured: a day. */
export const MAX_RETRY_AFTER_MS = 86_400_000;

/** Worker outcome; Janus itself writes `timed_out` when a lease expires. */
export const OutcomeEvent = z.object({
  jobId: z.string().min(1),
  attempt: z.number().int().min(1),
  leaseToken: z.string(),
  outcome: z.enum(['succeeded', 'failed', 'timed_out']),
  error: z.string().max(MAX_OUTCOME_ERROR_LENGTH).optional(),
  actualCost: z.number().int().min(0).optional(),
  /** `false`: the worker knows the failure is permanent; no retry, the job goes to the dead letters. */
  retryable: z.boolean().optional(),
  /** (v1.1) The dependency refused for load (an HTTP 429, or a 503 with `Retry-After`). */
  throttled: z.boolean().optional(),
  /** (v1.1) What the dependency asked for: the job is retried no earlier (at most a day is honoured). */
  retryAfterMs: z.number().int().min(0).max(MAX_RETRY_AFTER_MS).optional(),
  /** (v1.1) Which of the job type's dependencies throttled (default: its first). */
  dependency: Name.optional(),
  /**
   * (Janus's extension) `false`: the worker gave the job up without starting it — its claim was not
   * answered before the lease neared its end, or the worker was stopping (the worker SDK sends it,
   * with `outcome: failed`). For a lease no worker claimed, it is not a failed attempt: the job is
   * retried without charging its attempts (CONTRACT §4: a job that never started keeps them).
   */
  started: z.literal(false).optional(),
});
export type OutcomeEvent = z.infer<typeof OutcomeEvent>;

/**
 * An outcome report as read from `<ns>.outcomes.>` (the scheduler and the persister): a report whose
 * `error` is longer than the contract allows is read with the text cut to 2 KiB, and one asking a
 * `retryAfterMs` over a day as asking a day — the rest of it (success or failure, its lease) still
 * counts, rather than the whole report being ignored and the job waiting out its lease; likewise
 * an `actualCost` that is no count is read as none. Anything else outside the contract is not a
 * report (OutcomeEvent).
 */
export const ReportedOutcome = z.preprocess((raw) => {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const r = clampReport(raw as Record<string, unknown>);
  // An `actualCost` that is no count (-5, 2.5, "3") is read as not reported (the estimate stands):
  // NATS gives the worker no answer to learn from, and ignoring the whole report would leave the
  // job to time out and run again.
  if ('actualCost' in r && !(typeof r.actualCost === 'number' && Number.isSafeInteger(r.actualCost) && r.actualCost >= 0)) {
    const { actualCost: _dropped, ...rest } = r;
    return rest;
  }
  return r;
}, OutcomeEvent);

/** A report with its `error` cut to 2 KiB and its `retryAfterMs` to a day (the same object when neither is over). */
export function clampReport<T extends { readonly error?: unknown; readonly retryAfterMs?: unknown }>(r: T): T {
  const longError = typeof r.error === 'string' && r.error.length > MAX_OUTCOME_ERROR_LENGTH;
  const longWait = typeof r.retryAfterMs === 'number' && Number.isInteger(r.retryAfterMs) && r.retryAfterMs > MAX_RETRY_AFTER_MS;
  if (!longError && !longWait) return r;
  return {
    ...r,
    ...(longError ? { error: `${(r.error as string).slice(0, MAX_OUTCOME_ERROR_LENGTH - 3)}...` } : {}),
    ...(longWait ? { retryAfterMs: MAX_RETRY_AFTER_MS } : {}),
  };
}

/** What a worker may send (it never reports `timed_out`). */
export const WorkerOutcome = OutcomeEvent.extend({ outcome: z.enum(['succeeded', 'failed']) });
export type WorkerOutcome = z.infer<typeof WorkerOutcome>;

/**
 * What `POST /v1/jobs/{jobId}/outcome` takes: a WorkerOutcome whose `error` may be longer than 2 KiB
 * and `retryAfterMs` longer than a day, read as a report on NATS is read (clampReport), so that the
 * two ways of reporting agree.
 */
export const WorkerOutcomeReport = WorkerOutcome.extend({ error: z.string().optional(), retryAfterMs: z.number().int().min(0).optional() });
export type WorkerOutcomeReport = z.infer<typeof WorkerOutcomeReport>;

/**
 * `janus.applied.<jobType>`, msgID `<jobId>.<attempt>.applied`: an outcome the retry-scheduler
 * ACCEPTED (the lease settled with it, or a `timed_out` whose lease really expired), published
 * before the outcome message is acked. Job status and attempt outcomes derive from these only;
 * raw reports on `janus.outcomes.>` are records (a forged or late one is never applied).
 * `reportId` names the report that was applied (see `outcomeReportId` in @janus/messaging).
 */
export const AppliedOutcome = z.object({
  jobId: z.string().min(1),
  type: Name,
  tenant: Name,
  attempt: z.number().int().min(1),
  outcome: z.enum(['succeeded', 'failed', 'timed_out']),
  error: z.string().max(2048).optional(),
  actualCost: z.number().int().min(0).optional(),
  retryable: z.boolean().optional(),
  reportId: z.string().min(1).max(300),
  appliedAt: z.string(),
});
export type AppliedOutcome = z.infer<typeof AppliedOutcome>;

/** At most this many applied outcomes in one message. */
export const MAX_APPLIED_PER_MESSAGE = 500;

/**
 * `janus.applied.<jobType>`, msgID `applied.<digest>` (messageIds.appliedBatch): the outcomes of one
 * job type the retry-scheduler accepted at one moment, in ONE message (a message per outcome cost
 * NATS a publish, its ack, a delivery and an ack each). Each element is exactly an AppliedOutcome;
 * the persister reads this form and the single one alike.
 */
export const AppliedBatch = z.object({ applied: z.array(AppliedOutcome).min(1).max(MAX_APPLIED_PER_MESSAGE) });
export type AppliedBatch = z.infer<typeof AppliedBatch>;

/** The applied outcomes of one `janus.applied.<jobType>` message, either form (throws if it is neither). */
export function appliedOutcomesOf(body: unknown): AppliedOutcome[] {
  return typeof body === 'object' && body !== null && 'applied' in body ? AppliedBatch.parse(body).applied : [AppliedOutcome.parse(body)];
}

/** `janus.dead.<jobType>`: a job that used up its attempts. */
export const DeadLetter = z.object({
  jobId: z.string().min(1),
  type: Name,
  tenant: Name,
  attempts: z.number().int().min(1),
  lastOutcome: z.enum(['failed', 'timed_out']),
  error: z.string().max(2048).optional(),
  payload: z.json().optional(),
  deadAt: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetter>;

/**
 * `janus.retries.<jobType>`, msgID `<jobId>.<attempt>.retry`: a retry the scheduler decided after a
 * failed or timed-out attempt, waiting in `JANUS_RETRIES` until `dueAt`. It carries everything the
 * next attempt needs, so it depends on no other state (not the lease record, which Redis keeps for
 * a day). Janus writes and reads it; workers never see it.
 */
export const RetryMessage = z.object({
  jobId: z.string().min(1),
  type: Name,
  tenant: Name,
  /** The attempt to admit (2, 3, …). */
  attempt: z.number().int().min(2),
  /** The job's original priority (the retry is admitted at the job type's retry priority). */
  priority: Priority,
  payload: z.json().optional(),
  /** The producer's cost override, which applies to every attempt. */
  cost: z.number().int().min(0).optional(),
  createdAt: z.string().optional(),
  /** No earlier than this (ISO time): the backoff after the failed attempt. */
  dueAt: z.iso.datetime(),
  /** What became of the previous attempt (for a dead letter if the retry can never be admitted). */
  lastOutcome: z.enum(['failed', 'timed_out']),
  error: z.string().max(2048).optional(),
  /**
   * How many of the attempts so far (1 … attempt − 1) were not charged to the job's `maxAttempts`:
   * throttled failures (the dependency refused for load; the job never really ran). The attempt
   * number still counts every attempt (it names the JetStream messages); this keeps the difference.
   * Absent: 0.
   */
  uncharged: z.number().int().min(0).max(1000).optional(),
});
export type RetryMessage = z.infer<typeof RetryMessage>;

/**
 * `janus.extensions.<jobType>`, msgID `<jobId>.<attempt>.extended.<expiresAt ms>`: a lease the
 * scheduler extended, published before the worker is told, so that the persister records the new
 * expiry (`attempts.lease_extended_until`) and a rebuild after a Redis state loss keeps the lease
 * as long as the worker believes it holds it.
 */
export const LeaseExtended = z.object({
  jobId: z.string().min(1),
  type: Name,
  tenant: Name,
  attempt: z.number().int().min(1),
  leaseId: z.string().min(1).max(200),
  expiresAt: z.iso.datetime(),
});
export type LeaseExtended = z.infer<typeof LeaseExtended>;

/** `janus.ledger.<tenant>`: budget movements (`account` absent or `budget`). */
export const LedgerEntry = z.object({
  tenant: Name,
  account: z.literal('budget').optional(),
  kind: z.enum(['reserve', 'settle', 'release']),
  amount: z.number().int(),
  jobId: z.string().min(1),
  attempt: z.number().int().min(1),
  at: z.string(),
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;

/**
 * `janus.ledger.<tenant>` (v1.1): a prepaid-credits movement (CONTRACT §2 Tenant "Credits";
 * docs/credits.md). `entryId` is its JetStream msgID and PostgreSQL key:
 * `<jobId>.<attempt>.credits.<kind>.<leaseId>` for a job's movement, `topup.<tenant>.<digest>` for
 * a top-up (which has no job). Balance = Σ topup − Σ settle + Σ overrun; a lease's reservation is
 * open until its lease has a settle or release entry.
 */
export const CreditLedgerEntry = z
  .object({
    account: z.literal('credits'),
    entryId: z.string().min(1).max(400),
    tenant: Name,
    kind: z.enum(['topup', 'reserve', 'settle', 'overrun', 'release']),
    amount: z.number().int().min(0),
    jobId: z.string().min(1).optional(),
    attempt: z.number().int().min(1).optional(),
    leaseId: z.string().min(1).max(200).optional(),
    at: z.string(),
  })
  .refine((e) => e.kind === 'topup' || (e.jobId !== undefined && e.attempt !== undefined && e.leaseId !== undefined), {
    message: 'a job movement names its jobId, attempt and leaseId',
  });
export type CreditLedgerEntry = z.infer<typeof CreditLedgerEntry>;

/** What the ledger stream carries: budget entries and (v1.1) credits entries. */
export const LedgerMessage = z.union([CreditLedgerEntry, LedgerEntry]);
export type LedgerMessage = z.infer<typeof LedgerMessage>;

/** `janus.config.changed`. */
export const ConfigChanged = z.object({ version: z.number().int().min(0) });
export type ConfigChanged = z.infer<typeof ConfigChanged>;
