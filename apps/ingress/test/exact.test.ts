/**
 * "Exact under faults" at the producer's edge: a cost of 0 is refused (400 naming `cost`), and a
 * request no wait could admit is answered 422 `exceeds-capacity` naming the limit, not a 429 whose
 * Retry-After would be a lie. Real Redis, NATS and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

const ns = testNamespace('ingress-exact');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;

const POLICY = {
  dependencies: {
    llm: { costRate: { limit: 1000, periodMs: 60_000, burst: 500 } },
    single: { rate: { limit: 60, periodMs: 60_000, burst: 1 } },
    pool: { concurrency: 2 },
  },
  tenants: { acme: { budget: { limit: 5, periodMs: 3_600_000 } }, big: {}, spender: {} },
  jobTypes: {
    llm: { dependencies: [{ name: 'llm', cost: 10 }] },
    one: { dependencies: [{ name: 'single' }] },
    pooled: { dependencies: [{ name: 'pool' }] },
    free: {},
  },
};

const post = (path: string, key: string, body: unknown) => ingress.app.request(path, json(body, { authorization: `Bearer ${key}` }));

interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: { path: string; message: string }[];
  limit?: Record<string, unknown>;
  index?: number;
}

async function problemOf(res: Response): Promise<Problem> {
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  const body = (await res.json()) as Problem;
  expect(body.status).toBe(res.status);
  return body;
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], POLICY);
  acme = (await createKey([ingress], 'acme')).key;
});

afterAll(async () => {
  await ingress.close();
  await cleanup(settings, ns);
});

describe('cost is an int ≥ 1 (CONTRACT §3)', () => {
  it('400 naming `cost` for cost 0, single and in a batch; nothing admitted', async () => {
    const single = await post('/v1/jobs', acme, { type: 'free', cost: 0 });
    expect(single.status).toBe(400);
    expect((await problemOf(single)).errors?.map((e) => e.path)).toEqual(['cost']);

    const batch = await post('/v1/jobs/batch', acme, { jobs: [{ type: 'free' }, { type: 'free', cost: 0 }] });
    expect(batch.status).toBe(400);
    expect((await problemOf(batch)).errors?.map((e) => e.path)).toEqual(['jobs.1.cost']);

    // the budget (5) is untouched: five jobs of cost 1 still fit
    for (let i = 0; i < 5; i++) expect((await post('/v1/jobs', acme, { type: 'free' })).status).toBe(202);
  });
});

describe('422 exceeds-capacity (CONTRACT §3 v1.1)', () => {
  it('a single job whose cost is larger than a costRate bucket or the budget', async () => {
    const bucket = await post('/v1/jobs', acme, { type: 'llm', cost: 501 });
    expect(bucket.status).toBe(422);
    const p = await problemOf(bucket);
    expect(p.type).toBe(`${PROBLEM_BASE}/exceeds-capacity`);
    expect(p.limit).toMatchObject({ scope: 'dependency', dependency: 'llm', kind: 'costRate', capacity: 500, requested: 501 });
    expect(p.detail).toContain('llm');
    expect(p.errors?.map((e) => e.path)).toEqual(['cost']);

    const budget = await post('/v1/jobs', acme, { type: 'free', cost: 6 });
    expect(budget.status).toBe(422);
    expect(await problemOf(budget)).toMatchObject({ type: `${PROBLEM_BASE}/exceeds-capacity`, limit: { scope: 'tenant', tenant: 'acme', kind: 'budget', capacity: 5, requested: 6 } });
  });

  it('a batch whose jobs together exceed a rate burst or a concurrency limit names the first job over it', async () => {
    const big = (await createKey([ingress], 'big')).key;
    const rate = await post('/v1/jobs/batch', big, { jobs: [{ type: 'one' }, { type: 'one' }, { type: 'one' }] });
    expect(rate.status).toBe(422);
    const p = await problemOf(rate);
    expect(p).toMatchObject({ type: `${PROBLEM_BASE}/exceeds-capacity`, index: 1, limit: { scope: 'dependency', dependency: 'single', kind: 'rate', capacity: 1, requested: 3 } });
    expect(p.errors?.map((e) => e.path)).toEqual(['jobs']);

    const conc = await post('/v1/jobs/batch', big, { jobs: [{ type: 'pooled' }, { type: 'pooled' }, { type: 'pooled' }] });
    expect(conc.status).toBe(422);
    expect(await problemOf(conc)).toMatchObject({ index: 2, limit: { scope: 'dependency', dependency: 'pool', kind: 'concurrency', capacity: 2, requested: 3 } });

    // nothing was consumed: the burst of 1 and both slots are still there
    expect((await post('/v1/jobs/batch', big, { jobs: [{ type: 'one' }, { type: 'pooled' }, { type: 'pooled' }] })).status).toBe(202);
  });
});

describe('a dependency given to a job type while its jobs run (CONTRACT §6.1)', () => {
  it('counts those jobs: 8 running (5 of them from the tests above), concurrency 9 given → 1 more at once, the other 429', async () => {
    const big = (await createKey([ingress], 'big')).key;
    for (let i = 0; i < 3; i += 1) expect((await post('/v1/jobs', big, { type: 'free', payload: { i } })).status).toBe(202);
    await setPolicy([ingress], {
      ...POLICY,
      dependencies: { ...POLICY.dependencies, later: { concurrency: 9 } },
      jobTypes: { ...POLICY.jobTypes, free: { dependencies: [{ name: 'later' }] } },
    });
    // asked the moment the policy applies, both at once
    const answers = await Promise.all([0, 1].map(async () => {
      const res = await post('/v1/jobs', big, { type: 'free' });
      return { status: res.status, body: (await res.json()) as { reason?: string } };
    }));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 429]);
    expect(answers.find((a) => a.status === 429)?.body.reason).toBe('dependency_concurrency');
  });
});

describe('a budget given to a tenant while its jobs run (CONTRACT §6.1)', () => {
  it('counts those jobs: 5 of cost 10 running, a budget of 60 given → one more of 10, the other 429', async () => {
    const spender = (await createKey([ingress], 'spender')).key;
    const metered = { ...POLICY, jobTypes: { ...POLICY.jobTypes, metered: {} } };
    await setPolicy([ingress], metered);
    for (let i = 0; i < 5; i += 1) expect((await post('/v1/jobs', spender, { type: 'metered', cost: 10, payload: { i } })).status).toBe(202);
    await setPolicy([ingress], { ...metered, tenants: { ...POLICY.tenants, spender: { budget: { limit: 60, periodMs: 3_600_000 } } } });
    // asked the moment the policy applies, both at once (before: 202, 202)
    const answers = await Promise.all([0, 1].map(async () => {
      const res = await post('/v1/jobs', spender, { type: 'metered', cost: 10 });
      return { status: res.status, body: (await res.json()) as { reason?: string } };
    }));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 429]);
    expect(answers.find((a) => a.status === 429)?.body.reason).toBe('budget_exhausted');
  });
});

describe("a rate's kind changed while in use (CONTRACT §2 kind, §6.1)", () => {
  it('bucket (burst 3, used up) → window of 3 a minute: nothing more at once', async () => {
    const big = (await createKey([ingress], 'big')).key;
    const withRate = (rate: { limit: number; periodMs: number; burst?: number; kind?: 'bucket' | 'window' }) => ({
      ...POLICY,
      dependencies: { ...POLICY.dependencies, kinded: { rate } },
      jobTypes: { ...POLICY.jobTypes, kinded: { dependencies: [{ name: 'kinded' }] } },
    });
    await setPolicy([ingress], withRate({ limit: 1, periodMs: 60_000, burst: 3 }));
    const first = [];
    for (let i = 0; i < 4; i += 1) first.push((await post('/v1/jobs', big, { type: 'kinded' })).status);
    expect(first).toEqual([202, 202, 202, 429]);
    await setPolicy([ingress], withRate({ limit: 3, periodMs: 60_000, kind: 'window' }));
    const after = await Promise.all([0, 1].map(async () => {
      const res = await post('/v1/jobs', big, { type: 'kinded' });
      return { status: res.status, reason: ((await res.json()) as { reason?: string }).reason };
    }));
    // before: 202, 202 (the window started empty)
    expect(after).toEqual([{ status: 429, reason: 'dependency_rate' }, { status: 429, reason: 'dependency_rate' }]);
  });
});
