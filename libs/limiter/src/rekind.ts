/**
 * A rate whose `kind` a policy change switches (bucket ↔ window): its state is carried to the new
 * kind's key (rekind-n.lua), so that the new kind does not start empty and admit a whole limit again
 * at once (CONTRACT §6.1, "across policy changes"). A window whose `periodMs` changes: its units
 * move to leave the new period after their admission. The rates concerned are the dependencies'
 * (`rate`, `costRate`, and their `perTenant` ones for every tenant that has state), the tenants' and
 * the global one. The Limiter runs it with the attach pass (src/attach.ts) when a policy is applied.
 */
import type { Cluster, Redis } from 'ioredis';
import type { PolicyDocument, Rate } from '@janus/contracts';
import { REKIND_ANSWER } from './codes.js';
import type { Clock } from './clock.js';
import { limitId, type Keys } from './keys.js';
import type { ScriptStore } from './store.js';

/** A rate that changed kind: its bucket id (the window's is `<id>:win`), the rate before and after. */
export interface KindChange {
  readonly id: string;
  readonly before: Rate;
  readonly after: Rate;
  /** A perTenant rate: its id for a tenant (the tenants with state are found in Redis). */
  readonly perTenant?: (tenant: string) => string;
}

const kindOf = (r: Rate | undefined) => (r === undefined ? undefined : (r.kind ?? 'bucket'));

/** The rates whose kind differs between two policies (present in both), and the windows whose periodMs does. */
export function kindChanges(before: PolicyDocument, after: PolicyDocument): KindChange[] {
  const out: KindChange[] = [];
  const add = (id: string, b: Rate | undefined, a: Rate | undefined, perTenant?: (tenant: string) => string) => {
    if (b === undefined || a === undefined) return;
    const changed = kindOf(b) !== kindOf(a) || (kindOf(a) === 'window' && a.periodMs !== b.periodMs);
    if (changed) out.push({ id, before: b, after: a, ...(perTenant ? { perTenant } : {}) });
  };
  for (const [name, dep] of Object.entries(after.dependencies)) {
    const old = Object.hasOwn(before.dependencies, name) ? before.dependencies[name] : undefined;
    if (old === undefined) continue;
    add(limitId.depRate(name), old.rate, dep.rate);
    add(limitId.depCostRate(name), old.costRate, dep.costRate);
    add(limitId.depTenantRate(name, '*'), old.perTenant?.rate, dep.perTenant?.rate, (t) => limitId.depTenantRate(name, t));
    add(limitId.depTenantCostRate(name, '*'), old.perTenant?.costRate, dep.perTenant?.costRate, (t) => limitId.depTenantCostRate(name, t));
  }
  for (const [name, tenant] of Object.entries(after.tenants)) {
    const old = Object.hasOwn(before.tenants, name) ? before.tenants[name] : undefined;
    if (old !== undefined) add(limitId.tenantRate(name), old.rate, tenant.rate);
  }
  add(limitId.globalRate(), before.global.rate, after.global.rate);
  return out;
}

export type RekindResult = { readonly ok: true; readonly written: number } | { readonly ok: false; readonly reason: 'state_lost' };

const MAX_RATES_PER_CALL = 500;

/** Carries every changed rate's state to its new kind (rekind-n.lua); per-tenant rates for each tenant with state. */
export async function rekindRates(deps: { readonly store: ScriptStore; readonly keys: Keys; readonly clock: Clock }, changes: readonly KindChange[]): Promise<RekindResult> {
  const { store, keys, clock } = deps;
  const items: { id: string; change: KindChange }[] = [];
  for (const change of changes) {
    if (change.perTenant === undefined) {
      items.push({ id: change.id, change });
      continue;
    }
    // The tenants whose per-tenant rate has state in the old kind's key.
    const source = kindOf(change.before) === 'window' ? `${change.id}:win` : change.id;
    for (const tenant of await tenantsWithKey(store.redis, keys.limit(source))) items.push({ id: change.perTenant(tenant), change });
  }
  let written = 0;
  for (let i = 0; i < items.length; i += MAX_RATES_PER_CALL) {
    const batch = items.slice(i, i + MAX_RATES_PER_CALL);
    const k: string[] = [keys.epoch];
    const args: (string | number)[] = [clock.arg()];
    for (const { id, change } of batch) {
      const win = keys.limit(`${id}:win`);
      k.push(keys.limit(id), win, keys.poolExpiries(win), `${win}:period`);
      if (kindOf(change.before) === 'window' && kindOf(change.after) === 'window') {
        args.push('p', change.after.periodMs, 0, 0, change.before.periodMs);
        continue;
      }
      const toWindow = kindOf(change.after) === 'window';
      const bucket = toWindow ? change.before : change.after;
      // a bucket holds tokens × periodMs, refilled `limit` per ms up to burst × periodMs (includes/bucket.lua)
      const refill = bucket.limit;
      const cap = (bucket.burst ?? bucket.limit) * bucket.periodMs;
      args.push(toWindow ? 'w' : 'b', change.after.periodMs, refill, cap, toWindow ? bucket.periodMs : 0);
    }
    const reply = (await store.run('rekind', k, args)) as number[];
    if (reply[0] !== REKIND_ANSWER.ok) return { ok: false, reason: 'state_lost' };
    written += Number(reply[1]);
  }
  return { ok: true, written };
}

/** Tenants whose `…tenant:<t>:…` key of this pattern exists (the `*` of the per-tenant id), found by SCAN. */
async function tenantsWithKey(redis: Redis | Cluster, pattern: string): Promise<string[]> {
  // One namespace's keys share one hash tag: on a cluster they are all on the node that serves it.
  const node = 'isCluster' in redis && redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis];
  const [before, after] = pattern.split('*') as [string, string];
  const found = new Set<string>();
  for (const n of node) {
    let cursor = '0';
    do {
      const [next, batch] = await n.scan(cursor, 'MATCH', pattern.replace(/[?[\]\\]/g, '\\$&'), 'COUNT', 1000);
      cursor = next;
      for (const key of batch) {
        if (!key.startsWith(before) || !key.endsWith(after)) continue;
        const tenant = key.slice(before.length, key.length - after.length);
        if (tenant.length > 0 && !tenant.includes(':')) found.add(tenant);
      }
    } while (cursor !== '0');
  }
  return [...found];
}
