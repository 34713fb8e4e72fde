import type { DependencyState, Limiter } from '@janus/limiter';

/** One sample of a dependency: `[at (Redis ms), effective ratio, in flight]` (tuples: the snapshot is polled every second). */
export type StateSample = readonly [at: number, ratio: number, inFlight: number];

export interface DependencyHistoryOptions {
  /** One sample per dependency this often. Default 5 s. */
  readonly everyMs?: number;
  /** Samples older than this are dropped. Default 15 min (the span of the dashboard's admission charts, whose throttling line these samples are). */
  readonly windowMs?: number;
  /** At most this many dependencies are sampled (the first of the policy). Default 100. */
  readonly maxDependencies?: number;
}

export interface DependencyHistoryDeps {
  readonly limiter: Pick<Limiter, 'policy' | 'dependencyState'>;
  readonly policyLoaded: () => boolean;
}

/**
 * The last minutes of each dependency's effective ratio and in-flight count, for the dashboard's
 * sparklines. Kept in memory by this instance only (each policy-admin instance samples on its own;
 * a restart starts empty): it is a view aid, the metrics are the durable record. Sampled on a timer
 * rather than per dashboard poll, so that the chart has history as soon as a page opens.
 */
export class DependencyHistory {
  readonly everyMs: number;
  readonly windowMs: number;
  readonly #max: number;
  readonly #series = new Map<string, StateSample[]>();
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> | undefined;

  constructor(
    private readonly deps: DependencyHistoryDeps,
    opts: DependencyHistoryOptions = {},
  ) {
    this.everyMs = opts.everyMs ?? 5_000;
    this.windowMs = opts.windowMs ?? 900_000;
    this.#max = opts.maxDependencies ?? 100;
  }

  /** The dependencies sampled: those of the running policy, in its order, at most maxDependencies. */
  names(): string[] {
    return Object.keys(this.deps.limiter.policy.document.dependencies).slice(0, this.#max);
  }

  samples(name: string): readonly StateSample[] {
    return this.#series.get(name) ?? [];
  }

  /** Adds a sample per state (a state not newer than the last sample is skipped) and drops the expired ones. */
  record(states: readonly DependencyState[]): void {
    for (const s of states) {
      const series = this.#series.get(s.dependency) ?? [];
      const last = series.at(-1);
      if (last !== undefined && s.at <= last[0]) continue;
      series.push([s.at, s.effective.ratio, s.inFlight]);
      const oldest = s.at - this.windowMs;
      let drop = 0;
      while (drop < series.length && series[drop]![0] < oldest) drop++;
      if (drop > 0) series.splice(0, drop);
      this.#series.set(s.dependency, series);
    }
  }

  /** Reads every dependency once and records it; a dependency removed from the policy is forgotten. */
  async sample(): Promise<void> {
    if (!this.deps.policyLoaded()) return;
    const names = this.names();
    const keep = new Set(names);
    for (const name of this.#series.keys()) if (!keep.has(name)) this.#series.delete(name);
    const read = await Promise.allSettled(names.map((n) => this.deps.limiter.dependencyState(n)));
    // Redis unreachable: no sample this time (a gap in the chart), nothing else to do. A dependency
    // removed from the policy while this sample read it is not brought back.
    const current = new Set(this.names());
    this.record(read.flatMap((r) => (r.status === 'fulfilled' && r.value !== undefined && current.has(r.value.dependency) ? [r.value] : [])));
  }

  start(): void {
    if (this.#timer) return;
    const tick = () => {
      this.#sampling ??= this.sample().finally(() => {
        this.#sampling = undefined;
      });
    };
    tick();
    this.#timer = setInterval(tick, this.everyMs);
    // A view aid must never keep the process alive.
    this.#timer.unref();
  }

  /** Stops sampling; resolves once a sample under way is done (before its connections close). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sampling;
  }
}
