import { Hono } from 'hono';
import { Gauge, type Registry } from 'prom-client';
import { checkReadiness, type ReadinessCheck } from './readiness.js';

/**
 * `GET /healthz` (process alive), `GET /readyz` (200 only when every check is up; 503 naming the
 * ones that are down) and `GET /metrics` (Prometheus text). Mount with `app.route('/', healthRoutes(...))`.
 */
export function healthRoutes(opts: { checks: readonly ReadinessCheck[]; registry: Registry }): Hono {
  readinessMetrics(opts.registry, opts.checks);
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

/**
 * Readiness as metrics, evaluated at each scrape as `/readyz` is: `janus_ready` (1 when every check
 * is up) and `janus_readiness_check{check}` (1 up, 0 down), so that an alert needs no probe of its
 * own (each runs the checks, cheap pings, at a scrape). Registered once per registry.
 */
function readinessMetrics(registry: Registry, checks: readonly ReadinessCheck[]): void {
  if (registry.getSingleMetric('janus_ready') !== undefined) return;
  new Gauge({
    name: 'janus_ready',
    help: 'Whether the app is ready (1: every readiness check up, as GET /readyz answers 200)',
    registers: [registry],
    async collect() {
      this.set((await checkReadiness(checks)).ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'janus_readiness_check',
    help: 'Whether each readiness check is up (1) or down (0), as GET /readyz reports it',
    labelNames: ['check'],
    registers: [registry],
    async collect() {
      for (const [check, state] of Object.entries((await checkReadiness(checks)).checks)) this.set({ check }, state === 'up' ? 1 : 0);
    },
  });
}
