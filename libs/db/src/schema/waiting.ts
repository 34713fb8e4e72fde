import { sql } from 'drizzle-orm';
import { bigserial, index, integer, pgTable, primaryKey, smallint, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * The waiting room (CONTRACT §3 mode `queue`): one row per attempt waiting for admission — a first
 * attempt a producer sent in mode `queue` that could not be admitted at once, or a retry that is
 * due. The dispatcher (retry-scheduler) admits them fairly through the one admission pipeline.
 *
 * state: `queued` (waiting) → `dispatching` (a dispatcher took it and is admitting it; back to
 * `queued` if a limit refuses, but kept while an admission of it may be live: one a dead dispatcher
 * left, or one answered `in_progress`) → `admitted` | `cancelled` | `dead`. Rows that left the room are kept
 * for GET /v1/jobs and pruned with the rest of the history.
 */
export const waitingJobs = pgTable(
  'waiting_jobs',
  {
    jobId: text('job_id').notNull(),
    attempt: integer('attempt').notNull(),
    /** Arrival order: oldest first within a tenant and priority. */
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    tenant: text('tenant').notNull(),
    type: text('type').notNull(),
    /** 0 high, 1 normal, 2 low (retries: the job type's retryPriority). */
    priority: smallint('priority').notNull(),
    /** The job's own priority (a retry waits at its job type's retryPriority but keeps this one). */
    jobPriority: text('job_priority').notNull(),
    cost: integer('cost'),
    /** The payload as JSON text, exactly as the job message will carry it. */
    payload: text('payload'),
    /** The producer's idempotency key and request fingerprint (first attempts). */
    idempotencyKey: text('idempotency_key'),
    fingerprint: text('fingerprint'),
    /** Retries: the attempt's last outcome and the job's creation time, for the dead letter and the retry context. */
    lastOutcome: text('last_outcome'),
    /** Retries: how many attempts before this one were not charged to maxAttempts (throttled), for the retry context. */
    uncharged: integer('uncharged').notNull().default(0),
    createdAt: ts('created_at').notNull(),
    queuedAt: ts('queued_at').notNull(),
    /** Not admitted before this time (a retry's backoff). */
    dueAt: ts('due_at').notNull(),
    /** Janus's estimate of the admission, as last told (queued answer, GET). */
    notBefore: ts('not_before').notNull(),
    state: text('state').notNull(),
    /** Why it left the room without admission (`cancelled`, `dead`). */
    reason: text('reason'),
    updatedAt: ts('updated_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.jobId, t.attempt] }),
    // What a dispatcher loads: the waiting rows in arrival order.
    index('waiting_jobs_waiting_idx').on(t.seq).where(sql`state IN ('queued', 'dispatching')`),
    // maxQueued and the usage counts: a tenant's waiting rows.
    index('waiting_jobs_tenant_idx').on(t.tenant, t.type).where(sql`state IN ('queued', 'dispatching')`),
    // Does any job of this type wait? (A new job in mode `queue` does not jump the room.)
    index('waiting_jobs_type_waiting_idx').on(t.type).where(sql`state IN ('queued', 'dispatching')`),
    // A replay of a queued request (same key) finds the first one.
    uniqueIndex('waiting_jobs_idempotency_idx').on(t.tenant, t.idempotencyKey).where(sql`idempotency_key IS NOT NULL AND state IN ('queued', 'dispatching')`),
    // … and a replay of a queued request its producer cancelled (its key still names it within the window).
    index('waiting_jobs_cancelled_key_idx').on(t.tenant, t.idempotencyKey).where(sql`idempotency_key IS NOT NULL AND state = 'cancelled'`),
    // GET /v1/jobs lists, newest first, the jobs the persister has no row of: first attempts that
    // were never admitted (waiting, cancelled or dead in the room). Admitted ones are in `jobs`.
    index('waiting_jobs_unadmitted_idx').on(t.tenant, t.createdAt, t.jobId).where(sql`attempt = 1 AND state <> 'admitted'`),
  ],
);

/**
 * When each retry the scheduler decided is due (RetryMessage.dueAt), one row per attempt. The retry
 * itself waits in JANUS_RETRIES, a work-queue stream only the retry-scheduler reads: it records the
 * due time here as soon as it reads the retry, so that GET /v1/jobs/{jobId} shows a `retrying` job's
 * `notBefore` (CONTRACT §3) before the retry is due and joins the room (whose row then speaks for
 * it). Pruned with the job's history.
 */
export const retryDue = pgTable(
  'retry_due',
  {
    jobId: text('job_id').notNull(),
    attempt: integer('attempt').notNull(),
    tenant: text('tenant').notNull(),
    /** Not admitted before this time (the backoff after the failed attempt, or what a throttling dependency asked for). */
    dueAt: ts('due_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt] })],
);
