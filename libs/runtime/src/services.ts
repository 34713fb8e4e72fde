import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Registry } from 'prom-client';
import type { Settings } from '@janus/config';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { connectNats, ensureStreams, natsNames, pingNats, streamsReady, type NatsConnection, type NatsNames } from '@janus/messaging';
import { createLogger, createMetricsRegistry, type Logger, type ReadinessCheck } from '@janus/observability';
import { Shutdown } from './shutdown.js';
import { untilReachable, type Startup } from './startup.js';

/** NATS (with the streams) and PostgreSQL (migrated), connected and watched: what every app needs. */
export interface Services {
  readonly app: string;
  readonly settings: Settings;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: NatsNames;
  readonly db: DbHandle;
  /** `nats` and `postgres`: the connections this instance holds. */
  readonly readiness: readonly ReadinessCheck[];
  readonly shutdown: Shutdown;
  /** Drains NATS (idempotent). */
  closeNats(): Promise<void>;
  /** Drains NATS and closes PostgreSQL: the last shutdown step. */
  close(): Promise<void>;
}

export interface ServicesOptions {
  app: string;
  settings: Settings;
  dbPoolSize?: number;
  /** Logger to use instead of creating one (tests). */
  logger?: Logger;
  /**
   * main.ts's Startup: NATS and PostgreSQL are then waited for (retried with backoff while they
   * cannot be reached, until a signal gives up) instead of failing the start, and its logger,
   * metrics registry and shutdown are the app's.
   */
  startup?: Startup;
}

/**
 * Applies migrations, connects PostgreSQL and NATS and ensures the streams. No Redis and no policy:
 * an app that needs them starts a Runtime (startRuntime), which builds on these. With a `startup`,
 * PostgreSQL and NATS are each waited for until they answer; without, one that cannot be reached
 * fails the start.
 */
export async function startServices(opts: ServicesOptions): Promise<Services> {
  const { settings, app, startup } = opts;
  const logger = opts.logger ?? startup?.logger ?? createLogger(app, settings);
  const registry = startup?.registry ?? createMetricsRegistry(app);
  const names = natsNames(settings.namespace);
  const shutdown = startup?.shutdown ?? new Shutdown(logger);

  const connectPostgres = async (): Promise<DbHandle> => {
    await migrate(settings);
    return createDb(settings, { max: opts.dbPoolSize ?? 10, applicationName: `janus-${app}` });
  };
  const connectJetStream = async (): Promise<{ nc: NatsConnection; jsm: JetStreamManager }> => {
    const nc = await connectNats(settings, { name: `janus-${app}`, logger });
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStreams(jsm, names, { replicas: settings.streamReplicas });
      return { nc, jsm };
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw error;
    }
  };
  // Both at once, so that the starting readiness names only what is really down. One failing for
  // good (or a signal) stops the other; what did connect is then closed.
  const up: { db?: DbHandle; nc?: NatsConnection } = {};
  startup?.watch({ name: 'nats', check: () => (up.nc ? pingNats(up.nc) : false) });
  startup?.watch({ name: 'postgres', check: () => up.db?.ping() ?? false });
  const giveUp = new AbortController();
  const retry = { retry: startup !== undefined, logger, signal: startup ? AbortSignal.any([startup.signal, giveUp.signal]) : giveUp.signal };
  const stopOthers = (error: unknown) => {
    giveUp.abort();
    throw error;
  };
  const [postgres, nats] = await Promise.allSettled([
    untilReachable('postgres', connectPostgres, retry).then((db) => (up.db = db), stopOthers),
    untilReachable('nats', connectJetStream, retry).then((conn) => ((up.nc = conn.nc), conn), stopOthers),
  ]);
  if (postgres.status === 'rejected' || nats.status === 'rejected') {
    await Promise.allSettled([up.db?.close(), up.nc?.close()]);
    throw postgres.status === 'rejected' ? postgres.reason : (nats as PromiseRejectedResult).reason;
  }
  const db = postgres.value;
  const { nc, jsm } = nats.value;
  const js = jetstream(nc);
  let draining: Promise<void> | undefined;
  const closeNats = () => (draining ??= nc.drain().catch(() => nc.close()));

  return {
    app,
    settings,
    logger,
    registry,
    nc,
    js,
    jsm,
    names,
    db,
    readiness: [
      { name: 'nats', check: () => pingNats(nc) },
      // JetStream itself: disabled on the server, or a stream deleted, fails every job's publish
      // while the connection is fine (a deleted stream is created again here).
      {
        name: 'jetstream',
        check: () =>
          streamsReady(jsm, names, {
            replicas: settings.streamReplicas,
            recreated: (streams) => logger.warn({ streams }, 'JetStream streams of this namespace were missing; created them again'),
          }),
      },
      { name: 'postgres', check: () => db.ping() },
    ],
    shutdown,
    closeNats,
    close: async () => {
      await closeNats();
      await db.close();
    },
  };
}
