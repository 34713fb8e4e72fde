/**
 * Tenant shards: one namespace's admission state spread over several Redis Cluster slots.
 *
 * Without shards every key of a namespace shares the `{<ns>}` hash tag: one slot, one primary. With
 * `tenantShards: K`, each tenant's own limits — its rate, its concurrency pool and its budget — live
 * in shard `fnv1a(tenant) mod K`, whose keys carry the tag `{<ns>:tenants:<k>}`; everything else
 * (dependency limits and their per-tenant caps, global limits, guards, retry budgets, credits,
 * idempotency records, the lease records that the apps work with) stays in the namespace's slot,
 * the *home*. An admission then takes two atomic steps in two slots, never one over both, under the
 * same call id and job ordinals (src/lua/admit-n.lua), so the same lease ids and tokens in both:
 *
 * - a request without idempotency keys is decided in its tenant's shard first, then in the home: a
 *   tenant over its own limits takes nothing it shares with other tenants, not even for a moment;
 * - a request with keys is decided in the home first, where the keys are (a replay is answered as
 *   one even when its tenant is at its limits), then its fresh jobs in the shard.
 *
 * A refusal or a fault in the second slot revokes what the first granted (revoke-n.lua, as a failed
 * publish does) before anyone hears "admitted": every slot only ever grants what its own limits
 * allow, so no limit is exceeded, and a crash between the two steps leaves pending leases that
 * expire as no attempt after the job type's timeoutMs: no reservation outlives a lease.
 *
 * Every later step of a lease runs in both slots, in the order that keeps the shard's hold at least
 * as long as the home's: an extension (a worker's heartbeat, the waiting room's `waitAgain`) reaches
 * the shard first, `SHARD_MARGIN_MS` further, and fails if the shard refuses it; a settle, revoke or
 * withdrawal reaches the home first and the shard afterwards, best effort (a shard that missed it
 * frees the lease when it expires there). Each shard reaps its own expired leases; only the home's
 * expiry is an attempt's `timed_out`.
 *
 * A shard whose state is lost is rebuilt from the durable record by a StateRecovery of its own
 * (libs/execution), as the home is. What a shard does not do: adopt fail-open leases (a dependency
 * that fails open runs without limits, and its adopted leases count in the home's pools only).
 */
import type { LimitSpec } from './policy.js';

/** A shard's expiry runs this much past the home's (an extension reaches the shard first): covers the two calls' gap and small clock differences between primaries. */
export const SHARD_MARGIN_MS = 1_000;

/** The most tenant shards a namespace may have. */
export const MAX_TENANT_SHARDS = 1_024;

/** The hash tag of tenant shard `k` of a namespace. */
export function shardTag(namespace: string, k: number): string {
  return `${namespace}:tenants:${k}`;
}

/** The shard a tenant's own limits live in (FNV-1a of its name, modulo the shard count). */
export function tenantShardOf(tenant: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tenant.length; i++) {
    h ^= tenant.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}

/** Whether a limit lives in its tenant's shard: the tenant's own rate, concurrency and budget (its credits stay home). */
export function inTenantShard(spec: Pick<LimitSpec, 'kind' | 'ref'>): boolean {
  return spec.ref.scope === 'tenant' && spec.kind !== 'credits';
}

/** The same, by limit id (src/keys.ts limitId: `tenant:<name>:rate|conc|budget`; a window's keys add suffixes). */
export function isTenantShardId(id: string): boolean {
  return id.startsWith('tenant:') && !id.endsWith(':credits');
}
