import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { ConfigChanged, type VersionedPolicy } from '@janus/contracts';
import type { NatsNames } from '@janus/messaging';
import { RunningPolicy, type PolicyHolder } from './running.js';
import type { PolicyStore } from './store.js';

interface WatchLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface PolicyWatcherOptions<T> {
  store: PolicyStore;
  nc: NatsConnection;
  names: NatsNames;
  /** Turns a stored policy into what the app runs on (e.g. the limiter's compiled policy). Throw to refuse it. */
  compile: (policy: VersionedPolicy) => T;
  /** Where the running policy lives (default: a RunningPolicy of the watcher's own). */
  holder?: PolicyHolder<T>;
  /** Called after a new version was compiled and swapped in. */
  onApplied?: (applied: T, policy: VersionedPolicy) => void | Promise<void>;
  /** Called on every config event or poll, even when the version did not move (API key changes). */
  onConfigEvent?: () => void | Promise<void>;
  /** Safety net for missed events: how often the stored version is checked. */
  pollIntervalMs?: number;
  logger?: WatchLogger;
  /** Counts versions this instance could not apply (kept the old one). */
  onApplyFailure?: (version: number, error: unknown) => void;
}

/**
 * Keeps the running policy current: loads it at start, then swaps in each new version announced on
 * `<ns>.config.changed`, and checks the stored version every few seconds in case an event was
 * missed. The swap goes into the holder in one step; a version that fails to compile is logged,
 * counted and skipped, and the old one stays live. The watcher keeps no copy of its own: its getters
 * read the holder.
 */
export class PolicyWatcher<T> {
  readonly running: PolicyHolder<T>;
  private refreshing: Promise<void> | undefined;
  private pending = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastFailedVersion = -1;
  private sub: Subscription | undefined;

  constructor(private readonly opts: PolicyWatcherOptions<T>) {
    this.running = opts.holder ?? new RunningPolicy<T>();
  }

  /** True once some policy (possibly the empty version 0) is loaded. */
  get loaded(): boolean {
    return this.running.loaded;
  }

  get version(): number {
    return this.running.version;
  }

  get compiled(): T {
    return this.running.compiled;
  }

  get policy(): VersionedPolicy {
    return this.running.policy;
  }

  async start(): Promise<void> {
    const sub = this.opts.nc.subscribe(this.opts.names.subjects.configChanged);
    this.sub = sub;
    void (async () => {
      for await (const msg of sub) {
        const parsed = ConfigChanged.safeParse(safeJson(msg.string()));
        if (!parsed.success) {
          this.opts.logger?.warn({ subject: msg.subject }, 'ignored malformed config event');
          continue;
        }
        void this.refresh();
      }
    })().catch((error: unknown) => this.opts.logger?.warn({ err: error }, 'config subscription ended'));
    // Make sure the server knows the subscription before the first load, so no event falls in between.
    await this.opts.nc.flush().catch(() => undefined);
    this.timer = setInterval(() => void this.refresh(), this.opts.pollIntervalMs ?? 2_000);
    this.timer.unref();
    // PostgreSQL may be down at start: refresh() logs it, readiness stays 503 until the poll succeeds.
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.sub && !this.sub.isClosed()) this.sub.unsubscribe();
  }

  /** Reloads now. Concurrent calls coalesce: at most one load runs, and one more follows it. */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.refreshing) {
      this.pending = true;
      return this.refreshing;
    }
    // A fault (store down, a throwing hook) is logged and the next event or poll tries again; the
    // returned promise never rejects, so `void this.refresh()` callers cannot leak a rejection.
    this.refreshing = this.load()
      .catch((error: unknown) => this.opts.logger?.warn({ err: error }, 'policy refresh failed; will retry'))
      .finally(() => {
        this.refreshing = undefined;
        if (this.pending) {
          this.pending = false;
          void this.refresh();
        }
      });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    try {
      await this.opts.onConfigEvent?.();
    } catch (error) {
      this.opts.logger?.warn({ err: error }, 'config event handler failed');
    }
    const version = await this.opts.store.currentVersion().catch((error: unknown) => {
      this.opts.logger?.warn({ err: error }, 'could not read policy version');
      return undefined;
    });
    if (version === undefined || version === this.version || version === this.lastFailedVersion) return;
    const policy = await this.opts.store.current();
    let compiled: T;
    try {
      compiled = this.opts.compile(policy);
    } catch (error) {
      this.lastFailedVersion = policy.version;
      this.opts.logger?.error({ err: error, version: policy.version, running: this.version }, 'policy version refused; keeping the running one');
      this.opts.onApplyFailure?.(policy.version, error);
      return;
    }
    // Another load may have applied a newer version meanwhile (never go back).
    if (this.running.version > policy.version) return;
    this.running.swap(policy, compiled);
    this.opts.logger?.info({ version: policy.version }, 'policy applied');
    try {
      await this.opts.onApplied?.(compiled, policy);
    } catch (error) {
      this.opts.logger?.warn({ err: error, version: policy.version }, 'policy applied, but its onApplied hook failed');
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Tells every instance of every app that the configuration changed. */
export async function announceConfigChange(nc: NatsConnection, names: NatsNames, version: number): Promise<void> {
  nc.publish(names.subjects.configChanged, JSON.stringify({ version }));
  await nc.flush();
}
