import { createRoute } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { UsageResponse } from '@janus/contracts';
import { StateLost, StoreUnavailable, type Limiter } from '@janus/limiter';
import type { WaitingStore } from '@janus/waiting-room';
import type { TenantVariables } from '../auth.js';
import { bearerSecurity, problemResponses, subApp, type IngressEnv } from '../openapi.js';
import { unavailable } from '../problem.js';

export interface UsageRouteDeps {
  readonly limiter: Pick<Limiter, 'usage'>;
  readonly requireTenant: MiddlewareHandler<{ Variables: TenantVariables }>;
  readonly room?: Pick<WaitingStore, 'waitingOf'>;
}

const route = createRoute({
  method: 'get',
  path: '/v1/usage',
  summary: "The caller's tenant: budget, prepaid credits, in-flight jobs per dependency, queued jobs",
  security: bearerSecurity,
  responses: {
    200: { description: 'Usage now', content: { 'application/json': { schema: UsageResponse } } },
    401: problemResponses[401],
    403: problemResponses[403],
    503: problemResponses[503],
  },
});

export function usageRoutes(deps: UsageRouteDeps) {
  const app = subApp();
  app.openapi({ ...route, middleware: [deps.requireTenant] as const }, (c) => usage(c) as never);
  async function usage(c: Context<IngressEnv>): Promise<Response> {
    const tenant = c.get('tenant');
    let usage;
    let waiting;
    try {
      [usage, waiting] = await Promise.all([deps.limiter.usage(tenant), deps.room?.waitingOf(tenant)]);
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) return unavailable(error.message);
      return unavailable('PostgreSQL is unreachable');
    }
    const body: UsageResponse = {
      tenant,
      budget: usage.budget ? { ...usage.budget, resetsAt: new Date(usage.budget.resetsAt).toISOString() } : null,
      credits: usage.credits,
      inFlight: { ...usage.inFlight },
      queued: waiting?.total ?? 0,
      queuedByType: waiting?.byType ?? {},
      retrying: waiting?.retrying ?? 0,
      ...(waiting?.oldestQueuedAt ? { oldestQueuedAt: waiting.oldestQueuedAt.toISOString() } : {}),
    };
    return c.json(body, 200);
  }
  return app;
}
