import type { ScriptStore } from './store.js';

/**
 * The limiter's one clock: Redis TIME, so that every instance decides against the same time.
 * Scripts read it themselves (their ARGV "now" is 0); read-only paths that run no script ask Redis.
 * Tests pin it with the `now` option instead (see LimiterOptions).
 */
export class Clock {
  constructor(
    private readonly store: ScriptStore,
    private readonly pinned: (() => number) | undefined,
    /** A key of the namespace's slot: on a Redis Cluster it routes TIME to the node the scripts run on. */
    private readonly routeKey: string,
  ) {}

  /** A script's "now" ARGV: the pinned ms, or 0 for "read Redis TIME". */
  arg(): number {
    return this.pinned ? Math.floor(this.pinned()) : 0;
  }

  /** Now in ms. */
  async read(): Promise<number> {
    if (this.pinned) return Math.floor(this.pinned());
    return Number(await this.store.run('time', [this.routeKey], []));
  }
}
