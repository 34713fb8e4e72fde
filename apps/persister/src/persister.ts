import type { Hono } from 'hono';
import type { Settings } from '@janus/config';
import { Persister, schedulePruning } from '@janus/event-store';
import type { Logger } from '@janus/observability';
import { startServices, type Services, type Startup } from '@janus/runtime';
import { createApp } from './app.js';
import type { PersisterTuning } from './options.js';

export interface PersisterApp {
  readonly app: Hono;
  readonly services: Services;
  readonly persister: Persister;
  /** Stops pruning and consuming; commits and acks the batch in hand. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the persister: NATS and PostgreSQL only. It neither connects to Redis nor watches
 * policies (it uses neither), so its readiness is NATS, PostgreSQL and its own consumers.
 */
export async function startPersister(settings: Settings, tuning: PersisterTuning, opts: { logger?: Logger; startup?: Startup } = {}): Promise<PersisterApp> {
  const services = await startServices({ app: 'persister', settings, ...(opts.logger ? { logger: opts.logger } : {}), ...(opts.startup ? { startup: opts.startup } : {}) });
  const { logger } = services;
  const persister = new Persister({
    db: services.db.db,
    js: services.js,
    jsm: services.jsm,
    names: services.names,
    logger,
    registry: services.registry,
    batchSize: tuning.batchSize,
  });
  await persister.start();
  const stopPruning = schedulePruning(services.db.db, {
    retentionDays: tuning.retentionDays,
    onResult: (r) => logger.info(r, 'pruned history'),
    onError: (err) => logger.warn({ err }, 'pruning failed; will retry'),
  });
  const app = createApp({ readiness: [...services.readiness, ...persister.readiness], registry: services.registry });
  const stop = async () => {
    stopPruning();
    await persister.stop();
  };
  return {
    app,
    services,
    persister,
    stop,
    close: async () => {
      await stop();
      await services.close();
    },
  };
}
