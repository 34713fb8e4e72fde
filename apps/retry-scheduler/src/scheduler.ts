import type { ConsumerMessages } from '@nats-io/jetstream';
import type { Settings } from '@janus/config';
import { OutcomeProcessor, openLimiter, reapOnce, serveLeaseExtensions } from '@janus/execution';
import { Limiter, compilePolicy, type CompiledPolicy } from '@janus/limiter';
import { ensureServiceConsumer, ensureWorkerConsumer } from '@janus/messaging';
import type { Logger } from '@janus/observability';
import { startRuntime, type Runtime } from '@janus/runtime';
import { schedulerMetrics } from './metrics.js';

export interface Scheduler {
  readonly runtime: Runtime<CompiledPolicy>;
  readonly limiter: Limiter;
  /** Stops taking outcomes and reaping; finishes the messages in hand. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

export interface SchedulerOptions {
  logger?: Logger;
  /** How often expired leases are reaped (default 250 ms). */
  reapIntervalMs?: number;
  /** Outcome messages handled at once (default 64). */
  concurrency?: number;
}

/**
 * The execution loop: worker outcomes → settled leases, retries and dead letters; expired leases →
 * `timed_out` outcomes; lease extensions for workers; and one durable `workers-<type>` consumer per
 * job type of the live policy. Any number of instances may run side by side: outcomes are shared
 * through one durable consumer, reaping is atomic in Redis, extensions use a queue group.
 */
export async function startScheduler(settings: Settings, opts: SchedulerOptions = {}): Promise<Scheduler> {
  const late: { limiter?: Limiter; rt?: Runtime<CompiledPolicy> } = {};
  const ensureWorkerConsumers = async (policy: CompiledPolicy) => {
    const rt = late.rt;
    if (!rt) return;
    for (const jobType of policy.jobTypes.values()) {
      await ensureWorkerConsumer(rt.jsm, rt.names, jobType.name, jobType.timeoutMs).catch((error: unknown) =>
        rt.logger.warn({ err: error, jobType: jobType.name }, 'could not ensure the workers consumer'),
      );
    }
  };
  const runtime = await startRuntime<CompiledPolicy>({
    app: 'retry-scheduler',
    settings,
    compilePolicy: (p) => compilePolicy(p.document, p.version),
    onPolicyApplied: async (compiled) => {
      late.limiter?.setPolicy(compiled);
      await ensureWorkerConsumers(compiled);
    },
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  late.rt = runtime;
  const { logger, names, jsm, js, nc } = runtime;
  const limiter = new Limiter({
    redis: runtime.redis,
    namespace: settings.namespace,
    signingKey: settings.signingKey,
    ...(runtime.policy.loaded ? { policy: runtime.policy.compiled } : {}),
  });
  late.limiter = limiter;
  if (runtime.policy.loaded) await ensureWorkerConsumers(runtime.policy.compiled);
  await openLimiter({ limiter, db: runtime.db.db, jsm, names, logger }).catch((error: unknown) =>
    logger.warn({ err: error }, 'limiter init failed (Redis down?); retrying on use'),
  );

  const metrics = schedulerMetrics(runtime.registry);
  const processor = new OutcomeProcessor({ limiter, js, names });

  // Outcomes: one durable consumer shared by every scheduler instance.
  await ensureServiceConsumer(jsm, names.streams.outcomes, names.consumers.schedulerOutcomes, { ackWaitMs: 30_000 });
  const consumer = await js.consumers.get(names.streams.outcomes, names.consumers.schedulerOutcomes);
  const concurrency = opts.concurrency ?? 64;
  let messages: ConsumerMessages | undefined;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const consumeLoop = (async () => {
    while (!stopped) {
      try {
        messages = await consumer.consume({ max_messages: concurrency });
        for await (const msg of messages) {
          const done = metrics.processing.startTimer();
          const task = processor
            .process(msg)
            .then((disposition) => metrics.outcomes.inc({ disposition }))
            .catch((error: unknown) => {
              logger.error({ err: error, subject: msg.subject }, 'outcome handling failed; redelivering');
              msg.nak(1_000);
            })
            .finally(() => {
              done();
              inFlight.delete(task);
            });
          inFlight.add(task);
          while (inFlight.size >= concurrency) await Promise.race(inFlight);
        }
      } catch (error) {
        if (stopped) break;
        logger.warn({ err: error }, 'outcome consumer interrupted; resuming');
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  })();

  // Lease expiry: free expired slots and report them as timed_out outcomes.
  let reaping = false;
  const reaper = setInterval(() => {
    if (reaping || stopped) return;
    reaping = true;
    void reapOnce({
      limiter,
      js,
      names,
      onReaped: () => metrics.reaped.inc(),
      onPublishFailure: (lease, error) => {
        metrics.reapPublishFailures.inc();
        logger.error({ err: error, jobId: lease.jobId, attempt: lease.attempt }, 'timed_out outcome could not be published');
      },
    })
      .catch((error: unknown) => logger.debug({ err: error }, 'reap skipped (store unavailable)'))
      .finally(() => {
        reaping = false;
      });
  }, opts.reapIntervalMs ?? 250);

  const extensions = serveLeaseExtensions(nc, names, limiter);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    clearInterval(reaper);
    extensions.unsubscribe();
    await messages?.close();
    await consumeLoop;
    await Promise.allSettled([...inFlight]);
  };
  return {
    runtime,
    limiter,
    stop,
    close: async () => {
      await stop();
      await runtime.close();
    },
  };
}
