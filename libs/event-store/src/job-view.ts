import { sql, type SQL } from 'drizzle-orm';
import { JobStatus, Priority, type JobView } from '@janus/contracts';
import type { Database } from '@janus/db';

/** Where a page of `GET /v1/jobs` ends: the last job listed (its exact creation time, as PostgreSQL holds it, and its id). */
export interface JobCursor {
  /** `created_at` to the microsecond, UTC (`2030-01-01T00:00:01.000000Z`): a millisecond Date would lose ties. */
  readonly createdAt: string;
  readonly jobId: string;
}

export interface JobListQuery {
  /** Only jobs whose status (as GET shows it) is one of these; all when absent. */
  readonly statuses?: readonly JobStatus[] | undefined;
  readonly type?: string | undefined;
  readonly limit: number;
  /** Jobs strictly older than this one (newest first: created_at desc, job id desc). */
  readonly after?: JobCursor | undefined;
}

export interface JobPage {
  readonly jobs: JobView[];
  /** Where the next page starts; undefined when this page is the last. */
  readonly next: JobCursor | undefined;
}

/** A job as GET shows it, and what a replay of it needs besides. */
export interface JobRecord {
  readonly view: JobView;
  /** The job's tenant (a view by job id alone, the admins' lookup, needs it; the producer's own view leaves it out). */
  readonly tenant: string;
  /** The highest attempt number the job has used, admitted or not (the persister's attempts and the room's rows). */
  readonly lastAttempt: number;
  /** The producer's cost override (null: the job type's estimate). */
  readonly cost: number | null;
  /** The payload as JSON text, as stored (null: none). */
  readonly payloadJson: string | null;
  /** The job's creation time (the room's arrival time for a job that went through the waiting room). */
  readonly createdAt: Date;
}

type Row = {
  jobId: string;
  tenant: string;
  type: string;
  priority: string;
  createdAt: Date | string;
  cursorAt: string;
  payload: string | null;
  cost: number | null;
  status: string;
  notBefore: Date | string | null;
  lastAttempt: number | null;
};

type AttemptRow = {
  jobId: string;
  attempt: number;
  admittedAt: Date | string;
  outcome: string | null;
  finishedAt: Date | string | null;
  error: string | null;
};

interface Filter {
  readonly jobId?: string;
  readonly type?: string | undefined;
  readonly statuses?: readonly JobStatus[] | undefined;
  readonly after?: JobCursor | undefined;
}

/**
 * The jobs of `tenant` (every tenant's when undefined: the admins' view) matching `filter`, as GET
 * shows them, newest first: one statement over both places a job can be.
 *
 * - `jobs`: what the persister stored (every job that was ever admitted), walked newest first on
 *   `jobs_tenant_created_idx`.
 * - `waiting_jobs`: a job the persister has no row of yet is known to the room only: queued in mode
 *   `queue`, or cancelled or dead there before its first admission. A listing walks
 *   `waiting_jobs_unadmitted_idx` (first attempts not admitted); one job by id also finds a first
 *   attempt the room has just admitted, before the persister stored it.
 *
 * The status is where the two are merged (this is the one place it is): the room speaks for an
 * attempt the persister has not seen admitted yet — queued or retrying while it waits (with its
 * `notBefore`), cancelled, dead, or admitted (a job the persister knows as dead is admitted again
 * once its replay is admitted) — and the persister for everything else. A `retrying` job whose
 * retry is not in the room yet (it waits in JANUS_RETRIES until due) shows the due time the
 * scheduler recorded in `retry_due` as its `notBefore`.
 */
function selectRecords(tenant: string | undefined, filter: Filter, limit: number): SQL {
  const { jobId, type, after } = filter;
  // Without a tenant the walk is on `jobs_created_idx` and the room's (job, attempt) key: an admin's
  // listing, rarer than the producers' and allowed to be slower.
  const byTenant = (col: SQL) => (tenant !== undefined ? sql`${col} = ${tenant}` : sql`true`);
  const byId = (col: SQL) => (jobId !== undefined ? sql` AND ${col} = ${jobId}` : sql``);
  const byType = (col: SQL) => (type !== undefined ? sql` AND ${col} = ${type}` : sql``);
  // `created_at <= t` bounds the index scan; the tie on created_at is broken by the job id.
  const byCursor = (at: SQL, id: SQL) =>
    after !== undefined ? sql` AND ${at} <= ${after.createdAt}::timestamptz AND (${at} < ${after.createdAt}::timestamptz OR ${id} < ${after.jobId})` : sql``;
  // A listing skips first attempts the room admitted: those jobs are (or are about to be) in `jobs`.
  const unadmitted = jobId === undefined ? sql` AND w.state <> 'admitted'` : sql``;
  const stored = sql`(
    SELECT j.job_id, j.tenant, j.type, j.priority, j.created_at, j.payload::text AS payload, j.cost, j.status AS stored
      FROM jobs j
     WHERE ${byTenant(sql`j.tenant`)}${byId(sql`j.job_id`)}${byType(sql`j.type`)}${byCursor(sql`j.created_at`, sql`j.job_id`)})`;
  const roomOnly = sql`(
    SELECT w.job_id, w.tenant, w.type, w.job_priority AS priority, w.created_at, w.payload, w.cost, NULL::text AS stored
      FROM waiting_jobs w
     WHERE ${byTenant(sql`w.tenant`)} AND w.attempt = 1${unadmitted}${byId(sql`w.job_id`)}${byType(sql`w.type`)}${byCursor(sql`w.created_at`, sql`w.job_id`)}
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = w.job_id))`;
  // Each source is merged, filtered, ordered and cut on its own (each walks its own index, newest
  // first, and stops at `limit`); the two short lists are then merged.
  return sql`
    SELECT x.*, to_char(x."createdAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "cursorAt"
      FROM ((${merged(tenant, stored, filter.statuses, limit)}) UNION ALL (${merged(tenant, roomOnly, filter.statuses, limit)})) AS x
     ORDER BY x."createdAt" DESC, x."jobId" DESC
     LIMIT ${limit}`;
}

/** One source's jobs with their status as GET shows it, newest first, at most `limit`. */
function merged(tenant: string | undefined, source: SQL, statuses: readonly JobStatus[] | undefined, limit: number): SQL {
  const byStatus = statuses !== undefined ? sql` WHERE m.status = ANY(${sql.param([...statuses])}::text[])` : sql``;
  return sql`
    SELECT c.job_id AS "jobId", c.tenant, c.type, c.priority, c.created_at AS "createdAt", c.payload, c.cost, m.status,
           -- A retrying job's retry waits in the room (its row's estimate) or, before it is due, in
           -- JANUS_RETRIES (its due time as the scheduler recorded it; now if not recorded yet).
           CASE WHEN d.room AND r.state IN ('queued', 'dispatching') THEN r.not_before
                WHEN m.status = 'retrying' THEN coalesce(rd.due_at, now()) END AS "notBefore",
           greatest(s.last_attempt, r.attempt) AS "lastAttempt"
      FROM ${source} AS c
      LEFT JOIN LATERAL (
        SELECT w.attempt, w.state, w.not_before FROM waiting_jobs w WHERE w.job_id = c.job_id AND w.tenant = ${tenant ?? sql`c.tenant`} ORDER BY w.attempt DESC LIMIT 1
      ) AS r ON true
      LEFT JOIN LATERAL (
        SELECT max(a.attempt) FILTER (WHERE a.admitted_at IS NOT NULL) AS last_admitted, max(a.attempt) AS last_attempt
          FROM attempts a WHERE a.job_id = c.job_id
      ) AS s ON true
      LEFT JOIN LATERAL (
        SELECT rd.due_at FROM retry_due rd WHERE rd.job_id = c.job_id AND rd.attempt > coalesce(s.last_admitted, 0) ORDER BY rd.attempt DESC LIMIT 1
      ) AS rd ON true
      CROSS JOIN LATERAL (SELECT r.attempt IS NOT NULL AND r.attempt > coalesce(s.last_admitted, 0) AS room) AS d
      CROSS JOIN LATERAL (
        SELECT CASE
          WHEN NOT d.room THEN coalesce(c.stored, 'admitted')
          WHEN r.state IN ('queued', 'dispatching') THEN CASE WHEN r.attempt > 1 THEN 'retrying' ELSE 'queued' END
          WHEN r.state = 'cancelled' THEN 'cancelled'
          WHEN r.state = 'dead' THEN 'dead'
          WHEN c.stored IS NULL OR c.stored = 'dead' THEN 'admitted'
          ELSE c.stored
        END AS status
      ) AS m${byStatus}
     ORDER BY c.created_at DESC, c.job_id DESC
     LIMIT ${limit}`;
}

/** The statement behind `listJobViews` (exported for EXPLAIN in tests). */
export function listJobsStatement(tenant: string | undefined, query: JobListQuery): SQL {
  return selectRecords(tenant, { type: query.type, statuses: query.statuses, after: query.after }, query.limit + 1);
}

/**
 * `GET /v1/jobs` (an extension, docs/api.md): a page of the tenant's jobs, newest first, in the
 * shape of `GET /v1/jobs/{jobId}`; with `tenant` undefined, every tenant's (`GET /v1/admin/jobs`).
 * Keyset pagination: a page starts strictly after the cursor, so jobs created meanwhile never shift
 * the pages that follow.
 */
export async function listJobViews(db: Database, tenant: string | undefined, query: JobListQuery): Promise<JobPage> {
  const page = await listJobRecords(db, tenant, query);
  return { jobs: page.records.map((r) => r.view), next: page.next };
}

/** `listJobViews` with each job's record (the admins' listing shows each job's tenant). */
export async function listJobRecords(db: Database, tenant: string | undefined, query: JobListQuery): Promise<{ records: JobRecord[]; next: JobCursor | undefined }> {
  const records = await loadRecords(db, listJobsStatement(tenant, query));
  const page = records.slice(0, query.limit);
  const last = page[page.length - 1];
  return { records: page.map((r) => r.record), next: records.length > query.limit && last !== undefined ? { createdAt: last.cursorAt, jobId: last.record.view.jobId } : undefined };
}

/**
 * `GET /v1/jobs/{jobId}` (CONTRACT §3): the tenant's own job, or undefined when there is no such
 * job for this tenant (another tenant's job looks exactly like a missing one). Attempts whose
 * admission has not been stored yet (an outcome overtook it) are left out until it arrives.
 */
export async function getJobView(db: Database, tenant: string, jobId: string): Promise<JobView | undefined> {
  return (await getJobRecord(db, tenant, jobId))?.view;
}

/** The job as `getJobView` shows it, with what a replay needs (its tenant, last attempt number, cost and payload); any tenant's when `tenant` is undefined. */
export async function getJobRecord(db: Database, tenant: string | undefined, jobId: string): Promise<JobRecord | undefined> {
  const [first] = await loadRecords(db, selectRecords(tenant, { jobId }, 1));
  return first?.record;
}

async function loadRecords(db: Database, statement: SQL): Promise<{ record: JobRecord; cursorAt: string }[]> {
  const rows = (await db.execute<Row>(statement)).rows;
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.jobId);
  const attempts = await db.execute<AttemptRow>(sql`
    SELECT job_id AS "jobId", attempt, admitted_at AS "admittedAt", outcome, finished_at AS "finishedAt", error
      FROM attempts WHERE job_id = ANY(${sql.param(ids)}::text[]) AND admitted_at IS NOT NULL
     ORDER BY job_id, attempt`);
  const byJob = new Map<string, AttemptRow[]>();
  for (const a of attempts.rows) {
    const list = byJob.get(a.jobId);
    if (list) list.push(a);
    else byJob.set(a.jobId, [a]);
  }
  const now = Date.now();
  return rows.map((r) => ({ record: toRecord(r, byJob.get(r.jobId) ?? [], now), cursorAt: r.cursorAt }));
}

function iso(d: Date | string): string {
  return new Date(d).toISOString();
}

function toRecord(r: Row, rows: readonly AttemptRow[], now: number): JobRecord {
  const attempts: JobView['attempts'] = rows.map((a) => ({
    attempt: a.attempt,
    admittedAt: iso(a.admittedAt),
    ...(a.outcome !== null ? { outcome: a.outcome as 'succeeded' | 'failed' | 'timed_out' } : {}),
    ...(a.finishedAt !== null ? { finishedAt: iso(a.finishedAt) } : {}),
    ...(a.error !== null ? { error: a.error } : {}),
  }));
  const lastFailed = attempts.findLast((a) => a.outcome === 'failed' || a.outcome === 'timed_out');
  const view: JobView = {
    jobId: r.jobId,
    type: r.type,
    status: JobStatus.parse(r.status),
    priority: Priority.parse(r.priority),
    createdAt: iso(r.createdAt),
    // While it waits, never an estimate in the past.
    ...(r.notBefore !== null ? { notBefore: new Date(Math.max(new Date(r.notBefore).getTime(), now)).toISOString() } : {}),
    attempts,
    // Stored as the job message carried it (jsonb), or as the room keeps it (JSON text): valid JSON either way.
    ...(r.payload !== null ? { payload: JSON.parse(r.payload) as unknown } : {}),
    ...(lastFailed?.error !== undefined ? { lastError: lastFailed.error } : {}),
  };
  return { view, tenant: r.tenant, lastAttempt: r.lastAttempt ?? 0, cost: r.cost, payloadJson: r.payload, createdAt: new Date(r.createdAt) };
}
