import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { Limiter } from '@janus/limiter';
import { createRedis } from '@janus/runtime';
import { dependencyStateRoutes } from '../src/routes/dependency-state.js';
import { startAdmin, waitFor, type AdminHarness } from './harness.js';

/**
 * `GET /v1/dependencies/{name}/state` (CONTRACT §5 v1.1) and the dashboard's dependency section,
 * after a throttled outcome reported through another limiter on the same namespace (as the
 * retry-scheduler does), with a job in flight.
 */
let h: AdminHarness;
let scheduler: Limiter;

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

beforeAll(async () => {
  // Samples every 50 ms, so that the sparkline history fills within the test.
  h = await startAdmin('admin_dep_state', { dependencyHistory: { everyMs: 50 } });
  expect((await h.call('PUT', '/v1/dependencies/api', { rate: { limit: 100, periodMs: 1000 }, concurrency: 5, retryBudget: { ratio: 0.5, minPerSec: 1 } })).status).toBe(200);
  expect((await h.call('PUT', '/v1/dependencies/quiet', { costRate: { limit: 600, periodMs: 60000, kind: 'window' }, adaptive: { enabled: false } })).status).toBe(200);
  expect((await h.call('PUT', '/v1/tenants/acme', {})).status).toBe(200);
  const put = await h.call('PUT', '/v1/job-types/call', { dependencies: [{ name: 'api' }] });
  expect(put.status).toBe(200);
  await waitFor(() => h.limiter.policy.version === put.body.version, 2_000);

  scheduler = new Limiter({ redis: h.rt.redis, namespace: h.ns, signingKey: h.settings.signingKey, policy: h.limiter.policy });
  await scheduler.init({ fresh: true });
  const admitted = await scheduler.admit({ jobs: [{ jobId: 'job-1', tenant: 'acme', jobType: 'call', priority: 'normal' }] });
  expect(admitted.kind).toBe('admitted');
  const feedback = await scheduler.feedback('call', 'throttled', { retryAfterMs: 30_000 });
  expect(feedback.transitions).toEqual([{ dependency: 'api', transition: 'decreased' }]);
});

afterAll(async () => {
  await h?.close();
});

describe('GET /v1/dependencies/{name}/state', () => {
  it('200: declared and effective rate, cooldown, circuit, in flight and retry budget (ISO times)', async () => {
    const res = await h.call('GET', '/v1/dependencies/api/state');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    const b = res.body;
    expect(b).toEqual({
      dependency: 'api',
      at: expect.stringMatching(ISO),
      adaptive: true,
      declared: { rate: { limit: 100, periodMs: 1000 }, costRate: null, concurrency: 5 },
      effective: { ratio: expect.any(Number), rate: { limit: expect.any(Number), periodMs: 1000 }, costRate: null },
      cooldownUntil: expect.stringMatching(ISO),
      paused: false,
      pausedUntil: null,
      circuit: { state: 'closed', probeAt: null },
      inFlight: 1,
      // 1 first attempt admitted: floor(0.5 × 1 + 1 × 10) retries allowed over 10 s.
      retryBudget: { windowMs: 10_000, firstAttempts: 1, retries: 0, allowed: 10 },
    });
    // One decrease (×0.7), climbing back at 2 %/s since.
    expect(b.effective.ratio).toBeGreaterThanOrEqual(0.7);
    expect(b.effective.ratio).toBeLessThan(0.8);
    expect(b.effective.rate.limit).toBeCloseTo(100 * b.effective.ratio, 1);
    const cooldownLeft = Date.parse(b.cooldownUntil) - Date.parse(b.at);
    expect(cooldownLeft).toBeGreaterThan(20_000);
    expect(cooldownLeft).toBeLessThanOrEqual(30_000);
  });

  it('a dependency with adaptive off: the declared limits, full ratio, no cooldown', async () => {
    const res = await h.call('GET', '/v1/dependencies/quiet/state');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      dependency: 'quiet',
      adaptive: false,
      declared: { rate: null, costRate: { limit: 600, periodMs: 60000, kind: 'window' }, concurrency: null },
      effective: { ratio: 1, rate: null, costRate: { limit: 600, periodMs: 60000 } },
      cooldownUntil: null,
      circuit: { state: 'closed', probeAt: null },
      inFlight: 0,
    });
  });

  it('404 problem+json for an unknown dependency, 400 for an invalid name, 401 without the token', async () => {
    const unknown = await h.call('GET', '/v1/dependencies/nope/state');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toBe('application/problem+json');
    expect(unknown.body).toMatchObject({ type: 'https://janus.dev/problems/not-found', status: 404, detail: 'dependency "nope" does not exist' });

    const bad = await h.call('GET', '/v1/dependencies/Bad_Name/state');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
    expect(bad.body).toMatchObject({ type: 'https://janus.dev/problems/invalid-request', status: 400, errors: [{ path: 'name', message: 'must match ^[a-z0-9][a-z0-9_-]{0,63}$' }] });

    expect((await h.app.request('/v1/dependencies/api/state')).status).toBe(401);
  });

  it('503 problem+json when Redis is unreachable or the policy is not loaded yet', async () => {
    // A real limiter on a port where no Redis listens.
    const redis = createRedis({ redisUrl: 'redis://127.0.0.1:1' }, 'dep-state-down');
    const down = new Limiter({ redis, namespace: h.ns, signingKey: h.settings.signingKey, policy: h.limiter.policy, timeoutMs: 500 });
    try {
      const app = new Hono().route('/v1/dependencies', dependencyStateRoutes({ limiter: down, policyLoaded: () => true }));
      const res = await app.request('/v1/dependencies/api/state');
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toMatchObject({ type: 'https://janus.dev/problems/service-unavailable', status: 503 });

      const notLoaded = new Hono().route('/v1/dependencies', dependencyStateRoutes({ limiter: h.limiter, policyLoaded: () => false }));
      const early = await notLoaded.request('/v1/dependencies/api/state');
      expect(early.status).toBe(503);
      expect(await early.json()).toMatchObject({ detail: 'the policy is not loaded yet' });
    } finally {
      redis.disconnect();
    }
  });

  it('is in the OpenAPI document with its response schema', async () => {
    const doc = (await (await h.app.request('/openapi.json')).json()) as { paths: Record<string, { get?: { responses: Record<string, unknown> } }>; components: { schemas: Record<string, { properties?: object }> } };
    const op = doc.paths['/v1/dependencies/{name}/state']?.get;
    expect(op?.responses).toHaveProperty(['200']);
    expect(op?.responses).toHaveProperty(['503']);
    expect(Object.keys(doc.components.schemas['DependencyState']?.properties ?? {})).toEqual([
      'dependency',
      'at',
      'adaptive',
      'declared',
      'effective',
      'cooldownUntil',
      'paused',
      'pausedUntil',
      'circuit',
      'inFlight',
      'retryBudget',
    ]);
  });
});

describe('dashboard', () => {
  it('the snapshot carries each dependency’s state and its recent samples for the sparkline', async () => {
    await waitFor(() => h.history.samples('api').length >= 3, 5_000, 20);
    const res = await h.call('GET', '/v1/dashboard');
    expect(res.status).toBe(200);
    expect(res.body.history).toEqual({ everyMs: 50, windowMs: 900_000 });
    const api = res.body.dependencies.find((d: { name: string }) => d.name === 'api');
    expect(api.state).toMatchObject({ dependency: 'api', adaptive: true, inFlight: 1, cooldownUntil: expect.stringMatching(ISO), circuit: { state: 'closed' } });
    expect(api.state.effective.ratio).toBeLessThan(1);
    expect(api.history.length).toBeGreaterThanOrEqual(3);
    const samples = api.history as [number, number, number][];
    for (const [at, ratio, inFlight] of samples) {
      expect(at).toBeGreaterThan(Date.now() - 60_000);
      expect(ratio).toBeGreaterThanOrEqual(0.7);
      expect(ratio).toBeLessThanOrEqual(1);
      expect([0, 1]).toContain(inFlight); // sampling began before the job was admitted
    }
    const [, lastRatio, lastInFlight] = samples.at(-1)!;
    expect(lastRatio).toBeLessThan(1);
    expect(lastInFlight).toBe(1);
    // Sample times increase strictly.
    const times = (api.history as [number][]).map(([at]) => at);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
    expect(res.body.problems).toEqual([]);

    const js = await (await h.app.request('/dashboard/app.js')).text();
    expect(js).toContain("fill('dep-state'");
    expect(await (await h.app.request('/dashboard')).text()).toContain('<table id="dep-state">');
  });

  it("shows each tenant's prepaid credits: none before a top-up, its balance and reservations after", async () => {
    const tenantOf = async () => ((await h.call('GET', '/v1/dashboard')).body.tenants as { id: string; credits: unknown }[]).find((t) => t.id === 'acme');
    expect((await tenantOf())?.credits).toBeNull();
    const top = await h.call('POST', '/v1/tenants/acme/credits', { amount: 25 }, { 'idempotency-key': 'dash-1' });
    expect(top.status).toBe(200);
    expect((await tenantOf())?.credits).toMatchObject({ balance: 25, reserved: 0 });
    const page = await (await h.app.request('/dashboard')).text();
    expect(page).toContain('<th>credits (reserved)</th>');
  });

  it('forgets a dependency removed from the policy', async () => {
    const del = await h.call('DELETE', '/v1/dependencies/quiet');
    expect(del.status).toBe(200);
    await waitFor(() => h.limiter.policy.version === del.body.version, 2_000);
    await h.history.sample();
    expect(h.history.samples('quiet')).toEqual([]);
    expect(h.history.samples('api').length).toBeGreaterThan(0);
  });
});
