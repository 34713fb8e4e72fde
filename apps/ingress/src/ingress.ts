import type { Limiter } from '@janus/limiter';
import type { Settings } from '@janus/config';
import type { Logger } from '@janus/observability';
import { startLimiterRuntime, type LimiterRuntime, type Startup } from '@janus/runtime';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { BlankEnv } from 'hono/types';
import { firstReportByToken, getJobRecord, getJobView, listJobViews } from '@janus/event-store';
import { StateRecovery } from '@janus/execution';
import { recordDecision } from '@janus/observability';
import type { ApiKeyCache } from '@janus/policy';
import { AckPublisher, storedJobReader } from '@janus/messaging';
import { LiveStatsBuffer } from './decisions.js';
import { createApp } from './app.js';
import { readStoredOutcome } from './routes/outcome.js';
import { NatsStatus } from './nats-status.js';
import { NEW_JOB_WAKE, WaitingStore } from '@janus/waiting-room';

/** A job type's idempotency window when the policy no longer has the job type (CONTRACT §2's default). */
const DEFAULT_IDEMPOTENCY_WINDOW_MS = 86_400_000;

export interface Ingress {
  readonly app: OpenAPIHono<BlankEnv>;
  readonly runtime: LimiterRuntime;
  readonly limiter: Limiter;
  readonly keys: ApiKeyCache;
  close(): Promise<void>;
}

/**
 * Connects everything an ingress instance needs and builds its app: the runtime (Redis, NATS,
 * PostgreSQL, the limiter holding the live policy, and the API-key cache reloaded on every config
 * event, so revocations apply within a second), then the hot path on top of it.
 */
export async function startIngress(settings: Settings, opts: { logger?: Logger; publishTimeoutMs?: number; startup?: Startup } = {}): Promise<Ingress> {
  const runtime = await startLimiterRuntime({
    app: 'ingress',
    settings,
    watchApiKeys: true,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.startup ? { startup: opts.startup } : {}),
  });
  const { limiter, apiKeys: keys } = runtime;
  await keys.refresh().catch((error: unknown) => runtime.logger.warn({ err: error }, 'API keys not loaded yet; retrying on the next poll'));
  // The epoch marks Redis state as trustworthy; a missing one (Redis lost its data) closes admission
  // until the state is rebuilt from the durable record (one instance rebuilds, the others wait), at
  // start and whenever the watch finds it lost: see StateRecovery.
  const recovery = new StateRecovery({ limiter, db: runtime.db.db, jsm: runtime.jsm, js: runtime.js, names: runtime.names, logger: runtime.logger, registry: runtime.registry, policyLoaded: () => runtime.policy.loaded });
  await recovery.open().then(
    (opening) => {
      if (!opening.open) runtime.logger.warn({ why: opening.why }, 'admission closed at start: the limiter state is not rebuilt yet');
    },
    (error: unknown) => runtime.logger.warn({ err: error }, 'limiter init failed (Redis down?); admissions answer 503 until it is back'),
  );
  recovery.watch();

  const nats = new NatsStatus(runtime.nc);
  // Acked JetStream publishes for the hot path (see AckPublisher: cheaper than js.publish per message).
  const publisher = new AckPublisher(runtime.nc);
  const live = new LiveStatsBuffer(
    (decision, count) => recordDecision(runtime.redis, limiter.keys, decision, { count }),
    (jobType) => limiter.policy.jobType(jobType)?.dependencies,
  );
  const policy = runtime.policy;
  const app = createApp({
    policy: () => (policy.loaded ? policy.compiled : undefined),
    limiter,
    keys,
    js: publisher,
    names: runtime.names,
    natsUp: () => nats.up,
    jobView: (tenant, jobId) => getJobView(runtime.db.db, tenant, jobId),
    listJobs: (tenant, query) => listJobViews(runtime.db.db, tenant, query),
    jobRecord: (tenant, jobId) => getJobRecord(runtime.db.db, tenant, jobId),
    storedOutcome: (seq) => readStoredOutcome(runtime.jsm, runtime.names.streams.outcomes, seq),
    recordedReport: (jobId, attempt, token) => firstReportByToken(runtime.db.db, jobId, attempt, token),
    maxMessageBytes: () => runtime.nc.info?.max_payload,
    storedJob: storedJobReader(runtime.jsm, runtime.names.streams.jobs),
    registry: runtime.registry,
    readiness: [...runtime.readiness, recovery.readiness],
    logger: runtime.logger,
    liveStats: live.record,
    room: {
      // a key whose queued job its producer cancelled still answers within the job type's window
      store: new WaitingStore(runtime.db.db, (type) => limiter.policy.jobType(type)?.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS),
      keyLive: (tenant, key, kind) => limiter.idempotencyKeyLive(tenant, key, kind),
      bucketLevels: (buckets) => limiter.bucketLevels(buckets),
      wake: () => {
        // Best effort: the dispatcher also looks again on its own within a second.
        if (!runtime.nc.isClosed()) runtime.nc.publish(runtime.names.subjects.roomWake, NEW_JOB_WAKE);
      },
    },
    ...(opts.publishTimeoutMs !== undefined ? { publishTimeoutMs: opts.publishTimeoutMs } : {}),
  });
  return {
    app,
    runtime,
    limiter,
    keys,
    close: async () => {
      await recovery.stop();
      nats.stop();
      publisher.close();
      await live.stop();
      await runtime.close();
    },
  };
}
