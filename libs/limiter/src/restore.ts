/**
 * Writing a lost state back (docs/guarantees.md §5). The caller (a rebuild in @janus/execution)
 * reads the durable record and hands over what was live; this part turns it into Redis state
 * exactly as admission would have written it, for the holder of the rebuild lock only:
 *
 *   lock     state-lock-1      at most one instance rebuilds at a time
 *   restore  state-restore-n   leases (records, pools, expiry index), budgets, idempotency records,
 *                              EMPTY rate buckets, sliding windows from the recent admissions;
 *                              idempotent, in chunks
 *   open     state-open-3      writes the epoch (admission reopens) and releases the lock
 *
 * A restored lease keeps its id, so its record sits where admission put it (`Keys.leaseLocation`)
 * and a worker's token settles, extends and is reaped like any other. Its pools and rate entries
 * follow the running policy (what the limits are checked against now), its budget reservation the
 * ledger.
 */
import { ADOPT_ANSWER, CREDITS, LOCK_ANSWER, OPEN_ANSWER, PRIORITY, RESTORE_ANSWER } from './codes.js';
import type { Clock } from './clock.js';
import { limitId, type Keys } from './keys.js';
import { formatActiveLeaseRecord, rateEntry, windowEntry } from './lease-record.js';
import { amountFor, estimateFor, type CompiledPolicy } from './policy.js';
import type { ScriptStore } from './store.js';
import type { AdoptResult, OpenResult, RestoredAdmission, RestoredLease, RestoredState, RestoreResult, StateStatus } from './types.js';

type Arg = string | number;

/** Bounds of one state-restore-n call: Redis runs a script alone, so keep each one short. */
const MAX_KEYS_PER_CALL = 4_000;
const MAX_ARGS_PER_CALL = 8_000;
/**
 * An adopted lease expires no sooner than its job type's timeout plus this from its adoption: the
 * worker holding its message asks for it at least every second (the worker SDK), so the job gets
 * its whole timeout from the moment it starts.
 */
export const ADOPTED_LEASE_GRACE_MS = 2_000;
/** Credits reservations (or orphans) per restore item: 5 arguments each, well within one call. */
const CREDITS_CHUNK = 500;
/** Expiries per sliding-window item: 2 arguments each. */
const WINDOW_CHUNK = 1_000;

export interface StateRestoreOptions {
  readonly store: ScriptStore;
  readonly keys: Keys;
  readonly clock: Clock;
  readonly retentionMs: number;
}

export class StateRestore {
  readonly #store: ScriptStore;
  readonly #keys: Keys;
  readonly #clock: Clock;
  readonly #retentionMs: number;

  constructor(opts: StateRestoreOptions) {
    this.#store = opts.store;
    this.#keys = opts.keys;
    this.#clock = opts.clock;
    this.#retentionMs = opts.retentionMs;
  }

  /** Whether the state is trusted (the epoch exists) and, if not, when the fail-closed fallback ends. */
  async status(): Promise<StateStatus> {
    const rows = (await this.#store.guard(this.#store.redis.pipeline().exists(this.#keys.epoch).get(this.#keys.recoveringUntil).exec())) ?? [];
    const error = rows.find(([e]) => e !== null)?.[0];
    if (error) throw error;
    if (Number(rows[0]?.[1]) === 1) return { trusted: true };
    const until = Number(rows[1]?.[1]);
    return { trusted: false, ...(Number.isFinite(until) && until > 0 ? { recoveringUntil: until } : {}) };
  }

  /** Takes the rebuild lock (true), or another instance holds it (false). Idempotent for the holder. */
  async acquire(token: string, ttlMs: number): Promise<boolean> {
    return (await this.#lock('acquire', token, ttlMs)) === LOCK_ANSWER.held;
  }

  /** Extends the lock while the rebuild runs; false when it is no longer ours. */
  async renew(token: string, ttlMs: number): Promise<boolean> {
    return (await this.#lock('renew', token, ttlMs)) === LOCK_ANSWER.held;
  }

  /** Drops the lock if it is ours. */
  async release(token: string): Promise<void> {
    await this.#lock('release', token, 0);
  }

  /**
   * Writes the state (in several script calls; each checks the lock and that the state is still
   * lost). Leases whose id is not one admission issues (`<call id>_<n>`) are skipped and counted.
   */
  async restore(token: string, policy: CompiledPolicy, state: RestoredState): Promise<RestoreResult> {
    const k = this.#keys;
    const totals = { leases: 0, existing: 0, budgets: 0, idempotency: 0, buckets: 0, windows: 0, skipped: 0 };
    let keys: string[] = [];
    let args: Arg[] = [];
    const flush = async (): Promise<RestoreResult | undefined> => {
      if (args.length === 0) return undefined;
      const reply = (await this.#store.run('stateRestore', [k.epoch, k.rebuildLock, k.leaseExpiry, ...keys], [this.#clock.arg(), token, this.#retentionMs, ...args])) as number[];
      keys = [];
      args = [];
      if (reply[0] === RESTORE_ANSWER.lockLost) return { ok: false, reason: 'lock_lost' };
      if (reply[0] === RESTORE_ANSWER.stateOpen) return { ok: false, reason: 'state_open' };
      totals.leases += Number(reply[1]);
      totals.existing += Number(reply[2]);
      totals.budgets += Number(reply[3]);
      totals.idempotency += Number(reply[4]);
      totals.buckets += Number(reply[5]);
      totals.windows += Number(reply[6] ?? 0);
      return undefined;
    };
    const add = async (itemKeys: readonly string[], itemArgs: readonly Arg[]): Promise<RestoreResult | undefined> => {
      if (keys.length + itemKeys.length > MAX_KEYS_PER_CALL || args.length + itemArgs.length > MAX_ARGS_PER_CALL) {
        const stop = await flush();
        if (stop) return stop;
      }
      keys.push(...itemKeys);
      args.push(...itemArgs);
      return undefined;
    };

    for (const lease of state.leases) {
      const at = k.leaseLocation(lease.leaseId);
      if (!at) {
        totals.skipped += 1;
        continue;
      }
      const { record, pools } = restoredRecord(k, policy, lease);
      const stop = await add([at.key, ...pools], ['lease', pools.length / 2, lease.leaseId, at.field, lease.expiresAt, record]);
      if (stop) return stop;
    }
    for (const b of state.budgets) {
      const budget = policy.document.tenants[b.tenant]?.budget;
      if (budget === undefined) continue; // no budget any more: nothing to hold
      const stop = await add([k.limit(limitId.tenantBudget(b.tenant))], ['budget', b.windowStart, b.used, budget.periodMs, budget.limit]);
      if (stop) return stop;
    }
    for (const r of state.idempotency) {
      const stop = await add([k.idempotency(r.tenant, r.key, r.kind)], ['idem', r.record, r.expiresAt]);
      if (stop) return stop;
    }
    for (const c of state.credits ?? []) {
      const reserved = c.reservations.reduce((n, r) => n + r.amount, 0);
      const account = [k.credits(c.tenant), k.creditsOutbox];
      const stop = await add(account, ['credits', c.tenant, c.balance, reserved]);
      if (stop) return stop;
      // in chunks: a tenant may hold thousands of reservations, and one item must fit in one call
      for (let i = 0; i < c.reservations.length; i += CREDITS_CHUNK) {
        const chunk = c.reservations.slice(i, i + CREDITS_CHUNK);
        const args: Arg[] = ['creditsres', c.tenant, chunk.length];
        for (const r of chunk) args.push(r.leaseId, r.amount, r.jobId, r.attempt, r.unrecorded ? 1 : 0);
        const full = await add(account, args);
        if (full) return full;
      }
      for (let i = 0; i < c.orphans.length; i += CREDITS_CHUNK) {
        const chunk = c.orphans.slice(i, i + CREDITS_CHUNK);
        const args: Arg[] = ['creditsorph', c.tenant, chunk.length];
        for (const o of chunk) args.push(o.leaseId, o.amount, o.jobId, o.attempt);
        const full = await add(account, args);
        if (full) return full;
      }
      // its top-up markers: the same Idempotency-Key after the loss is a replay, not a second top-up
      for (const t of c.topups ?? []) {
        const marker = await add([k.creditsTopup(c.tenant, t.digest)], ['topup', `${t.amount} ${t.at}`, t.at + CREDITS.topupMarkerTtlMs]);
        if (marker) return marker;
      }
    }
    for (const [key, bucket] of rateBuckets(k, policy, state.bucketTenants)) {
      const stop = await add([key], ['bucket', bucket.capacity, bucket.refill, bucket.periodMs]);
      if (stop) return stop;
    }
    // Each (window, expiry) goes in exactly one item: the script writes counts, not increments.
    for (const [key, units] of windowUnits(k, policy, state.admissions ?? [], await this.#clock.read())) {
      const entries = [...units];
      for (let i = 0; i < entries.length; i += WINDOW_CHUNK) {
        const chunk = entries.slice(i, i + WINDOW_CHUNK);
        const stop = await add([key, k.poolExpiries(key)], ['window', chunk.length, ...chunk.flat()]);
        if (stop) return stop;
      }
    }
    const stop = await flush();
    return stop ?? { ok: true, ...totals };
  }

  /**
   * Writes the lease records of fail-open admissions (adopt-n.lua) while the state is trusted:
   * counted in their concurrency pools from now on, expiring no sooner than their job type's timeout
   * (plus ADOPTED_LEASE_GRACE_MS) from now. They were admitted without the limiter, so they hold no rate tokens and no budget
   * (nothing to give back or settle). A lease whose record exists is left alone.
   */
  async adopt(policy: CompiledPolicy, leases: readonly RestoredLease[]): Promise<AdoptResult> {
    const k = this.#keys;
    let adopted = 0;
    let existing = 0;
    let skipped = 0;
    let keys: string[] = [];
    let args: Arg[] = [];
    const flush = async (): Promise<boolean> => {
      if (args.length === 0) return true;
      const reply = (await this.#store.run('adopt', [k.epoch, k.leaseExpiry, k.creditsOutbox, ...keys], [this.#clock.arg(), this.#retentionMs, ...args])) as number[];
      keys = [];
      args = [];
      if (reply[0] !== ADOPT_ANSWER.ok) return false;
      adopted += Number(reply[1]);
      existing += Number(reply[2]);
      return true;
    };
    for (const lease of leases) {
      const at = k.leaseLocation(lease.leaseId);
      if (!at) {
        skipped += 1;
        continue;
      }
      const { record, pools, budget, credits } = restoredRecord(k, policy, lease, { unheld: true });
      if (keys.length + 3 + pools.length > MAX_KEYS_PER_CALL || args.length + 13 > MAX_ARGS_PER_CALL) {
        if (!(await flush())) return { ok: false, reason: 'state_lost' };
      }
      keys.push(at.key, ...pools, ...(budget ? [budget.key] : []), ...(credits ? [credits.key] : []));
      const timeoutMs = (policy.jobType(lease.jobType)?.timeoutMs ?? 0) + ADOPTED_LEASE_GRACE_MS;
      args.push(pools.length / 2, lease.leaseId, at.field, lease.expiresAt, timeoutMs, record);
      args.push(budget?.reserved ?? 0, budget?.window ?? 0, budget?.periodMs ?? 0, credits?.estimate ?? 0, lease.jobId, lease.attempt, lease.tenant);
    }
    if (!(await flush())) return { ok: false, reason: 'state_lost' };
    return { ok: true, adopted, existing, skipped };
  }

  /** Reopens admission after a rebuild ('rebuilt') or once the fail-closed window has passed ('fallback'). */
  async open(token: string, mode: 'rebuilt' | 'fallback', recoveryWindowMs: number): Promise<OpenResult> {
    const k = this.#keys;
    const reply = (await this.#store.run('stateOpen', [k.epoch, k.recoveringUntil, k.rebuildLock], [this.#clock.arg(), token, mode, recoveryWindowMs])) as [number, string?];
    switch (reply[0]) {
      case OPEN_ANSWER.opened:
        return { kind: 'opened' };
      case OPEN_ANSWER.alreadyOpen:
        return { kind: 'already_open' };
      case OPEN_ANSWER.tooEarly:
        return { kind: 'too_early', recoveringUntil: Number(reply[1]) };
      default:
        return { kind: 'lock_lost' };
    }
  }

  async #lock(mode: 'acquire' | 'renew' | 'release', token: string, ttlMs: number): Promise<number> {
    return Number(await this.#store.run('stateLock', [this.#keys.rebuildLock], [mode, token, Math.max(1, Math.round(ttlMs))]));
  }
}

/**
 * A restored lease's record and the pools it is counted in (HASH, ZSET pairs), from the running
 * policy: its dependency, per-tenant dependency, tenant and global pools (a job type no longer in
 * the policy: its tenant and global pools), its rate entries (for settle's costRate accounting)
 * and its budget key. `unheld`: a fail-open admission's (adopted) lease, which drew no rate tokens:
 * no rate entries, so that settle moves no bucket; its budget reservation is the one adoption makes
 * (`lease.reserved` in `lease.budgetWindow`, none without a window), and so is its credits
 * reservation (adopt-n.lua, for a tenant with a credit account).
 */
export function restoredRecord(
  keys: Keys,
  policy: CompiledPolicy,
  lease: RestoredLease,
  opts: { readonly unheld?: boolean } = {},
): {
  record: string;
  pools: string[];
  /** The budget reservation the record names (its key, amount, window and the budget's period). */
  budget?: { readonly key: string; readonly reserved: number; readonly window: number; readonly periodMs: number };
  /** The tenant's credits hash and the job's estimate, which a tenant with a credit account reserves. */
  credits?: { readonly key: string; readonly estimate: number };
} {
  const jt = policy.jobType(lease.jobType);
  const specs = policy.limitsFor(lease.tenant, lease.jobType);
  const pools: string[] = [];
  const rate: string[] = [];
  let bk = '';
  let budgetPeriodMs = 0;
  let credits: { key: string; estimate: number } | undefined;
  const pool = (id: string) => {
    const key = keys.limit(id);
    pools.push(key, keys.poolExpiries(key));
  };
  if (jt === undefined || specs === undefined) {
    pool(limitId.tenantConcurrency(lease.tenant));
    pool(limitId.globalConcurrency());
  } else {
    const estimate = estimateFor(jt, lease.cost);
    for (const spec of specs) {
      if (spec.kind === 'concurrency') pool(spec.id);
      else if (spec.kind === 'credits') credits = { key: keys.limit(spec.id), estimate };
      else if (spec.kind === 'budget') {
        bk = opts.unheld === true && (lease.reserved <= 0 || lease.budgetWindow === undefined) ? '' : keys.limit(spec.id);
        budgetPeriodMs = spec.periodMs;
      } else if (opts.unheld === true) continue;
      // a costRate window's entry, as admission records it: the rebuild counted the estimate at
      // admittedAt + periodMs (windowUnits), which a settle then replaces by the actual cost's share
      else if (spec.kind === 'window' && spec.amount.per === 'cost') rate.push(windowEntry(keys.limit(spec.id), amountFor(spec, jt, lease.cost), estimate, spec.periodMs, spec.capacity));
      else if (spec.kind === 'rate') {
        const scaled = amountFor(spec, jt, lease.cost) * spec.periodMs;
        rate.push(rateEntry(keys.limit(spec.id), scaled, spec.capacity * spec.periodMs, spec.limit, spec.amount.per === 'cost' ? { estimate, periodMs: spec.periodMs } : undefined));
      }
    }
  }
  const record = formatActiveLeaseRecord({
    exp: lease.expiresAt,
    ...(lease.seq !== undefined ? { fin: lease.seq } : {}),
    adm: lease.admittedAt,
    att: lease.attempt,
    pri: PRIORITY[lease.priority],
    res: opts.unheld === true && bk === '' ? 0 : lease.reserved,
    bw: bk === '' ? undefined : lease.budgetWindow,
    ten: lease.tenant,
    typ: lease.jobType,
    bk,
    conc: pools,
    rate,
    idem: [],
    job: lease.jobId,
    ctx: lease.context ?? '',
  });
  const budget = bk !== '' && lease.budgetWindow !== undefined ? { key: bk, reserved: lease.reserved, window: lease.budgetWindow, periodMs: budgetPeriodMs } : undefined;
  return { record, pools, ...(budget ? { budget } : {}), ...(credits ? { credits } : {}) };
}

/** Every rate bucket of the policy that the given tenants' jobs (and anyone's) draw from: key → size, refill and the period they are scaled by. */
export function rateBuckets(keys: Keys, policy: CompiledPolicy, tenants: readonly string[]): Map<string, { capacity: number; refill: number; periodMs: number }> {
  const out = new Map<string, { capacity: number; refill: number; periodMs: number }>();
  const all = new Set([...Object.keys(policy.document.tenants), ...tenants]);
  for (const tenant of all) {
    for (const jobType of policy.jobTypes.keys()) {
      for (const spec of policy.limitsFor(tenant, jobType) ?? []) {
        if (spec.kind === 'rate') out.set(keys.limit(spec.id), { capacity: spec.capacity * spec.periodMs, refill: spec.limit, periodMs: spec.periodMs });
      }
    }
  }
  return out;
}

/**
 * The longest period of the policy's sliding windows (a rate of `kind: "window"`), 0 when it has
 * none: how far back a rebuild must read admissions (RestoredState.admissions).
 */
export function longestWindowMs(policy: CompiledPolicy): number {
  const doc = policy.document;
  const rates = [
    doc.global?.rate,
    ...Object.values(doc.tenants).map((t) => t.rate),
    ...Object.values(doc.dependencies).flatMap((d) => [d.rate, d.costRate, d.perTenant?.rate, d.perTenant?.costRate]),
  ];
  return rates.reduce((longest, r) => (r?.kind === 'window' ? Math.max(longest, r.periodMs) : longest), 0);
}

/**
 * What the policy's sliding windows held at `now`, from the attempts admitted within their periods:
 * per window pool key, the units counted at each expiry ms (admittedAt + periodMs), as admission
 * counts them — one per job, or the job's cost on the dependency; once an attempt's actual cost is
 * known, a costRate window holds its share of it, as settle leaves it (settle-n.lua). A dependency's
 * guard (its effective-rate ratio) is not part of the durable record: the units are the declared
 * ones.
 */
export function windowUnits(keys: Keys, policy: CompiledPolicy, admissions: readonly RestoredAdmission[], now: number): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const a of admissions) {
    const jt = policy.jobType(a.jobType);
    const specs = policy.limitsFor(a.tenant, a.jobType);
    if (jt === undefined || specs === undefined) continue;
    for (const spec of specs) {
      if (spec.kind !== 'window') continue;
      const exp = a.admittedAt + spec.periodMs;
      if (exp <= now) continue;
      const amount = amountFor(spec, jt, a.cost);
      let units = amount;
      if (spec.amount.per === 'cost' && a.actualCost !== undefined) {
        const estimate = estimateFor(jt, a.cost);
        units = estimate === 0 || amount === estimate ? a.actualCost : Math.floor((amount * a.actualCost) / estimate);
      }
      if (units <= 0) continue;
      const key = keys.limit(spec.id);
      const byExp = out.get(key) ?? new Map<number, number>();
      byExp.set(exp, (byExp.get(exp) ?? 0) + units);
      out.set(key, byExp);
    }
  }
  return out;
}
