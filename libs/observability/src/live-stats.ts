import type { Cluster, Redis } from 'ioredis';

/**
 * Live admission counters shared by ingress (writer) and the dashboard (reader).
 *
 * One Redis hash per namespace and second, `<ns>:{<ns>}:stats:<epochSecond>`, expiring after
 * 120 s, with one field per dependency and outcome:
 *   `admitted:<dep>`            jobs admitted that touch `<dep>`
 *   `rejected:<dep>:<reason>`   jobs rejected with `<reason>` that touch `<dep>`
 *   `throttled:<dep>`           throttled outcomes of `<dep>` (written by the retry-scheduler)
 * A job type without dependencies counts under the dependency `*` (never a valid name).
 * Names cannot contain `:` (CONTRACT §2), so fields split unambiguously.
 */
export const LIVE_STATS_TTL_SECONDS = 120;
export const NO_DEPENDENCY = '*';

/** Where the counters live: the limiter's `Keys` (every Redis key is built there). */
export interface LiveStatsKeys {
  liveStats(epochSecond: number): string;
}

export function admittedField(dependency: string): string {
  return `admitted:${dependency}`;
}

export function rejectedField(dependency: string, reason: string): string {
  return `rejected:${dependency}:${reason}`;
}

export function throttledField(dependency: string): string {
  return `throttled:${dependency}`;
}

export type LiveDecision =
  | { readonly outcome: 'admitted'; readonly dependencies: readonly string[] }
  | { readonly outcome: 'rejected'; readonly reason: string; readonly dependencies: readonly string[] }
  /** A worker reported the dependency refused for load (CONTRACT §4 v1.1). */
  | { readonly outcome: 'throttled'; readonly dependencies: readonly string[] };

/** The fields one decision increments (one per dependency, or the `*` field). */
export function decisionFields(decision: LiveDecision): string[] {
  const deps = decision.dependencies.length > 0 ? decision.dependencies : [NO_DEPENDENCY];
  return deps.map((d) => (decision.outcome === 'admitted' ? admittedField(d) : decision.outcome === 'throttled' ? throttledField(d) : rejectedField(d, decision.reason)));
}

/**
 * Counts `count` jobs (default 1) with the same decision in the second containing `atMs`
 * (pass the limiter's Redis time when you have it; default: this host's clock).
 */
export async function recordDecision(
  redis: Redis | Cluster,
  keys: LiveStatsKeys,
  decision: LiveDecision,
  opts: { atMs?: number; count?: number } = {},
): Promise<void> {
  const count = opts.count ?? 1;
  if (count <= 0) return;
  const key = keys.liveStats(Math.floor((opts.atMs ?? Date.now()) / 1000));
  const pipeline = redis.pipeline();
  for (const field of decisionFields(decision)) pipeline.hincrby(key, field, count);
  pipeline.expire(key, LIVE_STATS_TTL_SECONDS);
  const results = await pipeline.exec();
  const failed = results?.find(([error]) => error !== null);
  if (failed?.[0]) throw failed[0];
}

export interface DependencyLiveStats {
  /** Jobs admitted over the window. */
  admitted: number;
  /** Jobs rejected over the window, by reason. */
  rejected: Record<string, number>;
  /** Throttled outcomes over the window. */
  throttled: number;
}

export interface LiveStats {
  /** The seconds read, oldest first: [fromSecond, toSecond]. */
  readonly fromSecond: number;
  readonly toSecond: number;
  readonly seconds: number;
  /** Raw field sums over the window. */
  readonly totals: Readonly<Record<string, number>>;
  /** Per dependency (including `*`), sums over the window. Divide by `seconds` for a rate. */
  readonly dependencies: Readonly<Record<string, DependencyLiveStats>>;
  /** Per second, oldest first: admitted and rejected totals across dependencies fields. */
  readonly perSecond: readonly { second: number; fields: Readonly<Record<string, number>> }[];
}

/**
 * Reads the last `seconds` complete seconds (the current, still-filling second is left out unless
 * `includeCurrent`), timed by `nowMs`, else by `clock` (on a Redis Cluster, the limiter's: TIME on
 * the node that holds the namespace), else by Redis TIME on whichever node the client picks.
 */
export async function readLiveStats(
  redis: Redis | Cluster,
  keys: LiveStatsKeys,
  seconds: number,
  opts: { nowMs?: number; clock?: () => Promise<number>; includeCurrent?: boolean } = {},
): Promise<LiveStats> {
  const nowMs = opts.nowMs ?? (opts.clock ? await opts.clock() : await redisNowMs(redis));
  const nowSecond = Math.floor(nowMs / 1000);
  const toSecond = opts.includeCurrent ? nowSecond : nowSecond - 1;
  const fromSecond = toSecond - seconds + 1;
  const pipeline = redis.pipeline();
  for (let s = fromSecond; s <= toSecond; s++) pipeline.hgetall(keys.liveStats(s));
  const rows = (await pipeline.exec()) ?? [];
  const totals: Record<string, number> = {};
  const dependencies: Record<string, DependencyLiveStats> = {};
  const perSecond: { second: number; fields: Record<string, number> }[] = [];
  rows.forEach(([error, value], i) => {
    if (error) throw error;
    const fields: Record<string, number> = {};
    for (const [field, raw] of Object.entries((value ?? {}) as Record<string, string>)) {
      const n = Number(raw);
      if (!Number.isFinite(n)) continue;
      fields[field] = n;
      totals[field] = (totals[field] ?? 0) + n;
      const parsed = parseStatsField(field);
      if (!parsed) continue;
      const dep = (dependencies[parsed.dependency] ??= { admitted: 0, rejected: {}, throttled: 0 });
      if (parsed.outcome === 'admitted') dep.admitted += n;
      else if (parsed.outcome === 'throttled') dep.throttled += n;
      else dep.rejected[parsed.reason] = (dep.rejected[parsed.reason] ?? 0) + n;
    }
    perSecond.push({ second: fromSecond + i, fields });
  });
  return { fromSecond, toSecond, seconds, totals, dependencies, perSecond };
}

export function parseStatsField(
  field: string,
): { outcome: 'admitted'; dependency: string } | { outcome: 'throttled'; dependency: string } | { outcome: 'rejected'; dependency: string; reason: string } | undefined {
  const parts = field.split(':');
  if (parts[0] === 'admitted' && parts.length === 2 && parts[1]) return { outcome: 'admitted', dependency: parts[1] };
  if (parts[0] === 'throttled' && parts.length === 2 && parts[1]) return { outcome: 'throttled', dependency: parts[1] };
  if (parts[0] === 'rejected' && parts.length === 3 && parts[1] && parts[2]) {
    return { outcome: 'rejected', dependency: parts[1], reason: parts[2] };
  }
  return undefined;
}

async function redisNowMs(redis: Redis | Cluster): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}
