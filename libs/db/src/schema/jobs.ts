import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** One row per job (natural key: jobId). Status follows its attempts. */
export const jobs = pgTable(
  'jobs',
  {
    jobId: text('job_id').primaryKey(),
    tenant: text('tenant').notNull(),
    type: text('type').notNull(),
    priority: text('priority').notNull(),
    /** queued | admitted | succeeded | retrying | dead */
    status: text('status').notNull(),
    payload: jsonb('payload'),
    /** The producer's cost override (it applies to every attempt); null when the job type's estimate applies. */
    cost: integer('cost'),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
  },
  (t) => [
    index('jobs_tenant_created_idx').on(t.tenant, t.createdAt),
    index('jobs_created_idx').on(t.createdAt),
    // The dashboard counts queued jobs per tenant every second: a partial index keeps that cheap.
    index('jobs_queued_tenant_idx').on(t.tenant).where(sql`status = 'queued'`),
  ],
);

/** One row per attempt (natural key: jobId + attempt). An outcome may arrive before its admission. */
export const attempts = pgTable(
  'attempts',
  {
    jobId: text('job_id').notNull(),
    attempt: integer('attempt').notNull(),
    admittedAt: ts('admitted_at'),
    leaseId: text('lease_id'),
    leaseExpiresAt: ts('lease_expires_at'),
    /**
     * The latest expiry the scheduler extended the lease to (from `<ns>.extensions.>`), or null. A
     * rebuild after a Redis state loss keeps the lease until the later of the two.
     */
    leaseExtendedUntil: ts('lease_extended_until'),
    /**
     * The job message's sequence in `<ns>_JOBS` (what the lease record holds once confirmed): a
     * rebuild after a Redis state loss writes it back, so a job no worker was delivered keeps waiting.
     */
    jobSeq: bigint('job_seq', { mode: 'number' }),
    /**
     * Admitted while Redis could not be reached (fail-open): Redis held no lease record, and the
     * retry-scheduler adopts the lease (writes its record) from this row once Redis answers.
     */
    failOpen: boolean('fail_open').notNull().default(false),
    /** succeeded | failed | timed_out */
    outcome: text('outcome'),
    finishedAt: ts('finished_at'),
    error: text('error'),
    actualCost: integer('actual_cost'),
    /**
     * The outcome report (`outcome_events.event_id`) the retry-scheduler applied. Outcome, finished
     * at, error and actual cost come from its applied event (`<ns>.applied.>`), never from a raw report.
     */
    appliedReportId: text('applied_report_id'),
  },
  (t) => [
    primaryKey({ columns: [t.jobId, t.attempt] }),
    index('attempts_finished_at_idx').on(t.finishedAt),
    // A state rebuild reads the attempts still in flight, and the retries admitted within their
    // idempotency window: partial indexes keep both reads small however long the history is.
    index('attempts_unfinished_idx').on(t.leaseExpiresAt).where(sql`outcome IS NULL`),
    index('attempts_retries_admitted_idx').on(t.admittedAt).where(sql`attempt > 1`),
    // The fail-open attempts still in flight: what the scheduler's adoption reads every second
    // (empty unless Redis was unreachable lately).
    index('attempts_fail_open_idx').on(t.admittedAt).where(sql`fail_open AND outcome IS NULL`),
  ],
);

/**
 * Every distinct outcome report ever received (natural key: `<jobId>.<attempt>.<content hash>`),
 * including those that did not become the attempt's outcome (a duplicate with other content, a
 * zombie's late report, a forged one): "recorded and ignored". `applied` marks the one the
 * retry-scheduler applied (the attempt's `applied_report_id`); reports never set a status.
 */
export const outcomeEvents = pgTable(
  'outcome_events',
  {
    eventId: text('event_id').primaryKey(),
    jobId: text('job_id').notNull(),
    attempt: integer('attempt').notNull(),
    outcome: text('outcome').notNull(),
    error: text('error'),
    actualCost: integer('actual_cost'),
    /** SHA-256 of the lease token (the token itself is a bearer secret). */
    leaseTokenHash: text('lease_token_hash').notNull(),
    applied: boolean('applied').notNull(),
    streamSeq: bigint('stream_seq', { mode: 'number' }).notNull(),
    /** When JetStream stored the report. */
    reportedAt: ts('reported_at').notNull(),
  },
  (t) => [index('outcome_events_job_idx').on(t.jobId, t.attempt), index('outcome_events_reported_at_idx').on(t.reportedAt)],
);

/**
 * Producers' idempotency keys as the limiter holds them (natural key: tenant, key, position): one
 * row for a job's own key (position 0, no batch size), one row per admitted job for a batch's key
 * (position = the job's index, `batch_size` = the batch's length). Written by the persister from
 * attempt 1's job message; read when Redis lost its state, to write the keys back until
 * `expires_at`. A key used again after its window replaces the rows (the later admission wins).
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    tenant: text('tenant').notNull(),
    key: text('key').notNull(),
    position: integer('position').notNull(),
    batchSize: integer('batch_size'),
    jobId: text('job_id').notNull(),
    fingerprint: text('fingerprint').notNull(),
    admittedAt: ts('admitted_at').notNull(),
    expiresAt: ts('expires_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenant, t.key, t.position] }), index('idempotency_keys_expires_at_idx').on(t.expiresAt)],
);

/** Jobs that used up their attempts (natural key: jobId). */
export const deadLetters = pgTable(
  'dead_letters',
  {
    jobId: text('job_id').primaryKey(),
    tenant: text('tenant').notNull(),
    type: text('type').notNull(),
    attempts: integer('attempts').notNull(),
    lastOutcome: text('last_outcome').notNull(),
    error: text('error'),
    payload: jsonb('payload'),
    deadAt: ts('dead_at').notNull(),
  },
  (t) => [index('dead_letters_dead_at_idx').on(t.deadAt)],
);

/** Append-only budget ledger (natural key: `<jobId>.<attempt>.<kind>`). */
export const budgetLedger = pgTable(
  'budget_ledger',
  {
    entryId: text('entry_id').primaryKey(),
    tenant: text('tenant').notNull(),
    kind: text('kind').notNull(),
    amount: bigint('amount', { mode: 'number' }).notNull(),
    jobId: text('job_id').notNull(),
    attempt: integer('attempt').notNull(),
    at: ts('at').notNull(),
  },
  (t) => [index('budget_ledger_tenant_at_idx').on(t.tenant, t.at), index('budget_ledger_job_idx').on(t.jobId)],
);

/**
 * Prepaid-credits movements (CONTRACT §2 Tenant "Credits", docs/credits.md), from the ledger stream
 * (`account: "credits"`). entry_id is the message id: `<jobId>.<attempt>.credits.<kind>.<leaseId>`,
 * or `topup.<tenant>.<digest>` (no job). Balance = Σ topup − Σ settle + Σ overrun; reserved = the
 * reserves whose lease has neither a settle nor a release.
 */
export const creditLedger = pgTable(
  'credit_ledger',
  {
    entryId: text('entry_id').primaryKey(),
    tenant: text('tenant').notNull(),
    kind: text('kind').notNull(),
    amount: bigint('amount', { mode: 'number' }).notNull(),
    jobId: text('job_id'),
    attempt: integer('attempt'),
    leaseId: text('lease_id'),
    at: ts('at').notNull(),
  },
  (t) => [index('credit_ledger_tenant_kind_idx').on(t.tenant, t.kind), index('credit_ledger_lease_idx').on(t.leaseId)],
);

/** Messages that can never be stored (failed validation): kept with the reason, never blocking a stream. */
export const rejectedMessages = pgTable(
  'rejected_messages',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    stream: text('stream').notNull(),
    streamSeq: bigint('stream_seq', { mode: 'number' }).notNull(),
    subject: text('subject').notNull(),
    reason: text('reason').notNull(),
    raw: text('raw').notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('rejected_messages_stream_seq_idx').on(t.stream, t.streamSeq),
    index('rejected_messages_received_at_idx').on(t.receivedAt),
  ],
);
