import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLICY_BOUNDS, PolicyDocument } from '@janus/contracts';
import { startAdmin, type AdminHarness } from './harness.js';

/**
 * The admin API accepts only policies that work: every number within POLICY_BOUNDS (docs/policy.md
 * "Bounds"), a job type's `dependencies` required (CONTRACT §2). A policy stored before the bounds
 * still loads and does not block changes to the rest of the policy.
 */
let h: AdminHarness;
const HUGE = 9_007_199_254_740_990;
const B = POLICY_BOUNDS;

beforeAll(async () => {
  h = await startAdmin('admin_policy_bounds');
  expect((await h.call('PUT', '/v1/policy', { dependencies: { db: { concurrency: 5 } }, tenants: { acme: {} }, jobTypes: { job: { dependencies: [{ name: 'db' }] } } })).status).toBe(200);
});
afterAll(async () => {
  await h.close();
});

async function refused(method: string, path: string, body: unknown): Promise<string[]> {
  const before = (await h.call('GET', '/v1/policy')).body.version;
  const res = await h.call(method, path, body);
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body).toMatchObject({ type: 'https://janus.dev/problems/invalid-policy', status: 422 });
  expect((await h.call('GET', '/v1/policy')).body.version).toBe(before);
  return (res.body.errors as { path: string }[]).map((e) => e.path);
}

describe('numbers over their bounds are 422 invalid-policy naming the field', () => {
  it('the audit: a budget period, a job type cost and timeout, a dependency period past any date', async () => {
    expect(await refused('PUT', '/v1/tenants/t', { budget: { limit: 10, periodMs: HUGE } })).toEqual(['budget.periodMs']);
    expect(await refused('PUT', '/v1/job-types/j', { dependencies: [{ name: 'db', cost: HUGE }], timeoutMs: HUGE })).toEqual(['dependencies.0.cost', 'timeoutMs']);
    expect(await refused('PUT', '/v1/dependencies/d', { rate: { limit: 1, periodMs: HUGE } })).toEqual(['rate.periodMs']);
  });

  it('every number of the model', async () => {
    const rate = (r: object) => ({ rate: r });
    expect(await refused('PUT', '/v1/dependencies/d', { ...rate({ limit: B.maxCount + 1, periodMs: 1000 }), costRate: { limit: 1, periodMs: 1000, burst: B.maxCount + 1 }, concurrency: B.maxCount + 1, perTenant: { concurrency: B.maxCount + 1, rate: { limit: 1, periodMs: B.maxDurationMs + 1 } }, adaptive: { minRatio: 1e-9 } })).toEqual([
      'rate.limit',
      'costRate.burst',
      'concurrency',
      'perTenant.rate.periodMs',
      'perTenant.concurrency',
      'adaptive.minRatio',
    ]);
    expect(await refused('PUT', '/v1/tenants/t', { weight: 1e308, budget: { limit: B.maxBudget + 1, periodMs: 1000 }, maxQueued: B.maxCount + 1, concurrency: B.maxCount + 1 })).toEqual(['weight', 'concurrency', 'budget.limit', 'maxQueued']);
    expect(await refused('PUT', '/v1/tenants/t', { weight: 1e-300 })).toEqual(['weight']);
    expect(
      await refused('PUT', '/v1/job-types/j', {
        dependencies: [{ name: 'db', cost: B.maxCount + 1 }],
        timeoutMs: B.maxTimeoutMs + 1,
        retry: { maxAttempts: B.maxAttempts + 1, baseDelayMs: B.maxDurationMs + 1, maxDelayMs: B.maxDurationMs + 1 },
        maxPayloadBytes: B.maxPayloadBytes + 1,
        idempotencyWindowMs: B.maxDurationMs + 1,
      }),
    ).toEqual(['dependencies.0.cost', 'timeoutMs', 'retry.maxAttempts', 'retry.baseDelayMs', 'retry.maxDelayMs', 'maxPayloadBytes', 'idempotencyWindowMs']);
    expect(await refused('PUT', '/v1/global', { rate: { limit: B.maxCount + 1, periodMs: 1 }, concurrency: B.maxCount + 1 })).toEqual(['rate.limit', 'concurrency']);
    expect(await refused('PUT', '/v1/policy', { tenants: { t: { rate: { limit: 1, periodMs: B.maxDurationMs + 1 } } } })).toEqual(['tenants.t.rate.periodMs']);
  });

  it("a bucket's size × periodMs must stay below 2^53 (the limiter's integer arithmetic); a window has no bucket", async () => {
    const res = await h.call('PUT', '/v1/dependencies/d', { rate: { limit: 1_000_000, periodMs: 10_000_000_000 }, costRate: { limit: 1, periodMs: 10_000_000_000, burst: 1_000_000 } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      { path: 'rate.limit', message: `limit × periodMs must be at most 2^53 − 1 (${Number.MAX_SAFE_INTEGER}): with periodMs 10000000000, at most 900719` },
      { path: 'costRate.burst', message: `burst × periodMs must be at most 2^53 − 1 (${Number.MAX_SAFE_INTEGER}): with periodMs 10000000000, at most 900719` },
    ]);
    const window = await h.call('PUT', '/v1/dependencies/d', { rate: { limit: 1_000_000, periodMs: 10_000_000_000, kind: 'window' } });
    expect(window.status).toBe(200);
    expect((await h.call('DELETE', '/v1/dependencies/d')).status).toBe(200);
  });

  it('a pause until more than 10 years ahead, and a credits top-up over 10^12, are 400 naming the field', async () => {
    const pause = await h.call('POST', '/v1/dependencies/db/pause', { until: '9999-12-31T23:59:59Z' });
    expect(pause.status).toBe(400);
    expect(pause.body).toMatchObject({ type: 'https://janus.dev/problems/invalid-request', errors: [{ path: 'until' }] });
    expect((await h.call('GET', '/v1/dependencies/db/pause')).body).toMatchObject({ paused: false });
    const soon = new Date(Date.now() + 3_600_000).toISOString();
    expect((await h.call('POST', '/v1/dependencies/db/pause', { until: soon })).body).toMatchObject({ paused: true });
    expect((await h.call('POST', '/v1/dependencies/db/resume')).status).toBe(200);

    const topUp = await h.call('POST', '/v1/tenants/acme/credits', { amount: B.maxCreditsTopUp + 1 }, { 'idempotency-key': 'big' });
    expect(topUp.status).toBe(400);
    expect(topUp.body).toMatchObject({ type: 'https://janus.dev/problems/invalid-request', errors: [{ path: 'amount' }] });
  });

  it('the bounds themselves are accepted', async () => {
    const put = await h.call('PUT', '/v1/policy', {
      dependencies: {
        db: { concurrency: B.maxCount, rate: { limit: 1, periodMs: B.maxDurationMs }, costRate: { limit: B.maxCount, periodMs: 9_007_199, burst: B.maxCount }, adaptive: { minRatio: B.minMinRatio } },
      },
      tenants: { acme: { weight: B.maxWeight, maxQueued: B.maxCount, budget: { limit: B.maxBudget, periodMs: B.maxDurationMs } }, low: { weight: B.minWeight } },
      jobTypes: {
        job: {
          dependencies: [{ name: 'db', cost: B.maxCount }],
          timeoutMs: B.maxTimeoutMs,
          retry: { maxAttempts: B.maxAttempts, baseDelayMs: B.maxDurationMs, maxDelayMs: B.maxDurationMs },
          maxPayloadBytes: B.maxPayloadBytes,
          idempotencyWindowMs: B.maxDurationMs,
        },
      },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
  });
});

describe("a job type's dependencies are required", () => {
  it('PUT /v1/job-types/x {} is 422 naming dependencies; [] is fine', async () => {
    const res = await h.call('PUT', '/v1/job-types/x', {});
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: 'dependencies', message: 'Invalid input: expected array, received undefined' }]);
    expect(await refused('PUT', '/v1/policy', { jobTypes: { x: { timeoutMs: 1000 } } })).toEqual(['jobTypes.x.dependencies']);
    const empty = await h.call('PUT', '/v1/job-types/x', { dependencies: [] });
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ name: 'x', dependencies: [] });
  });
});

describe('a policy stored before the bounds', () => {
  it('loads at start, and changes to the rest of it are accepted; PUT of the whole old document names what is over', async () => {
    // As an older version of Janus stored it: over today's bounds, and a job type without dependencies.
    const old = {
      dependencies: { api: { rate: { limit: 1, periodMs: HUGE } } },
      tenants: { acme: { budget: { limit: 10, periodMs: HUGE } } },
      jobTypes: { legacy: { timeoutMs: HUGE }, call: { dependencies: [{ name: 'api', cost: HUGE }] } },
    };
    const saved = await h.rt.policyStore.update(() => PolicyDocument.parse(old), { actor: 'test', action: 'seed' });
    expect(saved.ok).toBe(true);
    const version = saved.ok ? saved.policy.version : 0;

    // a second instance starts on it (the limiter compiles it) and serves it
    const second = await startAdmin('admin_policy_bounds', { ns: h.ns });
    try {
      const ready = await second.app.request('/readyz');
      expect(ready.status).toBe(200);
      const current = await second.call('GET', '/v1/policy');
      expect(current.body).toMatchObject({ version, jobTypes: { legacy: { dependencies: [], timeoutMs: HUGE } }, tenants: { acme: { budget: { periodMs: HUGE } } } });

      // another resource can still be changed, and the old ones are kept as they are
      const put = await second.call('PUT', '/v1/tenants/globex', { weight: 2 });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      expect((await second.call('GET', '/v1/tenants/acme')).body).toMatchObject({ budget: { limit: 10, periodMs: HUGE } });
      const jt = await second.call('PUT', '/v1/job-types/fresh', { dependencies: [{ name: 'api' }] });
      expect(jt.status, JSON.stringify(jt.body)).toBe(200);

      // the whole old document, sent again, is checked as anything new
      const { version: _v, ...doc } = (await second.call('GET', '/v1/policy')).body;
      const again = await second.call('PUT', '/v1/policy', doc);
      expect(again.status).toBe(422);
      expect((again.body.errors as { path: string }[]).map((e) => e.path).sort()).toEqual(
        ['dependencies.api.rate.periodMs', 'jobTypes.call.dependencies.0.cost', 'jobTypes.legacy.timeoutMs', 'tenants.acme.budget.periodMs'].sort(),
      );
    } finally {
      await second.stop();
    }
  });
});

describe('combinations that cannot work are 422 naming the field (write path only)', () => {
  const RETRY = 'must be at most retry.maxDelayMs';
  it("a job type's retry.baseDelayMs over its retry.maxDelayMs (one job type, and the whole document)", async () => {
    const one = await h.call('PUT', '/v1/job-types/j', { dependencies: [], retry: { baseDelayMs: 5_000, maxDelayMs: 1_000 } });
    expect(one.status).toBe(422);
    expect(one.body.errors).toEqual([{ path: 'retry.baseDelayMs', message: `${RETRY} (1000): the first retry's delay cannot exceed the longest one` }]);
    // maxDelayMs below the default baseDelayMs (1000)
    expect(await refused('PUT', '/v1/job-types/j', { dependencies: [], retry: { maxDelayMs: 500 } })).toEqual(['retry.baseDelayMs']);
    expect(await refused('PUT', '/v1/policy', { jobTypes: { j: { dependencies: [], retry: { baseDelayMs: 2, maxDelayMs: 1 } } } })).toEqual(['jobTypes.j.retry.baseDelayMs']);
    expect((await h.call('PUT', '/v1/job-types/j', { dependencies: [], retry: { baseDelayMs: 1_000, maxDelayMs: 1_000 } })).status).toBe(200);
    expect((await h.call('DELETE', '/v1/job-types/j')).status).toBe(200);
  });

  it('global shedding.low over shedding.normal (PUT /v1/global, and the whole document)', async () => {
    const res = await h.call('PUT', '/v1/global', { shedding: { low: 0.9, normal: 0.5 } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: 'shedding.low', message: 'must be at most shedding.normal (0.5): low-priority work cannot be given more headroom than normal' }]);
    // normal below the default low (0.8)
    expect(await refused('PUT', '/v1/global', { shedding: { normal: 0.5 } })).toEqual(['shedding.low']);
    expect(await refused('PUT', '/v1/policy', { global: { shedding: { low: 1, normal: 0.9 } } })).toEqual(['global.shedding.low']);
    expect((await h.call('PUT', '/v1/global', { shedding: { low: 0.5, normal: 0.5 } })).status).toBe(200);
    expect((await h.call('PUT', '/v1/global', {})).status).toBe(200);
  });

  it('a retryBudget that admits no retry ever: ratio 0 and minPerSec × 10 below 1', async () => {
    const res = await h.call('PUT', '/v1/dependencies/d', { retryBudget: { ratio: 0, minPerSec: 0 } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      { path: 'retryBudget.minPerSec', message: 'with ratio 0, must be at least 0.1 (one retry per 10 s): no retry could ever be admitted, and retries over the budget wait, so they would wait for ever' },
    ]);
    expect(await refused('PUT', '/v1/dependencies/d', { retryBudget: { ratio: 0, minPerSec: 0.05 } })).toEqual(['retryBudget.minPerSec']);
    expect(await refused('PUT', '/v1/policy', { dependencies: { d: { retryBudget: { ratio: 0, minPerSec: 0 } } } })).toEqual(['dependencies.d.retryBudget.minPerSec']);
    for (const retryBudget of [{ ratio: 0 }, { minPerSec: 0 }, { ratio: 0, minPerSec: 0.1 }, { ratio: 0.01, minPerSec: 0 }]) {
      expect((await h.call('PUT', '/v1/dependencies/d', { retryBudget })).status, JSON.stringify(retryBudget)).toBe(200);
    }
    expect((await h.call('DELETE', '/v1/dependencies/d')).status).toBe(200);
  });

  it('a policy stored with them still loads, and the rest of it can be changed; PUT of the whole document names them', async () => {
    const stored = {
      dependencies: { api: { retryBudget: { ratio: 0, minPerSec: 0 } } },
      tenants: { acme: {} },
      jobTypes: { call: { dependencies: [{ name: 'api' }], retry: { maxAttempts: 3, baseDelayMs: 10_000, maxDelayMs: 1_000 } } },
      global: { shedding: { low: 0.9, normal: 0.5 } },
    };
    const saved = await h.rt.policyStore.update(() => PolicyDocument.parse(stored), { actor: 'test', action: 'seed' });
    expect(saved.ok).toBe(true);
    const version = saved.ok ? saved.policy.version : 0;
    const second = await startAdmin('admin_policy_bounds', { ns: h.ns });
    try {
      expect((await second.app.request('/readyz')).status).toBe(200);
      expect(second.limiter.policy.version).toBe(version);
      expect((await second.call('GET', '/v1/policy')).body).toMatchObject({ version, global: { shedding: { low: 0.9, normal: 0.5 } } });
      const put = await second.call('PUT', '/v1/tenants/globex', {});
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const { version: _v, ...doc } = (await second.call('GET', '/v1/policy')).body;
      const again = await second.call('PUT', '/v1/policy', doc);
      expect(again.status).toBe(422);
      expect((again.body.errors as { path: string }[]).map((e) => e.path)).toEqual(['dependencies.api.retryBudget.minPerSec', 'jobTypes.call.retry.baseDelayMs', 'global.shedding.low']);
    } finally {
      await second.stop();
    }
  });
});
