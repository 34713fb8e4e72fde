import type pg from 'pg';
import type { Priority, RejectReason } from '@janus/contracts';
import { AdmissionPipeline, type AdmissionPipelineDeps, type PipelineResult } from '@janus/admission';
import type { Database } from '@janus/db';
import { dedupeKeyOfRoomKey, encodeRetryContext, parseIdempotencyRecord, publishDeadLetter, queuedIdempotencyRecord, type Publishing } from '@janus/execution';
import type { AdmissionRequest, CompiledPolicy, IdempotencyKind, Limiter } from '@janus/limiter';
import type { JetStreamTarget, NatsConnection, NatsNames } from '@janus/messaging';
import { FairQueue, type Blocks, type QueuedJob } from './fair-queue.js';
import { paceOf } from './estimate.js';
import { WaitingStore, type RowKey, type WaitingRow } from './store.js';

export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

/** What became of one job the dispatcher tried; the app counts these. */
export type DispatchDisposition = 'admitted' | 'rejected' | 'cancelled' | 'dead' | 'unavailable' | 'in_progress';

export interface DispatcherEvents {
  dispatched?(disposition: DispatchDisposition, job: WaitingRow, detail: { waitedMs: number; notBeforeErrorMs?: number; reason?: string }): void;
  leadership?(leader: boolean): void;
  fault?(what: string, error: unknown): void;
  /** Jobs whose admission took over the lease of their already stored job message (AdmissionPipeline). */
  takenOver?(count: number): void;
  /** A dispatch round that took longer than SLOW_ROUND_MS: where the time went (ms). */
  slowRound?(detail: { picks: number; claimMs: number; admitMs: number; finishMs: number }): void;
  /** At most once a second while jobs wait and none can be picked: what holds them (for a debug log). */
  idle?(detail: { waiting: number; delayed: number; globalBlockMs: number; lanes: Record<string, string>; tenants: Record<string, string>; nextAt: number }): void;
}

export interface DispatcherDeps {
  readonly namespace: string;
  readonly db: Database;
  /** For the leader's session lock (one connection held while leading). */
  readonly pool: pg.Pool;
  readonly limiter: Limiter;
  readonly js: JetStreamTarget;
  readonly nc: NatsConnection;
  readonly names: NatsNames;
  readonly natsUp?: () => boolean;
  /** Reads a stored job message (AdmissionPipelineDeps.storedJob): a job re-admitted after a dead leader's admission of it lapsed takes over that admission's lease. */
  readonly storedJob?: AdmissionPipelineDeps['storedJob'];
  readonly events?: DispatcherEvents;
  /** Jobs being admitted at once (default 64). */
  readonly maxInFlight?: number;
  /** How often a follower asks for leadership (default 1,000 ms). */
  readonly leadershipPollMs?: number;
  /** How long a concurrency (or pause) refusal blocks without a wake (default 1,000 ms; tests lengthen it to tell a wake from the recheck). */
  readonly slotRecheckMs?: number;
}

interface RoomJob extends QueuedJob {
  readonly row: WaitingRow;
  /**
   * An admission of it may be live that this dispatcher did not decide: a leader that died left its
   * row `dispatching`, or its admission answered `in_progress`. Until an admission call decides it,
   * the row stays `dispatching` between tries, so that a producer's cancel cannot answer
   * "cancelled" for a job whose message may already be in JetStream and run.
   */
  inDoubt: boolean;
}

interface Block {
  readonly until: number;
  /** A concurrency refusal: any freed slot (a wake) lifts it. */
  readonly slot: boolean;
  /** The refusal's reason (for the idle report). */
  readonly reason?: string;
}

/** Concurrency refusals give only a guess; look again at least this often even without a wake. */
const SLOT_RECHECK_MS = 1_000;
/** How long stop() waits for a dispatch round in flight (see stop). */
const STOP_WAIT_MS = 3_000;
/** A round slower than this is reported (events.slowRound): every waiting job waits for it. */
const SLOW_ROUND_MS = 2_000;
const RETRY_SOON_MS = 1_000;
const LOAD_PAGE = 5_000;
/**
 * A row's seq is taken at insert, and rows commit out of order (by at most the inserts in flight at
 * once): each load looks this far back again. A full load every FULL_RESCAN_MS is the safety net.
 */
const SEQ_LOOKBACK = 256;
const FULL_RESCAN_MS = 30_000;
/** New rows are looked for when a producer's wake says so, and at least this often. */
const LOAD_EVERY_MS = 1_000;
/** How often the leader checks that its lock's session is alive. */
const LIVENESS_MS = 2_000;
/** The wake a producer sends when a job joins the room (any other wake means: capacity may have freed). */
export const NEW_JOB_WAKE = 'job';
const TENANT_REASONS: ReadonlySet<RejectReason> = new Set(['tenant_rate', 'tenant_concurrency', 'budget_exhausted', 'credits_exhausted']);
// Prepaid credits have no refill: a refusal waits its retryAfterMs (a minute), or until a wake (a
// top-up wakes the room; so does a settle, which may give back part of a reservation).
const WAKE_REASONS: ReadonlySet<RejectReason> = new Set(['credits_exhausted']);
// An open outage circuit and a pause are lifted like a slot: the success that closes a circuit is an
// outcome, and a resume is announced, both wake the room; until then they are rechecked every second.
const SLOT_REASONS: ReadonlySet<RejectReason> = new Set(['dependency_concurrency', 'tenant_concurrency', 'global_concurrency', 'shed', 'dependency_unavailable', 'paused']);

/**
 * The waiting room's dispatcher (CONTRACT §3 mode `queue`): admits waiting jobs fairly as capacity
 * frees, through the one admission pipeline. One instance leads at a time (a PostgreSQL advisory
 * lock held on a session: a dead leader's lock goes with its connection); the others wait to take
 * over. Even two leaders at once could not admit a job twice: a row is claimed by compare-and-set
 * before its admission, and each admission is idempotent per attempt.
 *
 * The loop: pick the next job by fair queueing (fair-queue.ts) among the lanes (job types) and
 * tenants not blocked; claim the picks; admit each; a refused job goes back in its place and blocks
 * what refused it — its lane, its tenant, or its tenant on its lane — until the refusal's
 * `retryAfterMs` (exact for rates), or, for a concurrency refusal, until a wake says a slot may have
 * freed (`<ns>.room.wake`: settles, reaps and new jobs publish it). No fixed polling: with nothing to
 * do the loop sleeps until a wake or the earliest block ends.
 */
export class Dispatcher {
  readonly store: WaitingStore;
  readonly #queue: FairQueue<RoomJob>;
  readonly #pipeline: AdmissionPipeline;
  readonly #publishing: Publishing;
  readonly #lanes = new Map<string, Block>();
  readonly #tenants = new Map<string, Block>();
  readonly #tenantLanes = new Map<string, Block>();
  /**
   * Jobs a fairness scope (the lanes on one set of dependencies, fairnessScope) may try in one
   * round: doubled after a round whose tries were all admitted, and after a round with refusals set
   * to what was admitted in it (at least 1) — the limits' own measure of what one round can take,
   * so a tight limit costs few refusals and a fast one is not starved. Per scope, not per job type:
   * two job types on one dependency share what it takes per round, in the fair order.
   */
  readonly #windows = new Map<string, number>();
  #globalUntil = 0;
  /** Jobs that wait alone (an in-progress or stale admission of theirs), back in the queue at `until`. */
  #delayed: { job: RoomJob; until: number }[] = [];
  #lastSeq = 0;
  #lastFullScan = 0;
  #lastLoad = 0;
  #lastLiveness = 0;
  #newRows = true;
  /** A wake said capacity may have freed (a settle, a reap): concurrency refusals are looked at again. */
  #slotFreed = false;
  #leader: pg.PoolClient | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #woken = false;
  #loop: Promise<void> | undefined;
  #sub: { unsubscribe(): void } | undefined;

  constructor(private readonly deps: DispatcherDeps) {
    this.store = new WaitingStore(deps.db);
    this.#queue = new FairQueue(
      (tenant) => deps.limiter.policy.document.tenants[tenant]?.weight ?? 1,
      (type) => fairnessScope(deps.limiter.policy, type),
    );
    this.#pipeline = new AdmissionPipeline({
      limiter: deps.limiter,
      js: deps.js,
      names: deps.names,
      ...(deps.natsUp ? { natsUp: deps.natsUp } : {}),
      ...(deps.storedJob ? { storedJob: deps.storedJob } : {}),
      events: { takenOver: (n) => deps.events?.takenOver?.(n) },
    });
    this.#publishing = { js: deps.js, names: deps.names, now: Date.now };
  }

  get leading(): boolean {
    return this.#leader !== undefined;
  }

  start(): void {
    const sub = this.deps.nc.subscribe(this.deps.names.subjects.roomWake, {
      callback: (_err, msg) => {
        if (msg.string() === NEW_JOB_WAKE) this.#newRows = true;
        else this.#slotFreed = true;
        this.wake();
      },
    });
    this.#sub = sub;
    this.#loop = this.#run();
  }

  /** Capacity may have freed or a job arrived: look again now. */
  wake(): void {
    this.#woken = true;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#sub?.unsubscribe();
    this.wake();
    // A round in flight finishes, or is left as a crashed leader's would be (its rows stay
    // `dispatching`, in doubt, for the next leader: each admission is idempotent per attempt) once
    // STOP_WAIT_MS have passed — with NATS unreachable its publishes could hold the shutdown past
    // the app's grace period, which then exits 1.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#loop, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
    clearTimeout(timer);
    await this.#resign();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (!this.leading && !(await this.#lead())) {
          await this.#sleep(this.deps.leadershipPollMs ?? 1_000);
          continue;
        }
        await this.#round();
      } catch (error) {
        this.deps.events?.fault?.('dispatch', error);
        await this.#resign();
        await this.#sleep(RETRY_SOON_MS);
      }
    }
  }

  /** Takes the lead if no one holds it: then loads every waiting row (rows a dead leader held are waiting again). */
  async #lead(): Promise<boolean> {
    const client = await this.deps.pool.connect();
    try {
      const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [`janus-room-leader:${this.deps.namespace}`]);
      if (got.rows[0]?.ok !== true) {
        client.release();
        return false;
      }
    } catch (error) {
      client.release(true);
      throw error;
    }
    this.#leader = client;
    this.#known.clear();
    this.#queue.clear();
    this.#delayed = [];
    // Rows a dead leader left `dispatching` are loaded as they are (in doubt: see RoomJob.inDoubt)
    // and admitted again; their admission is idempotent.
    this.#lastSeq = 0;
    this.#lastFullScan = Date.now();
    await this.#load(0);
    this.deps.events?.leadership?.(true);
    return true;
  }

  async #resign(): Promise<void> {
    const client = this.#leader;
    if (client === undefined) return;
    this.#leader = undefined;
    this.deps.events?.leadership?.(false);
    // Closing the session releases the lock; the next leader loads the rows afresh.
    client.release(true);
    this.#known.clear();
    this.#queue.clear();
    this.#delayed = [];
  }

  readonly #known = new Set<string>();
  #lastIdleReport = 0;

  /** Loads waiting rows after `afterSeq` into the queue (rows already known are skipped). */
  async #load(afterSeq: number): Promise<void> {
    let from = afterSeq;
    for (;;) {
      const rows = await this.store.loadWaiting(from, LOAD_PAGE);
      for (const row of rows) {
        this.#lastSeq = Math.max(this.#lastSeq, row.seq);
        const k = `${row.jobId}.${row.attempt}`;
        if (this.#known.has(k)) continue;
        this.#known.add(k);
        this.#queue.add(this.#roomJob(row));
      }
      if (rows.length < LOAD_PAGE) return;
      from = rows[rows.length - 1]!.seq;
    }
  }

  #roomJob(row: WaitingRow): RoomJob {
    const policy = this.deps.limiter.policy;
    const units = paceOf(policy, row.tenant, row.type, row.cost ?? undefined).units;
    return {
      jobId: row.jobId,
      attempt: row.attempt,
      seq: row.seq,
      tenant: row.tenant,
      type: row.type,
      priority: row.priority,
      units: units.perJob ? 1 : (row.cost ?? units.estimate),
      // Never before its notBefore (CONTRACT §3): capacity freed sooner than the estimate foresaw
      // (jobs ahead cancelled, a cost settled below its estimate) goes to jobs whose time has come.
      dueAt: Math.max(row.dueAt.getTime(), row.notBefore.getTime()),
      row,
      inDoubt: row.state === 'dispatching',
    };
  }

  /** One round: new rows in, picks out, their admissions decided. */
  async #round(): Promise<void> {
    const now = Date.now();
    if (now - this.#lastLiveness > LIVENESS_MS) {
      // Is the lock's session still alive? (A lost connection means someone else may lead now.)
      await this.#leader!.query('SELECT 1');
      this.#lastLiveness = now;
    }
    if (now - this.#lastFullScan > FULL_RESCAN_MS) {
      this.#lastFullScan = now;
      this.#lastLoad = now;
      this.#newRows = false;
      await this.#load(0);
    } else if (this.#newRows || now - this.#lastLoad > LOAD_EVERY_MS) {
      this.#lastLoad = now;
      this.#newRows = false;
      await this.#load(Math.max(0, this.#lastSeq - SEQ_LOOKBACK));
    }
    // Wakes so far are answered by this round: a capacity wake lifts the concurrency refusals. A
    // wake from now on makes the sleep below return at once.
    this.#woken = false;
    if (this.#slotFreed) {
      this.#slotFreed = false;
      for (const map of [this.#lanes, this.#tenants, this.#tenantLanes]) for (const [k, b] of map) if (b.slot) map.delete(k);
    }
    const picks = this.#pick(Date.now());
    if (picks.picked.length === 0 && this.#queue.size + this.#delayed.length > 0 && Date.now() - this.#lastIdleReport >= 1_000) {
      this.#lastIdleReport = Date.now();
      const left = (map: Map<string, Block>) => Object.fromEntries([...map].map(([k, b]) => [k, `${b.reason ?? '?'} ${b.until - this.#lastIdleReport} ms`]));
      this.deps.events?.idle?.({
        waiting: this.#queue.size,
        delayed: this.#delayed.length,
        globalBlockMs: Math.max(0, this.#globalUntil - this.#lastIdleReport),
        lanes: left(this.#lanes),
        tenants: { ...left(this.#tenants), ...left(this.#tenantLanes) },
        nextAt: picks.nextAt - this.#lastIdleReport,
      });
    }
    if (picks.picked.length === 0) {
      await this.#sleep(Math.max(1, Math.min(picks.nextAt - Date.now(), LOAD_EVERY_MS)));
      return;
    }
    await this.#dispatch(picks.picked);
  }

  #pick(now: number): { picked: { job: RoomJob; undo: () => void }[]; nextAt: number } {
    if (this.#delayed.length > 0) {
      const due = this.#delayed.filter((d) => d.until <= now);
      this.#delayed = this.#delayed.filter((d) => d.until > now);
      for (const d of due) this.#queue.add(d.job);
    }
    const max = this.deps.maxInFlight ?? 64;
    const perScope = new Map<string, number>();
    const scopeOf = (type: string) => fairnessScope(this.deps.limiter.policy, type);
    const earliest = { at: now + (this.deps.slotRecheckMs ?? SLOT_RECHECK_MS) };
    const blocks: Blocks = {
      // a lane is blocked by its job type's own refusals and by its dependencies' (its scope's)
      lane: (type, t) =>
        t < this.#globalUntil ||
        blocked(this.#lanes, type, t, earliest) ||
        blocked(this.#lanes, scopeOf(type), t, earliest) ||
        (perScope.get(scopeOf(type)) ?? 0) >= (this.#windows.get(scopeOf(type)) ?? 1),
      tenant: (tenant, t) => blocked(this.#tenants, tenant, t, earliest),
      tenantLane: (tenant, type, t) =>
        this.#tenantLanes.size > 0 &&
        (blocked(this.#tenantLanes, `${tenant}|${type}`, t, earliest) || blocked(this.#tenantLanes, `${tenant}|${scopeOf(type)}`, t, earliest)),
    };
    const picked: { job: RoomJob; undo: () => void }[] = [];
    while (picked.length < max) {
      const next = this.#queue.next(now, blocks, earliest);
      if (next === undefined) break;
      picked.push(next);
      const scope = scopeOf(next.job.type);
      perScope.set(scope, (perScope.get(scope) ?? 0) + 1);
    }
    if (this.#globalUntil > now) earliest.at = Math.min(earliest.at, this.#globalUntil);
    for (const d of this.#delayed) earliest.at = Math.min(earliest.at, d.until);
    return { picked, nextAt: earliest.at };
  }

  async #dispatch(picks: { job: RoomJob; undo: () => void }[]): Promise<void> {
    const t0 = performance.now();
    const claimed = new Set((await this.store.claim(picks.map((p) => p.job))).map((k) => `${k.jobId}.${k.attempt}`));
    const t1 = performance.now();
    const results = await Promise.all(
      picks.map(async (p) => {
        const k = `${p.job.jobId}.${p.job.attempt}`;
        if (!claimed.has(k)) {
          // Cancelled meanwhile (or another dispatcher took it): it left the room.
          this.#known.delete(k);
          this.deps.events?.dispatched?.('cancelled', p.job.row, { waitedMs: Date.now() - p.job.row.queuedAt.getTime() });
          return undefined;
        }
        return { p, outcome: await this.#admit(p.job) };
      }),
    );
    const admitted: RowKey[] = [];
    const back: RowKey[] = [];
    const dead: (RowKey & { reason: string })[] = [];
    const undone: { undo: () => void }[] = [];
    // per fairness scope (see #windows)
    const scopeOf = (type: string) => fairnessScope(this.deps.limiter.policy, type);
    const laneAdmitted = new Map<string, number>();
    const laneRefused = new Set<string>();
    for (const r of results) {
      if (r === undefined) continue;
      const { p, outcome } = r;
      const key = { jobId: p.job.jobId, attempt: p.job.attempt };
      const waitedMs = Date.now() - p.job.row.queuedAt.getTime();
      switch (outcome.kind) {
        case 'admitted':
          admitted.push(key);
          this.#known.delete(`${key.jobId}.${key.attempt}`);
          laneAdmitted.set(scopeOf(p.job.type), (laneAdmitted.get(scopeOf(p.job.type)) ?? 0) + 1);
          this.deps.events?.dispatched?.('admitted', p.job.row, { waitedMs, notBeforeErrorMs: outcome.at - p.job.row.notBefore.getTime() });
          break;
        case 'dead':
          dead.push({ ...key, reason: outcome.reason });
          this.#known.delete(`${key.jobId}.${key.attempt}`);
          // (a superseded job left the room cancelled, not failed: so it is counted)
          this.deps.events?.dispatched?.(outcome.superseded === true ? 'cancelled' : 'dead', p.job.row, { waitedMs, reason: outcome.reason });
          break;
        case 'again':
          // An admission that may be live keeps its row `dispatching` (not cancellable); one that an
          // admission call answered otherwise is decided: nothing of it is live.
          if (outcome.disposition === 'in_progress') p.job.inDoubt = true;
          else if (outcome.decided !== false) p.job.inDoubt = false;
          if (!p.job.inDoubt) back.push(key);
          if (outcome.scope === 'job') {
            // Out of the queue (its tags restored) until its time: it blocks no one behind it.
            undone.push({ undo: () => { p.undo(); this.#queue.remove(p.job.jobId, p.job.attempt); } });
            this.#delayed.push({ job: p.job, until: Date.now() + Math.max(outcome.retryAfterMs, 1) });
          } else {
            undone.push(p);
            laneRefused.add(scopeOf(p.job.type));
          }
          this.#block(p.job, outcome);
          this.deps.events?.dispatched?.(outcome.disposition, p.job.row, { waitedMs, ...(outcome.reason ? { reason: outcome.reason } : {}) });
          break;
      }
    }
    const max = this.deps.maxInFlight ?? 64;
    for (const scope of new Set([...laneAdmitted.keys(), ...laneRefused])) {
      const admittedHere = laneAdmitted.get(scope) ?? 0;
      this.#windows.set(scope, laneRefused.has(scope) ? Math.max(1, admittedHere) : Math.min((this.#windows.get(scope) ?? 1) * 2, max));
    }
    // Refused picks go back in reverse order: each restores the tags as they were before it.
    for (const p of undone.reverse()) p.undo();
    const t2 = performance.now();
    await Promise.all([
      this.store.finish(admitted, 'admitted'),
      this.store.finish(back, 'queued'),
      ...dead.map((d) => this.store.finish([d], 'dead', d.reason)),
    ]);
    const t3 = performance.now();
    if (t3 - t0 > SLOW_ROUND_MS) this.deps.events?.slowRound?.({ picks: picks.length, claimMs: Math.round(t1 - t0), admitMs: Math.round(t2 - t1), finishMs: Math.round(t3 - t2) });
  }

  /** A refused job blocks what refused it. */
  #block(job: RoomJob, outcome: Extract<AdmitOutcome, { kind: 'again' }>): void {
    if (outcome.scope === 'job') return;
    const now = Date.now();
    if (outcome.scope === 'global') {
      this.#globalUntil = Math.max(this.#globalUntil, now + outcome.retryAfterMs);
      return;
    }
    const slot = outcome.reason !== undefined && SLOT_REASONS.has(outcome.reason as RejectReason);
    const until = now + (slot ? Math.min(Math.max(outcome.retryAfterMs, 1), this.deps.slotRecheckMs ?? SLOT_RECHECK_MS) : Math.max(outcome.retryAfterMs, 1));
    const block: Block = { until, slot: slot || (outcome.reason !== undefined && WAKE_REASONS.has(outcome.reason as RejectReason)), ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) };
    // A dependency's refusal blocks every lane on the same dependencies (its fairness scope): left
    // open, a second job type on the dependency would take what frees first, out of the fair order.
    // A pause may be the job type's own: it blocks that lane only.
    const lane = outcome.reason !== undefined && outcome.reason !== 'paused' ? fairnessScope(this.deps.limiter.policy, job.type) : job.type;
    if (outcome.scope === 'tenant') this.#tenants.set(job.tenant, block);
    else if (outcome.scope === 'tenant_lane') this.#tenantLanes.set(`${job.tenant}|${lane}`, block);
    else this.#lanes.set(lane, block);
  }

  async #admit(job: RoomJob): Promise<AdmitOutcome> {
    const { row } = job;
    const policy = this.deps.limiter.policy;
    const jt = policy.jobType(row.type);
    if (jt === undefined) return await this.#typeGone(job);
    const priority = PRIORITIES[row.priority] ?? 'low';
    // A job of a `dedupe` job type waits under its payload's key, and is admitted under it (with the
    // job type's dedupe window as it is now), so that once it left the room the limiter answers
    // replays of its payload. A job type that lost its `dedupe` meanwhile: as a job without a key.
    const dedupeKey = row.attempt === 1 && row.idempotencyKey !== null ? dedupeKeyOfRoomKey(row.idempotencyKey) : undefined;
    const dedupeWindowMs = dedupeKey !== undefined ? policy.document.jobTypes[row.type]?.dedupe?.windowMs : undefined;
    // The key answers what the producer was first told: `queued`, with its notBefore (CONTRACT §3).
    const firstAnswer = () => queuedIdempotencyRecord({ jobId: row.jobId, notBefore: row.notBefore.toISOString() }, row.fingerprint ?? undefined);
    const idempotency = row.attempt > 1
      ? { key: `retry:${row.jobId}.${row.attempt}`, record: 'retry', kind: 'retry' as const }
      : dedupeKey !== undefined && dedupeWindowMs !== undefined
        ? { key: dedupeKey, record: firstAnswer(), kind: 'dedupe' as const, windowMs: dedupeWindowMs }
        : row.idempotencyKey !== null && dedupeKey === undefined
          ? { key: row.idempotencyKey, record: firstAnswer() }
          : { key: `room:${row.jobId}.1`, record: 'room', kind: 'retry' as const };
    const request: AdmissionRequest = {
      jobs: [
        {
          jobId: row.jobId,
          tenant: row.tenant,
          jobType: row.type,
          priority,
          ...(row.attempt > 1 ? { attempt: row.attempt } : {}),
          // every earlier attempt uncharged (throttled, or under an open circuit): not a failure retry
          ...(row.attempt > 1 && row.uncharged >= row.attempt - 1 ? { budgetExempt: true } : {}),
          ...(row.cost !== null ? { cost: row.cost } : {}),
          idempotency,
          context: encodeRetryContext(
            {
              tenant: row.tenant,
              type: row.type,
              priority: row.jobPriority,
              ...(row.cost !== null ? { cost: row.cost } : {}),
              createdAt: row.createdAt.toISOString(),
              // The next outcome adds to it (@janus/execution outcomes.ts).
              ...(row.uncharged > 0 ? { uncharged: row.uncharged } : {}),
            },
            row.payload ?? undefined,
          ),
        },
      ],
    };
    let result: PipelineResult;
    try {
      result = await this.#pipeline.run({
        request,
        payloads: [row.payload ?? undefined],
        // The job message's `admittedAt` is the limiter's (Redis's) time of the admission.
        // The message says the job's own priority (a retry waits and is admitted at its job type's retryPriority).
        extras: (a) => ({
          priority: row.jobPriority,
          ...(row.cost !== null ? { cost: row.cost } : {}),
          ...(row.attempt === 1 && row.idempotencyKey !== null && dedupeKey === undefined && row.fingerprint !== null
            ? { idempotency: { key: row.idempotencyKey, fingerprint: row.fingerprint, expiresAt: new Date(a.admittedAt + jt.idempotencyWindowMs).toISOString() } }
            : {}),
        }),
      });
    } catch (error) {
      // Redis unreachable or its state lost: nothing was admitted; everyone waits a moment. (This
      // call decided nothing about an earlier admission of the job.)
      this.deps.events?.fault?.('admission', error);
      return { kind: 'again', disposition: 'unavailable', scope: 'global', retryAfterMs: RETRY_SOON_MS, decided: false };
    }
    switch (result.kind) {
      case 'admitted': {
        // Its key names another job (admitted while this one waited: a mode-now request with the
        // same producer key, or the same payload of a job type with dedupe, raced this one's
        // queueing): that job is this one's replay, so this one never runs. It leaves the room
        // cancelled, naming the job that runs in its place — never `admitted` without an attempt.
        const replayOf = row.attempt === 1 && row.idempotencyKey !== null && result.fresh === 0 ? result.admitted.jobs[0]?.duplicate : undefined;
        const firstId = replayOf !== undefined ? parseIdempotencyRecord(replayOf.record).body['jobId'] : undefined;
        if (typeof firstId === 'string' && firstId !== row.jobId) {
          try {
            await this.store.supersede(row, firstId, dedupeKey !== undefined ? 'payload' : 'key');
          } catch (error) {
            this.deps.events?.fault?.('supersede', error);
            return { kind: 'again', disposition: 'unavailable', retryAfterMs: RETRY_SOON_MS, scope: 'job' };
          }
          // Its row is `cancelled` already: the round's `dead` transition (from `dispatching`) leaves it so.
          return { kind: 'dead', superseded: true, reason: `superseded by job ${firstId} (same ${dedupeKey !== undefined ? 'payload' : 'idempotency key'})` };
        }
        return { kind: 'admitted', at: result.admitted.at };
      }
      case 'duplicate':
        // An earlier try (a dispatcher that died after admitting) already admitted this attempt.
        return { kind: 'admitted', at: Date.now() };
      case 'rejected':
        return { kind: 'again', disposition: 'rejected', reason: result.reason, retryAfterMs: result.retryAfterMs, scope: this.#scopeOf(row, result.reason) };
      case 'in_progress':
        // An earlier leader admitted it and died before confirming: a worker's claim confirms it (its
        // message is stored) or its lease expires as no attempt; until then only this job waits.
        return { kind: 'again', disposition: 'in_progress', retryAfterMs: RETRY_SOON_MS, scope: 'job' };
      case 'unavailable':
        // A stale duplicate (this attempt's message is in JetStream from an admission that was
        // undone) concerns this job alone; anything else (NATS, the ledger) every job.
        // NATS down: the pipeline answered before any admission call, so nothing was decided.
        return {
          kind: 'again',
          disposition: 'unavailable',
          retryAfterMs: result.retryAfterMs,
          scope: result.cause === 'stale_duplicate' || result.cause === 'confirm_failed' ? 'job' : 'global',
          decided: result.cause !== 'nats_down',
        };
      case 'unknown_job_type':
        return await this.#typeGone(job);
      case 'exceeds_capacity': {
        const { limit } = result;
        const name = [limit.scope, limit.dependency, limit.scope === 'dependency' ? limit.tenant : undefined, limit.kind].filter((x) => x !== undefined).join(' ');
        return await this.#dead(row, `exceeds capacity: it takes ${limit.requested} of the ${name} limit, whose capacity is ${limit.capacity}`);
      }
      case 'vetoed':
        // The producer's key now names a different admitted request: this one can never be admitted under it.
        return await this.#dead(row, 'its idempotency key was used for a different request');
    }
  }

  /**
   * A job whose type left the policy can no longer be admitted: it is dead — unless it is in doubt
   * and an earlier admission of it is live (a leader that died after admitting it). Then its message
   * may be in JetStream and run (the type's workers consumer stays until drained), so it is not
   * declared dead: an admission recorded under its key means it was admitted; one in progress
   * keeps it in doubt until a worker's claim confirms it or its lease expires unconfirmed.
   */
  async #typeGone(job: RoomJob): Promise<AdmitOutcome> {
    const { row } = job;
    if (job.inDoubt) {
      try {
        for (const { key, kind } of admissionKeysOf(row)) {
          const held = await this.deps.limiter.idempotencyState(row.tenant, key, kind);
          if (held.state === 'none') continue;
          if (held.state === 'in_progress') return { kind: 'again', disposition: 'in_progress', retryAfterMs: RETRY_SOON_MS, scope: 'job' };
          // A producer's or a payload's key may name another job: then this one was not admitted under it.
          const named = kind === 'retry' ? row.jobId : parseIdempotencyRecord(held.record).body['jobId'];
          if (named === row.jobId) return { kind: 'admitted', at: Date.now() };
        }
      } catch (error) {
        this.deps.events?.fault?.('admission', error);
        return { kind: 'again', disposition: 'unavailable', scope: 'global', retryAfterMs: RETRY_SOON_MS, decided: false };
      }
    }
    return await this.#dead(row, 'job type no longer exists');
  }

  /** Which waiting jobs a refusal concerns: the tenant's (tenant limits), its lane for it (a per-tenant cap), the lane, or all. */
  #scopeOf(row: WaitingRow, reason: RejectReason): 'job' | 'tenant' | 'tenant_lane' | 'lane' | 'global' {
    // A retry over its dependency's retry budget: first attempts of the lane must not wait behind it.
    if (reason === 'retry_budget') return 'job';
    // Shed: this job's priority may not use more of some limit; another tenant's job, or one of a
    // higher priority, may well be admitted (its share is larger, or the limit is this tenant's own).
    // Blocking the lane held every tenant's waiting jobs of the type behind one tenant at its share.
    if (reason === 'shed') return 'tenant_lane';
    if (TENANT_REASONS.has(reason)) return 'tenant';
    if (reason === 'global_rate' || reason === 'global_concurrency') return 'global';
    const specs = this.deps.limiter.policy.limitsFor(row.tenant, row.type) ?? [];
    if (specs.some((s) => s.reason === reason && s.ref.scope === 'dependency' && s.ref.tenant !== undefined)) return 'tenant_lane';
    return 'lane';
  }

  /** No wait can admit it: a retry becomes a dead letter; a first attempt is marked dead in the room (GET shows why). */
  async #dead(row: WaitingRow, reason: string): Promise<AdmitOutcome> {
    if (row.attempt > 1) {
      try {
        await publishDeadLetter(this.#publishing, {
          jobId: row.jobId,
          jobType: row.type,
          tenant: row.tenant,
          attempts: row.attempt - 1,
          lastOutcome: row.lastOutcome ?? 'failed',
          error: reason,
          ...(row.payload !== null ? { payload: JSON.parse(row.payload) as never } : {}),
        });
      } catch (error) {
        this.deps.events?.fault?.('dead letter', error);
        return { kind: 'again', disposition: 'unavailable', retryAfterMs: RETRY_SOON_MS, scope: 'global' };
      }
    }
    return { kind: 'dead', reason };
  }

  async #sleep(ms: number): Promise<void> {
    if (!this.#woken && !this.#stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#wake = undefined;
          resolve();
        }, ms);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#woken = false;
  }
}

type AdmitOutcome =
  | { readonly kind: 'admitted'; readonly at: number }
  /** Out of the room for good: failed (dead), or `superseded` (another job runs in its place: cancelled). */
  | { readonly kind: 'dead'; readonly reason: string; readonly superseded?: true }
  | {
      readonly kind: 'again';
      readonly disposition: DispatchDisposition;
      readonly reason?: RejectReason;
      readonly retryAfterMs: number;
      readonly scope: 'job' | 'tenant' | 'tenant_lane' | 'lane' | 'global';
      /** False when no admission call answered (NATS down, Redis unreachable): an earlier admission of the job may still be live. Default true. */
      readonly decided?: boolean;
    };

function blocked(map: Map<string, Block>, key: string, now: number, earliest: { at: number }): boolean {
  const b = map.get(key);
  if (b === undefined) return false;
  if (b.until <= now) {
    map.delete(key);
    return false;
  }
  if (b.until < earliest.at) earliest.at = b.until;
  return true;
}

/**
 * The idempotency keys under which the room may have admitted a row's attempt (#admit): a retry's,
 * a payload's (a `dedupe` job type; under the room's own key when the type had lost `dedupe`), a
 * producer's, or the room's own.
 */
function admissionKeysOf(row: WaitingRow): { key: string; kind: IdempotencyKind }[] {
  if (row.attempt > 1) return [{ key: `retry:${row.jobId}.${row.attempt}`, kind: 'retry' }];
  const room = { key: `room:${row.jobId}.1`, kind: 'retry' as const };
  if (row.idempotencyKey === null) return [room];
  const dedupeKey = dedupeKeyOfRoomKey(row.idempotencyKey);
  return dedupeKey !== undefined ? [{ key: dedupeKey, kind: 'dedupe' }, room] : [{ key: row.idempotencyKey, kind: 'producer' }];
}

/**
 * The resource a job type's waiting jobs compete for, as the fair order sees it: its set of
 * dependencies. Job types on the same dependencies share one fair order between tenants (a tenant
 * spreading its jobs over two such job types gets one share, not two); job types without
 * dependencies share the tenant and global limits, and one order. A job type the policy does not
 * know (deleted while its jobs wait) is a scope of its own.
 */
export function fairnessScope(policy: CompiledPolicy, type: string): string {
  // Asked for every waiting tenant's head on every pick: remembered per (immutable) policy.
  let scopes = scopesByPolicy.get(policy);
  if (scopes === undefined) scopesByPolicy.set(policy, (scopes = new Map()));
  let scope = scopes.get(type);
  if (scope === undefined) {
    const jt = policy.jobType(type);
    scope = jt === undefined ? `type:${type}` : `deps:${jt.dependencies.map((d) => d.name).sort().join(',')}`;
    scopes.set(type, scope);
  }
  return scope;
}

const scopesByPolicy = new WeakMap<CompiledPolicy, Map<string, string>>();
