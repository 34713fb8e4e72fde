import { sql } from 'drizzle-orm';
import type { Database } from '@janus/db';

export interface RetentionPolicy {
  /** Finished jobs (succeeded or dead) created before this are deleted with their attempts and outcome reports. */
  readonly finishedJobsBefore: Date;
  /** Rejected messages received before this are deleted. */
  readonly rejectedBefore: Date;
  /** Ledger entries before this are deleted; undefined keeps the ledger forever (the default: it is the billing record). */
  readonly ledgerBefore?: Date;
  /** Rows per DELETE statement: pruning never holds long locks or a huge transaction. */
  readonly chunk?: number;
}

export interface PruneResult {
  readonly jobs: number;
  readonly attempts: number;
  readonly outcomeEvents: number;
  readonly deadLetters: number;
  readonly rejected: number;
  readonly ledger: number;
  /** Idempotency keys whose window had ended (they answer nothing any more). */
  readonly idempotencyKeys: number;
}

async function deleteInChunks(db: Database, statement: (limit: number) => ReturnType<typeof sql>, limit: number): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await db.execute(statement(limit));
    const n = result.rowCount ?? 0;
    total += n;
    if (n < limit) return total;
  }
}

/**
 * Deletes history older than the retention policy, in small chunks (see apps/persister/README.md).
 * Jobs still in flight (admitted, retrying, queued) are never pruned, however old.
 */
export async function pruneHistory(db: Database, policy: RetentionPolicy): Promise<PruneResult> {
  const limit = policy.chunk ?? 5_000;
  const cutoff = policy.finishedJobsBefore;
  let attemptsDeleted = 0;
  let outcomeEventsDeleted = 0;
  let deadDeleted = 0;
  let jobsDeleted = 0;
  for (;;) {
    const batch = await db.transaction(async (tx) => {
      const victims = await tx.execute<{ job_id: string }>(sql`
        SELECT job_id FROM jobs WHERE created_at < ${cutoff} AND status IN ('succeeded', 'dead')
        ORDER BY created_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`);
      const ids = victims.rows.map((r) => r.job_id);
      if (ids.length === 0) return 0;
      const param = sql.param(ids);
      attemptsDeleted += (await tx.execute(sql`DELETE FROM attempts WHERE job_id = ANY(${param}::text[])`)).rowCount ?? 0;
      outcomeEventsDeleted += (await tx.execute(sql`DELETE FROM outcome_events WHERE job_id = ANY(${param}::text[])`)).rowCount ?? 0;
      deadDeleted += (await tx.execute(sql`DELETE FROM dead_letters WHERE job_id = ANY(${param}::text[])`)).rowCount ?? 0;
      await tx.execute(sql`DELETE FROM retry_due WHERE job_id = ANY(${param}::text[])`);
      jobsDeleted += (await tx.execute(sql`DELETE FROM jobs WHERE job_id = ANY(${param}::text[])`)).rowCount ?? 0;
      return ids.length;
    });
    if (batch < limit) break;
  }
  const rejected = await deleteInChunks(
    db,
    (n) => sql`DELETE FROM rejected_messages WHERE id IN (SELECT id FROM rejected_messages WHERE received_at < ${policy.rejectedBefore} LIMIT ${n})`,
    limit,
  );
  const ledgerBefore = policy.ledgerBefore;
  const ledger =
    ledgerBefore === undefined
      ? 0
      : await deleteInChunks(
          db,
          (n) => sql`DELETE FROM budget_ledger WHERE entry_id IN (SELECT entry_id FROM budget_ledger WHERE at < ${ledgerBefore} LIMIT ${n})`,
          limit,
        );
  const idempotencyKeys = await deleteInChunks(
    db,
    (n) => sql`DELETE FROM idempotency_keys WHERE (tenant, key, position) IN (SELECT tenant, key, position FROM idempotency_keys WHERE expires_at < now() LIMIT ${n})`,
    limit,
  );
  return { jobs: jobsDeleted, attempts: attemptsDeleted, outcomeEvents: outcomeEventsDeleted, deadLetters: deadDeleted, rejected, ledger, idempotencyKeys };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Runs `pruneHistory` a minute after start (not in the middle of start-up) and then every `intervalMs` (default hourly) with a rolling window of
 * `retentionDays`. Several instances may run it at once (rows are claimed with SKIP LOCKED).
 * Returns a function that stops it.
 */
export function schedulePruning(
  db: Database,
  opts: { retentionDays: number; intervalMs?: number; onResult?: (r: PruneResult) => void; onError?: (e: unknown) => void },
): () => void {
  let stopped = false;
  let running = false;
  const tick = async () => {
    if (running || stopped) return;
    running = true;
    try {
      const cutoff = new Date(Date.now() - opts.retentionDays * DAY_MS);
      opts.onResult?.(await pruneHistory(db, { finishedJobsBefore: cutoff, rejectedBefore: cutoff }));
    } catch (error) {
      opts.onError?.(error);
    } finally {
      running = false;
    }
  };
  const first = setTimeout(() => void tick(), 60_000);
  const timer = setInterval(() => void tick(), opts.intervalMs ?? 60 * 60 * 1000);
  first.unref();
  timer.unref();
  return () => {
    stopped = true;
    clearTimeout(first);
    clearInterval(timer);
  };
}
