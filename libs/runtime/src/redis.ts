import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { parseRedisTarget, type RedisTarget, type Settings } from '@janus/config';

export { Cluster, Redis } from 'ioredis';

/** A client of one Redis server or of a Redis Cluster (REDIS_URL, docs/scaling.md). */
export type RedisClient = Redis | Cluster;

/**
 * A Redis client that fails fast while Redis is down (no offline queue, one retry per command) so
 * that callers can answer 503 at once, and reconnects forever in the background. A `rediss://` URL
 * is TLS, verified against Node's trust store plus NODE_EXTRA_CA_CERTS (docs/operations.md#tls).
 * When REDIS_URL names a cluster, an ioredis Cluster with the same behaviour per node: it follows
 * MOVED/ASK redirections and refreshes its slot map when a primary fails over.
 */
export function createRedis(settings: Pick<Settings, 'redisUrl'> & Partial<Pick<Settings, 'redis'>>, name: string, opts: RedisClientOptions = {}): RedisClient {
  const redis = redisClient(settings.redis ?? parseRedisTarget(settings.redisUrl), name, opts.autoPipelining === true);
  // Connection errors surface through readiness and command failures; an unhandled 'error' event
  // would only add noise.
  redis.on('error', () => {});
  return redis;
}

export interface RedisClientOptions {
  /**
   * ioredis auto-pipelining: commands issued in the same tick share one socket write. For a client
   * that sends many small independent commands at once (the retry-scheduler: a lookup and a script
   * per outcome and per claim); not for the limiter's own coalesced calls (ingress measured slower).
   */
  readonly autoPipelining?: boolean;
}

const NODE_OPTIONS = {
  maxRetriesPerRequest: 1,
  connectTimeout: 2_000,
  // Longer than the limiter's own 2 s timeout: a script that answers after the limiter gave up is
  // still delivered to it (and an admission its callers were refused is then revoked), where an
  // ioredis timeout would drop the reply.
  commandTimeout: 5_000,
  retryStrategy: (times: number) => Math.min(100 * times, 1_000),
} satisfies RedisOptions;

function redisClient(target: RedisTarget, name: string, autoPipelining: boolean): RedisClient {
  if (target.mode === 'single') return new Redis(target.url, { connectionName: name, lazyConnect: true, enableOfflineQueue: false, enableAutoPipelining: autoPipelining, ...NODE_OPTIONS });
  return new Cluster(
    target.nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      lazyConnect: true,
      enableAutoPipelining: autoPipelining,
      // Nothing queued while the cluster is unreachable: a command fails at once (503) rather than
      // running whenever the cluster comes back, long after its caller gave up.
      enableOfflineQueue: false,
      scaleReads: 'master',
      clusterRetryStrategy: (times) => Math.min(100 * times, 1_000),
      // After a failover, the slots of the dead primary answer CLUSTERDOWN/MOVED until a replica
      // takes over: a few quick retries, then the command fails and the caller answers 503.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      maxRedirections: 8,
      slotsRefreshTimeout: 2_000,
      // Connect to nodes by the names they are given, not resolved IPs: TLS verifies the name.
      dnsLookup: (address, callback) => callback(null, address),
      redisOptions: {
        connectionName: name,
        ...NODE_OPTIONS,
        ...(target.username !== undefined ? { username: target.username } : {}),
        ...(target.password !== undefined ? { password: target.password } : {}),
        ...(target.tls ? { tls: {} } : {}),
      },
    },
  );
}

/** Every primary of a cluster (a single server: itself), for what must visit every node (SCAN). */
export function redisPrimaries(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/** The database a single-server REDIS_URL names (`redis://host:port/<db>`; 0 without one, and for a cluster). */
export function redisDatabase(redisUrl: string): number {
  try {
    const db = /^\/(\d+)$/.exec(new URL(redisUrl).pathname)?.[1];
    return db === undefined ? 0 : Number(db);
  } catch {
    return 0;
  }
}

/** Janus's Lua needs Redis 7.0 (PEXPIRE … GT in the lease scripts). */
export const MIN_REDIS_VERSION = [7, 0] as const;

/** Whether an `INFO server` text names a Redis version Janus supports (undefined: no version in it). */
export function redisVersionSupported(info: string): { ok: boolean; version: string } | undefined {
  const version = /redis_version:(\d+)\.(\d+)/.exec(info);
  if (!version) return undefined;
  const [major, minor] = [Number(version[1]), Number(version[2])];
  const ok = major > MIN_REDIS_VERSION[0] || (major === MIN_REDIS_VERSION[0] && minor >= MIN_REDIS_VERSION[1]);
  return { ok, version: `${major}.${minor}` };
}

/**
 * Whether Redis answers. On a cluster, `routeKey` names what must answer: the node serving that
 * key's slot (the namespace's state), not whichever node a PING would reach — a dead primary of
 * the namespace's slot makes this instance unready even while the rest of the cluster is up.
 */
export async function pingRedis(redis: RedisClient, routeKey?: string): Promise<boolean> {
  if (redis.status !== 'ready') return false;
  try {
    if (redis instanceof Cluster && routeKey !== undefined) {
      await redis.exists(routeKey);
      return true;
    }
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}
