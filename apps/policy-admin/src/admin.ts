import { compilePolicy, Limiter, type CompiledPolicy } from '@janus/limiter';
import type { Runtime } from '@janus/runtime';
import type { ExtraCheck } from '@janus/policy';
import { createApp } from './app.js';
import { PolicyChanges } from './changes.js';
import { dashboardSnapshot } from './dashboard/snapshot.js';
import { createAdminMetrics } from './metrics.js';

/** Refuses a document the running apps could not compile (their watchers would keep the old version). */
export const compileCheck: ExtraCheck = (doc) => {
  try {
    compilePolicy(doc, 0);
    return [];
  } catch (error) {
    return [{ path: '(body)', message: `the limiter cannot compile this policy: ${error instanceof Error ? error.message : String(error)}` }];
  }
};

/** What every app compiles a stored policy into (policy-admin uses it for the dashboard's limiter view). */
export const compileStored = (p: { version: number; document: Parameters<typeof compilePolicy>[0] }): CompiledPolicy =>
  compilePolicy(p.document, p.version);

/**
 * Wires policy-admin on a started runtime: the change pipeline, a read-only limiter view for the
 * dashboard (kept on the running policy by the runtime's watcher via `limiter.setPolicy`), the app.
 * Used by main.ts and by the tests, so they run the same wiring.
 */
export function buildPolicyAdmin(rt: Runtime<CompiledPolicy>, adminToken: string, opts: { dashboardWindowSeconds?: number } = {}) {
  const metrics = createAdminMetrics(rt.registry);
  const limiter = new Limiter({
    redis: rt.redis,
    namespace: rt.settings.namespace,
    signingKey: rt.settings.signingKey,
    ...(rt.policy.loaded ? { policy: rt.policy.compiled } : {}),
  });
  const changes = new PolicyChanges({ store: rt.policyStore, nc: rt.nc, jsm: rt.jsm, names: rt.names, logger: rt.logger, metrics, extraCheck: compileCheck });
  const app = createApp({
    adminToken,
    store: rt.policyStore,
    changes,
    snapshot: () =>
      dashboardSnapshot({
        redis: rt.redis,
        namespace: rt.settings.namespace,
        db: rt.db.db,
        store: rt.policyStore,
        limiter,
        ...(opts.dashboardWindowSeconds !== undefined ? { windowSeconds: opts.dashboardWindowSeconds } : {}),
      }),
    readiness: rt.readiness,
    registry: rt.registry,
    metrics,
    logger: rt.logger,
  });
  return { app, limiter, changes, metrics };
}
