import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { Settings } from '@janus/config';
import type { VersionedPolicy } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { connectNats, ensureStreams, natsNames, pingNats, type NatsConnection, type NatsNames } from '@janus/messaging';
import { createLogger, createMetricsRegistry, type Logger, type ReadinessCheck } from '@janus/observability';
import { PolicyStore, PolicyWatcher } from '@janus/policy';
import { createRedis, MIN_REDIS_VERSION, pingRedis, redisVersionSupported, type Redis } from './redis.js';
import { Shutdown } from './shutdown.js';

/** Everything an app needs from the outside world, connected and watched. */
export interface Runtime<T> {
  readonly app: string;
  readonly settings: Settings;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly redis: Redis;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: NatsNames;
  readonly db: DbHandle;
  readonly policyStore: PolicyStore;
  readonly policy: PolicyWatcher<T>;
  readonly readiness: ReadinessCheck[];
  readonly shutdown: Shutdown;
  /** Stops the policy watcher, drains NATS, closes Redis and PostgreSQL: the last shutdown step. */
  close(): Promise<void>;
}

export interface RuntimeOptions<T> {
  app: string;
  settings: Settings;
  /** Compiles each stored policy version; throw to refuse a version (the old one stays live). */
  compilePolicy: (policy: VersionedPolicy) => T;
  onPolicyApplied?: (compiled: T, policy: VersionedPolicy) => void | Promise<void>;
  onConfigEvent?: () => void | Promise<void>;
  dbPoolSize?: number;
  /** Logger to use instead of creating one (tests). */
  logger?: Logger;
}

/**
 * Connects Redis, NATS and PostgreSQL, applies migrations and streams, starts the policy watcher,
 * and registers readiness checks and shutdown steps. A store that is down at start does not stop
 * the app: readiness says so until it comes back.
 */
export async function startRuntime<T>(opts: RuntimeOptions<T>): Promise<Runtime<T>> {
  const { settings, app } = opts;
  const logger = opts.logger ?? createLogger(app, settings);
  const registry = createMetricsRegistry(app);
  const names = natsNames(settings.namespace);
  const shutdown = new Shutdown(logger);

  const redis = createRedis(settings, `janus-${app}`);
  // A Redis too old for the limiter's scripts keeps this instance unready (and says why) rather
  // than failing admissions one by one.
  let redisSupported = true;
  redis.on('ready', () => {
    redis
      .info('server')
      .then((info) => {
        const v = redisVersionSupported(info);
        redisSupported = v?.ok ?? true;
        if (v && !v.ok) logger.error({ redisVersion: v.version, required: MIN_REDIS_VERSION.join('.') }, 'Redis is too old for Janus; staying unready');
      })
      .catch(() => undefined);
  });
  redis.connect().catch((error: unknown) => logger.warn({ err: error }, 'redis not reachable yet; retrying'));

  await migrate(settings);
  const db = createDb(settings, { max: opts.dbPoolSize ?? 10, applicationName: `janus-${app}` });

  const nc = await connectNats(settings, { name: `janus-${app}`, logger });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  const js = jetstream(nc);

  const policyFailures = new Counter({
    name: 'janus_policy_apply_failures_total',
    help: 'Policy versions this instance refused to apply (the old one stayed live)',
    registers: [registry],
  });
  const policyVersion = new Gauge({
    name: 'janus_policy_version',
    help: 'Policy version this instance runs',
    registers: [registry],
  });
  const policyStore = new PolicyStore(db.db);
  const policy = new PolicyWatcher<T>({
    store: policyStore,
    nc,
    names,
    compile: opts.compilePolicy,
    onApplied: async (compiled, p) => {
      policyVersion.set(p.version);
      await opts.onPolicyApplied?.(compiled, p);
    },
    ...(opts.onConfigEvent ? { onConfigEvent: opts.onConfigEvent } : {}),
    logger,
    onApplyFailure: () => policyFailures.inc(),
  });
  await policy.start();

  const readiness: ReadinessCheck[] = [
    { name: 'redis', check: async () => redisSupported && (await pingRedis(redis)) },
    { name: 'nats', check: () => pingNats(nc) },
    { name: 'postgres', check: () => db.ping() },
    { name: 'policy', check: () => policy.loaded },
  ];

  const closeConnections = async () => {
    policy.stop();
    await nc.drain().catch(() => nc.close());
    redis.disconnect();
    await db.close();
  };

  return {
    app,
    settings,
    logger,
    registry,
    redis,
    nc,
    js,
    jsm,
    names,
    db,
    policyStore,
    policy,
    readiness,
    shutdown,
    close: closeConnections,
  };
}
