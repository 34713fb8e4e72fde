/**
 * Lease operations after admission: settle, extend, revoke, reap expired leases, read a lease's
 * state. Each checks the token (no Redis work for a forged one), reads the lease record for the
 * keys it holds (they never change after admission), then runs one script that re-checks the
 * lease's state atomically and answers with a LEASE_ANSWER code (src/codes.ts).
 */
import { ADMIT_FAULT, LEASE_ANSWER } from './codes.js';
import { NotAdopted, StateLost } from './errors.js';
import type { Clock } from './clock.js';
import { isFailOpenLeaseId, type Keys } from './keys.js';
import { readIndexedLeases } from './lease-index.js';
import { parseLeaseRecord, type LeaseRecord } from './lease-record.js';
import type { ScriptStore } from './store.js';
import type { LeaseTokens } from './token.js';
import type { Admitted, ConfirmResult, UnclaimedLease, ExpiredBatch, ExpiredEntry, ExpiredLease, ExtendResult, FindExpiredOptions, LeaseFailure, LeaseStateName, LeaseStateResult, Outcome, SettleOptions, SettleResult } from './types.js';

/** The JSON answer of settle-n, extend-n and (per lease) reap-n. */
interface LeaseReply {
  s: number;
  j: string;
  a: number;
  t: string;
  y: string;
  r: number;
  c: number;
  at: number;
  e: number;
  /** extend: admitted at; 1 if no worker had claimed or extended the lease before */
  m?: number;
  g?: number;
  /** settle: the lease's credits reserved, charged, overrun, balance after (absent: it reserved none) */
  cr?: number;
  cc?: number;
  co?: number;
  cb?: number;
}

type Location = { readonly key: string; readonly field: string };

const FAILURE: Readonly<Record<number, LeaseFailure>> = {
  [LEASE_ANSWER.unknown]: 'unknown',
  [LEASE_ANSWER.expired]: 'expired',
  [LEASE_ANSWER.alreadySettled]: 'already_settled',
};

export interface LeaseOperationsOptions {
  readonly store: ScriptStore;
  readonly keys: Keys;
  readonly tokens: LeaseTokens;
  readonly clock: Clock;
  /** How long a finished lease record is kept so that late settles get a precise answer. */
  readonly retentionMs: number;
}

export class LeaseOperations {
  readonly #store: ScriptStore;
  readonly #keys: Keys;
  readonly #tokens: LeaseTokens;
  readonly #clock: Clock;
  readonly #retentionMs: number;

  constructor(opts: LeaseOperationsOptions) {
    this.#store = opts.store;
    this.#keys = opts.keys;
    this.#tokens = opts.tokens;
    this.#clock = opts.clock;
    this.#retentionMs = opts.retentionMs;
  }

  /**
   * Settles an active lease. With `reportedAt` (when the outcome was published to JetStream, in
   * ms), the lease must have been unexpired then rather than now: an outcome reported in time
   * counts even if it is processed after the expiry, unless the lease was reaped meanwhile.
   */
  async settle(token: string, outcome: Outcome, actualCost?: number, opts: SettleOptions = {}): Promise<SettleResult> {
    const found = await this.#find(token);
    if (!found.ok) return found;
    const { id, at, rec } = found;
    if (opts.expect !== undefined && (rec.job !== opts.expect.jobId || rec.att !== opts.expect.attempt)) return { ok: false, reason: 'invalid_token' };
    const keys = [at.key, this.#keys.leaseExpiry, rec.bk ? rec.bk : at.key, this.#keys.credits(rec.ten), this.#keys.creditsOutbox, ...rec.conc, ...rec.costEntries.flatMap((e) => (e.window ? [e.key, this.#keys.poolExpiries(e.key)] : [e.key])), ...rec.idem];
    const actual = actualCost === undefined ? -1 : Math.max(0, Math.round(actualCost));
    const reportedAt = opts.reportedAt !== undefined && Number.isFinite(opts.reportedAt) ? Math.max(0, Math.floor(opts.reportedAt)) : 0;
    const r = await this.#run('settle', keys, [this.#clock.arg(), id, at.field, outcome, actual, this.#retentionMs, rec.conc.length, reportedAt]);
    if (r.s !== LEASE_ANSWER.ok) return { ok: false, reason: FAILURE[r.s] ?? 'unknown' };
    return {
      ok: true,
      lease: {
        id,
        jobId: r.j,
        attempt: r.a,
        tenant: r.t,
        jobType: r.y,
        reserved: r.r,
        actual: r.c,
        settledAt: r.at,
        admittedAt: rec.adm,
        ...(rec.ctx ? { context: rec.ctx } : {}),
        ...(r.cr !== undefined ? { credits: { reserved: r.cr, charged: r.cc ?? 0, overrun: r.co ?? 0, balance: r.cb ?? 0 } } : {}),
      },
    };
  }

  /**
   * Sets the lease's expiry to max(current, now + ms). `claim` (a worker): the lease is running.
   * `wait` (the scheduler, for a job no worker was delivered): only a confirmed, unclaimed lease.
   */
  async extend(token: string, ms: number, mode: 'claim' | 'wait' = 'claim'): Promise<ExtendResult> {
    if (mode === 'claim' && ms <= 1) {
      const claimed = await this.#claim(token);
      if (claimed !== undefined) return claimed;
    }
    const found = await this.#find(token);
    if (!found.ok) return found;
    const { id, at, rec } = found;
    const keys = [at.key, this.#keys.leaseExpiry, ...rec.conc, ...rec.idem];
    const r = await this.#run('extend', keys, [this.#clock.arg(), id, at.field, Math.max(0, Math.round(ms)), this.#retentionMs, rec.conc.length, mode]);
    if (r.s !== LEASE_ANSWER.ok) return { ok: false, reason: FAILURE[r.s] ?? 'unknown' };
    // The first claim of a lease is its job starting (admission-to-start latency): as the script
    // found the lease, not as read before it ran (two claims of one lease may both have read it unclaimed).
    return { ok: true, lease: { id, jobId: r.j, attempt: r.a, tenant: r.t, jobType: r.y, reserved: r.r, expiresAt: r.e, admittedAt: r.m ?? rec.adm, started: mode === 'claim' && r.g === 1 } };
  }

  /**
   * A claim that keeps the lease's expiry (the worker SDK's, before it runs a job) in ONE script
   * call, without reading the record first: it needs no key but the lease's hash and the expiry
   * index. Undefined when it takes the general path: the lease is pending with idempotency records
   * (the script needs their keys), or unknown (which may mean a lost state: the general path tells).
   */
  async #claim(token: string): Promise<ExtendResult | undefined> {
    const id = this.#tokens.verify(token);
    if (id === undefined) return { ok: false, reason: 'invalid_token' };
    const at = this.#keys.leaseLocation(id);
    if (!at) return { ok: false, reason: 'unknown' };
    const r = await this.#run('extend', [at.key, this.#keys.leaseExpiry], [this.#clock.arg(), id, at.field, 1, this.#retentionMs, 0, 'claim', 'fast']);
    if (r.s === LEASE_ANSWER.needKeys || r.s === LEASE_ANSWER.unknown) return undefined;
    if (r.s !== LEASE_ANSWER.ok) return { ok: false, reason: FAILURE[r.s] ?? 'unknown' };
    return { ok: true, lease: { id, jobId: r.j, attempt: r.a, tenant: r.t, jobType: r.y, reserved: r.r, expiresAt: r.e, admittedAt: r.m ?? 0, started: r.g === 1 } };
  }

  /** Finds and marks up to `max` expired leases in one go (tests; the scheduler reaps in two phases). */
  async reapExpired(max: number): Promise<ExpiredLease[]> {
    const batch = await this.findExpired(max);
    return this.markExpired(batch, batch.entries);
  }

  /**
   * Phase one of a two-phase reap: lists leases that are active and past their expiry, changing
   * nothing, grouped by expiry-index entry (whole entries, started while fewer than `max` leases
   * were listed). With `upTo`, only leases that expired at or before that time (never later than
   * now). Nothing can extend such a lease any more, and an outcome can settle it only if it was
   * reported before the expiry: the caller passes as `upTo` a time before which every reported
   * outcome has been processed, then makes the `timed_out` outcomes durable and only then
   * `markExpired`s the entries it published.
   */
  async findExpired(max: number, opts: FindExpiredOptions = {}): Promise<ExpiredBatch> {
    const limit = Math.max(1, Math.floor(max));
    const listed = await this.#listExpired(limit, opts.upTo);
    if (listed === undefined) return { now: '0', entries: [] };
    const found = await this.#reap(listed.now, limit, true, listed.entries.map((e) => ({ ...e, idempotencyKeys: [] })));
    let budget = limit;
    const entries: ExpiredEntry[] = [];
    for (const entry of listed.entries) {
      if (budget <= 0) break;
      const mine = found.filter((f) => f.member === entry.member);
      budget -= mine.length;
      entries.push({ ...entry, leases: mine.map((f) => f.lease), idempotencyKeys: mine.flatMap((f) => f.idempotencyKeys) });
    }
    return { now: listed.now, entries };
  }

  /**
   * Phase two: marks expired the leases of the given entries of a `findExpired` batch (with the
   * batch's `now`, so it marks a subset of what was listed) and drops the entries from the index.
   */
  async markExpired(batch: ExpiredBatch, entries: readonly ExpiredEntry[]): Promise<ExpiredLease[]> {
    if (entries.length === 0) return [];
    const reaped = await this.#reap(batch.now, Number.MAX_SAFE_INTEGER, false, entries);
    return reaped.map(({ lease }) => lease);
  }

  /** The expiry-index entries due now, each with the record location of its lease(s). */
  async #listExpired(limit: number, upTo?: number): Promise<{ now: string; entries: { member: string; key: string; field: string }[] } | undefined> {
    const bound = upTo !== undefined && Number.isFinite(upTo) ? Math.max(1, Math.floor(upTo)) : 0;
    const listed = (await this.#store.run('expired', [this.#keys.leaseExpiry], [this.#clock.arg(), limit, bound])) as string[];
    const [now, ...members] = listed;
    if (members.length === 0 || now === undefined) return undefined;
    const entries = members.map((member) => {
      // '<call id>@<expiresAt>': the leases a call wrote with that expiry; else one extended lease's id.
      const at = member.includes('@')
        ? { key: this.#keys.leases(member.slice(0, member.lastIndexOf('@'))), field: '' }
        : // an id that names no record location (not one this limiter wrote) is dropped from the index
          (this.#keys.leaseLocation(member) ?? { key: this.#keys.leases(member), field: '1' });
      return { member, key: at.key, field: at.field };
    });
    return { now, entries };
  }

  async #reap(
    now: string,
    budget: number,
    dry: boolean,
    entries: readonly { member: string; key: string; field: string; idempotencyKeys: readonly string[]; leases?: readonly ExpiredLease[] }[],
  ): Promise<{ member: string; lease: ExpiredLease; idempotencyKeys: string[] }[]> {
    const keys = [this.#keys.leaseExpiry, this.#keys.creditsOutbox];
    const args: (string | number)[] = [now, this.#retentionMs, budget, dry ? '1' : '0', this.#keys.creditsPrefix];
    for (const entry of entries) {
      // the credits hashes of the tenants whose leases the dry run listed (released when marked)
      const credits = [...new Set((entry.leases ?? []).map((l) => l.tenant))].map((t) => this.#keys.credits(t));
      keys.push(entry.key, ...entry.idempotencyKeys, ...credits);
      args.push(entry.member, entry.field, entry.idempotencyKeys.length + credits.length);
    }
    const reaped = JSON.parse((await this.#store.run('reap', keys, args)) as string) as (LeaseReply & { i: string; x?: string; m: string; u?: number; k?: string })[];
    return reaped.map((r) => ({
      member: r.m,
      idempotencyKeys: r.k ? r.k.split(' ').filter((k) => k !== '') : [],
      lease: {
        id: r.i,
        token: this.#tokens.sign(r.i),
        jobId: r.j,
        attempt: r.a,
        tenant: r.t,
        jobType: r.y,
        reserved: r.r,
        expiresAt: r.e,
        ...(r.x ? { context: r.x } : {}),
        confirmed: r.u !== 1,
      },
    }));
  }

  /** Withdraws pending leases (withdraw-n.lua): they keep their limits until expiry but can no longer be confirmed, extended or settled. */
  async withdraw(ids: readonly string[]): Promise<number> {
    const keys: string[] = [];
    const args: string[] = [];
    for (const id of ids) {
      const at = this.#keys.leaseLocation(id);
      if (!at) continue;
      keys.push(at.key);
      args.push(at.field);
    }
    if (keys.length === 0) return 0;
    return Number(await this.#store.run('withdraw', keys, args));
  }

  /**
   * Fresh admissions take over the earlier leases whose job messages JetStream already holds under
   * the same attempt's msgID (takeover-n.lua): all or nothing. False when any pair does not qualify
   * (nothing changed). Throws StateLost while the state is not trusted.
   */
  async takeOver(pairs: readonly { readonly fresh: string; readonly earlier: string; readonly tenant: string }[]): Promise<boolean> {
    if (pairs.length === 0) return true;
    const keys: string[] = [this.#keys.epoch, this.#keys.leaseExpiry];
    const args: (string | number)[] = [this.#clock.arg(), this.#retentionMs];
    for (const p of pairs) {
      const fresh = this.#keys.leaseLocation(p.fresh);
      const earlier = this.#keys.leaseLocation(p.earlier);
      if (!fresh || !earlier) return false;
      keys.push(fresh.key, earlier.key, this.#keys.credits(p.tenant));
      args.push(fresh.field, p.fresh, earlier.field, p.earlier);
    }
    const reply = Number(await this.#store.run('takeover', keys, args));
    if (reply === ADMIT_FAULT.stateLost) throw new StateLost(0);
    return reply === 1;
  }

  /**
   * Confirms leases whose job messages JetStream acknowledged (confirm-n.lua): pending → active, and
   * their idempotency records stop saying "in progress". `idempotencyKeys` per lease: every record
   * its admission may have written (its own key, the request's key); only those the lease names are touched.
   */
  async confirm(leases: readonly { readonly id: string; readonly idempotencyKeys: readonly string[]; readonly seq: number }[]): Promise<ConfirmResult> {
    const keys: string[] = [this.#keys.epoch];
    const args: (string | number)[] = [];
    const ids: string[] = [];
    for (const lease of leases) {
      const at = this.#keys.leaseLocation(lease.id);
      if (!at) continue;
      ids.push(lease.id);
      keys.push(at.key, ...lease.idempotencyKeys);
      args.push(at.field, 1 + lease.idempotencyKeys.length, lease.seq);
    }
    if (ids.length === 0) return { confirmed: 0, notHeld: [] };
    const reply = (await this.#store.run('confirm', keys, args)) as number[];
    // The state was lost: a missing lease says nothing (the rebuild may restore it from the record).
    if (reply.length === 1 && Number(reply[0]) === ADMIT_FAULT.stateLost) throw new StateLost(0);
    const notHeld = ids.filter((_, i) => Number(reply[i]) !== 1);
    return { confirmed: ids.length - notHeld.length, notHeld };
  }

  /**
   * Reads a lease record without changing it: its state (a lease past its expiry that the reaper
   * has not visited yet reads as `expired`), the outcome it was settled with, and its context.
   */
  async leaseState(token: string): Promise<LeaseStateResult> {
    const found = await this.#find(token);
    if (!found.ok) return found;
    const { id, rec } = found;
    if (!rec.st || !rec.job || !rec.ten || !rec.typ) return { ok: false, reason: 'unknown' };
    const expiresAt = rec.exp;
    const state = ((rec.st === 'active' || rec.st === 'pending' || rec.st === 'running') && expiresAt <= (await this.#clock.read()) ? 'expired' : rec.st) as LeaseStateName;
    return {
      ok: true,
      lease: {
        id,
        jobId: rec.job,
        attempt: rec.att,
        tenant: rec.ten,
        jobType: rec.typ,
        reserved: rec.res,
        ...(rec.st === 'settled' ? { actual: rec.act } : {}),
        state,
        expiresAt,
        ...(rec.out ? { outcome: rec.out as Outcome } : {}),
        ...(rec.ctx ? { context: rec.ctx } : {}),
      },
    };
  }

  /**
   * Confirmed leases that no worker has claimed yet and that expire within `aheadMs`, with their
   * job message's stream sequence: the scheduler asks JetStream whether a worker was delivered
   * each message, and lets a job that was never delivered wait again (`extend(…, 'wait')`) instead
   * of timing out (CONTRACT §4). A read without atomicity: `wait` re-checks the state.
   */
  async findUnclaimed(aheadMs: number, max: number): Promise<UnclaimedLease[]> {
    const now = await this.#clock.read();
    const members = await this.#store.guard(this.#store.redis.zrangebyscore(this.#keys.leaseExpiry, `(${now}`, now + aheadMs, 'LIMIT', 0, Math.max(1, max)));
    const out: UnclaimedLease[] = [];
    for (const [id, rec] of await readIndexedLeases(this.#store, this.#keys, members)) {
      if (!rec || rec.st !== 'active' || rec.exp <= now || rec.exp > now + aheadMs) continue;
      const seq = Number(rec.fin);
      if (!Number.isInteger(seq) || seq <= 0) continue;
      out.push({ id, token: this.#tokens.sign(id), jobId: rec.job, attempt: rec.att, tenant: rec.ten, jobType: rec.typ, expiresAt: rec.exp, seq });
    }
    return out.slice(0, max);
  }

  /** Undoes an admission whose publish failed: rate tokens, slots, budget and idempotency records. */
  revoke(admission: Admitted): Promise<void> {
    return this.revokeIds(admission.jobs.flatMap((j) => (j.lease ? [j.lease.id] : [])));
  }

  /** The same, by lease id (a lease this slot does not hold is left alone). */
  async revokeIds(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const { locations, records } = await this.#records(ids);
    const keys = [this.#keys.leaseExpiry, this.#keys.creditsOutbox];
    const args: (string | number)[] = [this.#clock.arg(), this.#retentionMs];
    ids.forEach((id, i) => {
      const rec = records[i];
      const at = locations[i];
      if (!at) return;
      // the tenant's credits hash comes last (revoke-n.lua)
      const own = [at.key, ...(rec ? [...rec.conc, ...rec.rateKeys, ...(rec.bk ? [rec.bk] : []), ...rec.idem, this.#keys.credits(rec.ten)] : [])];
      keys.push(...own);
      args.push(id, at.field, own.length);
    });
    await this.#store.run('revoke', keys, args);
  }

  /** The lease a genuine token names and its record, or why there is none. */
  async #find(
    token: string,
  ): Promise<{ readonly ok: true; readonly id: string; readonly at: Location; readonly rec: LeaseRecord } | { readonly ok: false; readonly reason: 'invalid_token' | 'unknown' }> {
    const id = this.#tokens.verify(token);
    if (id === undefined) return { ok: false, reason: 'invalid_token' };
    const at = this.#keys.leaseLocation(id);
    if (!at) return { ok: false, reason: 'unknown' };
    let rec = await this.#record(at);
    if (rec === undefined) {
      // Unknown, or Redis lost its state and a rebuild will write it back: while the state is lost
      // this is a fault (retry later), never an answer that would drop a worker's outcome.
      await this.#failIfStateLost();
      // A rebuild may have finished between the two reads.
      rec = await this.#record(at);
      if (rec === undefined) {
        // A fail-open admission's lease is written once the scheduler adopts it: not unknown, not yet.
        if (isFailOpenLeaseId(id)) throw new NotAdopted(id);
        return { ok: false, reason: 'unknown' };
      }
    }
    return { ok: true, id, at, rec };
  }

  async #failIfStateLost(): Promise<void> {
    const rows = (await this.#store.guard(this.#store.redis.pipeline().exists(this.#keys.epoch).get(this.#keys.recoveringUntil).exec())) ?? [];
    if (Number(rows[0]?.[1]) === 1) return;
    throw new StateLost(Number(rows[1]?.[1]) || 0);
  }

  async #run(script: 'settle' | 'extend', keys: readonly string[], args: readonly (string | number)[]): Promise<LeaseReply> {
    return JSON.parse((await this.#store.run(script, keys, args)) as string) as LeaseReply;
  }

  #record(at: Location): Promise<LeaseRecord | undefined> {
    return this.#store.guard(this.#store.redis.hgetBuffer(at.key, at.field)).then(parseLeaseRecord);
  }

  /** The records of many leases in one round trip (undefined where unknown). */
  async #records(ids: readonly string[]): Promise<{ locations: (Location | undefined)[]; records: (LeaseRecord | undefined)[] }> {
    const locations = ids.map((id) => this.#keys.leaseLocation(id));
    const pipeline = this.#store.redis.pipeline();
    for (const at of locations) if (at) pipeline.hgetBuffer(at.key, at.field);
    const rows = (await this.#store.guard(pipeline.exec())) ?? [];
    let r = 0;
    const records = locations.map((at) => (at ? parseLeaseRecord(rows[r++]?.[1] as Buffer | null | undefined) : undefined));
    return { locations, records };
  }
}
