import { sql } from 'drizzle-orm';
import type { Database } from '@janus/db';
import { dedupeRoomKey } from '@janus/execution';

/** A row of `waiting_jobs` as the dispatcher and the API read it. */
export type WaitingRow = {
  readonly jobId: string;
  readonly attempt: number;
  readonly seq: number;
  readonly tenant: string;
  readonly type: string;
  readonly priority: number;
  readonly jobPriority: 'high' | 'normal' | 'low';
  readonly cost: number | null;
  readonly payload: string | null;
  readonly idempotencyKey: string | null;
  readonly fingerprint: string | null;
  readonly lastOutcome: 'failed' | 'timed_out' | null;
  /** A retry's attempts so far that were not charged to maxAttempts (RetryMessage.uncharged); 0 otherwise. */
  readonly uncharged: number;
  readonly createdAt: Date;
  readonly queuedAt: Date;
  readonly dueAt: Date;
  readonly notBefore: Date;
  readonly state: RowState;
};

export type RowState = 'queued' | 'dispatching' | 'admitted' | 'cancelled' | 'dead';

/** What a producer's queued job or a due retry brings into the room. */
export interface NewWaitingJob {
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly type: string;
  readonly priority: number;
  readonly jobPriority: 'high' | 'normal' | 'low';
  readonly cost?: number | undefined;
  readonly payload?: string | undefined;
  readonly idempotencyKey?: string | undefined;
  readonly fingerprint?: string | undefined;
  readonly lastOutcome?: 'failed' | 'timed_out' | undefined;
  /** A retry's attempts so far that were not charged to maxAttempts (RetryMessage.uncharged). */
  readonly uncharged?: number | undefined;
  readonly createdAt: Date;
  readonly dueAt: Date;
}

export type EnqueueResult =
  | { readonly kind: 'queued'; readonly notBefore: Date }
  /** The same idempotency key is already waiting: the first job. */
  | { readonly kind: 'duplicate'; readonly row: WaitingRow }
  | { readonly kind: 'queue_full'; readonly waiting: number };

/** What one job of a type takes of the limit that binds it: one job, or its cost (the type's estimate unless the producer set one). */
export interface Units {
  readonly perJob: boolean;
  readonly estimate: number;
}

const COLUMNS = sql.raw(`job_id AS "jobId", attempt, seq::float8 AS seq, tenant, type, priority, job_priority AS "jobPriority", cost, payload,
  idempotency_key AS "idempotencyKey", fingerprint, last_outcome AS "lastOutcome", uncharged, created_at AS "createdAt", queued_at AS "queuedAt",
  due_at AS "dueAt", not_before AS "notBefore", state`);

const WAITING = sql.raw(`state IN ('queued', 'dispatching')`);
/** The reason of a row its producer cancelled (DELETE). */
const CANCELLED_BY_PRODUCER = 'cancelled by the producer';
/**
 * Rows whose producer key still answers: waiting ones, and first attempts their producer cancelled
 * while they waited (the key was used for that request: within its window the same key is that
 * job's replay, another request under it 422 — WaitingStore keyWindowOf drops those past it). Not a
 * cancelled payload-dedupe row: its payload may be sent again.
 */
const KEYED = sql.raw(
  `(state IN ('queued', 'dispatching') OR (state = 'cancelled' AND attempt = 1 AND reason = '${CANCELLED_BY_PRODUCER}' AND NOT starts_with(idempotency_key, '${dedupeRoomKey('')}')))`,
);
/** The reason of a row Janus cancelled because another job ran under its idempotency key (WaitingStore.supersede). */
export const SUPERSEDED_BY = 'superseded by job ';
/** At most this many producers' jobs stored in one transaction. */
const ENQUEUE_BATCH = 256;

interface PendingEnqueue {
  readonly job: NewWaitingJob;
  readonly maxQueued: number;
  /** `notBefore` from the number of the tenant's jobs of this type ahead of it, itself included. */
  readonly estimate: (jobsIncludingSelf: number) => Date;
  readonly resolve: (result: EnqueueResult) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The waiting room's durable record in PostgreSQL: a job in it survives the restart of any Janus
 * process and of Redis. Every state change is a compare-and-set on the row's state, so a cancel and a
 * dispatcher never both win, and two dispatchers never admit the same row.
 */
export class WaitingStore {
  constructor(
    private readonly db: Database,
    /**
     * A job type's idempotency window (ms): how long the key of a job its producer cancelled while
     * it waited still answers (from its creation). Without it such keys do not answer (only
     * ingress, which answers producers' keys, needs them).
     */
    private readonly keyWindowOf?: (type: string) => number,
  ) {}

  /** Whether a row found by its key answers for it (see KEYED): waiting, or cancelled by its producer within the key's window. */
  #keyAnswers(row: WaitingRow, now = Date.now()): boolean {
    if (row.state !== 'cancelled') return true;
    return this.keyWindowOf !== undefined && row.createdAt.getTime() + this.keyWindowOf(row.type) > now;
  }

  /**
   * Stores a producer's job (mode `queue`): at most `maxQueued` waiting per tenant, a waiting job with
   * the same idempotency key answers as its duplicate, and `notBefore` comes from the tenant's jobs
   * ahead of it. Concurrent calls are stored together (see EnqueueBatch): one transaction holding
   * the advisory locks of their tenants counts and inserts them all, in arrival order.
   */
  enqueue(job: NewWaitingJob, maxQueued: number, estimate: (jobsIncludingSelf: number) => Date): Promise<EnqueueResult> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ job, maxQueued, estimate, resolve, reject });
      if (this.#pending.length >= ENQUEUE_BATCH) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#flush();
        });
      }
    });
  }

  #pending: PendingEnqueue[] = [];
  #scheduled = false;
  #inFlight = 0;

  #flush(): void {
    // At most two transactions at once: under load, batches grow instead of transactions multiplying.
    while (this.#pending.length > 0 && this.#inFlight < 2) {
      const batch = this.#pending.splice(0, ENQUEUE_BATCH);
      this.#inFlight += 1;
      this.#enqueueBatch(batch)
        .then((results) => batch.forEach((p, i) => p.resolve(results[i]!)))
        .catch((error: unknown) => batch.forEach((p) => p.reject(error)))
        .finally(() => {
          this.#inFlight -= 1;
          this.#flush();
        });
    }
  }

  async #enqueueBatch(batch: readonly PendingEnqueue[]): Promise<EnqueueResult[]> {
    const tenants = [...new Set(batch.map((p) => p.job.tenant))].sort();
    const keyed = batch.filter((p) => p.job.idempotencyKey !== undefined);
    return this.db.transaction(async (tx) => {
      // The tenants' locks, in a fixed order (two instances' batches never deadlock).
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('janus-room:' || t)) FROM unnest(${sql.param(tenants)}::text[]) AS t ORDER BY t`);
      const [counts, same] = await Promise.all([
        tx.execute<{ tenant: string; type: string; priority: number; state: RowState; retry: boolean; n: number }>(sql`
          SELECT tenant, type, priority, state, attempt > 1 AS retry, count(*)::int AS n
            FROM waiting_jobs WHERE tenant = ANY(${sql.param(tenants)}::text[]) AND ${WAITING}
           GROUP BY tenant, type, priority, state, attempt > 1`),
        keyed.length === 0
          ? Promise.resolve({ rows: [] as WaitingRow[] })
          : tx.execute<WaitingRow>(sql`
              SELECT ${COLUMNS} FROM waiting_jobs
               WHERE (tenant, idempotency_key) IN (SELECT * FROM unnest(${sql.param(keyed.map((p) => p.job.tenant))}::text[], ${sql.param(keyed.map((p) => p.job.idempotencyKey!))}::text[]))
                 AND ${KEYED}`),
      ]);
      // What waits, per tenant, and per tenant/type/priority (jobs still queued, and their costs).
      // (maxQueued bounds the jobs waiting in mode `queue`: first attempts; a retry waiting in the room
      // is none, though it is ahead of a new job at its priority)
      const waiting = new Map<string, number>();
      const queued = new Map<string, number>();
      for (const r of counts.rows) {
        if (!r.retry) waiting.set(r.tenant, (waiting.get(r.tenant) ?? 0) + r.n);
        if (r.state === 'queued') queued.set(`${r.tenant}|${r.type}|${r.priority}`, (queued.get(`${r.tenant}|${r.type}|${r.priority}`) ?? 0) + r.n);
      }
      const byKey = new Map<string, WaitingRow>(
        same.rows
          .map(parseRow)
          .filter((r) => this.#keyAnswers(r))
          .map((r) => [`${r.tenant}|${r.idempotencyKey}`, r]),
      );
      const results: EnqueueResult[] = [];
      const rows: { job: NewWaitingJob; notBefore: Date }[] = [];
      for (const p of batch) {
        const { job } = p;
        const k = job.idempotencyKey === undefined ? undefined : `${job.tenant}|${job.idempotencyKey}`;
        const first = k === undefined ? undefined : byKey.get(k);
        if (first) {
          results.push({ kind: 'duplicate', row: first });
          continue;
        }
        const n = waiting.get(job.tenant) ?? 0;
        if (n >= p.maxQueued) {
          results.push({ kind: 'queue_full', waiting: n });
          continue;
        }
        // Ahead of it: the tenant's jobs of this type at this priority or higher still queued (not
        // those a dispatcher is admitting right now: they may have their tokens already).
        let ahead = 0;
        for (let pr = 0; pr <= job.priority; pr += 1) ahead += queued.get(`${job.tenant}|${job.type}|${pr}`) ?? 0;
        const notBefore = p.estimate(ahead + 1);
        rows.push({ job, notBefore });
        results.push({ kind: 'queued', notBefore });
        // The same key again later in this batch is this job's duplicate.
        if (k !== undefined) byKey.set(k, newRow(job, notBefore));
        waiting.set(job.tenant, n + 1);
        queued.set(`${job.tenant}|${job.type}|${job.priority}`, (queued.get(`${job.tenant}|${job.type}|${job.priority}`) ?? 0) + 1);
      }
      if (rows.length > 0) {
        const col = <T>(f: (r: { job: NewWaitingJob; notBefore: Date }) => T) => sql.param(rows.map(f));
        await tx.execute(sql`
          INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, cost, payload, idempotency_key, fingerprint, last_outcome,
                                    created_at, queued_at, due_at, not_before, state, updated_at)
          SELECT job_id, attempt, tenant, type, priority, job_priority, cost, payload, idempotency_key, fingerprint, last_outcome,
                 created_at, now(), due_at, not_before, 'queued', now()
            FROM unnest(${col((r) => r.job.jobId)}::text[], ${col((r) => r.job.attempt)}::int[], ${col((r) => r.job.tenant)}::text[], ${col((r) => r.job.type)}::text[],
                        ${col((r) => r.job.priority)}::smallint[], ${col((r) => r.job.jobPriority)}::text[], ${col((r) => r.job.cost ?? null)}::int[], ${col((r) => r.job.payload ?? null)}::text[],
                        ${col((r) => r.job.idempotencyKey ?? null)}::text[], ${col((r) => r.job.fingerprint ?? null)}::text[], ${col((r) => r.job.lastOutcome ?? null)}::text[],
                        ${col((r) => r.job.createdAt.toISOString())}::timestamptz[], ${col((r) => r.job.dueAt.toISOString())}::timestamptz[], ${col((r) => r.notBefore.toISOString())}::timestamptz[])
                 WITH ORDINALITY AS r(job_id, attempt, tenant, type, priority, job_priority, cost, payload, idempotency_key, fingerprint, last_outcome, created_at, due_at, not_before, ord)
           ORDER BY ord`);
      }
      return results;
    });
  }

  /**
   * Stores a due retry (idempotent on job and attempt: a redelivered retry message changes nothing).
   * Returns the row's state: `queued` for a new or still waiting row, `cancelled` when the producer
   * cancelled the retry before it arrived, or whatever became of an earlier copy.
   */
  async enqueueRetry(job: NewWaitingJob): Promise<RowState> {
    const result = await this.db.execute<{ state: RowState }>(sql`
      WITH ins AS (
        INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, cost, payload, last_outcome, uncharged,
                                  created_at, queued_at, due_at, not_before, state, updated_at)
        VALUES (${job.jobId}, ${job.attempt}, ${job.tenant}, ${job.type}, ${job.priority}, ${job.jobPriority}, ${job.cost ?? null}, ${job.payload ?? null},
                ${job.lastOutcome ?? null}, ${job.uncharged ?? 0}, ${job.createdAt}, now(), ${job.dueAt}, ${job.dueAt}, 'queued', now())
        ON CONFLICT (job_id, attempt) DO NOTHING
        RETURNING state)
      SELECT state FROM ins
      UNION ALL
      SELECT state FROM waiting_jobs WHERE job_id = ${job.jobId} AND attempt = ${job.attempt} AND NOT EXISTS (SELECT 1 FROM ins)`);
    return result.rows[0]?.state ?? 'queued';
  }

  /**
   * Records when a retry the scheduler decided is due, while it still waits in JANUS_RETRIES (not
   * yet in the room): GET shows it as the `retrying` job's `notBefore`. Idempotent (a redelivered
   * retry message writes the same time).
   */
  async recordRetryDue(retry: { readonly jobId: string; readonly attempt: number; readonly tenant: string; readonly dueAt: Date }): Promise<void> {
    await this.db.execute(sql`
      INSERT INTO retry_due (job_id, attempt, tenant, due_at) VALUES (${retry.jobId}, ${retry.attempt}, ${retry.tenant}, ${retry.dueAt})
      ON CONFLICT (job_id, attempt) DO UPDATE SET due_at = excluded.due_at WHERE retry_due.due_at IS DISTINCT FROM excluded.due_at`);
  }

  /**
   * Stores the replay of a dead job (docs/api.md `POST /v1/jobs/{jobId}/replay`): its next attempt,
   * waiting like a due retry. False when a row of that attempt exists already: another replay of
   * the same death took it (the row's key is the job and the attempt), so two replays sent at once
   * make one attempt.
   */
  async enqueueReplay(job: NewWaitingJob): Promise<boolean> {
    const result = await this.db.execute(sql`
      INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, cost, payload, last_outcome, uncharged,
                                created_at, queued_at, due_at, not_before, state, updated_at)
      VALUES (${job.jobId}, ${job.attempt}, ${job.tenant}, ${job.type}, ${job.priority}, ${job.jobPriority}, ${job.cost ?? null}, ${job.payload ?? null},
              ${job.lastOutcome ?? null}, ${job.uncharged ?? 0}, ${job.createdAt}, now(), ${job.dueAt}, ${job.dueAt}, 'queued', now())
      ON CONFLICT (job_id, attempt) DO NOTHING`);
    return (result.rowCount ?? 0) > 0;
  }

  /** Waiting rows after `afterSeq`, in arrival order (what a dispatcher loads). */
  async loadWaiting(afterSeq: number, limit: number): Promise<WaitingRow[]> {
    const result = await this.db.execute<WaitingRow>(sql`SELECT ${COLUMNS} FROM waiting_jobs WHERE ${WAITING} AND seq > ${afterSeq} ORDER BY seq LIMIT ${limit}`);
    return result.rows.map(parseRow);
  }

  /**
   * Takes rows for admission; returns the ones taken (a cancelled one is not). A row already
   * `dispatching` is taken as it is: the leader's own between tries, or one a dead leader left
   * (its admission may be live, so it never went back to `queued`, where a cancel could take it).
   */
  async claim(keys: readonly RowKey[]): Promise<RowKey[]> {
    return this.#transition(keys, ['queued', 'dispatching'], 'dispatching');
  }

  /** A claimed row's admission is decided: it left the room (`admitted`, `dead`) or waits again (`queued`). */
  async finish(keys: readonly RowKey[], to: 'admitted' | 'dead' | 'queued', reason?: string): Promise<RowKey[]> {
    return this.#transition(keys, 'dispatching', to, reason);
  }

  /**
   * A claimed first attempt whose producer idempotency key turned out to name another job, admitted
   * meanwhile (a mode-`now` request with the same key that raced this one's queueing): that job ran
   * under the key, so this one never runs. It leaves the room `cancelled` (GET shows it), with the
   * reason naming that job; a producer's DELETE of it is 409, as for any finished job (see cancel).
   */
  async supersede(key: RowKey, byJobId: string, how: 'key' | 'payload' = 'key'): Promise<RowKey[]> {
    const under = how === 'key' ? 'under the same idempotency key' : 'with the same payload (job type dedupe)';
    return this.#transition([key], 'dispatching', 'cancelled', `${SUPERSEDED_BY}${byJobId}: admitted ${under}, runs in this job's place`);
  }

  async #transition(keys: readonly RowKey[], from: RowState | readonly RowState[], to: RowState, reason?: string): Promise<RowKey[]> {
    if (keys.length === 0) return [];
    const ids = keys.map((k) => k.jobId);
    const attempts = keys.map((k) => k.attempt);
    const result = await this.db.execute<RowKey>(sql`
      UPDATE waiting_jobs w SET state = ${to}, reason = coalesce(${reason ?? null}, w.reason), updated_at = now()
        FROM unnest(${sql.param(ids)}::text[], ${sql.param(attempts)}::int[]) AS k(job_id, attempt)
       WHERE w.job_id = k.job_id AND w.attempt = k.attempt AND w.state = ANY(${sql.param(typeof from === 'string' ? [from] : from)}::text[])
      RETURNING w.job_id AS "jobId", w.attempt`);
    return result.rows;
  }

  /**
   * Cancels the tenant's waiting job (CONTRACT §3 DELETE): its latest row, if it waits. `nextAttempt`:
   * a retry not yet due is not in the room yet; a cancelled row takes its place, and the retry is
   * dropped when it arrives. A row a dispatcher is trying (`dispatching`) goes back to `queued` when
   * refused: if that happens between the update and the read, the update is tried again (`tries`).
   */
  async cancel(tenant: string, jobId: string, nextAttempt?: { attempt: number; type: string; jobPriority: 'high' | 'normal' | 'low'; createdAt: Date }, tries = 3): Promise<'cancelled' | 'already_cancelled' | 'dispatching' | 'gone' | 'not_found'> {
    const updated = await this.db.execute(sql`
      UPDATE waiting_jobs SET state = 'cancelled', reason = ${CANCELLED_BY_PRODUCER}, updated_at = now()
       WHERE job_id = ${jobId} AND tenant = ${tenant} AND state = 'queued'`);
    if ((updated.rowCount ?? 0) > 0) return 'cancelled';
    const rows = await this.db.execute<{ state: RowState; attempt: number; reason: string | null }>(sql`SELECT state, attempt, reason FROM waiting_jobs WHERE job_id = ${jobId} AND tenant = ${tenant} ORDER BY attempt DESC LIMIT 1`);
    const latest = rows.rows[0];
    // Back in the room between the two statements (a dispatcher's try was refused): cancel it now.
    if (latest?.state === 'queued') return tries > 1 ? this.cancel(tenant, jobId, nextAttempt, tries - 1) : 'dispatching';
    if (latest?.state === 'dispatching') return 'dispatching';
    // Cancelled by the producer: cancelling again changes nothing (204 again, not counted twice).
    // Cancelled by Janus (superseded: another job ran under its idempotency key): finished, not the
    // producer's cancel.
    if (latest?.state === 'cancelled') return latest.reason?.startsWith(SUPERSEDED_BY) === true ? 'gone' : 'already_cancelled';
    if (nextAttempt !== undefined && (latest === undefined || latest.attempt < nextAttempt.attempt)) {
      const inserted = await this.db.execute(sql`
        INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, reason, updated_at)
        VALUES (${jobId}, ${nextAttempt.attempt}, ${tenant}, ${nextAttempt.type}, 2, ${nextAttempt.jobPriority}, ${nextAttempt.createdAt}, now(), now(), now(), 'cancelled', 'cancelled by the producer', now())
        ON CONFLICT (job_id, attempt) DO UPDATE SET state = 'cancelled', reason = EXCLUDED.reason, updated_at = now() WHERE waiting_jobs.state = 'queued'`);
      if ((inserted.rowCount ?? 0) > 0) return 'cancelled';
      return this.cancel(tenant, jobId);
    }
    return latest === undefined ? 'not_found' : 'gone';
  }

  /** Whether any job of this type waits (a new job in mode `queue` then waits behind them: it does not jump the room). */
  async anyWaiting(type: string): Promise<boolean> {
    // Rows a dispatcher is admitting count too: a new job must not take the token one of them is about to get.
    const result = await this.db.execute<{ any: boolean }>(sql`SELECT EXISTS (SELECT 1 FROM waiting_jobs WHERE type = ${type} AND ${WAITING}) AS any`);
    return result.rows[0]?.any === true;
  }

  /** A waiting job of the tenant with this idempotency key (or one its producer cancelled within the key's window, see KEYED). */
  async waitingWithKey(tenant: string, key: string): Promise<WaitingRow | undefined> {
    const result = await this.db.execute<WaitingRow>(sql`SELECT ${COLUMNS} FROM waiting_jobs WHERE tenant = ${tenant} AND idempotency_key = ${key} AND ${KEYED}`);
    return result.rows.map(parseRow).find((r) => this.#keyAnswers(r));
  }

  /** The tenant's waiting jobs with any of these idempotency keys, by key (a batch's jobs' own keys). */
  async waitingWithKeys(tenant: string, keys: readonly string[]): Promise<Map<string, WaitingRow>> {
    if (keys.length === 0) return new Map();
    const result = await this.db.execute<WaitingRow>(sql`SELECT ${COLUMNS} FROM waiting_jobs WHERE tenant = ${tenant} AND idempotency_key = ANY(${sql.param([...keys])}::text[]) AND ${KEYED}`);
    return new Map(
      result.rows
        .map(parseRow)
        .filter((r) => this.#keyAnswers(r))
        .map((r) => [r.idempotencyKey ?? '', r]),
    );
  }

  /**
   * The tenant's jobs waiting in mode `queue` (first attempts) per job type, its retries waiting in
   * the room, and when the oldest of the first arrived (`oldestQueuedAt` goes with `queued`).
   */
  async waitingOf(tenant: string): Promise<{ total: number; byType: Record<string, number>; retrying: number; oldestQueuedAt: Date | undefined }> {
    const result = await this.db.execute<{ type: string; retry: boolean; n: number; oldest: Date | string }>(sql`
      SELECT type, attempt > 1 AS retry, count(*)::int AS n, min(queued_at) AS oldest FROM waiting_jobs
       WHERE tenant = ${tenant} AND ${WAITING} GROUP BY type, attempt > 1`);
    const byType: Record<string, number> = {};
    let total = 0;
    let retrying = 0;
    let oldest: Date | undefined;
    for (const r of result.rows) {
      if (r.retry) {
        retrying += r.n;
        continue;
      }
      byType[r.type] = r.n;
      total += r.n;
      const at = new Date(r.oldest);
      if (oldest === undefined || at < oldest) oldest = at;
    }
    return { total, byType, retrying, oldestQueuedAt: oldest };
  }

  /** Waiting jobs per tenant and job type, with the oldest's arrival (metrics, dashboard). */
  async waitingAll(): Promise<{ tenant: string; type: string; n: number; oldest: Date }[]> {
    const result = await this.db.execute<{ tenant: string; type: string; n: number; oldest: Date | string }>(sql`
      SELECT tenant, type, count(*)::int AS n, min(queued_at) AS oldest FROM waiting_jobs WHERE ${WAITING} GROUP BY tenant, type`);
    return result.rows.map((r) => ({ ...r, oldest: new Date(r.oldest) }));
  }
}

export type RowKey = {
  readonly jobId: string;
  readonly attempt: number;
};

/** The row a job is about to be stored as (for a duplicate within the same batch). */
function newRow(job: NewWaitingJob, notBefore: Date): WaitingRow {
  const now = new Date();
  return {
    jobId: job.jobId,
    attempt: job.attempt,
    seq: 0,
    tenant: job.tenant,
    type: job.type,
    priority: job.priority,
    jobPriority: job.jobPriority,
    cost: job.cost ?? null,
    payload: job.payload ?? null,
    idempotencyKey: job.idempotencyKey ?? null,
    fingerprint: job.fingerprint ?? null,
    lastOutcome: job.lastOutcome ?? null,
    uncharged: job.uncharged ?? 0,
    createdAt: job.createdAt,
    queuedAt: now,
    dueAt: job.dueAt,
    notBefore,
    state: 'queued',
  };
}

function parseRow(r: WaitingRow): WaitingRow {
  // node-postgres returns timestamptz as Date already; seq comes as float8 (a JS number).
  return { ...r, seq: Number(r.seq), createdAt: new Date(r.createdAt), queuedAt: new Date(r.queuedAt), dueAt: new Date(r.dueAt), notBefore: new Date(r.notBefore) };
}
