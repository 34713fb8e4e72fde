import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { attempts, budgetLedger, creditLedger, deadLetters, idempotencyKeys, jobs, outcomeEvents, rejectedMessages, type Database } from '@janus/db';
import { outcomeReportId } from '@janus/contracts';
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
  /** Jobs with a new outcome report or applied outcome: their applied report is marked by `reconcileJobStatus`. */
  readonly reportJobIds: readonly string[];
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

/** Natural key of an outcome report: the attempt plus a hash of what it says (`outcomeReportId`). */
export function outcomeEventId(e: Of<'outcome'>['body']): string {
  return outcomeReportId(e);
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
    credit: [] as Of<'credit'>[],
    applied: [] as Of<'applied'>[],
    extension: [] as Of<'extension'>[],
    rejected: [] as Of<'rejected'>[],
  };
  for (const e of events) (byKind[e.kind] as PersistEvent[]).push(e);
  // A report changes no status (only what the scheduler applied does): it only has its applied mark to find.
  const touched = new Set<string>();
  for (const e of byKind.job) touched.add(e.body.jobId);
  for (const e of byKind.dead) touched.add(e.body.jobId);
  for (const e of byKind.applied) touched.add(e.body.jobId);
  const reported = new Set<string>();
  for (const e of byKind.outcome) reported.add(e.body.jobId);
  for (const e of byKind.applied) reported.add(e.body.jobId);

  if (events.length > 0) {
    await db.transaction(async (tx) => {
      await writeJobs(tx, byKind.job);
      await writeOutcomes(tx, byKind.outcome);
      await writeApplied(tx, byKind.applied);
      await writeDeadLetters(tx, byKind.dead);
      await writeLedger(tx, byKind.ledger);
      await writeCredits(tx, byKind.credit);
      await writeExtensions(tx, byKind.extension);
      await writeRejected(tx, byKind.rejected);
    });
  }
  return {
    stored: events.length - byKind.rejected.length,
    rejected: byKind.rejected.length,
    touchedJobIds: [...touched].sort(byKey),
    reportJobIds: [...reported].sort(byKey),
  };
}

/** `unnest($1::text[], $2::int[], ...)`: one array parameter per column, whatever the row count. */
function col(values: readonly unknown[], type: string) {
  return sql`${sql.param(values)}::${sql.raw(type)}[]`;
}

function iso(d: Date): string {
  return d.toISOString();
}

function jsonOrNull(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

async function writeJobs(tx: Tx, events: readonly Of<'job'>[]): Promise<void> {
  if (events.length === 0) return;
  // One row per job: the earliest admission seen carries the job's creation time, priority and
  // payload (retries may be admitted at another priority). A job that waited in the room (mode
  // `queue`) was created when it arrived there, not when it was admitted: GET and the job list
  // show one creation time for it before and after its admission (a listing's order and cursors
  // stay stable).
  const firstByJob = new Map<string, Of<'job'>['body']>();
  const byAttempt = new Map<string, Of<'job'>['body']>();
  for (const { body } of events) {
    const seen = firstByJob.get(body.jobId);
    if (!seen || Date.parse(body.admittedAt) < Date.parse(seen.admittedAt)) firstByJob.set(body.jobId, body);
    const key = attemptKey(body.jobId, body.attempt);
    if (!byAttempt.has(key)) byAttempt.set(key, body);
  }
  const now = new Date().toISOString();
  const jobRows = [...firstByJob.values()].sort((a, b) => byKey(a.jobId, b.jobId));
  for (const rows of chunks(jobRows)) {
    await tx.execute(sql`
      INSERT INTO ${jobs} (job_id, tenant, type, priority, status, payload, cost, created_at, updated_at)
      SELECT j, t, ty, p, 'admitted', pl::jsonb, co, least(c, w.created_at), ${now}::timestamptz
      FROM unnest(${col(rows.map((r) => r.jobId), 'text')}, ${col(rows.map((r) => r.tenant), 'text')},
                  ${col(rows.map((r) => r.type), 'text')}, ${col(rows.map((r) => r.priority), 'text')},
                  ${col(rows.map((r) => jsonOrNull(r.payload)), 'text')}, ${col(rows.map((r) => r.cost ?? null), 'int')},
                  ${col(rows.map((r) => iso(new Date(r.admittedAt))), 'timestamptz')})
        AS u(j, t, ty, p, pl, co, c)
        LEFT JOIN waiting_jobs w ON w.job_id = u.j AND w.attempt = 1 AND w.tenant = u.t
      ON CONFLICT (job_id) DO UPDATE SET
        priority = excluded.priority, payload = excluded.payload, cost = excluded.cost, created_at = excluded.created_at, updated_at = excluded.updated_at
      WHERE excluded.created_at < ${jobs.createdAt}`);
  }
  await writeIdempotencyKeys(tx, jobRows);

  const attemptRows = [...byAttempt.entries()].sort(([a], [b]) => byKey(a, b)).map(([, b]) => b);
  for (const rows of chunks(attemptRows)) {
    // The row may exist already, created by an outcome that overtook its admission.
    await tx.execute(sql`
      INSERT INTO ${attempts} (job_id, attempt, admitted_at, lease_id, lease_expires_at)
      SELECT * FROM unnest(${col(rows.map((r) => r.jobId), 'text')}, ${col(rows.map((r) => r.attempt), 'int')},
                           ${col(rows.map((r) => iso(new Date(r.admittedAt))), 'timestamptz')}, ${col(rows.map((r) => r.lease.id), 'text')},
                           ${col(rows.map((r) => iso(new Date(r.lease.expiresAt))), 'timestamptz')})
      ON CONFLICT (job_id, attempt) DO UPDATE SET
        admitted_at = excluded.admitted_at, lease_id = excluded.lease_id, lease_expires_at = excluded.lease_expires_at
      WHERE ${attempts.admittedAt} IS NULL`);
  }
}

/**
 * The producers' idempotency keys attempt 1 was admitted under (its own, its batch's): one row per
 * key and position. A key used again after its window (a later admission) replaces the row.
 */
async function writeIdempotencyKeys(tx: Tx, bodies: readonly Of<'job'>['body'][]): Promise<void> {
  type Row = { tenant: string; key: string; position: number; batchSize: number | null; jobId: string; fingerprint: string; admittedAt: string; expiresAt: string };
  const rowsById = new Map<string, Row>();
  const add = (row: Row) => {
    const id = `${row.tenant}\u0000${row.key}\u0000${String(row.position).padStart(4, '0')}`;
    const seen = rowsById.get(id);
    if (!seen || seen.admittedAt < row.admittedAt) rowsById.set(id, row);
  };
  for (const b of bodies) {
    if (b.attempt !== 1) continue;
    const admittedAt = iso(new Date(b.admittedAt));
    const own = b.idempotency;
    if (own) add({ tenant: b.tenant, key: own.key, position: 0, batchSize: null, jobId: b.jobId, fingerprint: own.fingerprint, admittedAt, expiresAt: iso(new Date(own.expiresAt)) });
    const batch = b.batchIdempotency;
    if (batch) {
      add({ tenant: b.tenant, key: batch.key, position: batch.index, batchSize: batch.size, jobId: b.jobId, fingerprint: batch.fingerprint, admittedAt, expiresAt: iso(new Date(batch.expiresAt)) });
    }
  }
  if (rowsById.size === 0) return;
  const sorted = [...rowsById.entries()].sort(([a], [b]) => byKey(a, b)).map(([, r]) => r);
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${idempotencyKeys} (tenant, key, position, batch_size, job_id, fingerprint, admitted_at, expires_at)
      SELECT * FROM unnest(${col(rows.map((r) => r.tenant), 'text')}, ${col(rows.map((r) => r.key), 'text')},
                           ${col(rows.map((r) => r.position), 'int')}, ${col(rows.map((r) => r.batchSize), 'int')},
                           ${col(rows.map((r) => r.jobId), 'text')}, ${col(rows.map((r) => r.fingerprint), 'text')},
                           ${col(rows.map((r) => r.admittedAt), 'timestamptz')}, ${col(rows.map((r) => r.expiresAt), 'timestamptz')})
      ON CONFLICT (tenant, key, position) DO UPDATE SET
        batch_size = excluded.batch_size, job_id = excluded.job_id, fingerprint = excluded.fingerprint,
        admitted_at = excluded.admitted_at, expires_at = excluded.expires_at
      WHERE excluded.admitted_at > ${idempotencyKeys.admittedAt}`);
  }
}

/**
 * Outcome reports (what workers, ingress and the reaper published) are records only: every
 * distinct report is kept, none sets an attempt's outcome or a job's status. A forged, late or
 * repeated report therefore changes nothing; `applied` is set by `reconcileJobStatus` on the one
 * the scheduler applied.
 */
async function writeOutcomes(tx: Tx, events: readonly Of<'outcome'>[]): Promise<void> {
  if (events.length === 0) return;
  const eventRows = new Map<string, { eventId: string; e: Of<'outcome'> }>();
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    const eventId = outcomeEventId(e.body);
    if (!eventRows.has(eventId)) eventRows.set(eventId, { eventId, e });
  }
  const sorted = [...eventRows.values()].sort((a, b) => byKey(a.eventId, b.eventId));
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${outcomeEvents} (event_id, job_id, attempt, outcome, error, actual_cost, lease_token_hash, applied, stream_seq, reported_at)
      SELECT * FROM unnest(${col(rows.map((r) => r.eventId), 'text')}, ${col(rows.map((r) => r.e.body.jobId), 'text')},
                           ${col(rows.map((r) => r.e.body.attempt), 'int')}, ${col(rows.map((r) => r.e.body.outcome), 'text')},
                           ${col(rows.map((r) => r.e.body.error ?? null), 'text')}, ${col(rows.map((r) => r.e.body.actualCost ?? null), 'int')},
                           ${col(rows.map((r) => sha256(r.e.body.leaseToken)), 'text')}, ${col(rows.map(() => false), 'boolean')},
                           ${col(rows.map((r) => r.e.seq), 'bigint')}, ${col(rows.map((r) => iso(r.e.reportedAt)), 'timestamptz')})
      ON CONFLICT (event_id) DO NOTHING`);
  }
}

/**
 * Outcomes the retry-scheduler accepted (one per attempt; msgID `<jobId>.<attempt>.applied`): these
 * alone set an attempt's outcome. The first stored wins; a re-published one changes nothing.
 */
async function writeApplied(tx: Tx, events: readonly Of<'applied'>[]): Promise<void> {
  if (events.length === 0) return;
  const firstByAttempt = new Map<string, Of<'applied'>['body']>();
  for (const { body } of [...events].sort((a, b) => a.seq - b.seq)) {
    const key = attemptKey(body.jobId, body.attempt);
    if (!firstByAttempt.has(key)) firstByAttempt.set(key, body);
  }
  const rows = [...firstByAttempt.entries()].sort(([a], [b]) => byKey(a, b)).map(([, b]) => b);
  for (const chunk of chunks(rows)) {
    // The row may not exist yet: the applied event overtook its admission.
    await tx.execute(sql`
      INSERT INTO ${attempts} (job_id, attempt, outcome, finished_at, error, actual_cost, applied_report_id)
      SELECT * FROM unnest(${col(chunk.map((b) => b.jobId), 'text')}, ${col(chunk.map((b) => b.attempt), 'int')},
                           ${col(chunk.map((b) => b.outcome), 'text')}, ${col(chunk.map((b) => iso(new Date(b.appliedAt))), 'timestamptz')},
                           ${col(chunk.map((b) => b.error ?? null), 'text')}, ${col(chunk.map((b) => b.actualCost ?? null), 'int')},
                           ${col(chunk.map((b) => b.reportId), 'text')})
      ON CONFLICT (job_id, attempt) DO UPDATE SET
        outcome = excluded.outcome, finished_at = excluded.finished_at, error = excluded.error,
        actual_cost = excluded.actual_cost, applied_report_id = excluded.applied_report_id
      WHERE ${attempts.outcome} IS NULL`);
  }
}

/**
 * One row per job: its latest death. A replayed job (docs/api.md) that uses up its attempts again
 * dies again with more attempts; that letter replaces the earlier one (the status derivation
 * compares its attempts with the job's latest attempt).
 */
async function writeDeadLetters(tx: Tx, events: readonly Of<'dead'>[]): Promise<void> {
  if (events.length === 0) return;
  const byJob = new Map<string, Of<'dead'>['body']>();
  for (const { body } of events) {
    const seen = byJob.get(body.jobId);
    if (!seen || seen.attempts < body.attempts) byJob.set(body.jobId, body);
  }
  const sorted = [...byJob.values()].sort((a, b) => byKey(a.jobId, b.jobId));
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${deadLetters} (job_id, tenant, type, attempts, last_outcome, error, payload, dead_at)
      SELECT j, t, ty, a, lo, e, pl::jsonb, d
      FROM unnest(${col(rows.map((r) => r.jobId), 'text')}, ${col(rows.map((r) => r.tenant), 'text')}, ${col(rows.map((r) => r.type), 'text')},
                  ${col(rows.map((r) => r.attempts), 'int')}, ${col(rows.map((r) => r.lastOutcome), 'text')}, ${col(rows.map((r) => r.error ?? null), 'text')},
                  ${col(rows.map((r) => jsonOrNull(r.payload)), 'text')}, ${col(rows.map((r) => iso(new Date(r.deadAt))), 'timestamptz')})
        AS u(j, t, ty, a, lo, e, pl, d)
      ON CONFLICT (job_id) DO UPDATE SET
        attempts = excluded.attempts, last_outcome = excluded.last_outcome, error = excluded.error, payload = excluded.payload, dead_at = excluded.dead_at
      WHERE excluded.attempts > ${deadLetters.attempts}`);
  }
}

async function writeLedger(tx: Tx, events: readonly Of<'ledger'>[]): Promise<void> {
  if (events.length === 0) return;
  const byEntry = new Map<string, Of<'ledger'>['body']>();
  for (const { body } of events) {
    const entryId = ledgerEntryId(body);
    if (!byEntry.has(entryId)) byEntry.set(entryId, body);
  }
  const sorted = [...byEntry.entries()].sort(([a], [b]) => byKey(a, b));
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${budgetLedger} (entry_id, tenant, kind, amount, job_id, attempt, at)
      SELECT * FROM unnest(${col(rows.map(([id]) => id), 'text')}, ${col(rows.map(([, b]) => b.tenant), 'text')},
                           ${col(rows.map(([, b]) => b.kind), 'text')}, ${col(rows.map(([, b]) => b.amount), 'bigint')},
                           ${col(rows.map(([, b]) => b.jobId), 'text')}, ${col(rows.map(([, b]) => b.attempt), 'int')},
                           ${col(rows.map(([, b]) => iso(new Date(b.at))), 'timestamptz')})
      ON CONFLICT (entry_id) DO NOTHING`);
  }
}

/** Credits movements, keyed on their entry id (a re-published entry is stored once). */
async function writeCredits(tx: Tx, events: readonly Of<'credit'>[]): Promise<void> {
  if (events.length === 0) return;
  const byEntry = new Map<string, Of<'credit'>['body']>();
  for (const { body } of events) if (!byEntry.has(body.entryId)) byEntry.set(body.entryId, body);
  const sorted = [...byEntry.entries()].sort(([a], [b]) => byKey(a, b));
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${creditLedger} (entry_id, tenant, kind, amount, job_id, attempt, lease_id, at)
      SELECT * FROM unnest(${col(rows.map(([id]) => id), 'text')}, ${col(rows.map(([, b]) => b.tenant), 'text')},
                           ${col(rows.map(([, b]) => b.kind), 'text')}, ${col(rows.map(([, b]) => b.amount), 'bigint')},
                           ${col(rows.map(([, b]) => b.jobId ?? null), 'text')}, ${col(rows.map(([, b]) => b.attempt ?? null), 'int')},
                           ${col(rows.map(([, b]) => b.leaseId ?? null), 'text')}, ${col(rows.map(([, b]) => iso(new Date(b.at))), 'timestamptz')})
      ON CONFLICT (entry_id) DO NOTHING`);
  }
}

/**
 * Lease extensions the scheduler granted: an attempt's `lease_extended_until` only ever grows (an
 * extension may overtake its admission: the row is then created with it).
 */
async function writeExtensions(tx: Tx, events: readonly Of<'extension'>[]): Promise<void> {
  if (events.length === 0) return;
  const latest = new Map<string, Of<'extension'>['body']>();
  for (const { body } of events) {
    const key = attemptKey(body.jobId, body.attempt);
    const seen = latest.get(key);
    if (!seen || Date.parse(seen.expiresAt) < Date.parse(body.expiresAt)) latest.set(key, body);
  }
  const rows = [...latest.entries()].sort(([a], [b]) => byKey(a, b)).map(([, b]) => b);
  for (const chunk of chunks(rows)) {
    await tx.execute(sql`
      INSERT INTO ${attempts} (job_id, attempt, lease_extended_until)
      SELECT * FROM unnest(${col(chunk.map((b) => b.jobId), 'text')}, ${col(chunk.map((b) => b.attempt), 'int')},
                           ${col(chunk.map((b) => iso(new Date(b.expiresAt))), 'timestamptz')})
      ON CONFLICT (job_id, attempt) DO UPDATE SET lease_extended_until = excluded.lease_extended_until
      WHERE ${attempts.leaseExtendedUntil} IS NULL OR ${attempts.leaseExtendedUntil} < excluded.lease_extended_until`);
  }
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
 * Derives each job's status from the facts stored (CONTRACT §3), attempt outcomes being those the
 * scheduler applied: `succeeded` if any attempt succeeded; else `dead` if it has a dead letter that
 * covers its latest attempt and that attempt's outcome is stored (a replayed job's later attempts
 * bring it back to life, docs/api.md);
 * else `retrying` if its latest attempt failed or timed out; else `queued` if it was queued and no
 * attempt was admitted yet; else `admitted`.
 *
 * Runs in its own transaction, after the facts' transaction committed: it first locks the job rows
 * (in one order), and only then reads the facts in a new statement, which under READ COMMITTED
 * sees everything committed before the lock was granted. So whichever reconcile of a job runs last
 * sees every fact committed before it, and concurrent writers (other streams, other persister
 * instances) can never leave a stale status behind. A job row created later is reconciled by the
 * batch that creates it.
 *
 * Then marks, for the jobs in `reportJobIds`, the report each attempt's applied outcome names.
 * Report and applied outcome arrive on different streams, in either order, each marking after its
 * own commit: whichever marking statement starts last sees both, and a mark is only ever set, so
 * this needs no lock (and a batch of reports alone changes no status, so it locks nothing).
 */
export async function reconcileJobStatus(db: Database, jobIds: readonly string[], reportJobIds: readonly string[] = []): Promise<void> {
  for (let i = 0; i < jobIds.length; i += CHUNK) {
    const ids = jobIds.slice(i, i + CHUNK);
    await db.transaction(async (tx) => {
      const locked = await tx.execute<{ job_id: string }>(
        sql`SELECT job_id FROM ${jobs} WHERE job_id = ANY(${sql.param(ids)}::text[]) ORDER BY job_id COLLATE "C" FOR UPDATE`,
      );
      // Only the rows locked above: a job row committed meanwhile would be locked by the UPDATE
      // in plan order (a deadlock risk); the batch that created it reconciles it.
      const lockedIds = locked.rows.map((r) => r.job_id);
      if (lockedIds.length === 0) return;
      await tx.execute(sql`
        UPDATE ${jobs} AS j SET status = d.status, updated_at = now()
        FROM (
          SELECT j2.job_id,
            CASE
              WHEN f.any_succeeded THEN 'succeeded'
              -- Dead once the letter covers the latest attempt AND that attempt's applied outcome is
              -- stored: letter and outcome come on different streams, and a job shown dead shows why.
              WHEN EXISTS (SELECT 1 FROM ${deadLetters} dl WHERE dl.job_id = j2.job_id AND dl.attempts >= coalesce(f.last_attempt, 0))
                   AND (f.last_attempt IS NULL OR f.last_outcome IS NOT NULL) THEN 'dead'
              WHEN f.last_outcome IN ('failed', 'timed_out') THEN 'retrying'
              WHEN j2.status = 'queued' AND NOT coalesce(f.any_admitted, false) THEN 'queued'
              ELSE 'admitted'
            END AS status
          FROM ${jobs} j2
          LEFT JOIN LATERAL (
            SELECT bool_or(a.outcome = 'succeeded') AS any_succeeded,
                   bool_or(a.admitted_at IS NOT NULL) AS any_admitted,
                   max(a.attempt) AS last_attempt,
                   (array_agg(a.outcome ORDER BY a.attempt DESC))[1] AS last_outcome
            FROM ${attempts} a WHERE a.job_id = j2.job_id
          ) AS f ON true
          WHERE j2.job_id = ANY(${sql.param(lockedIds)}::text[])
        ) AS d
        WHERE j.job_id = d.job_id AND j.status IS DISTINCT FROM d.status`);
    });
  }
  for (let i = 0; i < reportJobIds.length; i += CHUNK) {
    const ids = reportJobIds.slice(i, i + CHUNK);
    await db.execute(sql`
      UPDATE ${outcomeEvents} AS oe SET applied = true
      FROM ${attempts} a
      WHERE oe.job_id = ANY(${sql.param(ids)}::text[]) AND NOT oe.applied
        AND a.job_id = oe.job_id AND a.attempt = oe.attempt AND a.applied_report_id = oe.event_id`);
  }
}
