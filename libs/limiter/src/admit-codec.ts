/**
 * The admit script's wire format (src/lua/admit-n.lua's header): encodes coalesced requests into
 * one call's KEYS and ARGV, and decodes its reply into one answer per request. No I/O. Limits are
 * numbered once per call, and jobs of the same tenant, job type, cost and priority share one
 * "profile" (limit list and the constant part of the lease record), also sent once per call.
 */
import type { RejectReason } from '@janus/contracts';
import { ADMIT_REPLY, ADAPTIVE, LIMIT_KIND, NOT_LIMITED, PRIORITY, UNBOUNDED } from './codes.js';
import { JanusError, StateLost } from './errors.js';
import type { Keys } from './keys.js';
import { lengthPrefixed, rateEntry, windowEntry } from './lease-record.js';
import { amountFor, estimateFor, type CompiledPolicy, type LimitSpec } from './policy.js';
import type { LeaseTokens } from './token.js';
import type { AdmissionRequest, AdmissionResult, Admitted, AdmittedJob, JobAdmission } from './types.js';

type Arg = string | number;
type LimitDef = [kind: number, keyIndex: number, reason: string, capHigh: number, capNormal: number, capLow: number, p: number, q: number, g: number];

/** How a job uses a dependency's attempt counters: a first attempt is counted, a retry is checked against the retry budget. */
type AttemptsUse = 'firsts' | 'retries';

interface Profile {
  /** 1-based index among the call's profiles. */
  readonly index: number;
  readonly timeoutMs: number;
  /** Budget reserved by each job of this profile (0 without a budget). */
  readonly reserved: number;
}

/** One request sent as a group of the call. */
export interface AdmitGroup<T> {
  readonly item: T;
  readonly request: AdmissionRequest;
  /** The request's job i has lease `<call id>_<first + i>`. */
  readonly first: number;
  readonly profiles: readonly Profile[];
}

export interface AdmitCall<T> {
  readonly callId: string;
  readonly keys: readonly string[];
  readonly args: readonly Arg[];
  /** The requests sent, in group order. */
  readonly groups: readonly AdmitGroup<T>[];
  /** Requests not sent: the job at `index` has a type the policy does not know. */
  readonly unknown: readonly { readonly item: T; readonly index: number }[];
  /** Jobs sent. */
  readonly jobs: number;
}

export interface AdmitCallContext {
  readonly keys: Keys;
  readonly policy: CompiledPolicy;
  readonly callId: string;
  /** The script's "now" ARGV (0: Redis TIME). */
  readonly now: number;
  readonly recoveryMs: number;
  readonly retentionMs: number;
  /** The limits this slot holds (src/shards.ts): without it, every limit of a job. */
  readonly include?: (spec: LimitSpec) => boolean;
  /** The ordinals the call's jobs take, in order (a tenant shard mirroring a namespace call); default 1, 2, … */
  readonly ordinals?: readonly number[];
  /**
   * The ordinal of each item's first job (its jobs follow it): a namespace call sent again with
   * the groups its tenant shards admitted keeps their lease ids. Default: 1, 2, … across the call.
   */
  readonly firsts?: readonly number[];
}

/** Encodes the requests of one call (`requestOf` finds each item's request). */
export function encodeAdmitCall<T>(items: readonly T[], requestOf: (item: T) => AdmissionRequest, ctx: AdmitCallContext): AdmitCall<T> {
  const { keys: k, policy, callId } = ctx;
  const keys: string[] = [k.epoch, k.recoveringUntil, k.leaseExpiry, k.leases(callId)];
  const keyIndex = new Map<string, number>();
  const limitArgs: (Arg | readonly number[])[] = [];
  const limitIndex = new Map<string, number>();
  const profileArgs: Arg[] = [];
  const profiles = new Map<string, Profile | null>();
  // Methods, not `const f = () => …`: under tsx (esbuild keepNames) each named closure created per
  // call costs an Object.defineProperty of its name. None of them uses `this`.
  const at = {
    keyOf(key: string): number {
      let i = keyIndex.get(key);
      if (i === undefined) {
        keys.push(key);
        i = keys.length;
        keyIndex.set(key, i);
      }
      return i;
    },
    limitOf(spec: LimitSpec, use?: AttemptsUse): number {
      const id = use === undefined ? spec.id : `${spec.id}#${use}`;
      let i = limitIndex.get(id);
      if (i === undefined) {
        const key = k.limit(spec.id);
        const keyIndex = at.keyOf(key);
        const expiries = spec.kind === 'concurrency' || spec.kind === 'window' ? at.keyOf(k.poolExpiries(key)) : spec.kind === 'credits' ? at.keyOf(k.creditsOutbox) : 0;
        // a dependency's guard comes before its rates in the policy's list, so it already has its index
        const guard = (spec.kind === 'rate' || spec.kind === 'window') && spec.guard !== undefined ? (limitIndex.get(spec.guard) ?? 0) : 0;
        limitArgs.push(...encodeLimit(spec, keyIndex, policy, expiries, guard, use));
        i = limitIndex.size + 1;
        limitIndex.set(id, i);
      }
      return i;
    },
    profileOf(job: JobAdmission): Profile | null {
      // (a job's own idempotency window is part of its profile: a payload dedupe key has its own)
      const memo = `${job.tenant}\u0000${job.jobType}\u0000${job.cost ?? ''}\u0000${job.priority}\u0000${attemptsUse(job) ?? ''}\u0000${job.idempotency?.windowMs ?? ''}`;
      let p = profiles.get(memo);
      if (p === undefined) {
        p = encodeProfile(k, policy, job, at.limitOf, profileArgs, profiles.size + 1, ctx.include);
        profiles.set(memo, p);
      }
      return p;
    },
  };

  const groupArgs: Arg[] = [];
  const groups: AdmitGroup<T>[] = [];
  // given firsts: the ordinals the script gives the jobs (an item skipped as unknown takes none)
  const ordinals: number[] | undefined = ctx.firsts && !ctx.ordinals ? [] : undefined;
  const unknown: { item: T; index: number }[] = [];
  let jobsInCall = 0;
  for (const [itemIndex, item] of items.entries()) {
    const request = requestOf(item);
    const n = request.jobs.length;
    const jobProfiles: Profile[] = new Array<Profile>(n);
    let unknownAt = -1;
    for (let i = 0; i < n; i++) {
      const p = at.profileOf(request.jobs[i]!);
      if (p === null) {
        unknownAt = i;
        break;
      }
      jobProfiles[i] = p;
    }
    if (unknownAt >= 0) {
      unknown.push({ item, index: unknownAt });
      continue;
    }
    const ri = request.idempotency;
    if (ri) groupArgs.push(n, at.keyOf(k.idempotency(ri.tenant, ri.key, ri.kind)), ri.record, ri.windowMs);
    else groupArgs.push(n, 0);
    for (let i = 0; i < n; i++) {
      const job = request.jobs[i]!;
      groupArgs.push(job.jobId, job.attempt ?? 1, jobProfiles[i]!.index);
      if (job.idempotency) groupArgs.push(at.keyOf(k.idempotency(job.tenant, job.idempotency.key, job.idempotency.kind)), job.idempotency.record);
      else groupArgs.push(0);
      groupArgs.push(job.context ?? '');
    }
    const first = ctx.firsts?.[itemIndex] ?? jobsInCall + 1;
    groups.push({ item, request, first, profiles: jobProfiles });
    for (let i = 0; i < n; i++) ordinals?.push(first + i);
    jobsInCall += n;
  }

  // Limits and profiles travel as one JSON array (the script decodes it with cjson): one argument
  // for the client to write instead of ~150, and several times faster for Redis than tonumber() on each.
  for (const x of profileArgs) limitArgs.push(x);
  if (ctx.ordinals ?? ordinals) limitArgs.push(ctx.ordinals ?? ordinals!);
  const args: Arg[] = [ctx.now, ctx.recoveryMs, ctx.retentionMs, limitIndex.size, profiles.size, groups.length, callId, JSON.stringify(limitArgs)];
  for (const x of groupArgs) args.push(x);
  return { callId, keys, args, groups, unknown, jobs: jobsInCall };
}

/**
 * One answer per group of the call, in order: its result, or the fault that applies to it (state
 * lost, or a reply too short for it).
 */
export function decodeAdmitReply<T>(reply: unknown, call: AdmitCall<T>, tokens: LeaseTokens): (AdmissionResult | JanusError)[] {
  const r = reply as (string | number)[];
  const at = Number(r[0]);
  if (at < 0) return call.groups.map(() => new StateLost(Number(r[1])));
  const out: (AdmissionResult | JanusError)[] = [];
  const sign = tokens.signer(call.callId);
  let c = 1;
  for (const g of call.groups) {
    const code = r[c++];
    if (code === ADMIT_REPLY.duplicate) {
      out.push({ kind: 'duplicate', record: String(r[c++]) });
    } else if (code === ADMIT_REPLY.inProgress) {
      out.push({ kind: 'in_progress', index: Number(r[c]), record: String(r[c + 1]) });
      c += 2;
    } else if (code === ADMIT_REPLY.rejected) {
      out.push({ kind: 'rejected', index: Number(r[c]), reason: r[c + 1] as RejectReason, retryAfterMs: Number(r[c + 2]) });
      c += 3;
    } else if (code === ADMIT_REPLY.admitted || code === ADMIT_REPLY.admittedWithReplays) {
      let replays: Map<number, string> | undefined;
      if (code === ADMIT_REPLY.admittedWithReplays) {
        replays = new Map();
        const count = Number(r[c++]);
        for (let d = 0; d < count; d++, c += 2) replays.set(Number(r[c]), String(r[c + 1]));
      }
      out.push(admitted(g, at, replays, call.callId, sign));
    } else {
      const fault = new JanusError('limiter_internal', 500, false, 'admit script returned too few groups');
      while (out.length < call.groups.length) out.push(fault);
      break;
    }
  }
  return out;
}

/** A job's limit list, lease-record segment and sizes, encoded once per call (null: unknown job type). */
function encodeProfile(
  keys: Keys,
  policy: CompiledPolicy,
  job: JobAdmission,
  limitOf: (spec: LimitSpec, use?: AttemptsUse) => number,
  out: Arg[],
  index: number,
  include: ((spec: LimitSpec) => boolean) | undefined,
): Profile | null {
  const jt = policy.jobType(job.jobType);
  const all = policy.limitsFor(job.tenant, job.jobType);
  if (jt === undefined || all === undefined) return null;
  const specs = include === undefined ? all : all.filter(include);
  // a budget another slot decides (a tenant shard's): the lease still records what it reserves there
  const elsewhere = include === undefined ? undefined : all.find((s) => s.kind === 'budget' && !include(s));
  const head = out.length;
  out.push(specs.length, PRIORITY[job.priority]);
  let exempt = 0;
  const conc: string[] = [];
  const rate: string[] = [];
  let bk = '';
  let reserved = 0;
  const estimate = estimateFor(jt, job.cost);
  for (const spec of specs) {
    const amount = amountFor(spec, jt, job.cost);
    const key = keys.limit(spec.id);
    if (spec.kind === 'rate') {
      const scaled = amount * spec.periodMs;
      out.push(limitOf(spec), scaled);
      // A costRate bucket also records the job's estimate and periodMs: settle charges or gives back
      // its share of the actual cost (src/lease-record.ts).
      rate.push(rateEntry(key, scaled, spec.capacity * spec.periodMs, spec.limit, spec.amount.per === 'cost' ? { estimate, periodMs: spec.periodMs } : undefined));
    } else if (spec.kind === 'attempts') {
      const use = attemptsUse(job);
      if (use !== undefined) out.push(limitOf(spec, use), 1);
      else exempt += 1;
    } else if (spec.kind === 'window' || spec.kind === 'guard' || spec.kind === 'credits') {
      // a window's entries are not given back by revoke (conservative: never over the limit); a
      // costRate window's entry is recorded for settle, which replaces the estimate with the actual
      // cost's share at the same expiry (admittedAt + periodMs; src/lease-record.ts)
      out.push(limitOf(spec), amount);
      if (spec.kind === 'window' && spec.amount.per === 'cost') rate.push(windowEntry(key, amount, estimate, spec.periodMs, spec.capacity));
    } else {
      out.push(limitOf(spec), amount);
      if (spec.kind === 'concurrency') conc.push(key, keys.poolExpiries(key));
      else {
        bk = key;
        reserved = amount;
      }
    }
  }
  out[head] = specs.length - exempt;
  const segment = lengthPrefixed(job.tenant) + lengthPrefixed(job.jobType) + lengthPrefixed(bk) + lengthPrefixed(conc.join(' ')) + lengthPrefixed(rate.join(','));
  const shardReserved = elsewhere === undefined ? 0 : amountFor(elsewhere, jt, job.cost);
  out.push(jt.timeoutMs, job.idempotency?.windowMs ?? jt.idempotencyWindowMs, segment, shardReserved);
  return { index, timeoutMs: jt.timeoutMs, reserved: reserved + shardReserved };
}

/** How a job uses its dependencies' attempt counters: counted (first attempt), checked (retry), or neither (a budget-exempt retry). */
function attemptsUse(job: JobAdmission): AttemptsUse | undefined {
  if ((job.attempt ?? 1) <= 1) return 'firsts';
  return job.budgetExempt === true ? undefined : 'retries';
}

/** A capacity's caps at priority high, normal and low. */
function shares(policy: CompiledPolicy, capacity: number): [number, number, number] {
  return [capacity, policy.shareOf('normal', capacity), policy.shareOf('low', capacity)];
}

/** A limit as the script takes it (src/lua/admit-n.lua's header): rate amounts and caps are scaled by periodMs (see includes/bucket.lua). */
function encodeLimit(spec: LimitSpec, keyIndex: number, policy: CompiledPolicy, expiriesIndex: number, guardIndex: number, use: AttemptsUse | undefined): LimitDef {
  switch (spec.kind) {
    case 'concurrency':
      if (spec.capacity === null) return [LIMIT_KIND.concurrency, keyIndex, spec.reason, NOT_LIMITED, NOT_LIMITED, NOT_LIMITED, expiriesIndex, 0, 0];
      return [LIMIT_KIND.concurrency, keyIndex, spec.reason, ...shares(policy, spec.capacity), expiriesIndex, 0, 0];
    case 'budget':
      return [LIMIT_KIND.budget, keyIndex, spec.reason, ...shares(policy, spec.capacity), spec.periodMs, 0, 0];
    case 'window':
      return [LIMIT_KIND.window, keyIndex, spec.reason, ...shares(policy, spec.capacity), expiriesIndex, spec.periodMs, guardIndex];
    case 'credits':
      // expiriesIndex: the KEYS index of the credits outbox
      return [LIMIT_KIND.credits, keyIndex, spec.reason, UNBOUNDED, UNBOUNDED, UNBOUNDED, expiriesIndex, 0, 0];
    case 'guard':
      return [LIMIT_KIND.guard, keyIndex, spec.reason, UNBOUNDED, UNBOUNDED, UNBOUNDED, Math.round(spec.minRatio * ADAPTIVE.ppm), spec.adaptive ? 1 : 0, 0];
    case 'attempts':
      if (use === 'retries') return [LIMIT_KIND.retries, keyIndex, spec.reason, UNBOUNDED, UNBOUNDED, UNBOUNDED, Math.round(spec.ratio * ADAPTIVE.ppm), spec.allowance, 0];
      return [LIMIT_KIND.firsts, keyIndex, spec.reason, UNBOUNDED, UNBOUNDED, UNBOUNDED, 0, 0, 0];
    case 'rate': {
      const scale = spec.periodMs;
      const [high, normal, low] = shares(policy, spec.capacity);
      // q = periodMs: the bucket stores the scale of its value (includes/bucket.lua), so a changed period converts
      return [LIMIT_KIND.rate, keyIndex, spec.reason, high * scale, normal * scale, low * scale, spec.limit, spec.periodMs, guardIndex];
    }
  }
}

/** The answer of an admitted group: a lease per job, or the record of a job that was an idempotent replay. */
function admitted<T>(g: AdmitGroup<T>, at: number, replays: Map<number, string> | undefined, callId: string, sign: (n: number) => string): Admitted {
  const { request } = g;
  const n = request.jobs.length;
  const jobs: AdmittedJob[] = new Array<AdmittedJob>(n);
  for (let i = 0; i < n; i++) {
    const job = request.jobs[i]!;
    const attempt = job.attempt ?? 1;
    const replay = replays?.get(i);
    if (replay !== undefined) {
      jobs[i] = { jobId: job.jobId, attempt, tenant: job.tenant, jobType: job.jobType, priority: job.priority, admittedAt: at, duplicate: { record: replay }, budgetReserved: 0 };
    } else {
      const p = g.profiles[i]!;
      jobs[i] = {
        jobId: job.jobId,
        attempt,
        tenant: job.tenant,
        jobType: job.jobType,
        priority: job.priority,
        admittedAt: at,
        lease: { id: `${callId}_${g.first + i}`, token: sign(g.first + i), expiresAt: at + p.timeoutMs },
        budgetReserved: p.reserved,
      };
    }
  }
  return { kind: 'admitted', at, jobs };
}

/** A tenant shard's answer for one group of a mirrored call (src/shards.ts): admitted, or refused. */
export type MirrorAnswer =
  | { readonly kind: 'admitted' }
  | { readonly kind: 'rejected'; readonly index: number; readonly reason: RejectReason; readonly retryAfterMs: number };

/** One answer per group of a mirrored call (no idempotency there: admitted or rejected), or the fault that applies to it. */
export function decodeMirrorReply<T>(reply: unknown, call: AdmitCall<T>): (MirrorAnswer | JanusError)[] {
  const r = reply as (string | number)[];
  if (Number(r[0]) < 0) return call.groups.map(() => new StateLost(Number(r[1])));
  const out: (MirrorAnswer | JanusError)[] = [];
  let c = 1;
  for (let g = 0; g < call.groups.length; g++) {
    const code = r[c++];
    if (code === ADMIT_REPLY.admitted) {
      out.push({ kind: 'admitted' });
    } else if (code === ADMIT_REPLY.rejected) {
      out.push({ kind: 'rejected', index: Number(r[c]), reason: r[c + 1] as RejectReason, retryAfterMs: Number(r[c + 2]) });
      c += 3;
    } else {
      const fault = new JanusError('limiter_internal', 500, false, 'a tenant shard answered a mirrored admission with neither admitted nor rejected');
      while (out.length < call.groups.length) out.push(fault);
      break;
    }
  }
  return out;
}
