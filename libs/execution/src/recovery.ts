import { randomUUID } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from '@janus/db';
import { Persister, type PersisterOptions, type StreamKind } from '@janus/event-store';
import { sql } from 'drizzle-orm';
import type { NatsNames } from '@janus/messaging';
import type { Limiter, RestoredState } from '@janus/limiter';
import { readDurableState } from './durable-state.js';

/** What a rebuild wrote back. */
export interface RestoredCounts {
  /** Lease records written (and found written by an earlier, interrupted rebuild). */
  readonly leases: number;
  /** Of those, leases already expired without an outcome (the reaper makes them timed_out). */
  readonly expiredLeases: number;
  readonly budgets: number;
  readonly idempotencyKeys: number;
  readonly buckets: number;
  /** Sliding-window entries (one per window and expiry ms) counted from the attempts admitted within their periods. */
  readonly windows: number;
}

export type LimiterOpening =
  /**
   * `trusted`: the state was never lost (or someone else rebuilt it); `nothing_admitted`: a
   * namespace nothing was ever admitted in (a first start); `rebuilt`: rebuilt from the durable
   * record; `fail_closed_window`: nothing could be rebuilt, and the fail-closed window has passed.
   */
  | { readonly open: true; readonly how: 'trusted' | 'nothing_admitted' | 'rebuilt' | 'fail_closed_window'; readonly restored?: RestoredCounts }
  /** Still closed: why, and (when known) the end of the fail-closed fallback. */
  | { readonly open: false; readonly why: string; readonly recoveringUntil?: number };

/** The app's logger (pino). */
type Log = PersisterOptions['logger'];

/** What a rebuild reads (`persisterCaughtUp`), and so what the rebuilding instance stores when it helps. */
const REBUILD_STREAMS: readonly StreamKind[] = ['jobs', 'applied', 'ledger', 'extensions'];

export interface StateRecoveryDeps {
  readonly limiter: Limiter;
  readonly db: Database;
  readonly jsm: JetStreamManager;
  readonly names: NatsNames;
  readonly logger?: Log;
  /** Where the rebuild's metrics go (one StateRecovery per registry). */
  readonly registry?: Registry;
  /**
   * How long after the loss was seen the durable record is read (default 5 s): an admission decided
   * just before the loss publishes its job message within this (ingress: 2 × 1.5 s, the scheduler:
   * 5 s), and the rebuild must see it.
   */
  readonly inFlightGraceMs?: number;
  /** How long the rebuild waits for the persister to store what is in the streams (default 15 s). */
  readonly catchUpTimeoutMs?: number;
  /**
   * With it, the rebuilding instance does not depend on a persister being alive: once the persister
   * is still behind `helpAfterMs` (default 2 s) into the wait, it stores the streams the rebuild reads
   * itself (a Persister of its own on the same durable consumers; writes are idempotent) until they
   * are stored. Without it, a persister down longer than `catchUpTimeoutMs` leaves only the
   * fail-closed window.
   */
  readonly js?: JetStreamClient;
  readonly helpAfterMs?: number;
  /** The rebuild lock's time to live, renewed while rebuilding (default 10 s). */
  readonly lockTtlMs?: number;
  /** How often `watch()` checks the state (default 1 s). */
  readonly pollMs?: number;
  /** Expired leases without an outcome older than this are not written back (default 24 h, the lease retention). */
  readonly expiredHorizonMs?: number;
  /**
   * Whether the running policy is loaded (default: always): a restored lease is counted in the pools
   * of the running policy, so a rebuild waits for it.
   */
  readonly policyLoaded?: () => boolean;
}

const DAY_MS = 86_400_000;
/** A ledger time may be this far behind Redis's clock (conservative: counts more). */
const CLOCK_SKEW_MS = 2_000;

/** Resolves after `ms`, or at once when `signal` aborts (stop() does not wait out a grace period). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface Metrics {
  readonly losses: Counter;
  readonly rebuilds: Counter<'result'>;
  readonly seconds: Histogram;
  readonly restored: Gauge<'what'>;
  readonly trusted: Gauge;
}

function createMetrics(registry: Registry): Metrics {
  return {
    losses: new Counter({ name: 'janus_state_losses_total', help: 'Times this instance found the limiter state lost (Redis restarted without its data, or flushed)', registers: [registry] }),
    rebuilds: new Counter({
      name: 'janus_state_rebuilds_total',
      help: 'Reopenings of a lost limiter state by this instance: rebuilt (from the durable record), nothing_admitted (a first start), fail_closed_window (nothing could be rebuilt; the window passed)',
      labelNames: ['result'],
      registers: [registry],
    }),
    seconds: new Histogram({
      name: 'janus_state_rebuild_seconds',
      help: 'From the loss seen to admission reopened, for rebuilds this instance did',
      buckets: [0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 600],
      registers: [registry],
    }),
    restored: new Gauge({ name: 'janus_state_restored', help: 'What the last rebuild by this instance wrote back', labelNames: ['what'], registers: [registry] }),
    trusted: new Gauge({ name: 'janus_state_trusted', help: '1 while the limiter state is trusted (admission open), 0 while it is lost or being rebuilt', registers: [registry] }),
  };
}

/**
 * Keeps the limiter's state trustworthy (CONTRACT §6.5, docs/guarantees.md §5). Redis keeps nothing
 * on disk here: when it restarts (or is flushed) every lease, pool, budget and idempotency record is
 * gone, and admission closes (the epoch is missing). Then one instance (the holder of the rebuild
 * lock; the others wait) rebuilds the state from the durable record:
 *
 * 1. waits `inFlightGraceMs` after the loss was seen, so that job messages of admissions decided just
 *    before it are published, then until the persister has stored everything in JOBS, APPLIED,
 *    LEDGER and EXTENSIONS (its consumers have nothing pending), at most `catchUpTimeoutMs`;
 * 2. reads PostgreSQL (`readDurableState`): live leases with their extensions, budgets used in the
 *    current window, idempotency keys within their window;
 * 3. writes them back (`Limiter.restoreState`), rate buckets restarting EMPTY, and reopens admission.
 *
 * Only what cannot be rebuilt keeps the old fail-closed window (admission closed for the longest job
 * timeout from the loss, when every lease granted before it has expired): the persister not caught
 * up in time, or PostgreSQL unreachable. Then the rebuild is tried again every second meanwhile.
 *
 * `open()` does this at start; `watch()` polls the state so that a Redis restart under running apps is
 * found within `pollMs` and rebuilt in the background. `readiness` is down while the state is lost.
 *
 * With tenant shards (libs/limiter src/shards.ts) each shard's state is lost and rebuilt on its own,
 * by a StateRecovery of its own that this one runs (its tenants' leases, budgets, buckets and
 * windows, from the same durable record); readiness follows the namespace's slot only.
 */
export class StateRecovery {
  readonly #deps: StateRecoveryDeps;
  readonly #metrics: Metrics | undefined;
  #recovering: Promise<LimiterOpening> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #stopping = new AbortController();
  #lastWhy = '';
  readonly #shards: readonly StateRecovery[];

  constructor(deps: StateRecoveryDeps) {
    this.#deps = deps;
    this.#metrics = deps.registry ? createMetrics(deps.registry) : undefined;
    const { registry: _metricsOnce, ...shared } = deps;
    this.#shards = deps.limiter.tenantShards.map((shard, k) => new StateRecovery({ ...shared, limiter: shard, ...(deps.logger ? { logger: deps.logger.child({ tenantShard: k }) } : {}) }));
  }

  /** `limiter-state`: up only while the state is trusted (down while lost and being rebuilt). */
  get readiness(): { readonly name: string; check(): Promise<boolean> } {
    return { name: 'limiter-state', check: async () => (await this.#deps.limiter.stateStatus()).trusted };
  }

  /**
   * Opens admission at start: at once when the state is trusted or nothing was ever admitted,
   * otherwise after a rebuild (this instance's, or another's it waits for), trying for up to
   * `waitMs`. Returns closed (with why) if it could not; `watch()` goes on trying.
   */
  open(waitMs = 35_000): Promise<LimiterOpening> {
    // the shards open (or are rebuilt) beside: a lost one closes only its tenants, not the start
    for (const shard of this.#shards) void shard.open(waitMs);
    return this.#recover(Date.now() + waitMs);
  }

  /** Polls the state every `pollMs`; a loss is rebuilt in the background. */
  watch(): void {
    for (const shard of this.#shards) shard.watch();
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#tick(), this.#deps.pollMs ?? 1_000);
    this.#timer.unref();
  }

  /** Stops watching; a rebuild under way stops at its next step (waits are cut short), and is waited for. */
  async stop(): Promise<void> {
    await Promise.all(this.#shards.map((shard) => shard.stop()));
    this.#stopped = true;
    this.#stopping.abort();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#recovering?.catch(() => undefined);
  }

  async #tick(): Promise<void> {
    if (this.#recovering || this.#stopped) return;
    let trusted: boolean;
    try {
      trusted = (await this.#deps.limiter.stateStatus()).trusted;
    } catch {
      return; // Redis unreachable: nothing to decide until it is back (readiness says redis is down)
    }
    this.#metrics?.trusted.set(trusted ? 1 : 0);
    if (!trusted) void this.#recover(Number.POSITIVE_INFINITY);
  }

  #recover(deadline: number): Promise<LimiterOpening> {
    this.#recovering ??= this.#loop(deadline).finally(() => {
      this.#recovering = undefined;
    });
    return this.#recovering;
  }

  async #loop(deadline: number): Promise<LimiterOpening> {
    const seenAt = Date.now();
    let counted = false;
    for (;;) {
      let result: LimiterOpening;
      try {
        result = await this.#attempt(seenAt, () => {
          if (!counted) this.#metrics?.losses.inc();
          counted = true;
        });
      } catch (error) {
        result = { open: false, why: `limiter state unknown: ${message(error)}` };
        // Redis (or NATS) unreachable: at start, do not hold the app up for it; the watch tries again.
        if (deadline !== Number.POSITIVE_INFINITY) return result;
      }
      if (result.open) {
        this.#metrics?.trusted.set(1);
        if (result.how !== 'trusted') {
          this.#metrics?.rebuilds.inc({ result: result.how });
          if (result.how !== 'nothing_admitted') this.#metrics?.seconds.observe((Date.now() - seenAt) / 1000);
        }
        this.#lastWhy = '';
        return result;
      }
      this.#metrics?.trusted.set(0);
      if (this.#stopped || Date.now() >= deadline) return result;
      await sleep(250, this.#stopping.signal);
    }
  }

  /** One try: open if trusted or nothing was ever admitted, else rebuild if this instance gets the lock. */
  async #attempt(seenAt: number, lost: () => void): Promise<LimiterOpening> {
    const { limiter, logger } = this.#deps;
    const status = await limiter.stateStatus();
    if (status.trusted) return { open: true, how: 'trusted' };
    lost();
    if (await this.#neverAdmitted()) {
      // Nothing was ever admitted in this namespace (a first start): no lease can be live anywhere.
      const fresh = await limiter.init({ fresh: true });
      if (fresh.open) {
        logger?.info({}, 'limiter state initialised: nothing was ever admitted in this namespace');
        return { open: true, how: 'nothing_admitted' };
      }
    }
    // Starts the fail-closed window if no admission has yet.
    const window = await limiter.recover();
    if (this.#deps.policyLoaded?.() === false) return { open: false, why: 'the policy is not loaded yet' };
    const recoveringUntil = window.open ? undefined : window.recoveringUntil;
    const token = randomUUID();
    const ttl = this.#deps.lockTtlMs ?? 10_000;
    if (!(await limiter.acquireRebuildLock(token, ttl))) {
      return { open: false, why: 'another instance is rebuilding the limiter state', ...(recoveringUntil ? { recoveringUntil } : {}) };
    }
    let lockLost = false;
    const renew = setInterval(() => {
      limiter.renewRebuildLock(token, ttl).then(
        (ours) => {
          if (!ours) lockLost = true;
        },
        () => undefined,
      );
    }, Math.max(100, Math.floor(ttl / 3)));
    try {
      return await this.#rebuild(token, seenAt, recoveringUntil, () => lockLost);
    } finally {
      clearInterval(renew);
      await limiter.releaseRebuildLock(token).catch(() => undefined);
    }
  }

  async #rebuild(token: string, seenAt: number, recoveringUntil: number | undefined, lockLost: () => boolean): Promise<LimiterOpening> {
    const { limiter, db, logger } = this.#deps;
    const startedAt = Date.now();
    if (this.#lastWhy === '') logger?.warn({ fallbackUntil: recoveringUntil && new Date(recoveringUntil).toISOString() }, 'limiter state lost: rebuilding it from the durable record');
    await sleep((this.#deps.inFlightGraceMs ?? 5_000) - (Date.now() - seenAt), this.#stopping.signal);
    if (this.#stopped) return { open: false, why: 'stopped' };
    const caughtUp = await this.#waitForPersister(this.#deps.catchUpTimeoutMs ?? 15_000);
    if (!caughtUp.ok) return this.#fallback(token, caughtUp.why);
    if (lockLost()) return { open: false, why: 'the rebuild lock was lost' };

    let state: RestoredState;
    try {
      const now = await limiter.now();
      state = await readDurableState(db, limiter.policy, { now, expiredHorizonMs: this.#deps.expiredHorizonMs ?? DAY_MS, clockSkewMs: CLOCK_SKEW_MS });
    } catch (error) {
      return this.#fallback(token, `PostgreSQL could not be read: ${message(error)}`);
    }
    state = await this.#keepUndeliveredWaiting(state, await limiter.now());
    const written = await limiter.restoreState(token, state);
    if (!written.ok) return written.reason === 'state_open' ? { open: true, how: 'trusted' } : { open: false, why: 'the rebuild lock was lost' };
    const opened = await limiter.openState(token, 'rebuilt');
    if (opened.kind === 'lock_lost' || opened.kind === 'too_early') return { open: false, why: 'the rebuild lock was lost' };
    const now = Date.now();
    const restored: RestoredCounts = {
      leases: written.leases + written.existing,
      expiredLeases: state.leases.filter((l) => l.expiresAt <= now).length,
      budgets: written.budgets,
      idempotencyKeys: written.idempotency,
      buckets: written.buckets,
      windows: written.windows,
    };
    if (this.#metrics) {
      for (const [what, n] of Object.entries(restored)) this.#metrics.restored.set({ what }, n);
    }
    logger?.info({ ...restored, skippedLeases: written.skipped, rebuildMs: now - startedAt, closedMs: now - seenAt }, 'limiter state rebuilt from the durable record: admission reopened');
    return { open: true, how: 'rebuilt', restored };
  }

  /**
   * CONTRACT §4 through the loss: a lease whose job message no worker was delivered (its sequence is
   * above its `workers-<type>` consumer's last delivered one) is written back waiting — it expires a
   * job-type timeout from now if its recorded expiry is sooner — as the scheduler would have kept it
   * while Redis was away (`letUndeliveredWait`); otherwise the reaper would take it for a timed_out
   * attempt. If JetStream cannot say, the lease is written back as recorded (conservative).
   */
  async #keepUndeliveredWaiting(state: RestoredState, now: number): Promise<RestoredState> {
    const { jsm, names, limiter } = this.#deps;
    const delivered = new Map<string, number | undefined>();
    const leases = [];
    for (const lease of state.leases) {
      const timeoutMs = limiter.policy.jobType(lease.jobType)?.timeoutMs;
      if (lease.seq === undefined || timeoutMs === undefined || lease.expiresAt >= now + timeoutMs) {
        leases.push(lease);
        continue;
      }
      if (!delivered.has(lease.jobType)) {
        const info = await jsm.consumers.info(names.streams.jobs, names.consumers.workers(lease.jobType)).catch(() => undefined);
        delivered.set(lease.jobType, info?.delivered.stream_seq);
      }
      const last = delivered.get(lease.jobType);
      leases.push(last !== undefined && lease.seq > last ? { ...lease, expiresAt: now + timeoutMs } : lease);
    }
    return { ...state, leases };
  }

  /** Nothing can be rebuilt now: reopen only once the fail-closed window has passed. */
  async #fallback(token: string, why: string): Promise<LimiterOpening> {
    const opened = await this.#deps.limiter.openState(token, 'fallback');
    if (opened.kind === 'opened') {
      this.#deps.logger?.warn({ why }, 'limiter state could not be rebuilt; the fail-closed window has passed: admission reopened without it');
      return { open: true, how: 'fail_closed_window' };
    }
    if (opened.kind === 'already_open') return { open: true, how: 'trusted' };
    const recoveringUntil = opened.kind === 'too_early' ? opened.recoveringUntil : undefined;
    if (why !== this.#lastWhy) {
      this.#deps.logger?.warn({ why, until: recoveringUntil && new Date(recoveringUntil).toISOString() }, 'limiter state cannot be rebuilt yet: admission stays closed (trying again)');
      this.#lastWhy = why;
    }
    return { open: false, why, ...(recoveringUntil ? { recoveringUntil } : {}) };
  }

  /** True when JOBS has never held a message: nothing was ever admitted in this namespace. */
  /**
   * Nothing was ever admitted in this namespace: the jobs stream never held a message, and the
   * durable record holds no attempt (a jobs stream deleted and created again is empty too, while
   * the attempts PostgreSQL recorded may still be running: that calls for a rebuild).
   */
  async #neverAdmitted(): Promise<boolean> {
    const { jsm, names, db } = this.#deps;
    const info = await jsm.streams.info(names.streams.jobs).catch(() => undefined);
    if (info === undefined || info.state.messages !== 0 || info.state.last_seq !== 0) return false;
    // PostgreSQL unreachable: not known, so not "never" (the rebuild path handles that case).
    const any = await db.execute(sql`SELECT 1 FROM attempts LIMIT 1`).catch(() => undefined);
    return any !== undefined && any.rows.length === 0;
  }

  async #waitForPersister(timeoutMs: number): Promise<{ ok: true } | { ok: false; why: string }> {
    const start = Date.now();
    const until = start + timeoutMs;
    let helper: Persister | undefined;
    try {
      for (;;) {
        const r = await persisterCaughtUp(this.#deps.jsm, this.#deps.names);
        if (r.ok || Date.now() >= until || this.#stopped) return r;
        const { js, logger } = this.#deps;
        if (helper === undefined && js !== undefined && logger !== undefined && Date.now() - start >= (this.#deps.helpAfterMs ?? 2_000)) {
          helper = await this.#help(js, logger, r.why);
        }
        await sleep(200, this.#stopping.signal);
      }
    } finally {
      await helper?.stop().catch(() => undefined);
    }
  }

  /** Stores the streams the rebuild reads, as the persister would (see `js`). */
  async #help(js: JetStreamClient, logger: Log, why: string): Promise<Persister | undefined> {
    const { db, jsm, names } = this.#deps;
    logger.warn({ why }, 'limiter state lost and the persister is behind: storing the streams the rebuild reads here');
    // its own registry: its metrics are the persister's, and this instance may help again later
    const helper = new Persister({ db, js, jsm, names, logger, registry: new Registry(), streams: REBUILD_STREAMS });
    try {
      await helper.start();
      return helper;
    } catch (error) {
      logger.warn({ err: error }, 'could not store the streams here; waiting for the persister');
      await helper.stop().catch(() => undefined);
      return undefined;
    }
  }
}

/**
 * Whether the persister has stored every message of the streams a rebuild reads (its consumers have
 * nothing pending or unacknowledged; a stream that never held a message needs none).
 */
export async function persisterCaughtUp(jsm: JetStreamManager, names: NatsNames): Promise<{ ok: true } | { ok: false; why: string }> {
  const { streams, consumers } = names;
  const lanes: [string, string][] = [
    [streams.jobs, consumers.persisterJobs],
    [streams.applied, consumers.persisterApplied],
    [streams.ledger, consumers.persisterLedger],
    [streams.extensions, consumers.persisterExtensions],
  ];
  for (const [stream, consumer] of lanes) {
    let info;
    try {
      info = await jsm.streams.info(stream);
    } catch (error) {
      return { ok: false, why: `stream ${stream} could not be read: ${message(error)}` };
    }
    if (info.state.messages === 0 && info.state.last_seq === 0) continue;
    try {
      const c = await jsm.consumers.info(stream, consumer);
      const behind = c.num_pending + c.num_ack_pending;
      if (behind > 0) return { ok: false, why: `the persister has ${behind} message(s) of ${stream} not yet stored` };
    } catch {
      return { ok: false, why: `no persister has read ${stream}` };
    }
  }
  return { ok: true };
}
