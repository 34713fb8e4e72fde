import { createHash } from 'node:crypto';

/**
 * Whose idempotency key it is: a producer's (`Idempotency-Key`), the scheduler's, for a retry, or
 * a payload's (a job type with `dedupe`: `<jobType>:<payload hash>`, @janus/contracts payloadDedupeKey).
 */
export type IdempotencyKind = 'producer' | 'retry' | 'dedupe';

const IDEMPOTENCY_SPACE: Readonly<Record<IdempotencyKind, string>> = { producer: 'idem', retry: 'retry-idem', dedupe: 'dedupe' };

/**
 * Every Redis key Janus touches is built here (the limiter's, and the live admission counters that
 * ingress writes and the dashboard reads).
 *
 * Layout: `<ns>:{<ns>}:<kind>:…`. The `{<ns>}` hash tag puts every key of a namespace in ONE Redis
 * Cluster slot. That is deliberate: one admission checks and consumes dependency, tenant, global and
 * budget state (plus leases and idempotency records) in a single atomic Lua script, and Redis only
 * runs a script whose keys share a slot. A cluster therefore gives a namespace one shard's
 * throughput; scale further by giving independent deployments (or dependency groups) their own
 * namespace. The leading `<ns>:` lets `SCAN MATCH <ns>:*` find and drop a namespace.
 *
 * With tenant shards (src/shards.ts) a namespace spreads over several slots: the tenant-wide limits
 * (rate, concurrency, budget) of each tenant live in one of K shard slots, with their own copy of
 * the leases that hold them; everything else stays in the namespace's slot.
 */
export class Keys {
  readonly prefix: string;

  /**
   * `tag`: the hash tag of the slot these keys live in — the namespace's own, or a tenant shard's
   * (`<ns>:tenants:<k>`, src/shards.ts), whose keys are then `<ns>:{<ns>:tenants:<k>}:…`.
   */
  constructor(
    readonly namespace: string,
    readonly tag: string = namespace,
  ) {
    this.prefix = `${namespace}:{${tag}}:`;
  }

  /** The full key of a limit id produced by the `limitId` builders below. */
  limit(id: string): string {
    return this.prefix + id;
  }

  /** Exists while the stored state is trustworthy (written once; never expires). */
  get epoch(): string {
    return `${this.prefix}epoch`;
  }

  /** Redis ms until which admission stays closed after the state was lost. */
  get recoveringUntil(): string {
    return `${this.prefix}recovering-until`;
  }

  /** How many tenant shards the namespace's state is spread over (src/shards.ts; a STRING, written once). */
  get tenantShards(): string {
    return `${this.prefix}tenant-shards`;
  }

  /** The policy the state was last carried over to: HASH v, doc (policy-mark-1.lua). */
  get appliedPolicy(): string {
    return `${this.prefix}policy:applied`;
  }

  /** Held (with its holder's token) by the one instance rebuilding a lost state (src/restore.ts). */
  get rebuildLock(): string {
    return `${this.prefix}rebuild-lock`;
  }

  /** ZSET of '<call id>@<expiresAt>' (a call's leases) and '<lease id>' (an extended or restored lease) → expiresAt, for reapExpired. */
  get leaseExpiry(): string {
    return `${this.prefix}leases:expiry`;
  }

  /** A concurrency pool is a HASH (the limit key) plus this ZSET of the expiry ms it counts (src/lua/includes/pool.lua). */
  poolExpiries(poolKey: string): string {
    return `${poolKey}:exp`;
  }

  /** The hash holding the lease records of one admission call (see `leaseLocation`). */
  leases(callId: string): string {
    return `${this.prefix}leases:${callId}`;
  }

  /**
   * Where a lease's record lives: lease ids are `<call id>_<n>`, the record is field `<n>` of the
   * call's hash (one HSET per admission call instead of one key per job). Undefined for an id that
   * does not have that shape.
   */
  leaseLocation(leaseId: string): { readonly key: string; readonly field: string } | undefined {
    const parts = parseLeaseId(leaseId);
    return parts && { key: this.leases(parts.callId), field: parts.n };
  }

  /** The report an attempt's outcome was decided on (its digest; Limiter.rememberReport). */
  reportMemo(jobId: string, attempt: number): string {
    return `${this.prefix}report:${jobId}.${attempt}`;
  }

  /** The memo of one attempt's outcome feedback (feedback-n.lua): applied once, answered the same when repeated. */
  feedbackMemo(jobId: string, attempt: number): string {
    return `${this.prefix}feedback:${jobId}.${attempt}`;
  }

  /**
   * The credits outbox: a STREAM to which every script that moves credits appends the movement in
   * the same atomic step; a relay publishes each entry to the ledger stream (src/credits.ts).
   */
  get creditsOutbox(): string {
    return `${this.prefix}credits:outbox`;
  }

  /** A tenant's credits hash (`limitId.tenantCredits`). */
  credits(tenant: string): string {
    return this.limit(limitId.tenantCredits(tenant));
  }

  /** What precedes a tenant's name in its credits key (reap-n.lua builds the key from a lease's tenant). */
  get creditsPrefix(): string {
    return `${this.prefix}tenant:`;
  }

  /** The marker of one top-up (tenant, Idempotency-Key digest): a repeated key tops up once. */
  creditsTopup(tenant: string, digest: string): string {
    return `${this.prefix}credits:topup:${tenant}:${digest}`;
  }

  /** Live admission counters of one second: a hash per namespace and second (see @janus/observability live-stats). */
  liveStats(epochSecond: number): string {
    return `${this.prefix}stats:${epochSecond}`;
  }

  /**
   * Idempotency keys are hashed: they are caller text of up to 200 characters. Producers' keys and
   * Janus's own retry keys (`retry:<jobId>.<attempt>`) live in separate key spaces (`idem:` and
   * `retry-idem:`), so no producer key, however it is spelled, can answer for a retry; payload
   * dedupe keys have theirs (`dedupe:`) too.
   */
  idempotency(tenant: string, key: string, kind: IdempotencyKind = 'producer'): string {
    const digest = createHash('sha256').update(key).digest('base64url').slice(0, 32);
    return `${this.prefix}${IDEMPOTENCY_SPACE[kind]}:${tenant}:${digest}`;
  }
}

const LEASE_ID = /^([A-Za-z0-9_-]{1,48})_([1-9][0-9]{0,5})$/;

/**
 * What ends the call id of a fail-open admission (Redis unreachable, every dependency `failMode:
 * open`): admission's own call ids end with a lowercase base-36 counter, so an uppercase `F` tells
 * a lease Janus has to adopt (adopt-n.lua) from one whose record is simply gone.
 */
export const FAIL_OPEN_CALL_SUFFIX = 'F';

/** Whether a lease id is one a fail-open admission issued (see FAIL_OPEN_CALL_SUFFIX). */
export function isFailOpenLeaseId(leaseId: string): boolean {
  return parseLeaseId(leaseId)?.callId.endsWith(FAIL_OPEN_CALL_SUFFIX) === true;
}

/** A lease id `<call id>_<n>` (n = the job's ordinal in its admission call, from 1), or undefined. */
export function parseLeaseId(leaseId: string): { readonly callId: string; readonly n: string } | undefined {
  const m = LEASE_ID.exec(leaseId);
  return m ? { callId: m[1]!, n: m[2]! } : undefined;
}

/** Namespace-free limit ids; `Keys.limit` turns them into keys. */
export const limitId = {
  depRate: (dep: string) => `dep:${dep}:rate`,
  depCostRate: (dep: string) => `dep:${dep}:cost`,
  depConcurrency: (dep: string) => `dep:${dep}:conc`,
  depTenantRate: (dep: string, tenant: string) => `dep:${dep}:tenant:${tenant}:rate`,
  depTenantCostRate: (dep: string, tenant: string) => `dep:${dep}:tenant:${tenant}:cost`,
  depTenantConcurrency: (dep: string, tenant: string) => `dep:${dep}:tenant:${tenant}:conc`,
  tenantRate: (tenant: string) => `tenant:${tenant}:rate`,
  tenantConcurrency: (tenant: string) => `tenant:${tenant}:conc`,
  /** One hash per tenant holding the current window start and the amount used in it. */
  tenantBudget: (tenant: string) => `tenant:${tenant}:budget`,
  /** A tenant's prepaid credits: HASH b = balance, r = reserved, @<lease id> = reserved by that lease (src/lua/includes/credits.lua). */
  tenantCredits: (tenant: string) => `tenant:${tenant}:credits`,
  /** An adaptive dependency's guard: cooldown, effective-rate ratio, outage circuit (src/lua/includes/guard.lua). */
  depGuard: (dep: string) => `dep:${dep}:guard`,
  /** A dependency's first attempts and retries per second, for its retry budget (src/lua/includes/ring.lua). */
  depAttempts: (dep: string) => `dep:${dep}:attempts`,
  /** A job type's guard: only an admin's pause (src/lua/includes/guard.lua, field pu). */
  jobTypeGuard: (jobType: string) => `type:${jobType}:guard`,
  globalRate: () => 'global:rate',
  globalConcurrency: () => 'global:conc',
} as const;
