import type { Redis } from 'ioredis';
import type { Priority, RejectReason } from '@janus/contracts';
import { InvalidAdmission, JanusError, StateLost } from './errors.js';
import { Keys, limitId } from './keys.js';
import { lengthPrefixed, parseLeaseRecord } from './lease-record.js';
import { amountFor, compilePolicy, type CompiledPolicy, type LimitSpec } from './policy.js';
import { EMPTY_POLICY } from '@janus/contracts';
import { ScriptStore } from './store.js';
import { LeaseTokens } from './token.js';
import type {
  AdmissionRequest,
  AdmissionResult,
  Admitted,
  AdmittedJob,
  JobAdmission,
  BucketView,
  ExpiredLease,
  ExtendResult,
  LeaseFailure,
  LeaseStateName,
  LeaseStateResult,
  LimiterSnapshot,
  Outcome,
  SettleResult,
  TenantUsage,
} from './types.js';

export interface LimiterOptions {
  readonly redis: Redis;
  readonly namespace: string;
  readonly signingKey: string;
  /** Test-only clock override (ms). Without it every script reads Redis TIME. */
  readonly now?: () => number;
  readonly policy?: CompiledPolicy;
  /** A Redis call slower than this is a StoreUnavailable fault. Default 2000 ms. */
  readonly timeoutMs?: number;
  /** How long a finished lease record is kept so that late settles get a precise answer. Default 24 h. */
  readonly leaseRetentionMs?: number;
  /** At most this many jobs per coalesced Lua call. Default 1000. */
  readonly maxJobsPerCall?: number;
  /**
   * A coalesced call is sent as soon as it holds this many jobs, without waiting for the next tick.
   * Default 32: with 64 callers that keeps two calls in flight, so Node builds and decodes one while
   * Redis runs the other (one call per tick, `coalesceJobs: 1000`, leaves one of them idle; see
   * the README's benchmark).
   */
  readonly coalesceJobs?: number;
  /**
   * Admission calls out at once (default 4); further requests wait and leave together, up to
   * maxJobsPerCall per call, when one returns: under load calls grow instead of multiplying.
   */
  readonly maxCallsInFlight?: number;
  /** Admission stays closed this long after state loss. Default: the policy's longest timeoutMs. */
  readonly recoveryMs?: number;
}

export const MAX_BATCH = 1000;
const PRIORITY_CODE: Record<Priority, number> = { high: 1, normal: 2, low: 3 };

interface Pending {
  readonly request: AdmissionRequest;
  readonly resolve: (result: AdmissionResult) => void;
  readonly reject: (error: unknown) => void;
}

type Arg = string | number;
type LimitDef = [kind: number, keyIndex: number, reason: string, capHigh: number, capNormal: number, capLow: number, p: number];
interface Profile {
  /** 1-based index among the call's profiles. */
  readonly index: number;
  readonly timeoutMs: number;
  /** Budget reserved by each job of this profile (0 without a budget). */
  readonly reserved: number;
}
interface Sent {
  readonly pending: Pending;
  /** The request's job i has lease `<call id>_<first + i>`. */
  readonly first: number;
  readonly profiles: Profile[];
}
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
}

const FAILURE: Record<number, LeaseFailure> = { [-1]: 'unknown', [-2]: 'expired', [-3]: 'already_settled' };

/**
 * The admission engine. Every decision is one atomic Lua step with time read from Redis; concurrent
 * `admit` calls from one tick are coalesced into one script call holding one group per request.
 */
export class Limiter {
  readonly keys: Keys;
  readonly #store: ScriptStore;
  readonly #tokens: LeaseTokens;
  readonly #now: (() => number) | undefined;
  readonly #retentionMs: number;
  readonly #maxJobsPerCall: number;
  readonly #coalesceJobs: number;
  readonly #maxCallsInFlight: number;
  #inFlight = 0;
  readonly #recoveryMs: number | undefined;
  #policy: CompiledPolicy;
  #queue: Pending[] = [];
  #queuedJobs = 0;
  #scheduled = false;
  #calls = 0;
  #jobsSent = 0;

  constructor(opts: LimiterOptions) {
    this.keys = new Keys(opts.namespace);
    this.#store = new ScriptStore(opts.redis, opts.timeoutMs ?? 2000);
    this.#tokens = new LeaseTokens(opts.signingKey, opts.namespace);
    this.#now = opts.now;
    this.#retentionMs = opts.leaseRetentionMs ?? 86_400_000;
    this.#maxJobsPerCall = Math.min(opts.maxJobsPerCall ?? MAX_BATCH, MAX_BATCH);
    this.#coalesceJobs = Math.max(1, Math.min(opts.coalesceJobs ?? 32, this.#maxJobsPerCall));
    this.#maxCallsInFlight = Math.max(1, opts.maxCallsInFlight ?? 4);
    this.#recoveryMs = opts.recoveryMs;
    this.#policy = opts.policy ?? compilePolicy(EMPTY_POLICY, 0);
  }

  /** Admission script calls made and jobs they carried (jobs / calls = coalescing factor). */
  get stats(): { readonly calls: number; readonly jobs: number } {
    return { calls: this.#calls, jobs: this.#jobsSent };
  }

  get policy(): CompiledPolicy {
    return this.#policy;
  }

  /** Atomic swap: calls already flushed keep the old policy, later ones use the new one. */
  setPolicy(policy: CompiledPolicy): void {
    this.#policy = policy;
  }

  /**
   * Marks the state trustworthy. `fresh: true` when the operator knows no lease is live (first
   * deployment, tests); otherwise a missing epoch starts recovery (admission closed for the longest
   * job timeout). Returns whether admission is open and, if not, when it reopens.
   */
  async init(opts: { fresh?: boolean } = {}): Promise<{ open: true } | { open: false; recoveringUntil: number }> {
    const reply = (await this.#store.run('init', [this.keys.epoch, this.keys.recoveringUntil], [
      this.#clock(),
      opts.fresh === true ? 'fresh' : 'recover',
      this.#recoveryWindow(),
    ])) as [number, string];
    return reply[0] === 1 ? { open: true } : { open: false, recoveringUntil: Number(reply[1]) };
  }

  /** Same as `init()`: starts (or reports) recovery after state loss. */
  recover(): Promise<{ open: true } | { open: false; recoveringUntil: number }> {
    return this.init();
  }

  admit(request: AdmissionRequest): Promise<AdmissionResult> {
    const n = request.jobs.length;
    if (n === 0 || n > MAX_BATCH) return Promise.reject(new InvalidAdmission(`a request holds 1 to ${MAX_BATCH} jobs, not ${n}`));
    for (let i = 0; i < n; i++) {
      const job = request.jobs[i];
      if (job !== undefined && this.#policy.jobType(job.jobType) === undefined) {
        return Promise.resolve({ kind: 'unknown_job_type', index: i });
      }
    }
    return new Promise<AdmissionResult>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#queuedJobs += n;
      if (this.#queuedJobs >= this.#coalesceJobs) {
        this.#flush();
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#flush();
        });
      }
    });
  }

  /**
   * Sends what is queued, at most `maxJobsPerCall` jobs per call (a request always goes whole),
   * while fewer than `maxCallsInFlight` calls are out. When that many are out, requests wait and
   * leave together when one returns: calls grow under load instead of multiplying.
   */
  #flush(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#maxCallsInFlight) {
      let jobs = 0;
      let k = 0;
      while (k < this.#queue.length) {
        const m = this.#queue[k]!.request.jobs.length;
        if (k > 0 && jobs + m > this.#maxJobsPerCall) break;
        jobs += m;
        k += 1;
      }
      const batch = this.#queue.splice(0, k);
      this.#queuedJobs -= jobs;
      this.#inFlight += 1;
      void this.#send(batch)
        .catch((error: unknown) => {
          for (const p of batch) p.reject(error);
        })
        .finally(() => {
          this.#inFlight -= 1;
          this.#flush();
        });
    }
  }

  async #send(batch: Pending[]): Promise<void> {
    const policy = this.#policy;
    const callId = this.#tokens.nextCallId();
    const keys: string[] = [this.keys.epoch, this.keys.recoveringUntil, this.keys.leaseExpiry, this.keys.leases(callId)];
    const keyIndex = new Map<string, number>();
    const keyOf = (key: string): number => {
      let i = keyIndex.get(key);
      if (i === undefined) {
        keys.push(key);
        i = keys.length;
        keyIndex.set(key, i);
      }
      return i;
    };
    const limitArgs: Arg[] = [];
    const limitIndex = new Map<string, number>();
    const limitOf = (spec: LimitSpec): number => {
      let i = limitIndex.get(spec.id);
      if (i === undefined) {
        const key = this.keys.limit(spec.id);
        const keyIndex = keyOf(key);
        limitArgs.push(...encodeLimit(spec, keyIndex, policy, spec.kind === 'concurrency' ? keyOf(this.keys.poolExpiries(key)) : 0));
        i = limitIndex.size + 1;
        limitIndex.set(spec.id, i);
      }
      return i;
    };
    const profileArgs: Arg[] = [];
    const profiles = new Map<string, Profile | null>();
    const profileOf = (job: JobAdmission): Profile | null => {
      const memo = `${job.tenant}\u0000${job.jobType}\u0000${job.cost ?? ''}\u0000${job.priority}`;
      let p = profiles.get(memo);
      if (p === undefined) {
        p = this.#profile(policy, job, limitOf, profileArgs, profiles.size + 1);
        profiles.set(memo, p);
      }
      return p;
    };

    const groupArgs: Arg[] = [];
    const sent: Sent[] = [];
    let jobsInCall = 0;
    for (const pending of batch) {
      const { request } = pending;
      const n = request.jobs.length;
      const jobProfiles: Profile[] = new Array<Profile>(n);
      let unknown = -1;
      for (let i = 0; i < n; i++) {
        const p = profileOf(request.jobs[i]!);
        if (p === null) {
          unknown = i;
          break;
        }
        jobProfiles[i] = p;
      }
      if (unknown >= 0) {
        pending.resolve({ kind: 'unknown_job_type', index: unknown });
        continue;
      }
      const ri = request.idempotency;
      if (ri) groupArgs.push(n, keyOf(this.keys.idempotency(ri.tenant, ri.key)), ri.record, ri.windowMs);
      else groupArgs.push(n, 0);
      for (let i = 0; i < n; i++) {
        const job = request.jobs[i]!;
        groupArgs.push(job.jobId, job.attempt ?? 1, jobProfiles[i]!.index);
        if (job.idempotency) groupArgs.push(keyOf(this.keys.idempotency(job.tenant, job.idempotency.key)), job.idempotency.record);
        else groupArgs.push(0);
        groupArgs.push(job.context ?? '');
      }
      sent.push({ pending, first: jobsInCall + 1, profiles: jobProfiles });
      jobsInCall += n;
    }
    if (sent.length === 0) return;
    this.#calls += 1;
    this.#jobsSent += jobsInCall;

    const args: Arg[] = [this.#clock(), this.#recoveryWindow(), this.#retentionMs, limitIndex.size, profiles.size, sent.length, callId];
    for (const x of limitArgs) args.push(x);
    for (const x of profileArgs) args.push(x);
    for (const x of groupArgs) args.push(x);

    let reply: (string | number)[];
    try {
      reply = (await this.#store.run('admit', keys, args)) as (string | number)[];
    } catch (error) {
      for (const s of sent) s.pending.reject(error);
      return;
    }
    const at = Number(reply[0]);
    if (at < 0) {
      const fault = new StateLost(Number(reply[1]));
      for (const s of sent) s.pending.reject(fault);
      return;
    }
    let c = 1;
    const sign = this.#tokens.signer(callId);
    for (const s of sent) {
      const code = reply[c++];
      if (code === 3) {
        s.pending.resolve({ kind: 'duplicate', record: String(reply[c++]) });
      } else if (code === 2) {
        s.pending.resolve({ kind: 'rejected', index: Number(reply[c]), reason: reply[c + 1] as RejectReason, retryAfterMs: Number(reply[c + 2]) });
        c += 3;
      } else if (code === 1 || code === 4) {
        let dups: Map<number, string> | undefined;
        if (code === 4) {
          dups = new Map();
          const count = Number(reply[c++]);
          for (let d = 0; d < count; d++, c += 2) dups.set(Number(reply[c]), String(reply[c + 1]));
        }
        s.pending.resolve(this.#admitted(s, at, dups, callId, sign));
      } else {
        s.pending.reject(new JanusError('limiter_internal', 500, false, 'admit script returned too few groups'));
        return;
      }
    }
  }

  /** A job's limit list, lease-record segment and sizes, encoded once per call (null: unknown job type). */
  #profile(policy: CompiledPolicy, job: JobAdmission, limitOf: (spec: LimitSpec) => number, out: Arg[], index: number): Profile | null {
    const jt = policy.jobType(job.jobType);
    const specs = policy.limitsFor(job.tenant, job.jobType);
    if (jt === undefined || specs === undefined) return null;
    out.push(specs.length, PRIORITY_CODE[job.priority]);
    const conc: string[] = [];
    const rate: string[] = [];
    let bk = '';
    let reserved = 0;
    for (const spec of specs) {
      const amount = amountFor(spec, jt, job.cost);
      const key = this.keys.limit(spec.id);
      if (spec.kind === 'rate') {
        const scaled = amount * spec.periodMs;
        out.push(limitOf(spec), scaled);
        rate.push(`${key} ${scaled} ${spec.capacity * spec.periodMs} ${spec.limit}`);
      } else {
        out.push(limitOf(spec), amount);
        if (spec.kind === 'concurrency') conc.push(key, this.keys.poolExpiries(key));
        else {
          bk = key;
          reserved = amount;
        }
      }
    }
    const segment = lengthPrefixed(job.tenant) + lengthPrefixed(job.jobType) + lengthPrefixed(bk) + lengthPrefixed(conc.join(' ')) + lengthPrefixed(rate.join(','));
    out.push(jt.timeoutMs, jt.idempotencyWindowMs, segment);
    return { index, timeoutMs: jt.timeoutMs, reserved };
  }

  #admitted(s: Sent, at: number, dups: Map<number, string> | undefined, callId: string, sign: (n: number) => string): Admitted {
    const { request, } = s.pending;
    const n = request.jobs.length;
    const jobs: AdmittedJob[] = new Array<AdmittedJob>(n);
    for (let i = 0; i < n; i++) {
      const job = request.jobs[i]!;
      const attempt = job.attempt ?? 1;
      const dup = dups?.get(i);
      if (dup !== undefined) {
        jobs[i] = { jobId: job.jobId, attempt, tenant: job.tenant, jobType: job.jobType, priority: job.priority, admittedAt: at, duplicate: { record: dup }, budgetReserved: 0 };
      } else {
        const id = `${callId}_${s.first + i}`;
        const token = sign(s.first + i);
        const p = s.profiles[i]!;
        jobs[i] = {
          jobId: job.jobId,
          attempt,
          tenant: job.tenant,
          jobType: job.jobType,
          priority: job.priority,
          admittedAt: at,
          lease: { id, token, expiresAt: at + p.timeoutMs },
          budgetReserved: p.reserved,
        };
      }
    }
    return { kind: 'admitted', at, jobs };
  }

  async settle(token: string, outcome: Outcome, actualCost?: number): Promise<SettleResult> {
    const id = this.#tokens.verify(token);
    if (id === undefined) return { ok: false, reason: 'invalid_token' };
    const at = this.keys.leaseLocation(id);
    const rec = at && (await this.#record(at));
    if (!at || rec === undefined) return { ok: false, reason: 'unknown' };
    const keys = [at.key, this.keys.leaseExpiry, rec.bk ? rec.bk : at.key, ...rec.conc];
    const actual = actualCost === undefined ? -1 : Math.max(0, Math.round(actualCost));
    const r = JSON.parse((await this.#store.run('settle', keys, [this.#clock(), id, at.field, outcome, actual, this.#retentionMs])) as string) as LeaseReply;
    if (r.s !== 1) return { ok: false, reason: FAILURE[r.s] ?? 'unknown' };
    return {
      ok: true,
      lease: { id, jobId: r.j, attempt: r.a, tenant: r.t, jobType: r.y, reserved: r.r, actual: r.c, settledAt: r.at, ...(rec.ctx ? { context: rec.ctx } : {}) },
    };
  }

  /** Sets the lease's expiry to max(current, now + ms). */
  async extend(token: string, ms: number): Promise<ExtendResult> {
    const id = this.#tokens.verify(token);
    if (id === undefined) return { ok: false, reason: 'invalid_token' };
    const at = this.keys.leaseLocation(id);
    const rec = at && (await this.#record(at));
    if (!at || rec === undefined) return { ok: false, reason: 'unknown' };
    const keys = [at.key, this.keys.leaseExpiry, ...rec.conc];
    const r = JSON.parse((await this.#store.run('extend', keys, [this.#clock(), id, at.field, Math.max(0, Math.round(ms)), this.#retentionMs])) as string) as LeaseReply;
    if (r.s !== 1) return { ok: false, reason: FAILURE[r.s] ?? 'unknown' };
    return { ok: true, lease: { id, jobId: r.j, attempt: r.a, tenant: r.t, jobType: r.y, reserved: r.r, expiresAt: r.e } };
  }

  /** Frees up to `max` expired leases (atomically per call) and returns them, for timed_out outcomes. */
  async reapExpired(max: number): Promise<ExpiredLease[]> {
    const listed = (await this.#store.run('expired', [this.keys.leaseExpiry], [this.#clock(), Math.max(1, Math.floor(max))])) as string[];
    const [now, ...members] = listed;
    if (members.length === 0 || now === undefined) return [];
    const keys = [this.keys.leaseExpiry];
    const args: (string | number)[] = [now, this.#retentionMs, Math.max(1, Math.floor(max))];
    for (const member of members) {
      // '<call id>@<expiresAt>': the leases a call wrote with that expiry; else one extended lease's id.
      const at = member.includes('@')
        ? { key: this.keys.leases(member.slice(0, member.lastIndexOf('@'))), field: '' }
        : // an id that names no record location (not one this limiter wrote) is dropped from the index
          (this.keys.leaseLocation(member) ?? { key: this.keys.leases(member), field: '1' });
      keys.push(at.key);
      args.push(member, at.field);
    }
    const reaped = JSON.parse((await this.#store.run('reap', keys, args)) as string) as (LeaseReply & { i: string; x?: string })[];
    return reaped.map((r) => {
      const context = r.x;
      return {
        id: r.i,
        token: this.#tokens.sign(r.i),
        jobId: r.j,
        attempt: r.a,
        tenant: r.t,
        jobType: r.y,
        reserved: r.r,
        expiresAt: r.e,
        ...(context ? { context } : {}),
      };
    });
  }

  /**
   * Reads a lease record without changing it: its state (a lease past its expiry that the reaper
   * has not visited yet reads as `expired`), the outcome it was settled with, and its context.
   */
  async leaseState(token: string): Promise<LeaseStateResult> {
    const id = this.#tokens.verify(token);
    if (id === undefined) return { ok: false, reason: 'invalid_token' };
    const at = this.keys.leaseLocation(id);
    const rec = at && (await this.#record(at));
    if (!rec || !rec.st || !rec.job || !rec.ten || !rec.typ) return { ok: false, reason: 'unknown' };
    const expiresAt = rec.exp;
    const state = (rec.st === 'active' && expiresAt <= (await this.#time()) ? 'expired' : rec.st) as LeaseStateName;
    return {
      ok: true,
      lease: {
        id,
        jobId: rec.job,
        attempt: rec.att,
        tenant: rec.ten,
        jobType: rec.typ,
        reserved: rec.res,
        state,
        expiresAt,
        ...(rec.out ? { outcome: rec.out as Outcome } : {}),
        ...(rec.ctx ? { context: rec.ctx } : {}),
      },
    };
  }

  /** Undoes an admission whose publish failed: rate tokens, slots, budget and idempotency records. */
  async revoke(admission: Admitted): Promise<void> {
    const ids = admission.jobs.flatMap((j) => (j.lease ? [j.lease.id] : []));
    if (ids.length === 0) return;
    const { locations, records } = await this.#records(ids);
    const keys = [this.keys.leaseExpiry];
    const args: (string | number)[] = [this.#clock(), this.#retentionMs];
    ids.forEach((id, i) => {
      const rec = records[i];
      const at = locations[i];
      if (!at) return;
      const own = [at.key, ...(rec ? [...rec.conc, ...rec.rateKeys, ...(rec.bk ? [rec.bk] : []), ...rec.idem] : [])];
      keys.push(...own);
      args.push(id, at.field, own.length);
    });
    await this.#store.run('revoke', keys, args);
  }

  async usage(tenant: string): Promise<TenantUsage> {
    const policy = this.#policy;
    const at = await this.#time();
    const deps = Object.keys(policy.document.dependencies);
    const budgetPolicy = policy.document.tenants[tenant]?.budget;
    const [live, budgetRow] = await Promise.all([
      this.#liveCounts(deps.map((d) => limitId.depTenantConcurrency(d, tenant)), at),
      budgetPolicy ? this.#store.guard(this.#store.redis.hmget(this.keys.limit(limitId.tenantBudget(tenant)), 'w', 'u')) : undefined,
    ]);
    const inFlight: Record<string, number> = {};
    deps.forEach((d, i) => (inFlight[d] = live[i] ?? 0));
    let budget: TenantUsage['budget'] = null;
    if (budgetPolicy) {
      const [w, u] = budgetRow ?? [];
      const ws = at - (at % budgetPolicy.periodMs);
      const used = Number(w) === ws ? Number(u ?? 0) : 0;
      budget = { limit: budgetPolicy.limit, used, remaining: Math.max(0, budgetPolicy.limit - used), resetsAt: ws + budgetPolicy.periodMs };
    }
    return { tenant, at, budget, inFlight };
  }

  async inspect(): Promise<LimiterSnapshot> {
    const policy = this.#policy;
    const at = await this.#time();
    const doc = policy.document;
    const pipeline = this.#store.redis.pipeline();
    const deps = Object.entries(doc.dependencies);
    for (const [name] of deps) {
      pipeline.hmget(this.keys.limit(limitId.depRate(name)), 't', 'ts');
      pipeline.hmget(this.keys.limit(limitId.depCostRate(name)), 't', 'ts');
    }
    pipeline.hmget(this.keys.limit(limitId.globalRate()), 't', 'ts');
    const [rows, live] = await Promise.all([
      this.#store.guard(pipeline.exec()).then((r) => r ?? []),
      this.#liveCounts([...deps.map(([name]) => limitId.depConcurrency(name)), limitId.globalConcurrency()], at),
    ]);
    const cell = (i: number) => rows[i]?.[1];
    const dependencies: Record<string, LimiterSnapshot['dependencies'][string]> = {};
    deps.forEach(([name, p], i) => {
      dependencies[name] = {
        inFlight: live[i] ?? 0,
        concurrency: p.concurrency ?? null,
        rate: p.rate ? bucketView(p.rate, cell(i * 2), at) : null,
        costRate: p.costRate ? bucketView(p.costRate, cell(i * 2 + 1), at) : null,
      };
    });
    const g = deps.length * 2;
    return {
      at,
      policyVersion: policy.version,
      dependencies,
      global: {
        inFlight: doc.global.concurrency !== undefined ? (live[deps.length] ?? 0) : null,
        concurrency: doc.global.concurrency ?? null,
        rate: doc.global.rate ? bucketView(doc.global.rate, cell(g), at) : null,
      },
    };
  }

  /** Live leases of the concurrency pools with these limit ids at `at` (read-only). */
  async #liveCounts(ids: readonly string[], at: number): Promise<number[]> {
    if (ids.length === 0) return [];
    const keys = ids.flatMap((id) => [this.keys.limit(id), this.keys.poolExpiries(this.keys.limit(id))]);
    return ((await this.#store.run('count', keys, [at])) as number[]).map(Number);
  }

  #record(at: { key: string; field: string }) {
    return this.#store.guard(this.#store.redis.hgetBuffer(at.key, at.field)).then(parseLeaseRecord);
  }

  /** The records of many leases in one round trip (undefined where unknown). */
  async #records(ids: readonly string[]) {
    const locations = ids.map((id) => this.keys.leaseLocation(id));
    const pipeline = this.#store.redis.pipeline();
    for (const at of locations) if (at) pipeline.hgetBuffer(at.key, at.field);
    const rows = (await this.#store.guard(pipeline.exec())) ?? [];
    let r = 0;
    const records = locations.map((at) => (at ? parseLeaseRecord(rows[r++]?.[1] as Buffer | null | undefined) : undefined));
    return { locations, records };
  }

  #clock(): number {
    return this.#now ? Math.floor(this.#now()) : 0;
  }

  async #time(): Promise<number> {
    if (this.#now) return Math.floor(this.#now());
    const [s, us] = await this.#store.guard(this.#store.redis.time());
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  #recoveryWindow(): number {
    return this.#recoveryMs ?? Math.max(this.#policy.maxTimeoutMs, 1000);
  }
}

function encodeLimit(spec: LimitSpec, keyIndex: number, policy: CompiledPolicy, expiriesIndex: number): LimitDef {
  if (spec.kind === 'concurrency') {
    if (spec.capacity === null) return [2, keyIndex, spec.reason, -1, -1, -1, expiriesIndex];
    return [2, keyIndex, spec.reason, spec.capacity, policy.shareOf('normal', spec.capacity), policy.shareOf('low', spec.capacity), expiriesIndex];
  }
  if (spec.kind === 'budget') {
    return [3, keyIndex, spec.reason, spec.capacity, policy.shareOf('normal', spec.capacity), policy.shareOf('low', spec.capacity), spec.periodMs];
  }
  const scale = spec.periodMs;
  return [
    1,
    keyIndex,
    spec.reason,
    spec.capacity * scale,
    policy.shareOf('normal', spec.capacity) * scale,
    policy.shareOf('low', spec.capacity) * scale,
    spec.limit,
  ];
}

function bucketView(rate: { limit: number; periodMs: number; burst?: number | undefined }, cell: unknown, at: number): BucketView {
  const capacity = rate.burst ?? rate.limit;
  const [t, ts] = (Array.isArray(cell) ? cell : []) as (string | null)[];
  const full = capacity * rate.periodMs;
  let tokens = t === null || t === undefined ? full : Number(t);
  if (t !== null && t !== undefined) tokens = Math.min(full, tokens + Math.max(0, at - Number(ts ?? at)) * rate.limit);
  return { capacity, available: Math.floor(tokens / rate.periodMs) };
}
