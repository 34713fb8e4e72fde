import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { Priority } from '@janus/contracts';
import type { Database } from '@janus/db';
import { CREDITS, estimateFor, longestWindowMs, type CompiledPolicy, type RestoredBudget, type RestoredCredits, type RestoredIdempotency, type RestoredAdmission, type RestoredLease, type RestoredState } from '@janus/limiter';
import { batchIdempotencyRecord, jobIdempotencyRecord } from './idempotency-record.js';
import { dedupeKeyOfRoomKey, dedupeRoomKey } from './room-keys.js';
import { encodeRetryContext } from './retry-context.js';

export interface DurableStateOptions {
  /** Redis time (ms) of the rebuild: windows and expiries are judged against it. */
  readonly now: number;
  /**
   * Attempts without an outcome whose lease expired longer ago than this are not written back
   * (Redis keeps a finished lease record this long). Those within it are, for the reaper: it turns
   * each into a timed_out outcome, so that the loss loses no attempt.
   */
  readonly expiredHorizonMs: number;
  /**
   * A budget reservation recorded up to this long before the current window counts in it: the
   * ledger's time is the admitting instance's clock, the window Redis's (conservative: it can only
   * count more).
   */
  readonly clockSkewMs: number;
}

const DAY_MS = 86_400_000;

// PostgreSQL's answers are checked at this edge: the driver hands timestamps and bigints over as
// text or Date depending on its type parsers, so both are coerced.
const time = z.coerce.date();
const int = z.coerce.number().int();
const LeaseRow = z.object({
  job_id: z.string(),
  attempt: int,
  lease_id: z.string(),
  admitted_at: time,
  expires_at: time,
  tenant: z.string(),
  type: z.string(),
  priority: z.string(),
  cost: int.nullable(),
  payload: z.string().nullable(),
  created_at: time,
  reserved: int.nullable(),
  reserved_at: time.nullable(),
  settled: int.nullable(),
  released: z.boolean(),
  job_seq: int.nullable(),
});
const UsedRow = z.object({ used: int.nullable() });
const KeyRow = z.object({
  tenant: z.string(),
  key: z.string(),
  position: int,
  batch_size: int.nullable(),
  job_id: z.string(),
  fingerprint: z.string(),
  admitted_at: time,
  expires_at: time,
});
const AdmissionRow = z.object({ tenant: z.string(), type: z.string(), cost: int.nullable(), admitted_at: time, actual_cost: int.nullable() });
const RetryRow = z.object({ job_id: z.string(), attempt: int, admitted_at: time, tenant: z.string(), type: z.string(), room_key: z.string().nullable(), fingerprint: z.string().nullable() });


function rowsOf<T>(schema: z.ZodType<T>, result: { rows: unknown[] }): T[] {
  return result.rows.map((row) => schema.parse(row));
}

/**
 * The fail-open attempts still in flight (admitted while Redis could not be reached; the persister
 * stored them with `fail_open`): what the retry-scheduler adopts once Redis answers
 * (Limiter.adoptLeases). A partial index keeps this read empty-cheap; it runs every second.
 *
 * A job of a tenant with a budget comes with its reservation: the one the ledger records, or, when
 * the ledger has none yet, its estimate in the budget's current window — listed in `unrecorded`
 * (lease ids), whose `reserve` entries the caller publishes.
 */
export async function readFailOpenLeases(
  db: Database,
  policy: CompiledPolicy,
  opts: Pick<DurableStateOptions, 'now' | 'expiredHorizonMs' | 'clockSkewMs'>,
): Promise<{ leases: RestoredLease[]; unrecorded: ReadonlySet<string> }> {
  const { leases, unrecorded } = await readLiveLeases(db, policy, opts, budgetWindows(policy, opts.now), 'fail_open');
  return { leases, unrecorded };
}

type BudgetWindows = ReadonlyMap<string, { readonly start: number; readonly periodMs: number }>;

/** The current window of every tenant budget of the policy, at `now`. */
function budgetWindows(policy: CompiledPolicy, now: number): Map<string, { start: number; periodMs: number }> {
  const windows = new Map<string, { start: number; periodMs: number }>();
  for (const [tenant, t] of Object.entries(policy.document.tenants)) {
    if (t.budget) windows.set(tenant, { start: now - (now % t.budget.periodMs), periodMs: t.budget.periodMs });
  }
  return windows;
}

/** Attempts without an outcome whose lease is within the horizon, as the leases to write back. */
async function readLiveLeases(
  db: Database,
  policy: CompiledPolicy,
  opts: Pick<DurableStateOptions, 'now' | 'expiredHorizonMs' | 'clockSkewMs'>,
  windowOf: BudgetWindows,
  which: 'all' | 'fail_open',
): Promise<{ leases: RestoredLease[]; unrecordedReservations: Map<string, number>; unrecorded: Set<string> }> {
  const horizon = new Date(opts.now - opts.expiredHorizonMs);
  const leaseRows = await db.execute(sql`
    SELECT a.job_id, a.attempt, a.lease_id, a.admitted_at,
           GREATEST(a.lease_expires_at, COALESCE(a.lease_extended_until, a.lease_expires_at)) AS expires_at,
           j.tenant, j.type, j.priority, j.cost, j.payload::text AS payload, j.created_at,
           r.amount AS reserved, r.at AS reserved_at, s.amount AS settled, (rl.entry_id IS NOT NULL) AS released,
           a.job_seq
    FROM attempts a
    JOIN jobs j ON j.job_id = a.job_id
    LEFT JOIN budget_ledger r ON r.entry_id = a.job_id || '.' || a.attempt || '.reserve'
    LEFT JOIN budget_ledger s ON s.entry_id = a.job_id || '.' || a.attempt || '.settle'
    LEFT JOIN budget_ledger rl ON rl.entry_id = a.job_id || '.' || a.attempt || '.release'
    WHERE a.outcome IS NULL AND a.admitted_at IS NOT NULL AND a.lease_id IS NOT NULL ${which === 'fail_open' ? sql`AND a.fail_open` : sql``}
      AND GREATEST(a.lease_expires_at, COALESCE(a.lease_extended_until, a.lease_expires_at)) > ${horizon}
    ORDER BY a.job_id, a.attempt`);

  const unrecordedReservations = new Map<string, number>();
  const unrecorded = new Set<string>();
  const leases: RestoredLease[] = rowsOf(LeaseRow, leaseRows).map((row) => {
    const jt = policy.jobType(row.type);
    const cost = row.cost ?? undefined;
    const original = Priority.safeParse(row.priority).data ?? 'normal';
    const priority = row.attempt === 1 ? original : (jt?.retryPriority ?? 'low');
    const window = windowOf.get(row.tenant);
    let reserved = 0;
    let budgetWindow: number | undefined;
    if (row.reserved !== null) {
      reserved = row.settled !== null ? row.settled : row.released ? 0 : row.reserved;
      const at = (row.reserved_at ?? row.admitted_at).getTime();
      if (window) budgetWindow = at >= window.start - opts.clockSkewMs ? window.start : at - (at % window.periodMs);
    } else if (window && row.settled !== null) {
      // Settled without a reservation entry (it was running when its tenant was given a budget):
      // readDurableState counts its settle in the window; the lease holds what it settled.
      reserved = row.settled;
      budgetWindow = window.start;
    } else if (window && jt) {
      // The ledger has no entry for it (its reserve was not published before the loss): count the estimate now.
      reserved = estimateFor(jt, cost);
      budgetWindow = window.start;
      unrecordedReservations.set(row.tenant, (unrecordedReservations.get(row.tenant) ?? 0) + reserved);
      unrecorded.add(row.lease_id);
    }
    const context = encodeRetryContext(
      {
        tenant: row.tenant,
        type: row.type,
        priority: original,
        ...(cost !== undefined ? { cost } : {}),
        createdAt: row.created_at.toISOString(),
      },
      row.payload ?? undefined,
    );
    return {
      leaseId: row.lease_id,
      jobId: row.job_id,
      attempt: row.attempt,
      tenant: row.tenant,
      jobType: row.type,
      priority,
      ...(cost !== undefined ? { cost } : {}),
      admittedAt: row.admitted_at.getTime(),
      expiresAt: row.expires_at.getTime(),
      reserved,
      ...(budgetWindow !== undefined ? { budgetWindow } : {}),
      ...(row.job_seq !== null ? { seq: row.job_seq } : {}),
      context,
    };
  });
  return { leases, unrecordedReservations, unrecorded };
}

/**
 * What Redis held that must outlive it, read from the durable record the persister keeps in
 * PostgreSQL (docs/guarantees.md §5). The caller makes sure the persister has caught up first.
 *
 * - Leases: every attempt admitted without an applied outcome, expiring at the later of its
 *   admitted expiry and its last recorded extension; with the priority it ran at, the producer's
 *   cost, its retry context (tenant, type, original priority, cost, payload, createdAt) and its
 *   budget reservation from the ledger (the settled amount once settled, so that a settle arriving
 *   after the rebuild adjusts nothing twice).
 * - Budgets: per tenant with a budget in the running policy, what its current window used: per
 *   attempt reserved in the window, the settled amount if settled, nothing if released, else the
 *   reservation; plus the estimate of any live lease the ledger has no entry for (an admission whose
 *   reserve was not published yet, or a job that was running when the budget was added), and the
 *   settled amount of a finished one (settled in the window without a reservation: conservative
 *   when it had reserved in an earlier window).
 * - Idempotency records: producers' keys still within their window (`idempotency_keys`), spelled
 *   as ingress writes them; and the scheduler's retry keys (`retry:<jobId>.<n>`) of the attempts
 *   admitted as retries, and the waiting room's (`room:<jobId>.1`) of first attempts it admitted
 *   without a producer key, within their job type's window.
 */
export async function readDurableState(db: Database, policy: CompiledPolicy, opts: DurableStateOptions): Promise<RestoredState> {
  const now = new Date(opts.now);
  const windowOf = budgetWindows(policy, opts.now);
  const { leases, unrecordedReservations } = await readLiveLeases(db, policy, opts, windowOf, 'all');

  const budgets: RestoredBudget[] = [];
  for (const [tenant, window] of windowOf) {
    const used = await db.execute(sql`
      SELECT sum(CASE WHEN s.entry_id IS NOT NULL THEN s.amount WHEN rl.entry_id IS NOT NULL THEN 0 ELSE r.amount END) AS used
      FROM budget_ledger r
      LEFT JOIN budget_ledger s ON s.entry_id = r.job_id || '.' || r.attempt || '.settle'
      LEFT JOIN budget_ledger rl ON rl.entry_id = r.job_id || '.' || r.attempt || '.release'
      WHERE r.tenant = ${tenant} AND r.kind = 'reserve'
        AND r.at >= ${new Date(window.start - opts.clockSkewMs)} AND r.at < ${new Date(window.start + window.periodMs)}`);
    // A job that was running when its tenant was given a budget reserved in it without a `reserve`
    // entry (src/attach.ts of @janus/limiter): its settle, in the window, counts on its own.
    const unreserved = await db.execute(sql`
      SELECT sum(s.amount) AS used
      FROM budget_ledger s
      WHERE s.tenant = ${tenant} AND s.kind = 'settle'
        AND s.at >= ${new Date(window.start - opts.clockSkewMs)} AND s.at < ${new Date(window.start + window.periodMs)}
        AND NOT EXISTS (SELECT 1 FROM budget_ledger r WHERE r.entry_id = s.job_id || '.' || s.attempt || '.reserve')`);
    const total = (rowsOf(UsedRow, used)[0]?.used ?? 0) + (rowsOf(UsedRow, unreserved)[0]?.used ?? 0) + (unrecordedReservations.get(tenant) ?? 0);
    budgets.push({ tenant, windowStart: window.start, used: Math.max(0, total) });
  }

  const idempotency: RestoredIdempotency[] = [];
  const keyResult = await db.execute(sql`
    SELECT tenant, key, position, batch_size, job_id, fingerprint, admitted_at, expires_at
    FROM idempotency_keys WHERE expires_at > ${now}
    ORDER BY tenant, key, expires_at DESC, position`);
  const byKey = new Map<string, z.infer<typeof KeyRow>[]>();
  for (const row of rowsOf(KeyRow, keyResult)) {
    const id = `${row.tenant}\u0000${row.key}`;
    const list = byKey.get(id);
    if (list) list.push(row);
    else byKey.set(id, [row]);
  }
  for (const list of byKey.values()) {
    // One admission per key: the latest (rows of an earlier use of the key are older).
    const first = list[0]!;
    const rowsOfIt = list.filter((r) => r.expires_at.getTime() === first.expires_at.getTime() && (r.batch_size === null) === (first.batch_size === null));
    const record =
      first.batch_size === null
        ? jobIdempotencyRecord({ jobId: first.job_id, status: 'admitted', attempt: 1, admittedAt: first.admitted_at.toISOString() }, first.fingerprint)
        : batchIdempotencyRecord(
            rowsOfIt.sort((a, b) => a.position - b.position).map((r) => ({ jobId: r.job_id, status: 'admitted' as const, attempt: 1 })),
            first.fingerprint,
          );
    idempotency.push({ tenant: first.tenant, key: first.key, kind: 'producer', record, expiresAt: first.expires_at.getTime() });
  }

  const windows = [...policy.jobTypes.values()].map((j) => j.idempotencyWindowMs);
  const longestWindow = Math.max(DAY_MS, ...windows);
  // Retries (attempt > 1); and first attempts the waiting room admitted whose rows are still
  // `dispatching` (only those can be admitted again): a dispatcher that died between such an
  // admission and recording it leaves the row to the next leader, whose admission must find the
  // key it was made under — `room:<jobId>.1` for a row without a producer key, the payload's dedupe
  // key for a job type with `dedupe` (a producer's key is among `idempotency_keys` above) — or the
  // same attempt would be admitted twice (waiting-room dispatcher.ts #admit).
  const since = new Date(opts.now - longestWindow);
  const retries = await db.execute(sql`
    SELECT a.job_id, a.attempt, a.admitted_at, j.tenant, j.type, NULL AS room_key, NULL AS fingerprint
    FROM attempts a JOIN jobs j ON j.job_id = a.job_id
    WHERE a.attempt > 1 AND a.admitted_at > ${since}
    UNION ALL
    SELECT a.job_id, a.attempt, a.admitted_at, j.tenant, j.type, w.idempotency_key AS room_key, w.fingerprint
    FROM waiting_jobs w JOIN attempts a ON a.job_id = w.job_id AND a.attempt = 1 JOIN jobs j ON j.job_id = w.job_id
    WHERE w.state = 'dispatching' AND w.attempt = 1 AND a.admitted_at > ${since}
      AND (w.idempotency_key IS NULL OR starts_with(w.idempotency_key, ${dedupeRoomKey('')}))`);
  for (const row of rowsOf(RetryRow, retries)) {
    const jt = policy.jobType(row.type);
    const admittedAt = row.admitted_at.getTime();
    const dedupeKey = row.room_key !== null ? dedupeKeyOfRoomKey(row.room_key) : undefined;
    if (dedupeKey !== undefined) {
      const windowMs = policy.document.jobTypes[row.type]?.dedupe?.windowMs;
      if (windowMs === undefined || admittedAt + windowMs <= opts.now) continue;
      const record = jobIdempotencyRecord({ jobId: row.job_id, status: 'admitted', attempt: 1, admittedAt: row.admitted_at.toISOString() }, row.fingerprint ?? undefined);
      idempotency.push({ tenant: row.tenant, key: dedupeKey, kind: 'dedupe', record, expiresAt: admittedAt + windowMs });
      continue;
    }
    const expiresAt = admittedAt + (jt?.idempotencyWindowMs ?? DAY_MS);
    if (expiresAt <= opts.now) continue;
    const [key, record] = row.attempt > 1 ? [`retry:${row.job_id}.${row.attempt}`, 'retry'] : [`room:${row.job_id}.1`, 'room'];
    idempotency.push({ tenant: row.tenant, key, kind: 'retry', record, expiresAt });
  }

  const credits = await readCredits(db, policy, leases, opts.now);
  const admissions = await readRecentAdmissions(db, policy, opts.now);
  return { leases, budgets, idempotency, bucketTenants: [...new Set(leases.map((l) => l.tenant))], credits, admissions };
}

/**
 * Every attempt admitted within the policy's longest sliding window (none without one): what the
 * windows held (the limiter counts each in the windows it touches). An attempt admitted that long
 * ago either has no outcome yet or finished since, so the two partial reads the indexes serve
 * (`attempts_unfinished_idx`, `attempts_finished_at_idx`) find all of them however long the history.
 */
async function readRecentAdmissions(db: Database, policy: CompiledPolicy, now: number): Promise<RestoredAdmission[]> {
  const longest = longestWindowMs(policy);
  if (longest === 0) return [];
  const since = new Date(now - longest);
  // finished_at is an instance's clock, admitted_at Redis's: a minute's slack between them
  const finishedSince = new Date(now - longest - 60_000);
  const rows = await db.execute(sql`
    SELECT j.tenant, j.type, j.cost, a.admitted_at, a.actual_cost
    FROM attempts a JOIN jobs j ON j.job_id = a.job_id
    WHERE a.admitted_at > ${since} AND (a.outcome IS NULL OR a.finished_at IS NULL OR a.finished_at > ${finishedSince})`);
  return rowsOf(AdmissionRow, rows).map((row) => ({
    tenant: row.tenant,
    jobType: row.type,
    ...(row.cost !== null ? { cost: row.cost } : {}),
    admittedAt: row.admitted_at.getTime(),
    ...(row.actual_cost !== null ? { actualCost: row.actual_cost } : {}),
  }));
}

const CreditBalanceRow = z.object({ tenant: z.string(), balance: int });
const CreditOpenRow = z.object({ tenant: z.string(), lease_id: z.string(), amount: int, job_id: z.string(), attempt: int });
const CreditLeaseRow = z.object({ lease_id: z.string() });
const CreditTopupRow = z.object({ tenant: z.string(), entry_id: z.string(), amount: int, at: time });

/**
 * Prepaid credits from the ledger (docs/credits.md "Redis loss"): each account's balance, the
 * reservations of the leases being restored, and — conservative where the record is unsure — the
 * open reservations of leases not restored (their settle or release was lost with the outbox:
 * charged at their amount) and the restored leases whose reserve entry was lost (reserved again).
 * Also the top-ups of the last `CREDITS.topupMarkerTtlMs`, whose markers (lost with Redis) say that
 * their Idempotency-Key was used: without them the same key again would top up a second time in
 * Redis while the ledger, keyed by the entry id, dropped the duplicate.
 */
async function readCredits(db: Database, policy: CompiledPolicy, leases: readonly RestoredLease[], now: number): Promise<RestoredCredits[]> {
  const balances = rowsOf(
    CreditBalanceRow,
    await db.execute(sql`
      SELECT tenant, sum(CASE kind WHEN 'topup' THEN amount WHEN 'settle' THEN -amount WHEN 'overrun' THEN amount ELSE 0 END) AS balance
      FROM credit_ledger GROUP BY tenant`),
  );
  if (balances.length === 0) return [];
  const open = rowsOf(
    CreditOpenRow,
    await db.execute(sql`
      SELECT r.tenant, r.lease_id, r.amount, r.job_id, r.attempt FROM credit_ledger r
      WHERE r.kind = 'reserve' AND r.lease_id IS NOT NULL AND r.job_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.lease_id = r.lease_id AND x.kind IN ('settle', 'release'))`),
  );
  const ids = leases.map((l) => l.leaseId);
  const recorded = new Set(
    ids.length === 0 ? [] : rowsOf(CreditLeaseRow, await db.execute(sql`SELECT DISTINCT lease_id FROM credit_ledger WHERE lease_id = ANY(${sql.param(ids)}::text[])`)).map((r) => r.lease_id),
  );
  const openById = new Map(open.map((o) => [o.lease_id, o]));
  const restored = new Set(ids);
  const out = new Map<
    string,
    { tenant: string; balance: number; reservations: RestoredCredits['reservations'][number][]; orphans: RestoredCredits['orphans'][number][]; topups: NonNullable<RestoredCredits['topups']>[number][] }
  >();
  for (const b of balances) out.set(b.tenant, { tenant: b.tenant, balance: b.balance, reservations: [], orphans: [], topups: [] });
  const topups = rowsOf(
    CreditTopupRow,
    await db.execute(sql`SELECT tenant, entry_id, amount, at FROM credit_ledger WHERE kind = 'topup' AND at > ${new Date(now - CREDITS.topupMarkerTtlMs)}`),
  );
  for (const t of topups) {
    // entry id 'topup.<tenant>.<digest>' (topUpEntryId)
    const prefix = `topup.${t.tenant}.`;
    if (t.entry_id.startsWith(prefix)) out.get(t.tenant)?.topups.push({ digest: t.entry_id.slice(prefix.length), amount: t.amount, at: t.at.getTime() });
  }
  for (const lease of leases) {
    const account = out.get(lease.tenant);
    if (!account) continue;
    const o = openById.get(lease.leaseId);
    if (o) account.reservations.push({ leaseId: lease.leaseId, amount: o.amount, jobId: o.job_id, attempt: o.attempt, unrecorded: false });
    else if (!recorded.has(lease.leaseId)) {
      const jt = policy.jobType(lease.jobType);
      if (jt) account.reservations.push({ leaseId: lease.leaseId, amount: estimateFor(jt, lease.cost), jobId: lease.jobId, attempt: lease.attempt, unrecorded: true });
    }
  }
  for (const o of open) {
    if (restored.has(o.lease_id)) continue;
    out.get(o.tenant)?.orphans.push({ leaseId: o.lease_id, amount: o.amount, jobId: o.job_id, attempt: o.attempt });
  }
  return [...out.values()];
}
