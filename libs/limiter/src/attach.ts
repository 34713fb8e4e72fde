/**
 * Running jobs of a job type that a policy change gave a dependency: they count in that dependency's
 * concurrency pools from the change on (CONTRACT §6.1, "a limit added while jobs run counts those
 * jobs"). Admission writes every pool a job belongs to into its lease, under the policy of its time;
 * a job admitted before its job type used a dependency holds none of that dependency's pools, so
 * without this a dependency of concurrency 2 added to a job type with 5 jobs running would admit 2
 * more at once.
 *
 * What is done: every live lease of such a job type is read (a read without atomicity) and handed to
 * attach-n.lua, which re-checks it and adds the pools it lacks (idempotent: any number of instances
 * may attach the same leases). The Limiter runs it when a policy is applied, and once more a little
 * later for admissions that were already on their way to Redis under the old policy.
 */
import { ATTACH_ANSWER } from './codes.js';
import type { Clock } from './clock.js';
import { limitId, type Keys } from './keys.js';
import { readIndexedLeases } from './lease-index.js';
import type { LeaseRecord } from './lease-record.js';
import type { CompiledPolicy } from './policy.js';
import type { ScriptStore } from './store.js';

/** Job type → the dependencies `after` gives it that `before` did not. */
export function addedDependencies(before: CompiledPolicy, after: CompiledPolicy): ReadonlyMap<string, readonly string[]> {
  const added = new Map<string, string[]>();
  for (const [name, jt] of after.jobTypes) {
    const had = new Set(before.jobType(name)?.dependencies.map((d) => d.name) ?? []);
    const fresh = jt.dependencies.map((d) => d.name).filter((d) => !had.has(d));
    if (fresh.length > 0) added.set(name, fresh);
  }
  return added;
}

export type AttachResult = { readonly ok: true; readonly leases: number; readonly pools: number } | { readonly ok: false; readonly reason: 'state_lost' };

const LIST_CHUNK = 1_000;
const READ_CHUNK = 200;
const MAX_KEYS_PER_CALL = 2_000;

/** Adds the pools of `added` (job type → dependencies) to every live lease of those job types that lacks them. */
export async function attachRunning(deps: { readonly store: ScriptStore; readonly keys: Keys; readonly clock: Clock }, added: ReadonlyMap<string, readonly string[]>): Promise<AttachResult> {
  const { store, keys, clock } = deps;
  const now = await clock.read();
  let leases = 0;
  let pools = 0;
  let batchKeys: string[] = [];
  let batchArgs: (string | number)[] = [];
  const flush = async (): Promise<boolean> => {
    if (batchArgs.length === 0) return true;
    const reply = (await store.run('attach', [keys.epoch, ...batchKeys], [clock.arg(), ...batchArgs])) as number[];
    batchKeys = [];
    batchArgs = [];
    if (reply[0] !== ATTACH_ANSWER.ok) return false;
    leases += Number(reply[1]);
    pools += Number(reply[2]);
    return true;
  };
  const considered = new Set<string>();
  const consider = async (leaseId: string, rec: LeaseRecord | undefined): Promise<boolean> => {
    if (considered.has(leaseId)) return true;
    considered.add(leaseId);
    const dependencies = rec && rec.exp > now && HELD.has(rec.st) ? added.get(rec.typ) : undefined;
    if (rec === undefined || dependencies === undefined) return true;
    const at = keys.leaseLocation(leaseId);
    if (!at) return true;
    const held = new Set(rec.conc);
    const missing = dependencies
      .flatMap((d) => [keys.limit(limitId.depConcurrency(d)), keys.limit(limitId.depTenantConcurrency(d, rec.ten))])
      .filter((pool) => !held.has(pool));
    if (missing.length === 0) return true;
    if (batchKeys.length + 1 + 2 * missing.length > MAX_KEYS_PER_CALL && !(await flush())) return false;
    batchKeys.push(at.key, ...missing.flatMap((pool) => [pool, keys.poolExpiries(pool)]));
    batchArgs.push(at.field, missing.length);
    return true;
  };

  // Every live lease, by the expiry index (readIndexedLeases); a call's member is one per expiry of
  // the call, so a call or a lease may be named more than once (`consider` skips repeats).
  for (let offset = 0; ; offset += LIST_CHUNK) {
    const members = await store.guard(store.redis.zrangebyscore(keys.leaseExpiry, `(${now}`, '+inf', 'LIMIT', offset, LIST_CHUNK));
    for (let i = 0; i < members.length; i += READ_CHUNK) {
      for (const [leaseId, rec] of await readIndexedLeases(store, keys, members.slice(i, i + READ_CHUNK))) {
        if (!(await consider(leaseId, rec))) return { ok: false, reason: 'state_lost' };
      }
    }
    if (members.length < LIST_CHUNK) break;
  }
  if (!(await flush())) return { ok: false, reason: 'state_lost' };
  return { ok: true, leases, pools };
}

/** Lease states that hold their limits (includes/lease-record.lua lease_held). */
const HELD: ReadonlySet<string> = new Set(['pending', 'active', 'running']);
