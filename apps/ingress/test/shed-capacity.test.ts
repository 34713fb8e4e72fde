import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

// CONTRACT §3: a request that can never be admitted, however long it waits, is 422 exceeds-capacity
// — also when the bound is its priority's share of a limit (priority shedding, §2 Global): with
// the default `low` share 0.8, a low-priority job may use at most ceil(0.8 × 10) = 8 of a bucket of
// 10, so a low job of cost 9 can never run (before: 429 `shed` for ever, or queued for ever).
const ns = testNamespace('ingress-shed-capacity');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;

type Problem = { type: string; status: number; detail?: string; index?: number; errors?: { path: string; message: string }[]; limit?: Record<string, unknown> };
const post = (path: string, body: unknown) => ingress.app.request(path, json(body, { authorization: `Bearer ${acme}` }));
async function problemOf(res: Response): Promise<Problem> {
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  return (await res.json()) as Problem;
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: {
      api: { costRate: { limit: 10, periodMs: 60_000 } },
      // A rate of 5: a low job may use ceil(0.8 × 5) = 4 of it.
      small: { rate: { limit: 5, periodMs: 60_000 } },
    },
    tenants: { acme: {} },
    jobTypes: { jr: { dependencies: [{ name: 'api' }] }, sm: { dependencies: [{ name: 'small' }] } },
  });
  acme = (await createKey([ingress], 'acme')).key;
}, 60_000);

afterAll(async () => {
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('a job over its priority\'s share of a limit', () => {
  it('mode now: 422 naming the costRate and the low share as the bound, with nothing consumed', async () => {
    const res = await post('/v1/jobs', { type: 'jr', priority: 'low', cost: 9 });
    expect(res.status).toBe(422);
    const p = await problemOf(res);
    expect(p.type).toBe(`${PROBLEM_BASE}/exceeds-capacity`);
    expect(p.limit).toMatchObject({ scope: 'dependency', dependency: 'api', kind: 'costRate', capacity: 10, requested: 9, priorityShare: { priority: 'low', share: 0.8, capacity: 8 } });
    expect(p.errors).toEqual([{ path: 'cost', message: expect.stringContaining("low priority's share") }]);
    expect(p.detail).toContain('at most 8');
  });

  it('mode queue: 422 too, whether or not jobs of its type wait (never queued for ever)', async () => {
    expect((await post('/v1/jobs', { type: 'jr', priority: 'low', cost: 9, mode: 'queue' })).status).toBe(422);
    // Fill the bucket (8 at low, then 2 at normal), and make a job of the type wait.
    expect((await post('/v1/jobs', { type: 'jr', priority: 'low', cost: 8 })).status).toBe(202);
    expect((await post('/v1/jobs', { type: 'jr', priority: 'normal', cost: 2 })).status).toBe(202);
    const waiting = await post('/v1/jobs', { type: 'jr', priority: 'normal', cost: 5, mode: 'queue' });
    expect(await waiting.json()).toMatchObject({ status: 'queued' });
    const res = await post('/v1/jobs', { type: 'jr', priority: 'low', cost: 9, mode: 'queue' });
    expect(res.status).toBe(422);
    expect((await problemOf(res)).limit).toMatchObject({ kind: 'costRate', priorityShare: { priority: 'low', capacity: 8 } });
    // Within the share it is queued as before; a normal or high job may use the whole bucket.
    expect(await (await post('/v1/jobs', { type: 'jr', priority: 'low', cost: 8, mode: 'queue' })).json()).toMatchObject({ status: 'queued' });
    expect(await (await post('/v1/jobs', { type: 'jr', priority: 'high', cost: 10, mode: 'queue' })).json()).toMatchObject({ status: 'queued' });
  });

  it('batches: 422 naming the first job that goes over its share (the earlier jobs count), nothing admitted', async () => {
    const low = { type: 'sm', priority: 'low' };
    const res = await post('/v1/jobs/batch', { jobs: [{ type: 'sm', priority: 'high' }, low, low, low, low] });
    expect(res.status).toBe(422);
    const p = await problemOf(res);
    expect(p).toMatchObject({ type: `${PROBLEM_BASE}/exceeds-capacity`, index: 4 });
    expect(p.limit).toMatchObject({ dependency: 'small', kind: 'rate', capacity: 5, requested: 5, priorityShare: { priority: 'low', share: 0.8, capacity: 4 } });
    expect(p.errors).toEqual([{ path: 'jobs', message: expect.stringContaining("low priority's share") }]);
    // Within the share the batch is admitted: nothing was taken by the refused one.
    expect((await post('/v1/jobs/batch', { jobs: [{ type: 'sm', priority: 'high' }, low, low, low] })).status).toBe(202);
  });
});
