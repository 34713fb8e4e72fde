import { createHash } from 'node:crypto';
import { and, asc, eq } from 'drizzle-orm';
import { outcomeEvents, type Database } from '@janus/db';

/** An outcome report as the persister recorded it (outcome_events): when JetStream stored it and what it said. */
export interface RecordedReport {
  /** JetStream's storage time, ms. */
  readonly at: number;
  readonly outcome: string;
  readonly actualCost: number | undefined;
}

/**
 * The first report of an attempt made with this lease token that the persister has recorded, or
 * undefined. The HTTP outcome route asks it before publishing, so that a worker reporting again
 * (its first answer lost) is judged by its first report, whatever JetStream's duplicate window:
 * reports are recorded within the persister's lag (typically under a second), not at once.
 */
export async function firstReportByToken(db: Database, jobId: string, attempt: number, leaseToken: string): Promise<RecordedReport | undefined> {
  const tokenHash = createHash('sha256').update(leaseToken).digest('hex');
  const [row] = await db
    .select({ at: outcomeEvents.reportedAt, outcome: outcomeEvents.outcome, actualCost: outcomeEvents.actualCost })
    .from(outcomeEvents)
    .where(and(eq(outcomeEvents.jobId, jobId), eq(outcomeEvents.attempt, attempt), eq(outcomeEvents.leaseTokenHash, tokenHash)))
    .orderBy(asc(outcomeEvents.reportedAt), asc(outcomeEvents.streamSeq))
    .limit(1);
  return row === undefined ? undefined : { at: row.at.getTime(), outcome: row.outcome, actualCost: row.actualCost ?? undefined };
}
