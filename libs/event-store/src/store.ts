import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { attempts, budgetLedger, deadLetters, jobs, outcomeEvents, rejectedMessages, type Database } from '@janus/db';
import { ledgerEntryId, type PersistEvent } from './decode.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Of<K extends PersistEvent['kind']> = Extract<PersistEvent, { kind: K }>;

/** Rows per INSERT statement: far below PostgreSQL's 65,535 parameters for the widest table. */
const CHUNK = 1_000;

export interface StoreResult {
  /** Events written or found already written (duplicates count: they are stored). */
  readonly stored: number;
  readonly rejected: number;
  /** Jobs whose status may have changed: hand them to `reconcileJobStatus` after the commit. */
  readonly touchedJobIds: readonly string[];
}

function chunks<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += CHUNK) out.push(rows.slice(i, i + CHUNK));
  return out;
}

/** Byte-wise order, the same as `COLLATE "C"`: every writer locks rows in one order (no deadlocks). */
function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function attemptKey(jobId: string, attempt: number): string {
  return `${jobId}\u0000${String(attempt).padStart(10, '0')}`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Natural key of an outcome report: the attempt plus a hash of what it says. */
export function outcomeEventId(e: Of<'outcome'>['body']): string {
  const content = JSON.stringify([e.outcome, e.leaseToken, e.error ?? null, e.actualCost ?? null]);
  return `${e.jobId}.${e.attempt}.${sha256(content).slice(0, 16)}`;
}

/**
 * Writes one batch of decoded events in ONE transaction with multi-row, idempotent statements
 * (natural keys: jobId, jobId+attempt, ledger entry id, outcome content hash, stream+seq for
 * rejects). Writing the same batch twice, or its events in any order across batches, ends in the
 * same rows. Job status is NOT derived here: call `reconcileJobStatus(touchedJobIds)` after the
 * commit (see there why it must be a separate transaction).
 */
export async function storeBatch(db: Database, events: readonly PersistEvent[]): Promise<StoreResult> {
  const byKind = {
    job: [] as Of<'job'>[],
    outcome: [] as Of<'outcome'>[],
    dead: [] as Of<'dead'>[],
    ledger: [] as Of<'ledger'>[],
    rejected: [] as Of<'rejected'>[],
  };
  for (const e of events) (byKind[e.kind] as PersistEvent[]).push(e);
  const touched = new Set<string>();
  for (const e of byKind.job) touched.add(e.body.jobId);
  for (const e of byKind.outcome) touched.add(e.body.jobId);
  for (const e of byKind.dead) touched.add(e.body.jobId);

  if (events.length > 0) {
    await db.transaction(async (tx) => {
      await writeJobs(tx, byKind.job);
      await writeOutcomes(tx, byKind.outcome);
      await writeDeadLetters(tx, byKind.dead);
      await writeLedger(tx, byKind.ledger);
      await writeRejected(tx, byKind.rejected);
    });
  }
  return {
    stored: events.length - byKind.rejected.length,
    rejected: byKind.rejected.length,
    touchedJobIds: [...touched].sort(byKey),
  };
}

async function writeJobs(tx: Tx, events: readonly Of<'job'>[]): Promise<void> {
  if (events.length === 0) return;
  // One row per job: the earliest admission seen carries the job's creation time, priority and
  // payload (retries may be admitted at another priority).
  const firstByJob = new Map<string, Of<'job'>['body']>();
  const byAttempt = new Map<string, Of<'job'>['body']>();
  for (const { body } of events) {
    const seen = firstByJob.get(body.jobId);
    if (!seen || Date.parse(body.admittedAt) < Date.parse(seen.admittedAt)) firstByJob.set(body.jobId, body);
    const key = attemptKey(body.jobId, body.attempt);
    if (!byAttempt.has(key)) byAttempt.set(key, body);
  }
  const now = new Date();
  const jobRows = [...firstByJob.values()]
    .sort((a, b) => byKey(a.jobId, b.jobId))
    .map((b) => ({
      jobId: b.jobId,
      tenant: b.tenant,
      type: b.type,
      priority: b.priority,
      status: 'admitted',
      payload: b.payload ?? null,
      createdAt: new Date(b.admittedAt),
      updatedAt: now,
    }));
  for (const rows of chunks(jobRows)) {
    await tx
      .insert(jobs)
      .values(rows)
      .onConflictDoUpdate({
        target: jobs.jobId,
        set: {
          priority: sql`excluded.priority`,
          payload: sql`excluded.payload`,
          createdAt: sql`excluded.created_at`,
          updatedAt: sql`excluded.updated_at`,
        },
        setWhere: sql`excluded.created_at < ${jobs.createdAt}`,
      });
  }

  const attemptRows = [...byAttempt.entries()]
    .sort(([a], [b]) => byKey(a, b))
    .map(([, b]) => ({
      jobId: b.jobId,
      attempt: b.attempt,
      admittedAt: new Date(b.admittedAt),
      leaseId: b.lease.id,
      leaseExpiresAt: new Date(b.lease.expiresAt),
    }));
  for (const rows of chunks(attemptRows)) {
    // The row may exist already, created by an outcome that overtook its admission.
    await tx
      .insert(attempts)
      .values(rows)
      .onConflictDoUpdate({
        target: [attempts.jobId, attempts.attempt],
        set: {
          admittedAt: sql`excluded.admitted_at`,
          leaseId: sql`excluded.lease_id`,
          leaseExpiresAt: sql`excluded.lease_expires_at`,
        },
        setWhere: sql`${attempts.admittedAt} IS NULL`,
      });
  }
}

async function writeOutcomes(tx: Tx, events: readonly Of<'outcome'>[]): Promise<void> {
  if (events.length === 0) return;
  // First outcome wins: the first in stream order within the batch, and only if the attempt has
  // none yet (a later duplicate or a zombie's late report never overwrites it).
  const firstByAttempt = new Map<string, Of<'outcome'>>();
  const ordered = [...events].sort((a, b) => a.seq - b.seq);
  for (const e of ordered) {
    const key = attemptKey(e.body.jobId, e.body.attempt);
    if (!firstByAttempt.has(key)) firstByAttempt.set(key, e);
  }
  const attemptRows = [...firstByAttempt.entries()]
    .sort(([a], [b]) => byKey(a, b))
    .map(([, e]) => ({
      jobId: e.body.jobId,
      attempt: e.body.attempt,
      outcome: e.body.outcome,
      finishedAt: e.reportedAt,
      error: e.body.error ?? null,
      actualCost: e.body.actualCost ?? null,
    }));
  const applied = new Set<string>();
  for (const rows of chunks(attemptRows)) {
    const won = await tx
      .insert(attempts)
      .values(rows)
      .onConflictDoUpdate({
        target: [attempts.jobId, attempts.attempt],
        set: {
          outcome: sql`excluded.outcome`,
          finishedAt: sql`excluded.finished_at`,
          error: sql`excluded.error`,
          actualCost: sql`excluded.actual_cost`,
        },
        setWhere: sql`${attempts.outcome} IS NULL`,
      })
      .returning({ jobId: attempts.jobId, attempt: attempts.attempt });
    for (const r of won) applied.add(attemptKey(r.jobId, r.attempt));
  }

  // Every distinct report is recorded; the one that became the attempt's outcome is marked.
  const eventRows = new Map<string, typeof outcomeEvents.$inferInsert>();
  for (const e of ordered) {
    const eventId = outcomeEventId(e.body);
    if (eventRows.has(eventId)) continue;
    const key = attemptKey(e.body.jobId, e.body.attempt);
    eventRows.set(eventId, {
      eventId,
      jobId: e.body.jobId,
      attempt: e.body.attempt,
      outcome: e.body.outcome,
      error: e.body.error ?? null,
      actualCost: e.body.actualCost ?? null,
      leaseTokenHash: sha256(e.body.leaseToken),
      applied: applied.has(key) && firstByAttempt.get(key) === e,
      streamSeq: e.seq,
      reportedAt: e.reportedAt,
    });
  }
  const sorted = [...eventRows.values()].sort((a, b) => byKey(a.eventId, b.eventId));
  for (const rows of chunks(sorted)) await tx.insert(outcomeEvents).values(rows).onConflictDoNothing({ target: outcomeEvents.eventId });
}

async function writeDeadLetters(tx: Tx, events: readonly Of<'dead'>[]): Promise<void> {
  if (events.length === 0) return;
  const rows = new Map<string, typeof deadLetters.$inferInsert>();
  for (const { body: b } of events) {
    if (rows.has(b.jobId)) continue;
    rows.set(b.jobId, {
      jobId: b.jobId,
      tenant: b.tenant,
      type: b.type,
      attempts: b.attempts,
      lastOutcome: b.lastOutcome,
      error: b.error ?? null,
      payload: b.payload ?? null,
      deadAt: new Date(b.deadAt),
    });
  }
  const sorted = [...rows.values()].sort((a, b) => byKey(a.jobId, b.jobId));
  for (const chunk of chunks(sorted)) await tx.insert(deadLetters).values(chunk).onConflictDoNothing({ target: deadLetters.jobId });
}

async function writeLedger(tx: Tx, events: readonly Of<'ledger'>[]): Promise<void> {
  if (events.length === 0) return;
  const rows = new Map<string, typeof budgetLedger.$inferInsert>();
  for (const { body: b } of events) {
    const entryId = ledgerEntryId(b);
    if (rows.has(entryId)) continue;
    rows.set(entryId, { entryId, tenant: b.tenant, kind: b.kind, amount: b.amount, jobId: b.jobId, attempt: b.attempt, at: new Date(b.at) });
  }
  const sorted = [...rows.values()].sort((a, b) => byKey(a.entryId, b.entryId));
  for (const chunk of chunks(sorted)) await tx.insert(budgetLedger).values(chunk).onConflictDoNothing({ target: budgetLedger.entryId });
}

async function writeRejected(tx: Tx, events: readonly Of<'rejected'>[]): Promise<void> {
  if (events.length === 0) return;
  const rows = new Map<string, typeof rejectedMessages.$inferInsert>();
  for (const e of events) {
    const key = `${e.stream}\u0000${e.seq}`;
    if (!rows.has(key)) rows.set(key, { stream: e.stream, streamSeq: e.seq, subject: e.subject, reason: e.reason, raw: e.raw });
  }
  for (const chunk of chunks([...rows.values()])) {
    await tx.insert(rejectedMessages).values(chunk).onConflictDoNothing({ target: [rejectedMessages.stream, rejectedMessages.streamSeq] });
  }
}

/**
 * Derives each job's status from the facts stored (CONTRACT §3): `succeeded` if any attempt
 * succeeded; else `dead` if it has a dead letter; else `retrying` if its latest attempt failed or
 * timed out; else `queued` if it was queued and no attempt was admitted yet; else `admitted`.
 *
 * Runs in its own transaction, after the facts' transaction committed: it first locks the job rows
 * (in one order), and only then reads the facts in a new statement, which under READ COMMITTED
 * sees everything committed before the lock was granted. So whichever reconcile of a job runs last
 * sees every fact committed before it, and concurrent writers (other streams, other persister
 * instances) can never leave a stale status behind. A job row created later is reconciled by the
 * batch that creates it.
 */
export async function reconcileJobStatus(db: Database, jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return;
  for (let i = 0; i < jobIds.length; i += CHUNK) {
    const ids = jobIds.slice(i, i + CHUNK);
    await db.transaction(async (tx) => {
      await tx.execute(sql`SELECT 1 FROM ${jobs} WHERE job_id = ANY(${sql.param(ids)}::text[]) ORDER BY job_id COLLATE "C" FOR UPDATE`);
      await tx.execute(sql`
        UPDATE ${jobs} AS j SET status = d.status, updated_at = now()
        FROM (
          SELECT j2.job_id,
            CASE
              WHEN EXISTS (SELECT 1 FROM ${attempts} a WHERE a.job_id = j2.job_id AND a.outcome = 'succeeded') THEN 'succeeded'
              WHEN EXISTS (SELECT 1 FROM ${deadLetters} dl WHERE dl.job_id = j2.job_id) THEN 'dead'
              WHEN (SELECT a.outcome FROM ${attempts} a WHERE a.job_id = j2.job_id ORDER BY a.attempt DESC LIMIT 1) IN ('failed', 'timed_out') THEN 'retrying'
              WHEN j2.status = 'queued' AND NOT EXISTS (SELECT 1 FROM ${attempts} a WHERE a.job_id = j2.job_id AND a.admitted_at IS NOT NULL) THEN 'queued'
              ELSE 'admitted'
            END AS status
          FROM ${jobs} j2
          WHERE j2.job_id = ANY(${sql.param(ids)}::text[])
        ) AS d
        WHERE j.job_id = d.job_id AND j.status IS DISTINCT FROM d.status`);
    });
  }
}
