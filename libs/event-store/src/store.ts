import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { attempts, budgetLedger, creditLedger, deadLetters, idempotencyKeys, jobs, outcomeEvents, rejectedMessages, type Database } from '@janus/db';
import { outcomeReportId, type AppliedOutcome } from '@janus/contracts';
import { isCanonicalIso, ledgerEntryId, type PersistEvent } from './decode.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Of<K extends PersistEvent['kind']> = Extract<PersistEvent, { kind: K }>;

/** Rows per INSERT statement: far below PostgreSQL's 65,535 parameters for the widest table. */
const CHUNK = 1_000;

export interface StoreResult {
  /** Events written or found already written (duplicates count: they are stored). */
  readonly stored: number;
  readonly rejected: number;
  /** What `reconcileJobStatus` must do after the commit. */
  readonly followUp: FollowUp;
}

/**
 * The status changes and report marks a committed batch calls for (`reconcileJobStatus`), ids
 * sorted. Every event of the batch lands in one of them, also when it was found already stored: a
 * batch written again after a crash (redelivered) redoes the follow-up its first write never did.
 */
export interface FollowUp {
  /** Jobs whose status may have changed: derived again from all their facts, under row locks. */
  readonly touchedJobIds: readonly string[];
  /**
   * Jobs this batch created (their first admission): `admitted` as inserted, unless an outcome or
   * a dead letter overtook the admission, which a read after the commit finds.
   */
  readonly createdJobIds: readonly string[];
  /** Jobs with an attempt whose success this batch stored: `succeeded`, whatever else is stored. */
  readonly succeededJobIds: readonly string[];
  /** Outcome reports this batch stored or named (applied outcomes): marked once their attempt's applied outcome names them. */
  readonly reportIds: readonly string[];
}

export const NO_FOLLOW_UP: FollowUp = { touchedJobIds: [], createdJobIds: [], succeededJobIds: [], reportIds: [] };

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
 * same rows. Job status is NOT derived here: call `reconcileJobStatus(result.followUp)` after the
 * commit (see there why it must come after).
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
  if (events.length === 0) return { stored: 0, rejected: 0, followUp: NO_FOLLOW_UP };
  const followUp = await db.transaction(async (tx): Promise<FollowUp> => {
    const created = await writeJobs(tx, byKind.job);
    const reportIds = await writeOutcomes(tx, byKind.outcome);
    const succeeded = await writeApplied(tx, byKind.applied);
    await writeDeadLetters(tx, byKind.dead);
    await writeLedger(tx, byKind.ledger);
    await writeCredits(tx, byKind.credit);
    await writeExtensions(tx, byKind.extension);
    await writeRejected(tx, byKind.rejected);
    // Reports and extensions change no status; an admission, a dead letter and an applied outcome
    // may. A success this batch stored needs no derivation: it outranks every other fact.
    const touched = new Set<string>();
    for (const e of byKind.job) if (!created.has(e.body.jobId)) touched.add(e.body.jobId);
    for (const e of byKind.dead) touched.add(e.body.jobId);
    const reports = new Set<string>(reportIds);
    for (const e of byKind.applied) {
      for (const b of e.bodies) {
        if (!succeeded.has(b.jobId)) touched.add(b.jobId);
        reports.add(b.reportId);
      }
    }
    return {
      touchedJobIds: [...touched].sort(byKey),
      createdJobIds: [...created].sort(byKey),
      succeededJobIds: [...succeeded].sort(byKey),
      reportIds: [...reports].sort(byKey),
    };
  });
  return { stored: events.length - byKind.rejected.length, rejected: byKind.rejected.length, followUp };
}

/**
 * A statement's rows as ONE JSON parameter, read back by `json_to_recordset(...) AS u(<col> <type>, …)`:
 * JSON.stringify is native, where pg would escape every element of one array per column in JS.
 */
function rowsParam(rows: readonly object[]) {
  return sql`json_to_recordset(${sql.param(JSON.stringify(rows))}::json)`;
}

/** Timestamps as Janus writes them pass as they are; any other form Date.parse took (decode checked) is normalised. */
function iso(text: string): string {
  return isCanonicalIso(text) ? text : new Date(text).toISOString();
}

/** Writes admissions; returns the jobs whose row this batch created. */
async function writeJobs(tx: Tx, events: readonly Of<'job'>[]): Promise<Set<string>> {
  const created = new Set<string>();
  if (events.length === 0) return created;
  // One row per job: the earliest admission seen carries the job's creation time, priority and
  // payload (retries may be admitted at another priority). A job that waited in the room (mode
  // `queue`) was created when it arrived there, not when it was admitted: GET and the job list
  // show one creation time for it before and after its admission (a listing's order and cursors
  // stay stable).
  const firstByJob = new Map<string, Of<'job'>['body']>();
  const byAttempt = new Map<string, Of<'job'>>();
  for (const event of events) {
    const { body } = event;
    const seen = firstByJob.get(body.jobId);
    if (!seen || Date.parse(body.admittedAt) < Date.parse(seen.admittedAt)) firstByJob.set(body.jobId, body);
    const key = attemptKey(body.jobId, body.attempt);
    if (!byAttempt.has(key)) byAttempt.set(key, event);
  }
  const now = new Date().toISOString();
  const jobRows = [...firstByJob.values()].sort((a, b) => byKey(a.jobId, b.jobId));
  for (const rows of chunks(jobRows)) {
    // `xmax = 0` holds for a row this statement inserted, not for one its ON CONFLICT updated.
    const written = await tx.execute<{ job_id: string; created: boolean }>(sql`
      INSERT INTO ${jobs} (job_id, tenant, type, priority, status, payload, cost, created_at, updated_at)
      SELECT j, t, ty, p, 'admitted', pl, co, least(c, w.created_at), ${now}::timestamptz
      FROM ${rowsParam(rows.map((r) => ({ j: r.jobId, t: r.tenant, ty: r.type, p: r.priority, pl: r.payload ?? null, co: r.cost ?? null, c: iso(r.admittedAt) })))}
        AS u(j text, t text, ty text, p text, pl jsonb, co int, c timestamptz)
        LEFT JOIN waiting_jobs w ON w.job_id = u.j AND w.attempt = 1 AND w.tenant = u.t
      ON CONFLICT (job_id) DO UPDATE SET
        priority = excluded.priority, payload = excluded.payload, cost = excluded.cost, created_at = excluded.created_at, updated_at = excluded.updated_at
      WHERE excluded.created_at < ${jobs.createdAt}
      RETURNING job_id, (xmax = 0) AS created`);
    for (const row of written.rows) if (row.created) created.add(row.job_id);
  }
  await writeIdempotencyKeys(tx, jobRows);

  const attemptRows = [...byAttempt.entries()].sort(([a], [b]) => byKey(a, b)).map(([, e]) => e);
  for (const rows of chunks(attemptRows)) {
    // The row may exist already, created by an outcome that overtook its admission.
    await tx.execute(sql`
      INSERT INTO ${attempts} (job_id, attempt, admitted_at, lease_id, lease_expires_at, job_seq, fail_open)
      SELECT * FROM ${rowsParam(rows.map(({ body: r, seq }) => ({ j: r.jobId, a: r.attempt, c: iso(r.admittedAt), l: r.lease.id, e: iso(r.lease.expiresAt), s: seq, f: r.failOpen === true })))}
        AS u(j text, a int, c timestamptz, l text, e timestamptz, s bigint, f boolean)
      ON CONFLICT (job_id, attempt) DO UPDATE SET
        admitted_at = excluded.admitted_at, lease_id = excluded.lease_id, lease_expires_at = excluded.lease_expires_at, job_seq = excluded.job_seq, fail_open = excluded.fail_open
      WHERE ${attempts.admittedAt} IS NULL`);
  }
  return created;
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
    const admittedAt = iso(b.admittedAt);
    const own = b.idempotency;
    if (own) add({ tenant: b.tenant, key: own.key, position: 0, batchSize: null, jobId: b.jobId, fingerprint: own.fingerprint, admittedAt, expiresAt: iso(own.expiresAt) });
    const batch = b.batchIdempotency;
    if (batch) {
      add({ tenant: b.tenant, key: batch.key, position: batch.index, batchSize: batch.size, jobId: b.jobId, fingerprint: batch.fingerprint, admittedAt, expiresAt: iso(batch.expiresAt) });
    }
  }
  if (rowsById.size === 0) return;
  const sorted = [...rowsById.entries()].sort(([a], [b]) => byKey(a, b)).map(([, r]) => r);
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${idempotencyKeys} (tenant, key, position, batch_size, job_id, fingerprint, admitted_at, expires_at)
      SELECT * FROM ${rowsParam(rows.map((r) => ({ t: r.tenant, k: r.key, p: r.position, b: r.batchSize, j: r.jobId, f: r.fingerprint, a: r.admittedAt, e: r.expiresAt })))}
        AS u(t text, k text, p int, b int, j text, f text, a timestamptz, e timestamptz)
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
async function writeOutcomes(tx: Tx, events: readonly Of<'outcome'>[]): Promise<string[]> {
  if (events.length === 0) return [];
  const eventRows = new Map<string, { eventId: string; e: Of<'outcome'> }>();
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    const eventId = outcomeEventId(e.body);
    if (!eventRows.has(eventId)) eventRows.set(eventId, { eventId, e });
  }
  const sorted = [...eventRows.values()].sort((a, b) => byKey(a.eventId, b.eventId));
  for (const rows of chunks(sorted)) {
    await tx.execute(sql`
      INSERT INTO ${outcomeEvents} (event_id, job_id, attempt, outcome, error, actual_cost, lease_token_hash, applied, stream_seq, reported_at)
      SELECT i, j, a, o, e, c, h, false, s, r FROM ${rowsParam(
        rows.map(({ eventId, e }) => ({ i: eventId, j: e.body.jobId, a: e.body.attempt, o: e.body.outcome, e: e.body.error ?? null, c: e.body.actualCost ?? null, h: sha256(e.body.leaseToken), s: e.seq, r: e.reportedAt.toISOString() })),
      )} AS u(i text, j text, a int, o text, e text, c int, h text, s bigint, r timestamptz)
      ON CONFLICT (event_id) DO NOTHING`);
  }
  return [...eventRows.keys()];
}

/**
 * Outcomes the retry-scheduler accepted (one per attempt; msgID `<jobId>.<attempt>.applied`): these
 * alone set an attempt's outcome. The first stored wins; a re-published one changes nothing.
 * Returns the jobs with an attempt whose success this statement stored.
 */
async function writeApplied(tx: Tx, events: readonly Of<'applied'>[]): Promise<Set<string>> {
  const succeeded = new Set<string>();
  if (events.length === 0) return succeeded;
  const firstByAttempt = new Map<string, AppliedOutcome>();
  for (const { bodies } of [...events].sort((a, b) => a.seq - b.seq)) {
    for (const body of bodies) {
      const key = attemptKey(body.jobId, body.attempt);
      if (!firstByAttempt.has(key)) firstByAttempt.set(key, body);
    }
  }
  const rows = [...firstByAttempt.entries()].sort(([a], [b]) => byKey(a, b)).map(([, b]) => b);
  for (const chunk of chunks(rows)) {
    // The row may not exist yet: the applied event overtook its admission.
    const written = await tx.execute<{ job_id: string; outcome: string }>(sql`
      INSERT INTO ${attempts} (job_id, attempt, outcome, finished_at, error, actual_cost, applied_report_id)
      SELECT * FROM ${rowsParam(chunk.map((b) => ({ j: b.jobId, a: b.attempt, o: b.outcome, f: iso(b.appliedAt), e: b.error ?? null, c: b.actualCost ?? null, r: b.reportId })))}
        AS u(j text, a int, o text, f timestamptz, e text, c int, r text)
      ON CONFLICT (job_id, attempt) DO UPDATE SET
        outcome = excluded.outcome, finished_at = excluded.finished_at, error = excluded.error,
        actual_cost = excluded.actual_cost, applied_report_id = excluded.applied_report_id
      WHERE ${attempts.outcome} IS NULL
      RETURNING job_id, outcome`);
    for (const row of written.rows) if (row.outcome === 'succeeded') succeeded.add(row.job_id);
  }
  return succeeded;
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
      SELECT * FROM ${rowsParam(rows.map((r) => ({ j: r.jobId, t: r.tenant, ty: r.type, a: r.attempts, lo: r.lastOutcome, e: r.error ?? null, pl: r.payload ?? null, d: iso(r.deadAt) })))}
        AS u(j text, t text, ty text, a int, lo text, e text, pl jsonb, d timestamptz)
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
      SELECT * FROM ${rowsParam(rows.map(([id, b]) => ({ i: id, t: b.tenant, k: b.kind, m: b.amount, j: b.jobId, a: b.attempt, at: iso(b.at) })))}
        AS u(i text, t text, k text, m bigint, j text, a int, at timestamptz)
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
      SELECT * FROM ${rowsParam(rows.map(([id, b]) => ({ i: id, t: b.tenant, k: b.kind, m: b.amount, j: b.jobId ?? null, a: b.attempt ?? null, l: b.leaseId ?? null, at: iso(b.at) })))}
        AS u(i text, t text, k text, m bigint, j text, a int, l text, at timestamptz)
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
      SELECT * FROM ${rowsParam(chunk.map((b) => ({ j: b.jobId, a: b.attempt, e: iso(b.expiresAt) })))} AS u(j text, a int, e timestamptz)
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
 * Runs after the facts' transaction committed, in three steps; none reads a fact it could miss:
 *
 * - `touchedJobIds`: locks the job rows (in one order), and only then reads the facts in a new
 *   statement, which under READ COMMITTED sees everything committed before the lock was granted.
 *   So whichever reconcile of a job runs last sees every fact committed before it, and concurrent
 *   writers (other streams, other persister instances) never leave a stale status behind.
 * - `succeededJobIds`: set to `succeeded` under the same ordered locks, without reading facts: a
 *   success outranks every other fact, and a reconcile holding the lock with older facts commits
 *   before this write.
 * - `createdJobIds`: rows this batch inserted as `admitted`. No reconcile can have held them before
 *   the commit (they did not exist for it), and every one after it sees them; so only facts
 *   committed before this read can be missing from their status, and only those jobs (an outcome
 *   or a dead letter that overtook the admission) are reconciled: set to `succeeded` as above when
 *   one of their attempts succeeded (an attempt's outcome, once stored, never changes), else derived
 *   as `touchedJobIds` are. (An admission read after its outcomes is the common case while the
 *   persister catches up on a backlog: most such jobs then take the cheap update.)
 *
 * A job row committed later is reconciled by the batch that creates it.
 *
 * Then marks the reports among `reportIds` that their attempt's applied outcome names. Report and
 * applied outcome arrive on different streams, in either order, each marking after its own commit:
 * whichever marking statement starts last sees both, and a mark is only ever set, so this needs no
 * lock.
 */
export async function reconcileJobStatus(db: Database, followUp: FollowUp): Promise<void> {
  const { touchedJobIds, succeededJobIds, createdJobIds, reportIds } = followUp;
  const overtaken: string[] = [];
  const overtakenBySuccess: string[] = [];
  for (let i = 0; i < createdJobIds.length; i += CHUNK) {
    const ids = createdJobIds.slice(i, i + CHUNK);
    const found = await db.execute<{ job_id: string; succeeded: boolean }>(sql`
      SELECT u.job_id, EXISTS (SELECT 1 FROM ${attempts} a WHERE a.job_id = u.job_id AND a.outcome = 'succeeded') AS succeeded
      FROM unnest(${sql.param(ids)}::text[]) AS u(job_id)
      WHERE EXISTS (SELECT 1 FROM ${attempts} a WHERE a.job_id = u.job_id AND a.outcome IS NOT NULL)
         OR EXISTS (SELECT 1 FROM ${deadLetters} dl WHERE dl.job_id = u.job_id)`);
    for (const row of found.rows) (row.succeeded ? overtakenBySuccess : overtaken).push(row.job_id);
  }
  const derive = overtaken.length === 0 ? touchedJobIds : [...new Set([...touchedJobIds, ...overtaken])].sort(byKey);
  for (let i = 0; i < derive.length; i += CHUNK) await deriveStatus(db, derive.slice(i, i + CHUNK));
  const succeeded = overtakenBySuccess.length === 0 ? succeededJobIds : [...new Set([...succeededJobIds, ...overtakenBySuccess])].sort(byKey);
  for (let i = 0; i < succeeded.length; i += CHUNK) {
    const ids = succeeded.slice(i, i + CHUNK);
    await db.execute(sql`
      UPDATE ${jobs} SET status = 'succeeded', updated_at = now()
      WHERE job_id IN (SELECT job_id FROM ${jobs} WHERE job_id = ANY(${sql.param(ids)}::text[]) AND status <> 'succeeded'
                       ORDER BY job_id COLLATE "C" FOR UPDATE)`);
  }
  for (let i = 0; i < reportIds.length; i += CHUNK) {
    const ids = reportIds.slice(i, i + CHUNK);
    await db.execute(sql`
      UPDATE ${outcomeEvents} AS oe SET applied = true
      FROM ${attempts} a
      WHERE oe.event_id = ANY(${sql.param(ids)}::text[]) AND NOT oe.applied
        AND a.job_id = oe.job_id AND a.attempt = oe.attempt AND a.applied_report_id = oe.event_id`);
  }
}

/** Derives the status of these jobs (sorted) from their facts, under their row locks. */
async function deriveStatus(db: Database, ids: readonly string[]): Promise<void> {
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
