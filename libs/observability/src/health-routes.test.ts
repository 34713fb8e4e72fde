import { describe, expect, it } from 'vitest';
import { Counter } from 'prom-client';
import { createMetricsRegistry } from './metrics.js';
import { healthRoutes } from './health-routes.js';

describe('healthRoutes', () => {
  const registry = createMetricsRegistry('test');
  new Counter({ name: 'janus_test_total', help: 'test counter', registers: [registry] }).inc(3);

  it('answers /healthz while the process lives', async () => {
    const res = await healthRoutes({ checks: [], registry }).request('/healthz');
    expect(res.status).toBe(200);
  });

  it('is ready only when every check is up, and names the ones that are down', async () => {
    let redisUp = false;
    const app = healthRoutes({
      registry,
      checks: [
        { name: 'redis', check: () => redisUp },
        { name: 'nats', check: () => true },
        { name: 'postgres', check: () => Promise.reject(new Error('boom')) },
      ],
    });
    const down = await app.request('/readyz');
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ reason: 'redis, postgres unavailable', down: ['redis', 'postgres'] });

    redisUp = true;
    const stillDown = await app.request('/readyz');
    expect(((await stillDown.json()) as { down: string[] }).down).toEqual(['postgres']);
  });

  it('treats a hanging check as down', async () => {
    const app = healthRoutes({ registry, checks: [{ name: 'slow', check: () => new Promise<boolean>(() => {}) }] });
    const res = await app.request('/readyz');
    expect(res.status).toBe(503);
  });

  it('serves Prometheus text with the app label', async () => {
    const res = await healthRoutes({ checks: [], registry }).request('/metrics');
    const text = await res.text();
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(text).toContain('janus_test_total{app="test"} 3');
  });

  it('shows readiness in /metrics as /readyz decides it: janus_ready and janus_readiness_check{check}', async () => {
    const own = createMetricsRegistry('ready-test');
    let natsUp = true;
    const app = healthRoutes({ registry: own, checks: [{ name: 'redis', check: () => true }, { name: 'nats', check: () => natsUp }] });
    const scrape = async () => (await app.request('/metrics')).text();
    let text = await scrape();
    expect(text).toMatch(/^janus_ready\{app="ready-test"\} 1$/m);
    expect(text).toMatch(/^janus_readiness_check\{check="nats",app="ready-test"\} 1$/m);
    natsUp = false;
    text = await scrape();
    expect(text).toMatch(/^janus_ready\{app="ready-test"\} 0$/m);
    expect(text).toMatch(/^janus_readiness_check\{check="nats",app="ready-test"\} 0$/m);
    expect(text).toMatch(/^janus_readiness_check\{check="redis",app="ready-test"\} 1$/m);
  });
});
