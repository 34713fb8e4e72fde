import { createHash } from 'node:crypto';

/**
 * Every `Nats-Msg-Id` Janus and its workers publish with (CONTRACT §4). JetStream dedupes on them,
 * so a re-publish is safe, and the persister keys rows on them.
 */
export const messageIds = Object.freeze({
  /** A job attempt on JOBS, and the worker's outcome of it on OUTCOMES: `<jobId>.<attempt>`. */
  attempt: (jobId: string, attempt: number): string => `${jobId}.${attempt}`,
  /** The outcome Janus writes when the attempt's lease expired: `<jobId>.<attempt>.timed_out`. */
  timedOut: (jobId: string, attempt: number): string => `${jobId}.${attempt}.timed_out`,
  /** The outcome the scheduler accepted for an attempt, on APPLIED: `<jobId>.<attempt>.applied`. */
  applied: (jobId: string, attempt: number): string => `${jobId}.${attempt}.applied`,
  /**
   * Several applied outcomes in one message (AppliedBatch): `applied.<digest of their
   * "<jobId>.<attempt>", in order>`, so that publishing the same batch again (a publish whose ack
   * was lost) dedupes. A batch put together again after a crash may differ: the persister keeps the
   * first applied outcome of an attempt.
   */
  appliedBatch: (attempts: readonly { readonly jobId: string; readonly attempt: number }[]): string =>
    `applied.${createHash('sha256').update(attempts.map((a) => `${a.jobId}.${a.attempt}`).join('\n')).digest('base64url').slice(0, 32)}`,
  /** A budget movement on LEDGER: `<jobId>.<attempt>.<kind>` (reserve, settle or release). */
  ledger: (jobId: string, attempt: number, kind: string): string => `${jobId}.${attempt}.${kind}`,
  /** A waiting retry on RETRIES, for attempt `nextAttempt`: `<jobId>.<nextAttempt>.retry`. */
  retry: (jobId: string, nextAttempt: number): string => `${jobId}.${nextAttempt}.retry`,
  /** A lease extension on EXTENSIONS: `<jobId>.<attempt>.extended.<expiresAt ms>` (a re-publish of the same extension dedupes). */
  extended: (jobId: string, attempt: number, expiresAtMs: number): string => `${jobId}.${attempt}.extended.${expiresAtMs}`,
  /**
   * A dead letter on DEAD: `<jobId>.<attempts>.dead`. A job may die more than once (a replayed
   * job's new attempts can use up their attempts again): the attempt count tells the deaths apart,
   * so JetStream does not drop a later one as a duplicate of the first.
   */
  dead: (jobId: string, attempts: number): string => `${jobId}.${attempts}.dead`,
});

/**
 * The natural key of one outcome report: `<jobId>.<attempt>.<hash of what it says>` (outcome,
 * lease token, error, actual cost). The persister keys `outcome_events` on it; the scheduler names
 * the report it applied with it (`AppliedOutcome.reportId`).
 */
export function outcomeReportId(e: { jobId: string; attempt: number; outcome: string; leaseToken: string; error?: string | undefined; actualCost?: number | undefined }): string {
  const content = JSON.stringify([e.outcome, e.leaseToken, e.error ?? null, e.actualCost ?? null]);
  return `${e.jobId}.${e.attempt}.${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;
}
