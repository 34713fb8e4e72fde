/**
 * The Limiter: the library's one entry point, a thin facade. It owns the live policy (swapped
 * atomically) and composes the parts that do the work: the coalescer (admission requests into
 * script calls), the admit codec (a call's KEYS/ARGV and reply), lease operations and read models.
 * Every decision is one atomic Lua step with time read from Redis.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { EMPTY_POLICY, PolicyDocument } from '@janus/contracts';
import { addedBudgets, addedDependencies, attachRunning, type AttachPlan, type AttachResult } from './attach.js';
import { kindChanges, rekindRates, type KindChange, type RekindResult } from './rekind.js';
import { decodeAdmitReply, decodeMirrorReply, encodeAdmitCall, type AdmitCall, type AdmitCallContext, type MirrorAnswer } from './admit-codec.js';
import { Clock } from './clock.js';
import { Coalescer, MAX_BATCH, type Pending } from './coalescer.js';
import { Credits } from './credits.js';
import { ADAPTIVE, INIT_ANSWER, SIGNAL, TRANSITION } from './codes.js';
import { InvalidAdmission, JanusError, StateLost, StoreUnavailable } from './errors.js';
import { Keys, limitId, type IdempotencyKind } from './keys.js';
import { LeaseOperations } from './leases.js';
import { compilePolicy, exceedsCapacity, type CompiledPolicy, type LimitSpec } from './policy.js';
import { ReadModels } from './read-models.js';
import { StateRestore } from './restore.js';
import { inTenantShard, isTenantShardId, MAX_TENANT_SHARDS, SHARD_MARGIN_MS, shardTag, tenantShardOf } from './shards.js';
import { ScriptStore } from './store.js';
import { LeaseTokens } from './token.js';
import type {
  AdmissionRequest,
  AdmissionResult,
  Admitted,
  AdoptResult,
  ConfirmResult,
  CreditsState,
  DependencyState,
  ExpiredBatch,
  ExpiredEntry,
  ExpiredLease,
  ExtendResult,
  FeedbackResult,
  FeedbackSignal,
  FindExpiredOptions,
  IdempotencyState,
  LeaseStateResult,
  LimiterSnapshot,
  OpenResult,
  Outcome,
  PauseState,
  PauseTarget,
  RestoredLease,
  RestoredState,
  RestoreResult,
  SettleOptions,
  SettleResult,
  StateStatus,
  TenantUsage,
  TopUpResult,
  Transition,
  UnclaimedLease,
} from './types.js';

/** A pause's stored until (ms; 0: not paused; ADAPTIVE.pausedForever: until resumed) as a PauseState. */
function pauseState(until: number): PauseState {
  if (!(until > 0)) return { paused: false };
  return { paused: true, until: until >= ADAPTIVE.pausedForever ? Infinity : until };
}

const TRANSITION_NAMES: Record<number, Transition> = Object.fromEntries(Object.entries(TRANSITION).map(([name, code]) => [code, name as Transition]));

export { MAX_BATCH };

const NO_TYPES: ReadonlySet<string> = new Set();
/** Every job type (no job type is named so: names are lowercase, digits, `_` and `-`). */
const ALL_TYPES = '*';
/** A tenant among the job types a transition holds back (names start with [a-z0-9]: no clash). */
const TENANT_MARK = '@';

/** What a policy change gives the state already in Redis to carry over, and the admissions it holds back meanwhile. */
interface PolicyChange {
  readonly plan: AttachPlan;
  readonly kinds: readonly KindChange[];
  /** Job types and `@<tenant>`s whose admissions wait for the first pass (ALL_TYPES: every one). */
  readonly holds: ReadonlySet<string>;
}

/** What of a policy change a limiter carries over: all of it, or (with tenant shards) its slot's part. */
interface ChangeScope {
  /** Dependencies given to job types (their pools): the namespace's slot. */
  readonly dependencies: boolean;
  /** Budgets given to tenants: the slot holding the tenant's budget. */
  readonly budget: (tenant: string) => boolean;
  /** Rates that changed kind, by limit id: the slot holding the rate. */
  readonly rate: (id: string) => boolean;
}

const WHOLE: ChangeScope = { dependencies: true, budget: () => true, rate: () => true };

/** Undefined when going from `before` to `after` carries nothing over (in `scope`). */
function changeBetween(before: CompiledPolicy, after: CompiledPolicy, scope: ChangeScope): PolicyChange | undefined {
  const budgets = new Map([...addedBudgets(before, after)].filter(([tenant]) => scope.budget(tenant)));
  const plan: AttachPlan = { dependencies: scope.dependencies ? addedDependencies(before, after) : new Map(), budgets, policy: after };
  const kinds = kindChanges(before.document, after.document).filter((k) => scope.rate(k.id));
  if (plan.dependencies.size === 0 && plan.budgets.size === 0 && kinds.length === 0) return undefined;
  // a rate's kind changed: every admission waits
  const holds: ReadonlySet<string> =
    kinds.length > 0 ? new Set([ALL_TYPES]) : new Set([...plan.dependencies.keys(), ...[...plan.budgets.keys()].map((t) => `${TENANT_MARK}${t}`)]);
  return { plan, kinds, holds };
}

/** The tenant a tenant limit id names (`tenant:<name>:<kind>`, src/keys.ts limitId). */
function tenantOfId(id: string): string {
  return id.slice('tenant:'.length, id.lastIndexOf(':'));
}

/** The policy a marker (policy-mark-1.lua) holds, or undefined when this version cannot read it. */
function storedPolicy(doc: string | null | undefined, version: number): CompiledPolicy | undefined {
  if (doc === null || doc === undefined || !Number.isSafeInteger(version)) return undefined;
  try {
    const parsed = PolicyDocument.safeParse(JSON.parse(doc));
    return parsed.success ? compilePolicy(parsed.data, version) : undefined;
  } catch {
    return undefined;
  }
}

/** What applying a policy did to the state already in Redis (Limiter.applied). */
export interface PolicyTransition {
  readonly attach?: AttachResult;
  readonly rekind?: RekindResult;
}

export interface LimiterOptions {
  readonly redis: Redis | Cluster;
  readonly namespace: string;
  readonly signingKey: string;
  /** Test-only clock override (ms). Without it every script reads Redis TIME. */
  readonly now?: () => number;
  readonly policy?: CompiledPolicy;
  /** A Redis call slower than this is a StoreUnavailable fault. Default 2000 ms. */
  readonly timeoutMs?: number;
  /**
   * Replicas that must acknowledge every write script before its answer counts (Redis WAIT, within
   * `replicaAckTimeoutMs`, default 100 ms); fewer is a StoreUnavailable fault. Default 0: none.
   */
  readonly replicaAcks?: number;
  readonly replicaAckTimeoutMs?: number;
  /** How long a finished lease record is kept so that late settles get a precise answer. Default 24 h. */
  readonly leaseRetentionMs?: number;
  /** At most this many jobs per coalesced Lua call. Default 1000. */
  readonly maxJobsPerCall?: number;
  /**
   * A coalesced call is sent as soon as it holds this many jobs, without waiting for the next tick.
   * Default 32: with 64 callers that keeps two calls in flight, so Node builds and decodes one while
   * Redis runs the other (one call per tick, `coalesceJobs: 1000`, leaves one of them idle).
   */
  readonly coalesceJobs?: number;
  /**
   * Admission calls out at once (default 4); further requests wait and leave together, up to
   * maxJobsPerCall per call, when one returns: under load calls grow instead of multiplying.
   */
  readonly maxCallsInFlight?: number;
  /**
   * The fail-closed fallback after a state loss that cannot be rebuilt: admission stays closed this
   * long. Default: the policy's longest timeoutMs.
   */
  readonly recoveryMs?: number;
  /**
   * A policy that gives a job type a dependency makes the leases of that job type's running jobs
   * count in the dependency's pools (src/attach.ts): at once, and again this long after (default
   * 2,500 ms, more than `timeoutMs`) for admissions that were on their way under the old policy.
   */
  readonly attachAgainMs?: number;
  /**
   * Spread the namespace over this many tenant shards besides its own slot (src/shards.ts): each
   * tenant's rate, concurrency and budget live in one of them. Default 0: one slot. Fixed for the
   * life of a namespace's state (`init` refuses another count).
   */
  readonly tenantShards?: number;
  /** This limiter is tenant shard `index` of `count` (built by a limiter with `tenantShards`; not for apps). */
  readonly shard?: { readonly index: number; readonly count: number };
}

/** A tenant shard's part of one group of a namespace call: which of the group's jobs, at which ordinals. */
interface MirrorGroup {
  readonly request: AdmissionRequest;
  /** The group's job index of each job of `request`. */
  readonly indexes: readonly number[];
  readonly ordinals: readonly number[];
}

/** The leases of one admission to confirm, with every idempotency record their admission may have written. */
interface ConfirmRequest {
  readonly jobs: readonly { readonly id: string; readonly idempotencyKeys: readonly string[]; readonly seq: number }[];
}

type InitResult = { open: true } | { open: false; recoveringUntil: number };

export class Limiter {
  readonly keys: Keys;
  readonly #store: ScriptStore;
  readonly #tokens: LeaseTokens;
  readonly #clock: Clock;
  readonly #coalescer: Coalescer<AdmissionRequest, AdmissionResult>;
  readonly #confirms: Coalescer<ConfirmRequest, ConfirmResult>;
  readonly #leases: LeaseOperations;
  readonly #reads: ReadModels;
  readonly #restore: StateRestore;
  /** Prepaid credits: top-ups and the outbox (src/credits.ts). */
  readonly credits: Credits;
  readonly #retentionMs: number;
  readonly #recoveryMs: number | undefined;
  #policy: CompiledPolicy;
  #transitioning: Promise<PolicyTransition | undefined> = Promise.resolve(undefined);
  /** Settled once every transition begun so far has done its first pass (admissions held back wait for it). */
  #gate: Promise<unknown> = Promise.resolve();
  /** Job types (and `@<tenant>`s) whose state the last policy change has not carried over yet (ALL_TYPES: every one). */
  #transitionPending: ReadonlySet<string> = NO_TYPES;
  /** Whether a policy was in force before the next setPolicy (see there). */
  #started: boolean;
  readonly #attachAgainMs: number;
  readonly #timeoutMs: number;
  #calls = 0;
  #jobsSent = 0;
  /** The namespace's tenant shards (src/shards.ts), when this limiter is the namespace's slot and has any. */
  readonly #shards: readonly Limiter[];
  /** Which limits this slot decides (undefined: every one). */
  readonly #include: ((spec: LimitSpec) => boolean) | undefined;
  readonly #scope: ChangeScope;
  readonly #tenantShards: number;
  readonly #shardIndex: number | undefined;
  /** When (this host's ms) the home last had its shards reap their expired leases. */
  #shardsReapedAt = 0;
  /** Shards whose fail-closed fallback will be reopened by this instance (a timer is set). */
  readonly #reopening = new Set<number>();

  constructor(opts: LimiterOptions) {
    const count = opts.tenantShards ?? 0;
    if (!Number.isSafeInteger(count) || count < 0 || count > MAX_TENANT_SHARDS) throw new RangeError(`tenantShards must be an integer from 0 to ${MAX_TENANT_SHARDS}, not ${count}`);
    const shard = opts.shard;
    this.#tenantShards = shard === undefined ? count : 0;
    this.#shardIndex = shard?.index;
    this.keys = new Keys(opts.namespace, shard === undefined ? opts.namespace : shardTag(opts.namespace, shard.index));
    if (shard !== undefined) {
      const mine = (tenant: string) => tenantShardOf(tenant, shard.count) === shard.index;
      this.#include = inTenantShard;
      this.#scope = { dependencies: false, budget: mine, rate: (id) => isTenantShardId(id) && mine(tenantOfId(id)) };
    } else if (count > 0) {
      this.#include = (spec) => !inTenantShard(spec);
      this.#scope = { dependencies: true, budget: () => false, rate: (id) => !isTenantShardId(id) };
    } else {
      this.#include = undefined;
      this.#scope = WHOLE;
    }
    this.#shards = shard === undefined && count > 0 ? Array.from({ length: count }, (_, index) => new Limiter({ ...opts, tenantShards: 0, shard: { index, count } })) : [];
    this.#store = new ScriptStore(opts.redis, opts.timeoutMs ?? 2000, { replicas: opts.replicaAcks ?? 0, timeoutMs: opts.replicaAckTimeoutMs ?? 100 });
    this.#tokens = new LeaseTokens(opts.signingKey, opts.namespace);
    this.#clock = new Clock(this.#store, opts.now, this.keys.epoch);
    this.#retentionMs = opts.leaseRetentionMs ?? 86_400_000;
    this.#recoveryMs = opts.recoveryMs;
    this.#attachAgainMs = opts.attachAgainMs ?? 2_500;
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#policy = opts.policy ?? compilePolicy(EMPTY_POLICY, 0);
    this.#started = opts.policy !== undefined;
    this.#coalescer = new Coalescer(opts, (batch) => this.#send(batch));
    this.#confirms = new Coalescer(opts, (batch) => this.#sendConfirms(batch));
    this.#leases = new LeaseOperations({ store: this.#store, keys: this.keys, tokens: this.#tokens, clock: this.#clock, retentionMs: this.#retentionMs });
    this.#reads = new ReadModels(this.#store, this.keys, this.#clock);
    this.credits = new Credits(this.#store, this.keys, this.#clock);
    this.#restore = new StateRestore({ store: this.#store, keys: this.keys, clock: this.#clock, retentionMs: this.#retentionMs });
  }

  /** Admission script calls made and jobs they carried (jobs / calls = coalescing factor). */
  get stats(): { readonly calls: number; readonly jobs: number } {
    return { calls: this.#calls, jobs: this.#jobsSent };
  }

  get policy(): CompiledPolicy {
    return this.#policy;
  }

  /**
   * Atomic swap: calls already flushed keep the old policy, later ones use the new one. What the
   * change means for state already in Redis is carried over (see `applied`): a job type given a
   * dependency has its running jobs counted in the dependency's pools, and a tenant given a budget
   * has its running jobs' estimates reserved in it (src/attach.ts); a rate whose kind changed has
   * its state carried to the new kind (src/rekind.ts).
   *
   * The first policy of a limiter built without one (an app starting) is a change only from the
   * policy the state was last carried over to (policy-mark-1.lua): the instances that ran before
   * carried it to theirs, and a change made while no limiter ran is carried now.
   */
  setPolicy(policy: CompiledPolicy): void {
    const before = this.#policy;
    const starting = !this.#started;
    this.#started = true;
    this.#policy = policy;
    for (const shard of this.#shards) shard.setPolicy(policy);
    if (starting) {
      this.#hold(new Set([ALL_TYPES]), this.#catchUp(policy));
      return;
    }
    const change = changeBetween(before, policy, this.#scope);
    if (change === undefined) {
      void this.#mark(policy).catch(() => undefined);
      return;
    }
    this.#hold(change.holds, this.#transition(change, policy));
  }

  /**
   * The first pass of the last policy change's transition: resolved once running jobs count in the
   * pools of the dependencies that change gave their job type and in the budgets it gave their
   * tenant, and rates that changed kind hold their state in the new kind (undefined when there was
   * nothing to carry over, or Redis could not be reached for 30 s; a state loss rebuilds every lease
   * under the policy then in force). A second pass follows `attachAgainMs` later, for admissions that
   * were on their way under the old policy.
   */
  applied(): Promise<PolicyTransition | undefined> {
    if (this.#shards.length === 0) return this.#transitioning;
    // with tenant shards: what every slot carried over, summed (a lost state in any: that)
    return Promise.all([this.#transitioning, ...this.#shards.map((s) => s.applied())]).then((all) => {
      const done = all.filter((t): t is PolicyTransition => t !== undefined);
      if (done.length === 0) return undefined;
      const sum = <T extends { readonly ok: boolean }>(parts: readonly (T | undefined)[], add: (a: T, b: T) => T): T | undefined =>
        parts.reduce<T | undefined>((acc, p) => (p === undefined ? acc : acc === undefined ? p : !acc.ok ? acc : !p.ok ? p : add(acc, p)), undefined);
      const attach = sum(
        done.map((t) => t.attach),
        (a, b) => (a.ok && b.ok ? { ok: true, leases: a.leases + b.leases, pools: a.pools + b.pools, budgets: a.budgets + b.budgets } : a),
      );
      const rekind = sum(
        done.map((t) => t.rekind),
        (a, b) => (a.ok && b.ok ? { ok: true, written: a.written + b.written } : a),
      );
      return { ...(attach ? { attach } : {}), ...(rekind ? { rekind } : {}) };
    });
  }

  /** Holds admissions of `holds` (job types, `@<tenant>`s, or ALL_TYPES) back until `done`, and until what was held before is done. */
  #hold(holds: ReadonlySet<string>, done: Promise<PolicyTransition | undefined>): void {
    const pending = this.#transitionPending.size === 0 ? holds : new Set([...this.#transitionPending, ...holds]);
    const gate = Promise.all([this.#gate, done]).then(() => undefined);
    this.#transitioning = done;
    this.#transitionPending = pending;
    this.#gate = gate;
    void gate.then(() => {
      if (this.#transitionPending === pending) this.#transitionPending = NO_TYPES;
    });
  }

  /** An app starting: carries the state over from the policy it was last carried to, when that is older (see setPolicy). */
  async #catchUp(policy: CompiledPolicy): Promise<PolicyTransition | undefined> {
    for (let attempt = 0; attempt < 30; attempt += 1) {
      let marked: (string | null)[];
      try {
        marked = await this.#store.guard(this.#store.redis.hmget(this.keys.appliedPolicy, 'v', 'doc'));
      } catch {
        await new Promise((r) => setTimeout(r, 1_000).unref?.());
        continue;
      }
      const version = Number(marked[0]);
      if (marked[0] !== null && version >= policy.version) return undefined;
      const before = marked[0] === null ? undefined : storedPolicy(marked[1], version);
      const change = before && changeBetween(before, policy, this.#scope);
      if (change === undefined) {
        // first start (or a marker this version cannot read): the state is the current policy's from now on
        await this.#mark(policy).catch(() => undefined);
        return undefined;
      }
      return this.#transition(change, policy);
    }
    return undefined;
  }

  #mark(policy: CompiledPolicy): Promise<unknown> {
    return this.#store.run('policyMark', [this.keys.appliedPolicy], [policy.version, JSON.stringify(policy.document)]);
  }

  #transition(change: PolicyChange, policy: CompiledPolicy): Promise<PolicyTransition | undefined> {
    const { plan, kinds } = change;
    const deps = { store: this.#store, keys: this.keys, clock: this.#clock };
    const pass = async (): Promise<PolicyTransition | undefined> => {
      for (let attempt = 0; attempt < 30; attempt += 1) {
        try {
          return {
            ...(plan.dependencies.size > 0 || plan.budgets.size > 0 ? { attach: await attachRunning(deps, plan) } : {}),
            ...(kinds.length > 0 ? { rekind: await rekindRates(deps, kinds) } : {}),
          };
        } catch {
          // Redis unreachable: again in a second (what runs meanwhile is refused or fails closed).
          await new Promise((r) => setTimeout(r, 1_000).unref?.());
        }
      }
      return undefined;
    };
    const first = pass();
    // Carried over (or the state was lost, and a rebuild counts every lease under this policy):
    // recorded, so that an instance starting later does not carry it over again.
    void first.then((done) => (done === undefined ? undefined : this.#mark(policy))).catch(() => undefined);
    void first.then(() => new Promise((r) => setTimeout(r, this.#attachAgainMs).unref?.())).then(pass);
    return first;
  }

  /**
   * Marks the state trustworthy. `fresh: true` when the operator knows no lease is live (first
   * deployment, tests); otherwise a missing epoch starts recovery: admission stays closed until a
   * rebuild (`restoreState`, `openState`) reopens it. Returns whether admission is open and, if not,
   * `recoveringUntil`, the end of the fail-closed fallback.
   */
  async init(opts: { fresh?: boolean } = {}): Promise<InitResult> {
    if (this.#shardIndex === undefined) await this.#checkTenantShards();
    const reply = (await this.#store.run('init', [this.keys.epoch, this.keys.recoveringUntil], [
      this.#clock.arg(),
      opts.fresh === true ? 'fresh' : 'recover',
      this.#recoveryWindow(),
    ])) as [number, string];
    // each shard has its own epoch: one whose state was lost stays closed for its tenants only
    await Promise.all(this.#shards.map((shard, k) => shard.init(opts).then((r) => (r.open ? undefined : this.#reopenShardLater(k)))));
    return reply[0] === INIT_ANSWER.open ? { open: true } : { open: false, recoveringUntil: Number(reply[1]) };
  }

  /**
   * Throws a RangeError when the namespace's state is laid out for another tenant shard count
   * (checked by `init` too; a fault when Redis does not answer).
   *
   * The namespace's state is laid out for one tenant shard count: another would look for every
   * tenant's running jobs in the wrong slot (and count none). A state written before the count was
   * recorded is a state of none.
   */
  checkLayout(): Promise<void> {
    return this.#checkTenantShards();
  }

  async #checkTenantShards(): Promise<void> {
    const r = this.#store.redis;
    const [stored, epoch] = await this.#store.guard(Promise.all([r.get(this.keys.tenantShards), r.exists(this.keys.epoch)]));
    let count = stored ?? (this.#tenantShards === 0 ? '0' : null); // (a state of none needs no mark)
    if (count === null) {
      await this.#store.guard(r.set(this.keys.tenantShards, epoch === 1 ? '0' : String(this.#tenantShards), 'NX'));
      count = await this.#store.guard(r.get(this.keys.tenantShards)); // another instance may have written it first
    }
    if (Number(count) !== this.#tenantShards) {
      throw new RangeError(
        `namespace ${this.keys.namespace} holds the state of ${count} tenant shards, not ${this.#tenantShards}: ` +
          `run it with ${count}, or let its running jobs finish, stop every instance and set the key ${this.keys.tenantShards} to ${this.#tenantShards} (docs/scaling.md)`,
      );
    }
  }

  /** Same as `init()`: starts (or reports) recovery after state loss. */
  recover(): Promise<InitResult> {
    return this.init();
  }

  /** Whether the state is trusted, read without changing anything (a state-loss watch polls it). */
  stateStatus(): Promise<StateStatus> {
    return this.#restore.status();
  }

  /** Redis time in ms (the limiter's clock). */
  now(): Promise<number> {
    return this.#clock.read();
  }

  /** Takes the rebuild lock (one instance rebuilds a lost state at a time); false when another holds it. */
  acquireRebuildLock(token: string, ttlMs: number): Promise<boolean> {
    return this.#restore.acquire(token, ttlMs);
  }

  /** Keeps the rebuild lock while rebuilding; false when it is no longer ours. */
  renewRebuildLock(token: string, ttlMs: number): Promise<boolean> {
    return this.#restore.renew(token, ttlMs);
  }

  releaseRebuildLock(token: string): Promise<void> {
    return this.#restore.release(token);
  }

  /**
   * Writes a lost state back from the durable record (lock holder only, admission still closed):
   * leases with their pools and expiry, budgets, idempotency records, and EMPTY rate buckets.
   */
  restoreState(token: string, state: RestoredState): Promise<RestoreResult> {
    return this.#restore.restore(token, this.#slotView(), this.#slotState(state));
  }

  /**
   * With tenant shards, the state a slot holds: a shard its tenants' leases, budgets, rate buckets
   * and windows (no idempotency records, no credits); the namespace's slot all but the tenants'
   * budgets. (Without shards: all of it.)
   */
  #slotState(state: RestoredState): RestoredState {
    if (this.#shardIndex === undefined) return this.#tenantShards === 0 ? state : { ...state, budgets: [] };
    const mine = this.#scope.budget;
    return {
      leases: state.leases.filter((l) => mine(l.tenant)),
      budgets: state.budgets.filter((b) => mine(b.tenant)),
      idempotency: [],
      bucketTenants: state.bucketTenants.filter(mine),
      ...(state.admissions ? { admissions: state.admissions.filter((a) => mine(a.tenant)) } : {}),
    };
  }

  /** The policy as this slot holds it: every limit, or (with tenant shards) the limits of this slot (of its own tenants, for a shard). */
  #slotView(): CompiledPolicy {
    const policy = this.#policy;
    const include = this.#include;
    if (include === undefined) return policy;
    const mine = this.#shardIndex === undefined ? () => true : this.#scope.budget;
    return { ...policy, limitsFor: (tenant, jobType) => (mine(tenant) ? policy.limitsFor(tenant, jobType)?.filter(include) : policy.jobType(jobType) && []) };
  }

  /** The namespace's tenant shards (none without `tenantShards`): each is a limiter of its own slot, whose state is lost and rebuilt on its own (StateRecovery). */
  get tenantShards(): readonly Limiter[] {
    return this.#shards;
  }

  /**
   * Leases for a fail-open admission of `count` jobs (Redis unreachable, every dependency `failMode:
   * open`): ids of one call marked as fail-open, with genuine tokens. Redis holds no record of them
   * until `adoptLeases` writes it; until then a claim, extension or outcome with their token is
   * asked to wait (NotAdopted), never refused.
   */
  failOpenLeases(count: number): { readonly id: string; readonly token: string }[] {
    const callId = this.#tokens.nextFailOpenCallId();
    const sign = this.#tokens.signer(callId);
    return Array.from({ length: count }, (_, i) => ({ id: `${callId}_${i + 1}`, token: sign(i + 1) }));
  }

  /**
   * Adopts fail-open leases once Redis answers (from the durable record: the persister's attempts):
   * writes their records, counted in their concurrency pools, as admission would have (adopt-n.lua).
   * Idempotent; nothing is written while the state is lost (a rebuild writes them then).
   */
  adoptLeases(leases: readonly RestoredLease[]): Promise<AdoptResult> {
    return this.#restore.adopt(this.#slotView(), leases);
  }

  /**
   * Reopens admission after a state loss and releases the rebuild lock: at once after a rebuild,
   * or (`fallback`) once the fail-closed window has passed.
   */
  openState(token: string, mode: 'rebuilt' | 'fallback'): Promise<OpenResult> {
    return this.#restore.open(token, mode, this.#recoveryWindow());
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
    if (this.#transitionPending.size > 0 && this.#concernsTransition(request)) return this.#admitAfterTransition(request);
    const over = exceedsCapacity(this.#policy, request);
    if (over === undefined) return this.#coalescer.submit(request);
    const keyed = request.idempotency !== undefined || request.jobs.some((j) => j.idempotency !== undefined);
    // Idempotency comes first (CONTRACT §2): a request carrying keys may be a replay, so Redis decides it.
    return keyed ? this.#admitOverCapacity(request) : Promise.resolve(over);
  }

  #concernsTransition(request: AdmissionRequest): boolean {
    const pending = this.#transitionPending;
    return pending.has(ALL_TYPES) || request.jobs.some((j) => pending.has(j.jobType) || pending.has(`${TENANT_MARK}${j.tenant}`));
  }

  /**
   * A job that the last policy change concerns (its job type was given a dependency, its tenant a budget, or a rate
   * changed kind or period): decided once that change's first pass has carried the state over
   * (milliseconds while Redis answers); a fault, as any Redis call slower than `timeoutMs`, when that
   * takes longer.
   */
  async #admitAfterTransition(request: AdmissionRequest): Promise<AdmissionResult> {
    await this.#awaitTransition();
    return this.admit(request);
  }

  /** Waits for the transitions begun so far to do their first pass: a fault when that takes longer than `timeoutMs`. */
  async #awaitTransition(): Promise<void> {
    const pending = this.#transitionPending;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.#timeoutMs);
    });
    const done = await Promise.race([this.#gate.then(() => 'done' as const), late]);
    clearTimeout(timer);
    if (done === 'late' && this.#transitionPending === pending) {
      throw new StoreUnavailable('the last policy change has not carried the limits state over yet');
    }
  }

  /**
   * A request over some limit's capacity that carries idempotency keys: a replay is answered as
   * such, and jobs that were replays take nothing. Only if it is rejected does it get
   * `exceeds_capacity`, judged over its jobs whose key was not live (one read, on this rare path).
   */
  async #admitOverCapacity(request: AdmissionRequest): Promise<AdmissionResult> {
    const result = await this.#coalescer.submit(request);
    if (result.kind !== 'rejected') return result;
    const keyed = request.jobs.flatMap((j, i) => (j.idempotency ? [i] : []));
    const live = new Set<number>();
    if (keyed.length > 0) {
      const pipeline = this.#store.redis.pipeline();
      for (const i of keyed) {
        const j = request.jobs[i]!;
        pipeline.exists(this.keys.idempotency(j.tenant, j.idempotency!.key, j.idempotency!.kind));
      }
      const rows = (await this.#store.guard(pipeline.exec())) ?? [];
      keyed.forEach((i, r) => {
        if (Number(rows[r]?.[1]) === 1) live.add(i);
      });
    }
    const fresh = request.jobs.flatMap((j, i) => (live.has(i) ? [] : [{ j, i }]));
    const over = exceedsCapacity(this.#policy, { jobs: fresh.map((f) => f.j) });
    return over ? { ...over, index: fresh[over.index]!.i } : result;
  }

  /** Whether an idempotency record for this key (a producer's, by default) is live (its request admitted, or being admitted). */
  /** Whether a lease token is genuine (signed with this deployment's key, for this namespace); reads nothing. */
  isGenuineToken(token: string): boolean {
    return this.#tokens.verify(token) !== undefined;
  }

  /**
   * Records `digest` as the report an attempt's outcome is decided on, unless one is recorded
   * already (kept as long as a finished lease record). `first`: this one decides; `same`: a
   * redelivery of the deciding report (go on, to the same decision); `different`: another report of
   * the same attempt decided it (CONTRACT §6.4: this one changes nothing).
   */
  async rememberReport(jobId: string, attempt: number, digest: string): Promise<'first' | 'same' | 'different'> {
    const previous = await this.#store.guard(this.#store.redis.set(this.keys.reportMemo(jobId, attempt), digest, 'PX', this.#retentionMs, 'NX', 'GET'));
    return previous === null ? 'first' : previous === digest ? 'same' : 'different';
  }

  async idempotencyKeyLive(tenant: string, key: string, kind: IdempotencyKind = 'producer'): Promise<boolean> {
    return (await this.#store.guard(this.#store.redis.exists(this.keys.idempotency(tenant, key, kind)))) === 1;
  }

  /**
   * What an idempotency key holds: nothing (never admitted under it, or its window passed, or the
   * admission that wrote it was revoked or expired unconfirmed), an admission `in_progress` (its job
   * message not yet confirmed in JetStream), or a `recorded` one, with the record it answers replays
   * with.
   */
  async idempotencyState(tenant: string, key: string, kind: IdempotencyKind = 'producer'): Promise<IdempotencyState> {
    const [record, pending] = (await this.#store.guard(this.#store.redis.hmget(this.keys.idempotency(tenant, key, kind), 'r', 'p'))) ?? [];
    if (record === null || record === undefined) return { state: 'none' };
    return { state: pending === '1' ? 'in_progress' : 'recorded', record };
  }

  /** Settles a lease once; with `reportedAt`, it must have been unexpired when the outcome was reported (see SettleOptions). */
  async settle(token: string, outcome: Outcome, actualCost?: number, opts?: SettleOptions): Promise<SettleResult> {
    const result = await this.#leases.settle(token, outcome, actualCost, opts);
    // then the tenant's shard, best effort: one that misses it frees the lease at its expiry
    if (!result.ok || this.#shards.length === 0) return result;
    // (as reported: a shard's lease expires no earlier than the home's)
    const there = await this.#shardOf(result.lease.tenant).#leases.settle(token, outcome, actualCost, opts).catch(() => undefined);
    // the budget is the shard's: what its lease reserved (a budget given to running jobs: src/attach.ts)
    if (there?.ok && there.lease.reserved > result.lease.reserved) return { ok: true, lease: { ...result.lease, reserved: there.lease.reserved } };
    return result;
  }

  /** A worker claims or extends its lease: expiry max(current, now + ms); the lease is running. */
  extend(token: string, ms: number): Promise<ExtendResult> {
    return this.#extend(token, ms, 'claim');
  }

  /**
   * With tenant shards, the shard's lease is extended first (SHARD_MARGIN_MS further): if it refuses,
   * so does the extension, and the home's expiry never passes the shard's. A claim that keeps the
   * expiry changes nothing there. A lease the shard does not hold (a fail-open one) is the home's alone.
   */
  async #extend(token: string, ms: number, mode: 'claim' | 'wait'): Promise<ExtendResult> {
    if (this.#shards.length === 0 || (mode === 'claim' && ms <= 1)) return this.#leases.extend(token, ms, mode);
    const state = await this.#leases.leaseState(token);
    if (!state.ok) return state;
    // A shard whose state is lost admits nothing of its tenants until it is rebuilt from the
    // durable record (which has this extension: the scheduler records one before granting it).
    const held = await this.#shardOf(state.lease.tenant)
      .#leases.extend(token, ms + SHARD_MARGIN_MS, mode)
      .catch((error: unknown) => (error instanceof StateLost ? undefined : Promise.reject(error)));
    if (held && !held.ok && held.reason !== 'unknown') return held;
    return this.#leases.extend(token, ms, mode);
  }

  /** The tenant shard holding a tenant's own limits (only with tenant shards). */
  #shardOf(tenant: string): Limiter {
    return this.#shards[tenantShardOf(tenant, this.#shards.length)]!;
  }

  /** Lease ids by the shard of their tenant. */
  #byShard(jobs: readonly { readonly tenant: string; readonly id: string }[]): Map<Limiter, string[]> {
    const out = new Map<Limiter, string[]>();
    if (this.#shards.length === 0) return out;
    for (const j of jobs) {
      const shard = this.#shardOf(j.tenant);
      const ids = out.get(shard) ?? [];
      ids.push(j.id);
      out.set(shard, ids);
    }
    return out;
  }

  /** Leases of an admission with their tenants. */
  #leasesOf(admission: Admitted): { tenant: string; id: string }[] {
    return admission.jobs.flatMap((j) => (j.lease ? [{ tenant: j.tenant, id: j.lease.id }] : []));
  }

  /** Has the shards reap their expired leases (at most once a second; their expiry frees their pools anyway: this trims their records and index). */
  #reapShards(): void {
    const now = Date.now();
    if (this.#shards.length === 0 || now - this.#shardsReapedAt < 1_000) return;
    this.#shardsReapedAt = now;
    for (const shard of this.#shards) void shard.#leases.reapExpired(1_000).catch(() => undefined);
  }

  /**
   * The job of a confirmed lease that no worker claimed, whose message no worker was delivered,
   * waits again (CONTRACT §4: it keeps its attempts): the lease is extended and stays unclaimed.
   */
  waitAgain(token: string, ms: number): Promise<ExtendResult> {
    return this.#extend(token, ms, 'wait');
  }

  /** Confirmed, unclaimed leases expiring within `aheadMs` (see `waitAgain`). */
  findUnclaimed(aheadMs: number, max: number): Promise<UnclaimedLease[]> {
    return this.#leases.findUnclaimed(aheadMs, max);
  }

  /** Frees up to `max` expired leases (atomically per call) and returns them, for timed_out outcomes. */
  reapExpired(max: number): Promise<ExpiredLease[]> {
    this.#reapShards();
    return this.#leases.reapExpired(max);
  }

  /** Two-phase reaping, phase one: expired leases, listed without changing anything. */
  findExpired(max: number, opts?: FindExpiredOptions): Promise<ExpiredBatch> {
    this.#reapShards();
    return this.#leases.findExpired(max, opts);
  }

  /** Two-phase reaping, phase two: marks the given entries of a `findExpired` batch expired. */
  markExpired(batch: ExpiredBatch, entries: readonly ExpiredEntry[]): Promise<ExpiredLease[]> {
    return this.#leases.markExpired(batch, entries);
  }

  /** A lease record's state, outcome and context, read without changing it. */
  leaseState(token: string): Promise<LeaseStateResult> {
    return this.#leases.leaseState(token);
  }

  /**
   * Records that JetStream acknowledged the job messages of an admission (`request` is what was
   * admitted): its leases turn from pending to active — from now on a lease that expires is a
   * `timed_out` attempt — and its idempotency keys answer replays as duplicates. Until then a
   * replay is `in_progress`, and a lease that expires pending is no attempt (reap-n.lua).
   * `seqs`: each fresh job's message sequence in the jobs stream, in job order (it tells later
   * whether a worker was ever delivered the message: `findUnclaimed`).
   * Confirmations of concurrent callers share script calls, like admissions.
   */
  confirm(request: AdmissionRequest, admission: Admitted, seqs: readonly number[] = []): Promise<ConfirmResult> {
    const jobs: ConfirmRequest['jobs'][number][] = [];
    let k = 0;
    const requestKey = request.idempotency ? [this.keys.idempotency(request.idempotency.tenant, request.idempotency.key, request.idempotency.kind)] : [];
    admission.jobs.forEach((a, i) => {
      if (a.lease === undefined) return;
      const own = request.jobs[i]?.idempotency;
      const keys = own ? [this.keys.idempotency(a.tenant, own.key, own.kind), ...requestKey] : requestKey;
      jobs.push({ id: a.lease.id, idempotencyKeys: keys, seq: seqs[k++] ?? 0 });
    });
    if (jobs.length === 0) return Promise.resolve({ confirmed: 0, notHeld: [] });
    const confirmed = this.#confirms.submit({ jobs });
    if (this.#shards.length === 0) return confirmed;
    // then in the shards, best effort (a claim confirms a pending lease there too; the waiting room's `waitAgain` needs it confirmed)
    return confirmed.then(async (result) => {
      const held = new Set(result.notHeld);
      const toShards = this.#byShard(this.#leasesOf(admission).filter((l) => !held.has(l.id)));
      await Promise.all([...toShards].map(([shard, ids]) => shard.#confirms.submit({ jobs: ids.map((id) => ({ id, idempotencyKeys: [], seq: 0 })) }).catch(() => undefined)));
      return result;
    });
  }

  /**
   * Fresh leases take over the earlier leases of the same attempts whose job messages JetStream
   * already holds (the earlier admission's lease lapsed unconfirmed and was released as no
   * attempt; its message is what a worker will get): what the fresh lease holds moves to the
   * earlier one, which the caller then confirms. All or nothing; false when any pair does not
   * qualify (takeover-n.lua says which do).
   */
  async takeOver(pairs: readonly { readonly fresh: string; readonly earlier: string; readonly tenant: string }[]): Promise<boolean> {
    if (this.#shards.length > 0) {
      // the shards first (their earlier leases reaped as the home's were): a shard that cannot changes nothing in the home
      const byShard = new Map<Limiter, (typeof pairs)[number][]>();
      for (const p of pairs) byShard.set(this.#shardOf(p.tenant), [...(byShard.get(this.#shardOf(p.tenant)) ?? []), p]);
      for (const [shard, own] of byShard) {
        await shard.#leases.reapExpired(1_000);
        if (!(await shard.#leases.takeOver(own))) return false;
      }
    }
    return this.#leases.takeOver(pairs);
  }

  /**
   * The caller answered 503 for this admission although its job messages may be in JetStream (the
   * publish was never answered): its pending leases keep their limits until they expire, but can no
   * longer be confirmed, extended or settled, and expire as no attempt. Returns how many were withdrawn.
   */
  async withdraw(admission: Admitted): Promise<number> {
    const withdrawn = await this.#leases.withdraw(admission.jobs.flatMap((j) => (j.lease ? [j.lease.id] : [])));
    await Promise.all([...this.#byShard(this.#leasesOf(admission))].map(([shard, ids]) => shard.#leases.withdraw(ids).catch(() => undefined)));
    return withdrawn;
  }

  /**
   * What a worker's outcome says about the dependencies of its job type (CONTRACT §2 `adaptive`,
   * §4 v1.1), applied to their guards in one atomic step (feedback-n.lua):
   * - `throttled`: `dependency` (default the job type's first) is closed to new admissions for
   *   `retryAfterMs`, for every instance, and its effective rate drops (at most once per cooldown);
   * - `succeeded`: closes an open outage circuit; counted for the circuit otherwise (`count`: that many
   *   successes at once, as many in a row);
   * - `failed` (an error or a timeout, not throttling): counted for the circuit of `dependency`, or of
   *   every dependency of the job type when the worker did not say which; may open it.
   * Dependencies with `adaptive.enabled: false` are left alone. `uncharged`: a circuit concerned was
   * open (a failure from before it opened: the attempt proved nothing about the job and does not use up
   * its attempts). A failure that reopens a half-open circuit is charged.
   */
  async feedback(
    jobType: string,
    signal: FeedbackSignal,
    options: {
      readonly dependency?: string;
      readonly retryAfterMs?: number;
      readonly count?: number;
      /** The attempt this outcome is of: its feedback is applied once, and a repeat answers as the first did (feedback-n.lua). */
      readonly once?: { readonly jobId: string; readonly attempt: number };
    } = {},
  ): Promise<FeedbackResult> {
    const policy = this.#policy;
    const jt = policy.jobType(jobType);
    const own = jt?.dependencies.map((d) => d.name) ?? [];
    const named = options.dependency !== undefined && own.includes(options.dependency) ? options.dependency : undefined;
    const concerned = signal === 'throttled' ? [named ?? own[0]] : signal === 'failed' && named !== undefined ? [named] : own;
    const deps = concerned.filter((d): d is string => d !== undefined && (policy.document.dependencies[d]?.adaptive?.enabled ?? true));
    if (deps.length === 0) return { uncharged: false, transitions: [] };
    const ms = signal === 'throttled' ? Math.min(Math.max(0, Math.round(options.retryAfterMs ?? 0)), 86_400_000) : 0;
    // Several successes may be told at once (the scheduler sums those of one moment per job type).
    const count = signal === 'succeeded' ? Math.max(1, Math.floor(options.count ?? 1)) : 1;
    const once = options.once;
    const args: number[] = [this.#clock.arg(), SIGNAL[signal], ms, count, deps.length, once ? this.#retentionMs : 0];
    for (const d of deps) args.push(Math.round((policy.document.dependencies[d]?.adaptive?.minRatio ?? 0.1) * ADAPTIVE.ppm));
    const keys = deps.map((d) => this.keys.limit(limitId.depGuard(d)));
    if (once) keys.push(this.keys.feedbackMemo(once.jobId, once.attempt));
    const reply = (await this.#store.run('feedback', keys, args)) as number[];
    const transitions: { dependency: string; transition: Exclude<Transition, 'none'> }[] = [];
    let uncharged = false;
    deps.forEach((dependency, i) => {
      if (Number(reply[i * 2]) === 1) uncharged = true;
      const t = TRANSITION_NAMES[Number(reply[i * 2 + 1])];
      if (t !== undefined && t !== 'none') transitions.push({ dependency, transition: t });
    });
    return { uncharged, transitions };
  }

  /** A dependency's live state (GET /v1/dependencies/{name}/state); undefined when the policy has no such dependency. */
  async dependencyState(name: string): Promise<DependencyState | undefined> {
    const policy = this.#policy;
    if (!Object.hasOwn(policy.document.dependencies, name)) return undefined;
    const p = policy.document.dependencies[name]!;
    const pool = this.keys.limit(limitId.depConcurrency(name));
    const r = ((await this.#store.run('depState', [this.keys.limit(limitId.depGuard(name)), this.keys.limit(limitId.depAttempts(name)), pool, this.keys.poolExpiries(pool)], [this.#clock.arg()])) as number[]).map(Number);
    const [at = 0, ppm = ADAPTIVE.ppm, cooldownMs = 0, circuit = 0, waitMs = 0, firsts = 0, retries = 0, inFlight = 0, pausedUntil = 0] = r;
    const adaptive = p.adaptive?.enabled ?? true;
    const ratio = adaptive ? Math.max(p.adaptive?.minRatio ?? 0.1, ppm / ADAPTIVE.ppm) : 1;
    const scaled = (rate: typeof p.rate) => (rate ? { limit: Math.round(rate.limit * ratio * 1000) / 1000, periodMs: rate.periodMs } : null);
    const ratioBudget = p.retryBudget?.ratio ?? 0.2;
    const allowance = Math.floor((p.retryBudget?.minPerSec ?? 10) * 10);
    return {
      dependency: name,
      at,
      adaptive,
      declared: { rate: p.rate ?? null, costRate: p.costRate ?? null, concurrency: p.concurrency ?? null },
      effective: { ratio: Math.round(ratio * 10_000) / 10_000, rate: scaled(p.rate), costRate: scaled(p.costRate) },
      cooldownUntil: adaptive && cooldownMs > 0 ? at + cooldownMs : null,
      pausedUntil: pausedUntil === 0 ? null : pausedUntil >= ADAPTIVE.pausedForever ? Infinity : pausedUntil,
      circuit: !adaptive || circuit === 0 ? { state: 'closed', probeAt: null } : circuit === 1 ? { state: 'open', probeAt: at + waitMs } : { state: 'half_open', probeAt: at },
      inFlight,
      retryBudget: { windowMs: ADAPTIVE.retryWindowS * 1000, firstAttempts: firsts, retries, allowed: Math.floor(firsts * ratioBudget + allowance) },
    };
  }

  /**
   * An admin pauses a dependency or a job type (CONTRACT §5 v1.1): admission refuses its jobs with
   * `paused` (mode `queue` jobs wait in the room) until `untilMs`, or until resumed when omitted.
   * Shared by every instance through its guard in Redis. Undefined when the policy has no such target.
   */
  async pause(target: PauseTarget, untilMs?: number): Promise<PauseState | undefined> {
    const key = this.#guardOf(target);
    if (key === undefined) return undefined;
    const r = (await this.#store.run('pause', [key], [this.#clock.arg(), 1, untilMs !== undefined && Number.isFinite(untilMs) ? Math.max(1, Math.round(untilMs)) : 0])) as number[];
    return pauseState(Number(r[1]));
  }

  /** Lifts a pause (the waiting room should be woken: its jobs may go). Undefined when the policy has no such target. */
  async resume(target: PauseTarget): Promise<PauseState | undefined> {
    const key = this.#guardOf(target);
    if (key === undefined) return undefined;
    await this.#store.run('pause', [key], [this.#clock.arg(), 0, 0]);
    return { paused: false };
  }

  /** Whether a dependency or job type is paused now. Undefined when the policy has no such target. */
  async pauseState(target: PauseTarget): Promise<PauseState | undefined> {
    const key = this.#guardOf(target);
    if (key === undefined) return undefined;
    const [until, now] = await this.#store.guard(Promise.all([this.#store.redis.hget(key, 'pu'), this.#clock.read()]));
    const u = Number(until ?? 0);
    return pauseState(u > now ? u : 0);
  }

  /**
   * Drops the pause of a dependency or job type a policy change removed (policy-admin, once the
   * change is stored), so that one created again under the name starts unpaused. Unlike `resume` it
   * does not look the target up in the running policy: this instance may already run the version
   * without it.
   */
  async dropPause(target: PauseTarget): Promise<void> {
    await this.#store.run('pause', [this.#guardKey(target)], [this.#clock.arg(), 0, 0]);
  }

  /** The target's guard key, when the running policy has the target. */
  #guardOf(target: PauseTarget): string | undefined {
    const doc = this.#policy.document;
    const known = 'dependency' in target ? Object.hasOwn(doc.dependencies, target.dependency) : Object.hasOwn(doc.jobTypes, target.jobType);
    return known ? this.#guardKey(target) : undefined;
  }

  #guardKey(target: PauseTarget): string {
    return this.keys.limit('dependency' in target ? limitId.depGuard(target.dependency) : limitId.jobTypeGuard(target.jobType));
  }

  /** Undoes an admission whose publish failed: rate tokens, slots, budget and idempotency records. */
  async revoke(admission: Admitted): Promise<void> {
    await this.#leases.revoke(admission);
    await Promise.all([...this.#byShard(this.#leasesOf(admission))].map(([shard, ids]) => shard.#leases.revokeIds(ids).catch(() => undefined)));
  }

  /** A tenant's prepaid credits (`account: false`: it has none, and credits do not limit it). */
  creditsOf(tenant: string): Promise<CreditsState> {
    return this.#reads.credits(tenant);
  }

  /** Tops up a tenant's credits once per Idempotency-Key (src/credits.ts). Throws StateLost while the state is not trusted. */
  topUpCredits(tenant: string, idempotencyKey: string, amount: number): Promise<TopUpResult> {
    return this.credits.topUp(tenant, idempotencyKey, amount);
  }

  /** The units these token buckets hold now (ReadModels.bucketLevels). */
  async bucketLevels(specs: readonly { readonly id: string; readonly limit: number; readonly periodMs: number; readonly capacity: number }[]): Promise<Map<string, number>> {
    if (this.#shards.length === 0) return this.#reads.bucketLevels(specs);
    // each slot reads its own buckets (one pipeline per slot: a cluster serves a pipeline on one node)
    const bySlot = new Map<Limiter, (typeof specs)[number][]>();
    for (const spec of specs) {
      const slot = isTenantShardId(spec.id) ? this.#shardOf(tenantOfId(spec.id)) : this;
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), spec]);
    }
    const levels = await Promise.all([...bySlot].map(([slot, own]) => slot.#reads.bucketLevels(own)));
    return new Map(levels.flatMap((m) => [...m]));
  }

  async usage(tenant: string): Promise<TenantUsage> {
    const usage = await this.#reads.usage(this.#policy, tenant);
    if (this.#shards.length === 0 || usage.budget === null) return usage;
    // the budget is in the tenant's shard
    return { ...usage, budget: (await this.#shardOf(tenant).#reads.usage(this.#policy, tenant)).budget };
  }

  inspect(): Promise<LimiterSnapshot> {
    return this.#reads.inspect(this.#policy);
  }

  /** One admission call: the batch the coalescer let go, encoded against the policy of this moment. */
  async #send(batch: Pending<AdmissionRequest, AdmissionResult>[]): Promise<void> {
    const call = this.#encode(batch, this.#tokens.nextCallId());
    for (const { item, index } of call.unknown) item.resolve({ kind: 'unknown_job_type', index });
    if (call.groups.length === 0) return;
    if (this.#shards.length > 0) return this.#sendSharded(call);
    const results = await this.#run(call);
    if (results instanceof Error) for (const g of call.groups) g.item.reject(results);
    else this.#answer(call, results);
  }

  /** One admission call of this slot's limits (`numbering`: the ordinals a mirrored or resent call keeps, admit-codec.ts). */
  #encode<T extends { readonly request: AdmissionRequest }>(items: readonly T[], callId: string, numbering: Pick<AdmitCallContext, 'firsts' | 'ordinals'> = {}): AdmitCall<T> {
    return encodeAdmitCall(items, (item) => item.request, {
      keys: this.keys,
      policy: this.#policy,
      callId,
      now: this.#clock.arg(),
      recoveryMs: this.#recoveryWindow(),
      retentionMs: this.#retentionMs,
      ...(this.#include ? { include: this.#include } : {}),
      ...numbering,
    });
  }

  /** Runs an admission call in this slot: one answer per group, or the fault that failed them all. */
  async #run(call: AdmitCall<Pending<AdmissionRequest, AdmissionResult>>): Promise<(AdmissionResult | JanusError)[] | Error> {
    this.#calls += 1;
    this.#jobsSent += call.jobs;
    try {
      // An admission that took effect although its callers were refused (it answered too late, or
      // no replica acknowledged it) is undone at once rather than held until its leases expire.
      const reply = await this.#store.run('admit', call.keys, call.args, { onAbandoned: (late) => this.#undoAbandoned(call, late) });
      return decodeAdmitReply(reply, call, this.#tokens);
    } catch (error) {
      return error instanceof Error ? error : new StoreUnavailable(String(error));
    }
  }

  #answer(call: AdmitCall<Pending<AdmissionRequest, AdmissionResult>>, results: readonly (AdmissionResult | JanusError)[]): void {
    results.forEach((result, i) => {
      const { item } = call.groups[i]!;
      if (result instanceof JanusError) item.reject(result);
      else item.resolve(result);
    });
  }

  /**
   * A sharded admission (src/shards.ts): each request in two slots, under the same lease ids.
   * - Without idempotency keys, the tenant's shard decides first and the namespace's slot then
   *   decides what the shards admitted: a tenant over its own limits is refused without taking
   *   anything of what it shares with other tenants (a dependency's slots and tokens).
   * - With keys, the namespace's slot (where the keys are) decides first — a replay is answered as
   *   one even when the tenant is at its limits — and the shards then decide the jobs it admitted.
   * A group that the second slot refuses, or that a slot could not decide, is revoked wherever it was
   * admitted, and answered with that refusal or fault. (The namespace's leases record the budget
   * their shard reserves: admit-n.lua.)
   */
  async #sendSharded(call: AdmitCall<Pending<AdmissionRequest, AdmissionResult>>): Promise<void> {
    const keyed = (r: AdmissionRequest) => r.idempotency !== undefined || r.jobs.some((j) => j.idempotency !== undefined);
    const first = new Map<number, number[]>();
    call.groups.forEach((g, i) => {
      if (!keyed(g.request)) first.set(i, g.request.jobs.map((_, j) => j));
    });
    const inShards = await this.#decideInShards(call, first);
    // what goes to the namespace's slot: keyed groups, and the unkeyed ones every shard admitted
    const home: number[] = [];
    const out: (AdmissionResult | JanusError | undefined)[] = call.groups.map(() => undefined);
    call.groups.forEach((_, i) => {
      const said = inShards.get(i);
      if (said === undefined || said.ok) home.push(i);
      else out[i] = said.answer;
    });
    const undo: Promise<unknown>[] = [...inShards.entries()].filter(([i]) => out[i] !== undefined).map(([, said]) => this.#revokeInShards(said.admitted));
    if (home.length > 0) {
      const again = this.#encode(
        home.map((i) => call.groups[i]!.item),
        call.callId,
        { firsts: home.map((i) => call.groups[i]!.first) },
      );
      let results = await this.#run(again);
      if (results instanceof Error) {
        results = again.groups.map(() => (results instanceof JanusError ? results : new StoreUnavailable(String(results))));
      }
      // the keyed groups it admitted: then their shards
      const skip = new Set(home.flatMap((i, j) => (first.has(i) ? [j] : [])));
      const decided = await this.#mirror(again, results, skip);
      home.forEach((i, j) => {
        const result = decided[j]!;
        out[i] = result;
        const said = inShards.get(i);
        // an unkeyed group the namespace's slot did not admit gives back what its shards took
        if (said?.ok && (result instanceof JanusError || result.kind !== 'admitted')) undo.push(this.#revokeInShards(said.admitted));
      });
    }
    await Promise.all(undo);
    this.#answer(call, out as (AdmissionResult | JanusError)[]);
  }

  /**
   * The jobs `jobsOf` names (group index → job indexes) decided in their tenants' shards, in one
   * call per shard: per group, whether every shard admitted its part (and which leases it holds
   * where), or the first refusal or fault.
   */
  async #decideInShards(
    call: AdmitCall<Pending<AdmissionRequest, AdmissionResult>>,
    jobsOf: ReadonlyMap<number, readonly number[]>,
  ): Promise<Map<number, { readonly ok: true; readonly admitted: Map<number, string[]> } | { readonly ok: false; readonly answer: AdmissionResult | JanusError; readonly admitted: Map<number, string[]> }>> {
    const count = this.#shards.length;
    const parts = new Map<number, Map<number, { request: { jobs: AdmissionRequest['jobs'][number][] }; indexes: number[]; ordinals: number[] }>>();
    for (const [g, jobs] of jobsOf) {
      const group = call.groups[g]!;
      for (const i of jobs) {
        const job = group.request.jobs[i]!;
        const k = tenantShardOf(job.tenant, count);
        let byGroup = parts.get(k);
        if (!byGroup) parts.set(k, (byGroup = new Map()));
        let part = byGroup.get(g);
        if (!part) byGroup.set(g, (part = { request: { jobs: [] }, indexes: [], ordinals: [] }));
        // no idempotency in a shard: the namespace's slot decides replays
        const { idempotency: _idem, ...bare } = job;
        part.request.jobs.push(bare);
        part.indexes.push(i);
        part.ordinals.push(group.first + i);
      }
    }
    const verdicts = new Map<number, { ok: true; admitted: Map<number, string[]> } | { ok: false; answer: AdmissionResult | JanusError; admitted: Map<number, string[]> }>();
    for (const g of jobsOf.keys()) verdicts.set(g, { ok: true, admitted: new Map() });
    await Promise.all(
      [...parts].map(async ([k, byGroup]) => {
        const groups = [...byGroup.values()];
        let answers: (MirrorAnswer | JanusError)[];
        try {
          answers = await this.#shards[k]!.admitMirror(call.callId, groups);
        } catch (error) {
          answers = groups.map(() => (error instanceof JanusError ? error : new StoreUnavailable(`tenant shard ${k}: ${String(error)}`)));
        }
        [...byGroup.keys()].forEach((g, j) => {
          const answer = answers[j]!;
          const part = groups[j]!;
          const verdict = verdicts.get(g)!;
          if (answer instanceof StateLost) this.#reopenShardLater(k);
          if (!(answer instanceof JanusError) && answer.kind === 'admitted') {
            verdict.admitted.set(k, part.ordinals.map((o) => `${call.callId}_${o}`));
          } else if (verdict.ok) {
            const failed: AdmissionResult | JanusError =
              answer instanceof JanusError ? answer : { kind: 'rejected', index: part.indexes[answer.index] ?? 0, reason: answer.reason, retryAfterMs: answer.retryAfterMs };
            verdicts.set(g, { ok: false, answer: failed, admitted: verdict.admitted });
          }
        });
      }),
    );
    return verdicts;
  }

  /** Gives back what shards admitted (shard → lease ids), best effort: what is missed expires. */
  #revokeInShards(admitted: ReadonlyMap<number, readonly string[]>): Promise<unknown> {
    return Promise.all([...admitted].map(([k, ids]) => this.#shards[k]!.#leases.revokeIds(ids).catch(() => undefined)));
  }

  /**
   * The second step of a keyed sharded admission (see #sendSharded): the jobs the namespace's slot
   * admitted (of the groups not in `skip`) are decided in their tenants' shards. A group a shard
   * refuses or could not decide is revoked in the namespace's slot and in the shards that admitted
   * it, and answered with that refusal or fault.
   */
  async #mirror(
    call: AdmitCall<Pending<AdmissionRequest, AdmissionResult>>,
    results: readonly (AdmissionResult | JanusError)[],
    skip: ReadonlySet<number>,
  ): Promise<(AdmissionResult | JanusError)[]> {
    const jobsOf = new Map<number, number[]>();
    results.forEach((result, g) => {
      if (skip.has(g) || result instanceof JanusError || result.kind !== 'admitted') return;
      const fresh = result.jobs.flatMap((job, i) => (job.lease === undefined ? [] : [i]));
      if (fresh.length > 0) jobsOf.set(g, fresh);
    });
    if (jobsOf.size === 0) return [...results];
    const verdicts = await this.#decideInShards(call, jobsOf);
    const undo: Promise<unknown>[] = [];
    const out = results.map((result, g) => {
      const said = verdicts.get(g);
      if (said === undefined || said.ok || result instanceof JanusError || result.kind !== 'admitted') return result;
      undo.push(this.#leases.revoke(result).catch(() => undefined), this.#revokeInShards(said.admitted));
      return said.answer;
    });
    await Promise.all(undo);
    return out;
  }

  /**
   * A tenant shard decides its part of a namespace call (see #mirror): the same call id, each job
   * at the ordinal the namespace's call gave it. Not coalesced (the namespace's call was). Waits,
   * as admission does, for a policy change that concerns these tenants to carry the state over.
   */
  async admitMirror(callId: string, groups: readonly MirrorGroup[]): Promise<(MirrorAnswer | JanusError)[]> {
    if (this.#transitionPending.size > 0 && groups.some((g) => this.#concernsTransition(g.request))) await this.#awaitTransition();
    const call = this.#encode(groups, callId, { ordinals: groups.flatMap((g) => g.ordinals) });
    if (call.unknown.length > 0) throw new StoreUnavailable('a tenant shard does not know a job type the namespace admitted (a policy change on its way)');
    const ids = groups.flatMap((g) => g.ordinals.map((o) => `${callId}_${o}`));
    const reply = await this.#store.run('admit', call.keys, call.args, { onAbandoned: () => this.#leases.revokeIds(ids).catch(() => undefined) });
    return decodeMirrorReply(reply, call);
  }

  /**
   * An admission call its callers were told failed (503: nothing published) but that Redis ran —
   * no replica acknowledged it, or it answered after the timeout: what it granted is revoked, best
   * effort, rather than held until its leases expire (while a primary has no replica every attempt
   * would otherwise keep slots and tokens no job uses). A revoke that is lost in a failover only
   * keeps them held: conservative.
   */
  async #undoAbandoned(call: AdmitCall<Pending<AdmissionRequest, AdmissionResult>>, reply: unknown): Promise<void> {
    let results: (AdmissionResult | JanusError)[];
    try {
      results = decodeAdmitReply(reply, call, this.#tokens);
    } catch {
      return;
    }
    await Promise.all(results.map((r) => (r instanceof JanusError || r.kind !== 'admitted' ? undefined : this.#leases.revoke(r).catch(() => undefined))));
  }

  /** One confirm script call for the confirmations the coalescer let go together. */
  async #sendConfirms(batch: Pending<ConfirmRequest, ConfirmResult>[]): Promise<void> {
    const result = await this.#leases.confirm(batch.flatMap((p) => p.request.jobs));
    const notHeld = new Set(result.notHeld);
    for (const p of batch) {
      const mine = p.request.jobs.filter((j) => notHeld.has(j.id)).map((j) => j.id);
      p.resolve({ confirmed: p.request.jobs.length - mine.length, notHeld: mine });
    }
  }

  /**
   * A tenant shard lost its state: a StateRecovery of its own (libs/execution) rebuilds it from the
   * durable record; where none runs (or it cannot rebuild), this instance reopens it once its
   * fail-closed window has passed, if nothing else did first (the rebuild holds the lock meanwhile).
   */
  #reopenShardLater(k: number): void {
    const shard = this.#shards[k];
    if (shard === undefined || this.#reopening.has(k)) return;
    this.#reopening.add(k);
    const token = randomUUID();
    const attempt = async (): Promise<void> => {
      let again: number | undefined;
      try {
        const now = await shard.now();
        const status = await shard.stateStatus();
        if (status.trusted) again = undefined;
        else if (status.recoveringUntil !== undefined && now < status.recoveringUntil) again = status.recoveringUntil - now + 50;
        else if (!(await shard.acquireRebuildLock(token, 10_000))) again = 1_000;
        else {
          const opened = await shard.openState(token, 'fallback');
          again = opened.kind === 'too_early' ? Math.max(50, opened.recoveringUntil - now + 50) : opened.kind === 'lock_lost' ? 1_000 : undefined;
        }
      } catch {
        again = 1_000;
      }
      // (looked at again at least every second: Redis time, not this host's, says when)
      if (again === undefined) this.#reopening.delete(k);
      else setTimeout(() => void attempt(), Math.min(again, 1_000)).unref?.();
    };
    void attempt();
  }

  #recoveryWindow(): number {
    return this.#recoveryMs ?? Math.max(this.#policy.maxTimeoutMs, 1000);
  }
}
