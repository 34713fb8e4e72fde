import { Counter, Gauge } from 'prom-client';
import type { VersionedPolicy } from '@janus/contracts';
import { createLogger, type ReadinessCheck } from '@janus/observability';
import { Keys } from '@janus/limiter';
import { ApiKeyCache, ApiKeyStore, PolicyStore, PolicyWatcher, RunningPolicy, type PolicyHolder } from '@janus/policy';
import { createRedis, MIN_REDIS_VERSION, pingRedis, Redis, redisDatabase, redisVersionSupported, type RedisClient } from './redis.js';
import { startServices, type Services, type ServicesOptions } from './services.js';

/** Services plus Redis and the live policy: what an app that admits or inspects jobs needs. */
export interface Runtime<T> extends Services {
  readonly redis: RedisClient;
  readonly policyStore: PolicyStore;
  readonly apiKeyStore: ApiKeyStore;
  /** The one holder of the running policy (the watcher swaps versions into it). */
  readonly policy: Omit<PolicyHolder<T>, 'swap'>;
  /** `redis`, `nats`, `postgres` and `policy` (and `api-keys` when watched). */
  readonly readiness: readonly ReadinessCheck[];
  /** Stops the policy watcher, drains NATS, closes Redis and PostgreSQL: the last shutdown step. */
  close(): Promise<void>;
}

/** With `watchApiKeys: true`: the API keys, reloaded on every config event and poll. */
export type WithApiKeys<R> = R & { readonly apiKeys: ApiKeyCache };

export interface RuntimeOptions<T> extends ServicesOptions {
  /** Compiles each stored policy version; throw to refuse a version (the old one stays live). */
  compilePolicy: (policy: VersionedPolicy) => T;
  /**
   * Builds the holder of the running policy from the Redis client, before the watcher starts (e.g.
   * the limiter, so that admissions read the very policy the watcher swaps in). Default: a
   * RunningPolicy of its own.
   */
  holder?: (redis: RedisClient) => PolicyHolder<T>;
  /** After each applied version (e.g. ensure the consumers its job types need). */
  onPolicyApplied?: (compiled: T, policy: VersionedPolicy, services: Services) => void | Promise<void>;
  /** Keep an API-key cache current (reloaded on every config event, so a revoked key stops within a second). */
  watchApiKeys?: boolean;
  /**
   * Also called on every config event and watcher poll, even when the version did not move (e.g.
   * policy-admin reloads its named admin tokens), alongside the API keys' refresh.
   */
  onConfigEvent?: (services: Services) => void | Promise<void>;
  /** The app's Redis client pipelines commands issued in the same tick (see createRedis). */
  redisAutoPipelining?: boolean;
}

export function startRuntime<T>(opts: RuntimeOptions<T> & { watchApiKeys: true }): Promise<WithApiKeys<Runtime<T>>>;
export function startRuntime<T>(opts: RuntimeOptions<T>): Promise<Runtime<T>>;
/**
 * Starts the services, connects Redis, builds the policy holder and the API-key cache, then starts
 * the policy watcher, in that order: nothing the watcher feeds is bound after it starts. Redis down
 * at start does not stop the app: readiness says so until it comes back; NATS and PostgreSQL are
 * waited for when started with a `startup` (startServices).
 */
export async function startRuntime<T>(opts: RuntimeOptions<T>): Promise<Runtime<T> & { readonly apiKeys?: ApiKeyCache }> {
  const logger = opts.logger ?? opts.startup?.logger ?? createLogger(opts.app, opts.settings);
  // Redis connects in the background while migrations run and NATS connects (as it always has).
  const redis = createRedis(opts.settings, `janus-${opts.app}`, { autoPipelining: opts.redisAutoPipelining === true });
  // A Redis too old for the limiter's scripts keeps this instance unready (and says why) rather
  // than failing admissions one by one.
  let redisSupported = true;
  // A database REDIS_URL names that the server does not have: ioredis's SELECT fails and it goes on
  // in database 0 (another deployment's data, perhaps). Unready, saying so, rather than that.
  const database = redisDatabase(opts.settings.redisUrl);
  let databaseSelected = true;
  redis.on('ready', () => {
    redis
      .info('server')
      .then((info) => {
        const v = redisVersionSupported(info);
        redisSupported = v?.ok ?? true;
        if (v && !v.ok) logger.error({ redisVersion: v.version, required: MIN_REDIS_VERSION.join('.') }, 'Redis is too old for Janus; staying unready');
      })
      .catch(() => undefined);
    if (database > 0 && redis instanceof Redis) {
      redis
        .client('INFO')
        .then((info) => {
          databaseSelected = new RegExp(`(^| )db=${database}( |$)`).test(String(info).trim());
          if (!databaseSelected) logger.error({ variable: 'REDIS_URL', database }, 'REDIS_URL names a database this Redis does not have; staying unready');
        })
        .catch(() => undefined);
    }
  });
  redis.connect().catch((error: unknown) => logger.warn({ err: error }, 'redis not reachable yet; retrying'));
  // On a cluster, readiness asks the node that holds this namespace's state (its epoch key's slot).
  const namespaceKey = new Keys(opts.settings.namespace).epoch;
  const redisReady: ReadinessCheck = { name: 'redis', check: async () => redisSupported && databaseSelected && (await pingRedis(redis, namespaceKey)) };
  opts.startup?.watch(redisReady);

  const services = await startServices({ ...opts, logger }).catch((error: unknown) => {
    redis.disconnect();
    throw error;
  });
  const { registry, db, nc, names } = services;

  const holder = opts.holder?.(redis) ?? new RunningPolicy<T>();
  const policyStore = new PolicyStore(db.db);
  const apiKeyStore = new ApiKeyStore(db.db);
  const apiKeys = opts.watchApiKeys ? new ApiKeyCache(apiKeyStore) : undefined;

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
  const watcher = new PolicyWatcher<T>({
    store: policyStore,
    nc,
    names,
    compile: opts.compilePolicy,
    holder,
    onApplied: async (compiled, p) => {
      policyVersion.set(p.version);
      await opts.onPolicyApplied?.(compiled, p, services);
    },
    ...(apiKeys || opts.onConfigEvent
      ? {
          // Independent: one failing does not keep the other stale (the watcher logs the failure).
          onConfigEvent: async () => {
            const [keys, hook] = await Promise.allSettled([apiKeys?.refresh(), opts.onConfigEvent?.(services)]);
            if (keys.status === 'rejected') throw keys.reason;
            if (hook.status === 'rejected') throw hook.reason;
          },
        }
      : {}),
    logger,
    onApplyFailure: () => policyFailures.inc(),
  });
  await watcher.start();

  const readiness: ReadinessCheck[] = [
    redisReady,
    ...services.readiness,
    { name: 'policy', check: () => holder.loaded },
    ...(apiKeys ? [{ name: 'api-keys', check: () => apiKeys.loaded }] : []),
  ];

  return {
    ...services,
    redis,
    policyStore,
    apiKeyStore,
    policy: holder,
    readiness,
    ...(apiKeys ? { apiKeys } : {}),
    close: async () => {
      watcher.stop();
      // Redis after NATS: what the drain still delivers may need it.
      await services.closeNats();
      redis.disconnect();
      await services.close();
    },
  };
}
