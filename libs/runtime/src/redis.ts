import { Redis } from 'ioredis';
import type { Settings } from '@janus/config';

export { Redis } from 'ioredis';

/**
 * A Redis client that fails fast while Redis is down (no offline queue, one retry per command) so
 * that callers can answer 503 at once, and reconnects forever in the background. A `rediss://` URL
 * is TLS, verified against Node's trust store plus NODE_EXTRA_CA_CERTS (docs/operations.md#tls).
 */
export function createRedis(settings: Pick<Settings, 'redisUrl'>, name: string): Redis {
  const redis = new Redis(settings.redisUrl, {
    connectionName: name,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (times) => Math.min(100 * times, 1_000),
  });
  // Connection errors surface through readiness and command failures; an unhandled 'error' event
  // would only add noise.
  redis.on('error', () => {});
  return redis;
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

export async function pingRedis(redis: Redis): Promise<boolean> {
  if (redis.status !== 'ready') return false;
  try {
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}
