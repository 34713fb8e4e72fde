import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { checkReadiness, type ReadinessCheck } from './readiness.js';

/**
 * `GET /healthz` (process alive), `GET /readyz` (200 only when every check is up; 503 naming the
 * ones that are down) and `GET /metrics` (Prometheus text). Mount with `app.route('/', healthRoutes(...))`.
 */
export function healthRoutes(opts: { checks: readonly ReadinessCheck[]; registry: Registry }): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }, 200));
  app.get('/readyz', async (c) => {
    const report = await checkReadiness(opts.checks);
    if (report.ready) return c.json({ status: 'ready', checks: report.checks }, 200);
    return c.json(
      { status: 'not_ready', reason: `${report.down.join(', ')} unavailable`, down: report.down, checks: report.checks },
      503,
    );
  });
  app.get('/metrics', async (c) => {
    const body = await opts.registry.metrics();
    return c.body(body, 200, { 'content-type': opts.registry.contentType });
  });
  return app;
}
