/**
 * Running jobs that a policy change gave a limit they did not hold: they count in it from the
 * change on (CONTRACT §6.1, "a limit added while jobs run counts those jobs"). Admission writes every
 * pool and the budget a job belongs to into its lease, under the policy of its time; so without
 * this a dependency of concurrency 2 added to a job type with 5 jobs running would admit 2 more at
 * once, and a budget of 60 given to a tenant whose jobs hold 50 would admit 60 more.
 *
 * - A job type given a dependency: its running jobs join the dependency's concurrency pools (and
 *   their tenant's share of it).
 * - A tenant given a budget (it had none): each of its running jobs reserves its estimate in the
 *   budget's current window, as admission would have, and settle then charges its actual cost.
 *
 * What is done: every live lease concerned is read (a read without atomicity) and handed to
 * attach-n.lua, which re-checks it and adds what it lacks (idempotent: any number of instances may
 * attach the same leases). The Limiter runs it when a policy is applied, and once more a little
 * later for admissions that were already on their way to Redis under the old policy.
 */
import { ATTACH_ANSWER } from './codes.js';
import type { Clock } from './clock.js';
import { limitId, type Keys } from './keys.js';
import { readIndexedLeases } from './lease-index.js';
import type { LeaseRecord } from './lease-record.js';
import type { CompiledPolicy } from './policy.js';
import type { ScriptStore } from './store.js';

/** A tenant's budget that `after` has and `before` had not: its running jobs reserve in it. */
export interface AddedBudget {
  readonly periodMs: number;
}

/** What a policy change gives running jobs: job type → the dependencies added to it; tenant → a budget it did not have. */
export interface AttachPlan {
  readonly dependencies: ReadonlyMap<string, readonly string[]>;
  readonly budgets: ReadonlyMap<string, AddedBudget>;
  /** The policy after the change (the estimates a budget reserves). */
  readonly policy: CompiledPolicy;
}

/** Tenant → the budget `after` gives it that `before` did not (a changed budget keeps its state: includes/budget.lua). */
export function addedBudgets(before: CompiledPolicy, after: CompiledPolicy): ReadonlyMap<string, AddedBudget> {
  const added = new Map<string, AddedBudget>();
  const had = before.document.tenants;
  for (const [tenant, t] of Object.entries(after.document.tenants)) {
    const prior = Object.hasOwn(had, tenant) ? had[tenant] : undefined;
    if (t.budget === undefined || prior?.budget !== undefined) continue;
    added.set(tenant, { periodMs: t.budget.periodMs });
  }
  return added;
}

/**
 * The producer's cost a lease's context names: the apps keep a JSON object there whose `cost` is the
 * producer's override (libs/execution retry-context.ts). Anything else: none (the job type's estimate).
 */
export function contextCost(context: string): number | undefined {
  if (!context.startsWith('{') || !context.includes('"cost"')) return undefined;
  try {
    const cost: unknown = (JSON.parse(context) as { cost?: unknown }).cost;
    return typeof cost === 'number' && Number.isSafeInteger(cost) && cost >= 1 ? cost : undefined;
  } catch {
    return undefined;
  }
}

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

/** `leases` given at least one pool or a budget; `pools` added in all; `budgets`: leases that reserved in a budget. */
export type AttachResult = { readonly ok: true; readonly leases: number; readonly pools: number; readonly budgets: number } | { readonly ok: false; readonly reason: 'state_lost' };

const LIST_CHUNK = 1_000;
const READ_CHUNK = 200;
const MAX_KEYS_PER_CALL = 2_000;

/** Gives every live lease what `plan` adds that it lacks: the pools of its job type's new dependencies, its tenant's new budget. */
export async function attachRunning(deps: { readonly store: ScriptStore; readonly keys: Keys; readonly clock: Clock }, plan: AttachPlan): Promise<AttachResult> {
  const { store, keys, clock } = deps;
  const added = plan.dependencies;
  const now = await clock.read();
  let leases = 0;
  let pools = 0;
  let budgets = 0;
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
    budgets += Number(reply[3]);
    return true;
  };
  const considered = new Set<string>();
  const consider = async (leaseId: string, rec: LeaseRecord | undefined): Promise<boolean> => {
    if (considered.has(leaseId)) return true;
    considered.add(leaseId);
    if (rec === undefined || !(rec.exp > now && HELD.has(rec.st))) return true;
    const at = keys.leaseLocation(leaseId);
    if (!at) return true;
    const held = new Set(rec.conc);
    const missing = (added.get(rec.typ) ?? [])
      .flatMap((d) => [keys.limit(limitId.depConcurrency(d)), keys.limit(limitId.depTenantConcurrency(d, rec.ten))])
      .filter((pool) => !held.has(pool));
    const budget = rec.bk === '' ? plan.budgets.get(rec.ten) : undefined;
    // what admission would have reserved: the producer's cost, else the job type's estimate
    const amount = budget === undefined ? 0 : (contextCost(rec.ctx) ?? plan.policy.jobType(rec.typ)?.estimate ?? 0);
    const withBudget = budget !== undefined && amount > 0;
    if (missing.length === 0 && !withBudget) return true;
    const nKeys = 1 + 2 * missing.length + (withBudget ? 1 : 0);
    if (batchKeys.length + nKeys > MAX_KEYS_PER_CALL && !(await flush())) return false;
    batchKeys.push(at.key, ...missing.flatMap((pool) => [pool, keys.poolExpiries(pool)]));
    if (withBudget) batchKeys.push(keys.limit(limitId.tenantBudget(rec.ten)));
    batchArgs.push(at.field, missing.length, withBudget ? budget.periodMs : 0, amount);
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
  return { ok: true, leases, pools, budgets };
}

/** Lease states that hold their limits (includes/lease-record.lua lease_held). */
const HELD: ReadonlySet<string> = new Set(['pending', 'active', 'running']);
