import { sql } from 'drizzle-orm';
import type { Database } from '@janus/db';

export interface RowCounts {
  readonly jobs: number;
  readonly attempts: number;
  readonly outcomeEvents: number;
  readonly deadLetters: number;
  readonly ledger: number;
  readonly rejected: number;
  readonly succeeded: number;
  readonly dead: number;
  /** Attempts with both their admission and their outcome stored. */
  readonly completeAttempts: number;
}

/** Row counts of the persister's tables (for tests and the benchmark). */
export async function countRows(db: Database): Promise<RowCounts> {
  const result = await db.execute<Record<keyof RowCounts, number>>(sql`
    SELECT
      (SELECT count(*) FROM jobs)::int AS "jobs",
      (SELECT count(*) FROM attempts)::int AS "attempts",
      (SELECT count(*) FROM outcome_events)::int AS "outcomeEvents",
      (SELECT count(*) FROM dead_letters)::int AS "deadLetters",
      (SELECT count(*) FROM budget_ledger)::int AS "ledger",
      (SELECT count(*) FROM rejected_messages)::int AS "rejected",
      (SELECT count(*) FROM jobs WHERE status = 'succeeded')::int AS "succeeded",
      (SELECT count(*) FROM jobs WHERE status = 'dead')::int AS "dead",
      (SELECT count(*) FROM attempts WHERE admitted_at IS NOT NULL AND outcome IS NOT NULL)::int AS "completeAttempts"`);
  const row = result.rows[0];
  if (!row) throw new Error('count query returned no row');
  return row;
}
