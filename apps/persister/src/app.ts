import type { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { healthRoutes, type ReadinessCheck } from '@janus/observability';

export interface PersisterAppDeps {
  readonly readiness: readonly ReadinessCheck[];
  readonly registry: Registry;
}

/** The persister's HTTP surface: health, readiness and metrics only (CONTRACT §1). */
export function createApp(deps: PersisterAppDeps): Hono {
  return healthRoutes({ checks: deps.readiness, registry: deps.registry });
}
