import type { Cluster, Redis } from 'ioredis';
import { LIVE_STATS_TTL_SECONDS, parseStatsField, readLiveStats, type LiveStatsKeys } from '@janus/observability';

/**
 * One bucket of one dependency: `[start (epoch ms), admitted, rejected by reason]` — counts over the
 * bucket, not rates (the page divides by the bucket's length). Tuples: the snapshot is polled every second.
 */
export type AdmissionBucket = readonly [at: number, admitted: number, rejected: Readonly<Record<string, number>>, throttled: number];

export interface AdmissionHistoryOptions {
  /** Read the counters this often. Default 5 s (well inside their 120 s expiry: no second is missed). */
  readonly everyMs?: number;
  /** One bucket per this many seconds. Default 10 s (90 points over 15 minutes). */
  readonly bucketSeconds?: number;
  /** Buckets older than this are dropped. Default 15 min. */
  readonly windowMs?: number;
}

export interface AdmissionHistoryDeps {
  readonly redis: Redis | Cluster;
  readonly keys: LiveStatsKeys;
  /** Redis time on the namespace's node (the limiter's clock); default: TIME on any node. */
  readonly clock?: () => Promise<number>;
}

/**
 * The last 15 minutes of admissions and rejections (by reason) per dependency, for the dashboard's
 * charts: the per-second counters ingress keeps in Redis (live-stats, gone after 120 s) are read on a
 * timer and folded into buckets kept in memory by this instance (a restart starts with the last
 * two minutes Redis still has). A view aid like DependencyHistory; the metrics are the durable record.
 */
export class AdmissionHistory {
  readonly everyMs: number;
  readonly bucketSeconds: number;
  readonly windowMs: number;
  /** Bucket start (epoch second) → dependency → counts. Insertion order is time order. */
  readonly #buckets = new Map<number, Map<string, { admitted: number; rejected: Record<string, number>; throttled: number }>>();
  /** The last complete second folded in (each second is read once it is complete, and folded once). */
  #lastSecond: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> | undefined;

  constructor(
    private readonly deps: AdmissionHistoryDeps,
    opts: AdmissionHistoryOptions = {},
  ) {
    this.everyMs = opts.everyMs ?? 5_000;
    this.bucketSeconds = opts.bucketSeconds ?? 10;
    this.windowMs = opts.windowMs ?? 900_000;
  }

  /** The buckets of `dependency`, oldest first; a bucket without its traffic is all zeros (a gap would read as "no data"). */
  series(dependency: string): AdmissionBucket[] {
    const out: AdmissionBucket[] = [];
    for (const [start, deps] of this.#buckets) {
      const d = deps.get(dependency);
      out.push([start * 1000, d?.admitted ?? 0, d?.rejected ?? {}, d?.throttled ?? 0]);
    }
    return out;
  }

  /** Folds per-second counters in (a second already folded is skipped) and drops expired buckets. */
  record(perSecond: readonly { second: number; fields: Readonly<Record<string, number>> }[]): void {
    for (const { second, fields } of perSecond) {
      if (this.#lastSecond !== undefined && second <= this.#lastSecond) continue;
      this.#lastSecond = second;
      const start = second - (second % this.bucketSeconds);
      let bucket = this.#buckets.get(start);
      if (bucket === undefined) {
        bucket = new Map();
        this.#buckets.set(start, bucket);
      }
      for (const [field, n] of Object.entries(fields)) {
        const parsed = parseStatsField(field);
        if (!parsed) continue;
        let dep = bucket.get(parsed.dependency);
        if (dep === undefined) {
          dep = { admitted: 0, rejected: {}, throttled: 0 };
          bucket.set(parsed.dependency, dep);
        }
        if (parsed.outcome === 'admitted') dep.admitted += n;
        else if (parsed.outcome === 'throttled') dep.throttled += n;
        else dep.rejected[parsed.reason] = (dep.rejected[parsed.reason] ?? 0) + n;
      }
    }
    if (this.#lastSecond === undefined) return;
    const oldest = this.#lastSecond - this.windowMs / 1000;
    for (const start of this.#buckets.keys()) {
      if (start >= oldest) break;
      this.#buckets.delete(start);
    }
  }

  /** Reads the complete seconds since the last read (at most what Redis still holds) and folds them in. */
  async sample(): Promise<void> {
    const nowS = Math.floor(Date.now() / 1000);
    const since = this.#lastSecond === undefined ? LIVE_STATS_TTL_SECONDS : nowS - this.#lastSecond;
    const seconds = Math.max(1, Math.min(LIVE_STATS_TTL_SECONDS, since + 2));
    const stats = await readLiveStats(this.deps.redis, this.deps.keys, seconds, this.deps.clock ? { clock: this.deps.clock } : {});
    this.record(stats.perSecond);
  }

  start(): void {
    if (this.#timer) return;
    const tick = () => {
      // Redis unreachable: no sample this time; the next read catches up (the counters live 120 s).
      this.#sampling ??= this.sample()
        .catch(() => undefined)
        .finally(() => {
          this.#sampling = undefined;
        });
    };
    tick();
    this.#timer = setInterval(tick, this.everyMs);
    // A view aid must never keep the process alive.
    this.#timer.unref();
  }

  /** Stops sampling; resolves once a read under way is done (before its connection closes). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sampling;
  }
}
