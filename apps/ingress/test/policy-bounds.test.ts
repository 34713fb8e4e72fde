import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { AcceptedPolicy, POLICY_BOUNDS, type PolicyDocumentInput } from '@janus/contracts';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

/**
 * Every policy the admin API accepts works (docs/policy.md "Bounds"): a policy at POLICY_BOUNDS
 * admits, queues and reports usage with valid dates, where the audit's policies (periods and
 * costs near 2^53) gave 500 and 503 "Invalid time value". And an ingress starts on a policy stored
 * before the bounds (it reads stored policies without them).
 */
const B = POLICY_BOUNDS;
const ns = testNamespace('ingress-policy-bounds');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let key: string;

const AT_BOUNDS: PolicyDocumentInput = {
  dependencies: {
    // one job per 10 years: a second one in mode queue waits with a notBefore 10 years ahead
    slow: { rate: { limit: 1, periodMs: B.maxDurationMs } },
    big: { costRate: { limit: B.maxCount, periodMs: 9_007_199, burst: B.maxCount } },
  },
  tenants: { acme: { weight: B.maxWeight, maxQueued: B.maxCount, budget: { limit: B.maxBudget, periodMs: B.maxDurationMs } } },
  jobTypes: {
    costly: { dependencies: [{ name: 'big', cost: B.maxCount }], timeoutMs: B.maxTimeoutMs, idempotencyWindowMs: B.maxDurationMs, retry: { maxAttempts: B.maxAttempts, baseDelayMs: B.maxDurationMs, maxDelayMs: B.maxDurationMs } },
    rare: { dependencies: [{ name: 'slow' }], timeoutMs: B.maxTimeoutMs },
  },
};

beforeAll(async () => {
  expect(AcceptedPolicy.PolicyDocument.safeParse(AT_BOUNDS).success).toBe(true);
  ingress = await start(ns);
  await setPolicy([ingress], AT_BOUNDS);
  key = (await createKey([ingress], 'acme')).key;
});
afterAll(async () => {
  await ingress.close();
  await cleanup(settings, ns);
});

const auth = () => ({ authorization: `Bearer ${key}` });
const validDate = (s: unknown) => typeof s === 'string' && Number.isFinite(Date.parse(s));

describe('a policy at the bounds works', () => {
  it('admits a job of the largest cost and timeout, and reports usage with a valid reset time', async () => {
    const res = await ingress.app.request('/v1/jobs', json({ type: 'costly', idempotencyKey: 'k1' }, auth()));
    expect(res.status, await res.clone().text()).toBe(202);
    const usage = await ingress.app.request('/v1/usage', { headers: auth() });
    expect(usage.status, await usage.clone().text()).toBe(200);
    const u = (await usage.json()) as { budget: { limit: number; used: number; resetsAt: string } };
    expect(u.budget).toMatchObject({ limit: B.maxBudget, used: B.maxCount });
    expect(validDate(u.budget.resetsAt)).toBe(true);
  });

  it('queues behind a 10-year period with a valid notBefore', async () => {
    const first = await ingress.app.request('/v1/jobs', json({ type: 'rare', mode: 'queue' }, auth()));
    expect(first.status, await first.clone().text()).toBe(202);
    const second = await ingress.app.request('/v1/jobs', json({ type: 'rare', mode: 'queue' }, auth()));
    expect(second.status, await second.clone().text()).toBe(202);
    const body = (await second.json()) as { status: string; notBefore: string };
    expect(body.status).toBe('queued');
    expect(validDate(body.notBefore)).toBe(true);
    const now = await ingress.app.request('/v1/jobs', json({ type: 'rare' }, auth()));
    expect(now.status).toBe(429);
  });
});

describe('a policy stored before the bounds', () => {
  it('loads at start', async () => {
    const HUGE = 9_007_199_254_740_990;
    const oldNs = testNamespace('ingress-old-policy');
    const oldSettings = loadSettings(testEnv(oldNs));
    const old = await start(oldNs);
    try {
      const version = await setPolicy([old], {
        dependencies: { api: { rate: { limit: 1, periodMs: HUGE } } },
        tenants: { acme: { budget: { limit: 10, periodMs: HUGE } } },
        jobTypes: { legacy: { timeoutMs: HUGE } as never, call: { dependencies: [{ name: 'api', cost: HUGE }] } },
      });
      await old.close();
      const again = await start(oldNs);
      try {
        expect(again.runtime.policy.version).toBe(version);
        expect(again.limiter.policy.jobType('legacy')).toMatchObject({ dependencies: [], timeoutMs: HUGE });
        expect((await again.app.request('/readyz')).status).toBe(200);
      } finally {
        await again.close();
      }
    } finally {
      await cleanup(oldSettings, oldNs);
    }
  });
});
