/**
 * Every `Nats-Msg-Id` Janus and its workers publish with (CONTRACT §4). JetStream dedupes on them,
 * so a re-publish is safe, and the persister keys rows on them.
 */
export const messageIds = Object.freeze({
  /** A job attempt on JOBS, and the worker's outcome of it on OUTCOMES: `<jobId>.<attempt>`. */
  attempt: (jobId: string, attempt: number): string => `${jobId}.${attempt}`,
  /** The outcome Janus writes when the attempt's lease expired: `<jobId>.<attempt>.timed_out`. */
  timedOut: (jobId: string, attempt: number): string => `${jobId}.${attempt}.timed_out`,
  /** A budget movement on LEDGER: `<jobId>.<attempt>.<kind>` (reserve, settle or release). */
  ledger: (jobId: string, attempt: number, kind: string): string => `${jobId}.${attempt}.${kind}`,
  /** A dead letter on DEAD: `<jobId>` (a job dies once). */
  dead: (jobId: string): string => jobId,
});
