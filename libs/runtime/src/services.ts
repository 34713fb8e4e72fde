import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Registry } from 'prom-client';
import type { Settings } from '@janus/config';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { connectNats, ensureStreams, natsNames, pingNats, type NatsConnection, type NatsNames } from '@janus/messaging';
import { createLogger, createMetricsRegistry, type Logger, type ReadinessCheck } from '@janus/observability';
import { Shutdown } from './shutdown.js';

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
}

/**
 * Applies migrations, connects PostgreSQL and NATS and ensures the streams. No Redis and no policy:
 * an app that needs them starts a Runtime (startRuntime), which builds on these.
 */
export async function startServices(opts: ServicesOptions): Promise<Services> {
  const { settings, app } = opts;
  const logger = opts.logger ?? createLogger(app, settings);
  const registry = createMetricsRegistry(app);
  const names = natsNames(settings.namespace);
  const shutdown = new Shutdown(logger);

  await migrate(settings);
  const db = createDb(settings, { max: opts.dbPoolSize ?? 10, applicationName: `janus-${app}` });

  const nc = await connectNats(settings, { name: `janus-${app}`, logger });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names, { replicas: settings.streamReplicas });
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
