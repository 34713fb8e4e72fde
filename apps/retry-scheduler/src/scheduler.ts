import type { Settings } from '@janus/config';
import { randomUUID } from 'node:crypto';
import { OutcomeProcessor, RetryProcessor, StateRecovery, adoptFailOpenLeases, creditsRelay, letUndeliveredWait, outcomeHorizon, reapOnce, serveLeaseExtensions } from '@janus/execution';
import type { CompiledPolicy, Limiter } from '@janus/limiter';
import { AckPublisher, consumeConcurrently, ensureServiceConsumer, ensureWorkerConsumer, storedJobReader, sweepWorkerConsumers } from '@janus/messaging';
import { recordDecision, type Logger, type ReadinessCheck } from '@janus/observability';
import { startLimiterRuntime, type LimiterRuntime, type Services, type Startup } from '@janus/runtime';
import { Dispatcher, NEW_JOB_WAKE, PRIORITY_RANK, WaitingStore } from '@janus/waiting-room';
import { Gauge } from 'prom-client';
import { budgetMetrics, dependencyMetrics, schedulerMetrics } from './metrics.js';

export interface Scheduler {
  readonly runtime: LimiterRuntime;
  readonly limiter: Limiter;
  /** The runtime's checks, and `limiter-state` (down while a lost limiter state is rebuilt). */
  readonly readiness: readonly ReadinessCheck[];
  /** Stops taking outcomes and retries and reaping; finishes the messages in hand. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

export interface SchedulerOptions {
  logger?: Logger;
  /** main.ts's: waits for NATS and PostgreSQL while serving health (see Startup). */
  startup?: Startup;
  /** How often expired leases are reaped (default 250 ms). */
  reapIntervalMs?: number;
  /** How often the leases of fail-open admissions are looked for and adopted (default 1,000 ms). */
  adoptIntervalMs?: number;
  /** Outcome messages handled at once (default 64). */
  concurrency?: number;
  /** Waiting-retry deliveries handled at once (default 64). */
  retryConcurrency?: number;
  /** How often the workers consumers are checked: those of deleted job types removed once drained, missing ones created again (default 30 s). */
  consumerSweepMs?: number;
  /** How long the waiting room leaves a concurrency-refused job type alone without a wake (default 1,000 ms). */
  roomSlotRecheckMs?: number;
}

/**
 * The execution loop: worker outcomes → settled leases, waiting retries and dead letters; due
 * retries → admitted attempts; expired leases →
 * `timed_out` outcomes; lease extensions for workers; and one durable `workers-<type>` consumer per
 * job type of the live policy. Any number of instances may run side by side: outcomes are shared
 * through one durable consumer, waiting retries through another, reaping is atomic in Redis, extensions use a queue group.
 */
export async function startScheduler(settings: Settings, opts: SchedulerOptions = {}): Promise<Scheduler> {
  // A policy change may raise a limit: the waiting room looks again at once (set once it exists).
  let policyApplied = (): void => undefined;
  const runtime = await startLimiterRuntime({
    app: 'retry-scheduler',
    settings,
    // Each outcome and claim is a lookup and a script, many at once: one socket write per tick for
    // all of them (bench:e2e, two A/B pairs: scheduler CPU per job −18 %, Redis −25 %, +12 % jobs/s).
    redisAutoPipelining: true,
    onPolicyApplied: async (compiled, _policy, services) => {
      policyApplied();
      await ensureWorkerConsumers(services, compiled);
    },
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.startup ? { startup: opts.startup } : {}),
  });
  const { logger, names, jsm, js, nc, limiter } = runtime;
  // Acked publishes (applied outcomes, retries, ledger entries, dead letters, the room's jobs)
  // through one wildcard inbox and one timer, as ingress does: nats.js's request path builds an
  // Error per publish (~5 µs here). The credits relay keeps the nats.js client.
  const publisher = new AckPublisher(nc);
  // A lost limiter state is rebuilt from the durable record, at start and whenever the watch finds
  // it lost (one instance rebuilds, the others wait): see StateRecovery.
  const recovery = new StateRecovery({ limiter, db: runtime.db.db, jsm, js, names, logger, registry: runtime.registry, policyLoaded: () => runtime.policy.loaded });
  await recovery.open().then(
    (opening) => {
      if (!opening.open) logger.warn({ why: opening.why }, 'admission closed at start: the limiter state is not rebuilt yet');
    },
    (error: unknown) => logger.warn({ err: error }, 'limiter init failed (Redis down?); retrying on use'),
  );
  recovery.watch();

  const metrics = schedulerMetrics(runtime.registry);
  budgetMetrics(runtime.registry, limiter);
  const processor = new OutcomeProcessor({
    limiter,
    js: publisher,
    names,
    onFeedback: dependencyMetrics(runtime.registry, limiter, (dependency) => {
      // The dashboard charts throttle signals per dependency from the live counters ingress also writes.
      void recordDecision(runtime.redis, limiter.keys, { outcome: 'throttled', dependencies: [dependency] }).catch(() => undefined);
    }),
    onSettled: (type, outcome, ms) => metrics.admissionToOutcome.observe({ type, outcome }, ms / 1000),
  });

  // The waiting room (mode `queue` and due retries): one dispatcher leads across instances.
  const dispatcher = new Dispatcher({
    namespace: settings.namespace,
    db: runtime.db.db,
    pool: runtime.db.pool,
    limiter,
    js: publisher,
    nc,
    names,
    natsUp: () => !nc.isClosed(),
    storedJob: storedJobReader(jsm, names.streams.jobs),
    ...(opts.roomSlotRecheckMs !== undefined ? { slotRecheckMs: opts.roomSlotRecheckMs } : {}),
    events: {
      takenOver: (n) => metrics.takeovers.inc(n),
      dispatched: (disposition, _row, detail) => {
        metrics.dispatched.inc({ disposition, reason: disposition === 'rejected' ? (detail.reason ?? '') : '' });
        if (disposition === 'admitted') {
          metrics.roomWait.observe(detail.waitedMs / 1000);
          if (detail.notBeforeErrorMs !== undefined) {
            if (detail.notBeforeErrorMs < 0) metrics.admittedEarly.inc();
            else metrics.notBeforeError.observe(detail.notBeforeErrorMs / 1000);
          }
        }
      },
      leadership: (leader) => {
        metrics.roomLeader.set(leader ? 1 : 0);
        logger.info({ leader }, leader ? 'leading the waiting-room dispatch' : 'no longer leading the waiting-room dispatch');
      },
      fault: (what, error) => logger.warn({ err: error }, `waiting room: ${what} failed`),
      slowRound: (detail) => logger.warn(detail, 'waiting room: a slow dispatch round (every waiting job waited for it)'),
      idle: (detail) => logger.debug(detail, 'waiting room: jobs wait and none can be picked'),
    },
  });
  const room = new WaitingStore(runtime.db.db);
  roomGauges(runtime.registry, room);
  // Capacity may have freed (a settle, a reap): whichever instance leads the dispatch looks again.
  let nudging = false;
  const nudge = () => {
    if (nudging) return;
    nudging = true;
    setImmediate(() => {
      nudging = false;
      if (!nc.isClosed()) nc.publish(names.subjects.roomWake);
    });
  };
  // Every instance applies every version, the leader among them: a capacity wake, as after a settle.
  policyApplied = nudge;

  // Outcomes: one durable consumer shared by every scheduler instance. Deleted by hand, it is
  // created again (delivering the stream from its start: applying an outcome twice changes nothing).
  const ensureOutcomesConsumer = () => ensureServiceConsumer(jsm, names.streams.outcomes, names.consumers.schedulerOutcomes, { ackWaitMs: 30_000 });
  await ensureOutcomesConsumer();
  const consumer = await js.consumers.get(names.streams.outcomes, names.consumers.schedulerOutcomes);
  const outcomes = await consumeConcurrently(consumer, {
    concurrency: opts.concurrency ?? 64,
    handle: async (msg) => {
      const done = metrics.processing.startTimer();
      try {
        metrics.outcomes.inc({ disposition: await processor.process(msg) });
        nudge();
      } finally {
        done();
      }
    },
    onError: (error, msg) => {
      logger.error({ err: error, subject: msg.subject }, 'outcome handling failed; redelivering');
      msg.nak(1_000);
    },
    onInterrupted: (error) => logger.warn({ err: error }, 'outcome consumer interrupted; resuming'),
    onConsumerGone: async () => {
      logger.error({ consumer: names.consumers.schedulerOutcomes }, 'the outcomes consumer is gone; creating it again');
      await ensureOutcomesConsumer();
    },
  });

  // Waiting retries: their own stream and consumer, so however many wait, outcomes are never held
  // behind them (CONTRACT §6.6). Each waiting retry is a pending message here (nak-ed until due):
  // no cap on those (max_ack_pending -1), the pull buffer stays bounded by `retryConcurrency`.
  const retryProcessor = new RetryProcessor({
    limiter,
    js: publisher,
    names,
    storedJob: storedJobReader(jsm, names.streams.jobs),
    room: async (retry, priority) => {
      const state = await room.enqueueRetry({
        jobId: retry.jobId,
        attempt: retry.attempt,
        tenant: retry.tenant,
        type: retry.type,
        priority: PRIORITY_RANK[priority],
        jobPriority: retry.priority,
        cost: retry.cost,
        payload: retry.payload === undefined ? undefined : JSON.stringify(retry.payload),
        lastOutcome: retry.lastOutcome,
        uncharged: retry.uncharged,
        createdAt: new Date(retry.createdAt ?? retry.dueAt),
        dueAt: new Date(retry.dueAt),
      });
      // A job joined the room: the dispatcher loads it now (not at its next periodic look).
      if (!nc.isClosed()) nc.publish(names.subjects.roomWake, NEW_JOB_WAKE);
      return state;
    },
    recordDue: (retry) => room.recordRetryDue({ jobId: retry.jobId, attempt: retry.attempt, tenant: retry.tenant, dueAt: new Date(retry.dueAt) }),
  });
  const ensureRetriesConsumer = () => ensureServiceConsumer(jsm, names.streams.retries, names.consumers.schedulerRetries, { ackWaitMs: 30_000, maxAckPending: -1 });
  await ensureRetriesConsumer();
  const retryConsumer = await js.consumers.get(names.streams.retries, names.consumers.schedulerRetries);
  const retries = await consumeConcurrently(retryConsumer, {
    concurrency: opts.retryConcurrency ?? 64,
    handle: async (msg) => {
      metrics.retries.inc({ disposition: await retryProcessor.process(msg) });
    },
    onError: (error, msg) => {
      logger.error({ err: error, subject: msg.subject }, 'retry handling failed; redelivering');
      msg.nak(1_000);
    },
    onInterrupted: (error) => logger.warn({ err: error }, 'retry consumer interrupted; resuming'),
    onConsumerGone: async () => {
      logger.error({ consumer: names.consumers.schedulerRetries }, 'the retries consumer is gone; creating it again');
      await ensureRetriesConsumer();
    },
  });

  // Lease expiry: free expired slots and report them as timed_out outcomes — only leases that
  // expired before every outcome reported until then was processed (an outcome reported in time
  // counts, however late it is read: outcome-horizon.ts).
  const horizon = outcomeHorizon(jsm, names);
  let stopped = false;
  let reaping = false;
  const reaper = setInterval(() => {
    if (reaping || stopped) return;
    reaping = true;
    // A job about to expire whose message no worker was ever delivered waits again (CONTRACT §4);
    // then expired leases become timed_out attempts (or, never confirmed, no attempt at all).
    const reapTick = async () => {
      await letUndeliveredWait({ limiter, jsm, names, onWaiting: () => metrics.waitingAgain.inc() }).catch((error: unknown) =>
        logger.debug({ err: error }, 'undelivered-job check skipped'),
      );
      await reapOnce({
        limiter,
        js: publisher,
        names,
        horizon,
        onHorizon: (lagMs) => metrics.reapHorizonLag.set(lagMs / 1000),
        onReaped: (lease) => {
          metrics.reaped.inc({ kind: lease.confirmed ? 'attempt' : 'unconfirmed' });
          nudge();
        },
        onPublishFailure: (lease, error) => {
          metrics.reapPublishFailures.inc();
          logger.error({ err: error, jobId: lease.jobId, attempt: lease.attempt }, 'timed_out outcome could not be published');
        },
      });
    };
    void reapTick()
      .catch((error: unknown) => logger.debug({ err: error }, 'reap skipped (store unavailable)'))
      .finally(() => {
        reaping = false;
      });
  }, opts.reapIntervalMs ?? 250);

  // Jobs admitted while Redis was unreachable (failMode open): their leases are written once Redis
  // answers, from the persister's record, so that they run and count (libs/execution/src/adoption.ts).
  let adopting = false;
  const adoption = setInterval(() => {
    if (adopting || stopped || !runtime.policy.loaded) return;
    adopting = true;
    void adoptFailOpenLeases({
      limiter,
      db: runtime.db.db,
      publishing: { js: publisher, names, now: Date.now },
      onLedgerFailure: (error) => logger.warn({ err: error }, 'could not record the budget reservation of an adopted fail-open job; trying again'),
    })
      .then((result) => {
        if (!result.ok || result.adopted === 0) return;
        metrics.failOpenAdopted.inc(result.adopted);
        logger.info({ adopted: result.adopted }, 'adopted the leases of jobs admitted while Redis was unreachable');
      })
      .catch((error: unknown) => logger.debug({ err: error }, 'fail-open adoption skipped (Redis or PostgreSQL unavailable)'))
      .finally(() => (adopting = false));
  }, opts.adoptIntervalMs ?? 1_000);

  // A job type deleted from the policy keeps its workers consumer until its jobs are drained, then
  // loses it (a consumer per job type that ever existed would otherwise linger for ever); a job
  // type of the policy whose consumer was deleted (by hand, say) gets it back, after what it delivered.
  let sweeping = false;
  const deliveredFloors = new Map<string, number>();
  const sweep = setInterval(() => {
    if (sweeping || !runtime.policy.loaded) return;
    sweeping = true;
    void sweepWorkerConsumers(jsm, names, limiter.policy.jobTypes, deliveredFloors)
      .then(({ removed, recreated, created }) => {
        for (const name of removed) logger.info({ consumer: name }, 'removed the drained workers consumer of a deleted job type');
        for (const name of recreated) logger.warn({ consumer: name, fromSeq: (deliveredFloors.get(name) ?? 0) + 1 }, 'the workers consumer of a job type was missing; created it again');
        metrics.consumersRecreated.inc(recreated.length);
        for (const name of created) logger.info({ consumer: name }, 'created the missing workers consumer of a job type');
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'could not sweep the workers consumers'))
      .finally(() => (sweeping = false));
  }, opts.consumerSweepMs ?? 30_000);
  sweep.unref();

  const extensions = serveLeaseExtensions(nc, publisher, names, limiter, (type, ms) => metrics.startDelay.observe({ type }, ms / 1000));
  dispatcher.start();
  // Prepaid credits: every instance relays the Redis outbox of credits movements to the ledger stream
  // (one consumer group shares the entries; a dead instance's are claimed after 30 s). docs/credits.md
  let relayWarned = 0;
  const relay = creditsRelay({
    limiter,
    js,
    names,
    consumer: `scheduler-${randomUUID().slice(0, 8)}`,
    onError: (error) => {
      // at most one warning per 10 s while it keeps failing (the relay retries every second)
      if (Date.now() - relayWarned > 10_000) {
        relayWarned = Date.now();
        logger.warn({ err: error }, 'credits outbox relay failed; retrying');
      }
    },
  });
  relay.start();
  new Gauge({
    name: 'janus_credits_outbox_entries',
    help: 'Credits movements in the Redis outbox not yet stored in the ledger stream (grows while JetStream refuses or no relay runs)',
    registers: [runtime.registry],
    async collect() {
      this.set(await limiter.credits.outboxLength().catch(() => Number.NaN));
    },
  });

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    clearInterval(reaper);
    clearInterval(sweep);
    clearInterval(adoption);
    await recovery.stop();
    extensions.unsubscribe();
    await Promise.all([outcomes.stop(), retries.stop(), dispatcher.stop(), relay.stop()]);
    publisher.close();
  };
  return {
    runtime,
    limiter,
    readiness: [
      ...runtime.readiness,
      recovery.readiness,
      // A consumer JetStream says is gone (until it delivers again): nothing it holds is processed.
      { name: 'outcomes-consumer', check: () => Promise.resolve(outcomes.healthy) },
      { name: 'retries-consumer', check: () => Promise.resolve(retries.healthy) },
    ],
    stop,
    close: async () => {
      await stop();
      await runtime.close();
    },
  };
}

/** Waiting jobs per tenant and job type, and the oldest's age per tenant, read from PostgreSQL when scraped. */
function roomGauges(registry: LimiterRuntime['registry'], room: WaitingStore): void {
  let last: Awaited<ReturnType<WaitingStore['waitingAll']>> = [];
  // One query per scrape, shared by both gauges (prom-client collects them concurrently).
  let reading: Promise<void> | undefined;
  const refresh = () =>
    (reading ??= room
      .waitingAll()
      .then((rows) => {
        last = rows;
      })
      .catch(() => {
        // PostgreSQL unreachable: the last counts stay (readiness reports the outage).
      })
      .finally(() => setTimeout(() => (reading = undefined), 100)));
  new Gauge({
    name: 'janus_room_waiting_jobs',
    help: 'Jobs waiting in the room (mode queue, due retries), per tenant and job type',
    labelNames: ['tenant', 'job_type'],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const r of last) this.set({ tenant: r.tenant, job_type: r.type }, r.n);
    },
  });
  new Gauge({
    name: 'janus_room_oldest_waiting_seconds',
    help: "Age of each tenant's oldest waiting job",
    labelNames: ['tenant'],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      const oldest = new Map<string, number>();
      for (const r of last) oldest.set(r.tenant, Math.min(oldest.get(r.tenant) ?? Infinity, r.oldest.getTime()));
      for (const [tenant, at] of oldest) this.set({ tenant }, (Date.now() - at) / 1000);
    },
  });
}

/** One durable `workers-<type>` consumer per job type of the policy (idempotent). */
async function ensureWorkerConsumers(services: Pick<Services, 'jsm' | 'names' | 'logger'>, policy: CompiledPolicy): Promise<void> {
  for (const jobType of policy.jobTypes.values()) {
    await ensureWorkerConsumer(services.jsm, services.names, jobType.name, jobType.timeoutMs).catch((error: unknown) =>
      services.logger.warn({ err: error, jobType: jobType.name }, 'could not ensure the workers consumer'),
    );
  }
}
