import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

/**
 * One fixture per validation error: the request, and the exact `errors` of the 422. After each,
 * the running policy (version and document) must be what it was.
 */
interface Fixture {
  name: string;
  method: 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  errors: { path: string; message: string }[];
}

const NAME_MSG = 'must match ^[a-z0-9][a-z0-9_-]{0,63}$';

const fixtures: Fixture[] = [
  { name: 'rate limit below 1', method: 'PUT', path: '/v1/dependencies/d2', body: { rate: { limit: 0, periodMs: 1000 } }, errors: [{ path: 'rate.limit', message: 'Too small: expected number to be >=1' }] },
  { name: 'rate without periodMs', method: 'PUT', path: '/v1/dependencies/d2', body: { rate: { limit: 5 } }, errors: [{ path: 'rate.periodMs', message: 'Invalid input: expected number, received undefined' }] },
  { name: 'non-integer concurrency', method: 'PUT', path: '/v1/dependencies/d2', body: { concurrency: 1.5 }, errors: [{ path: 'concurrency', message: 'Invalid input: expected int, received number' }] },
  { name: 'unknown failMode', method: 'PUT', path: '/v1/dependencies/d2', body: { failMode: 'maybe' }, errors: [{ path: 'failMode', message: 'Invalid option: expected one of "closed"|"open"' }] },
  { name: 'unknown field', method: 'PUT', path: '/v1/dependencies/d2', body: { rate: { limit: 1, periodMs: 1, brust: 2 } }, errors: [{ path: 'rate.brust', message: 'unknown field' }] },
  { name: 'perTenant concurrency 0', method: 'PUT', path: '/v1/dependencies/d2', body: { perTenant: { concurrency: 0 } }, errors: [{ path: 'perTenant.concurrency', message: 'Too small: expected number to be >=1' }] },
  { name: 'dependency name in the URL', method: 'PUT', path: '/v1/dependencies/Bad_Name', body: {}, errors: [{ path: 'name', message: NAME_MSG }] },
  { name: 'tenant id in the URL (named as the path parameter is)', method: 'PUT', path: '/v1/tenants/Bad_Id', body: {}, errors: [{ path: 'id', message: NAME_MSG }] },
  { name: 'body not an object', method: 'PUT', path: '/v1/dependencies/d2', body: [1], errors: [{ path: '(body)', message: 'Invalid input: expected object, received array' }] },
  { name: 'tenant weight 0', method: 'PUT', path: '/v1/tenants/t2', body: { weight: 0 }, errors: [{ path: 'weight', message: 'Too small: expected number to be >=0.001' }] },
  { name: 'tenant budget without limit', method: 'PUT', path: '/v1/tenants/t2', body: { budget: { periodMs: 1000 } }, errors: [{ path: 'budget.limit', message: 'Invalid input: expected number, received undefined' }] },
  { name: 'tenant maxQueued negative', method: 'PUT', path: '/v1/tenants/t2', body: { maxQueued: -1 }, errors: [{ path: 'maxQueued', message: 'Too small: expected number to be >=0' }] },
  { name: 'job type naming an unknown dependency', method: 'PUT', path: '/v1/job-types/j2', body: { dependencies: [{ name: 'db' }, { name: 'ghost' }] }, errors: [{ path: 'dependencies.1.name', message: 'unknown dependency "ghost"' }] },
  { name: 'job type listing a dependency twice', method: 'PUT', path: '/v1/job-types/j2', body: { dependencies: [{ name: 'db' }, { name: 'db' }] }, errors: [{ path: 'dependencies.1.name', message: 'dependency "db" listed twice' }] },
  {
    name: 'job type with several problems at once (all listed)',
    method: 'PUT',
    path: '/v1/job-types/j2',
    body: { dependencies: [{ name: 'ghost', cost: -1 }], timeoutMs: 0, retry: { maxAttempts: 0 }, color: 'red' },
    errors: [
      { path: 'dependencies.0.cost', message: 'Too small: expected number to be >=0' },
      { path: 'timeoutMs', message: 'Too small: expected number to be >=1' },
      { path: 'retry.maxAttempts', message: 'Too small: expected number to be >=1' },
      { path: 'color', message: 'unknown field' },
      { path: 'dependencies.0.name', message: 'unknown dependency "ghost"' },
    ],
  },
  { name: 'global shedding above 1', method: 'PUT', path: '/v1/global', body: { shedding: { low: 1.5 } }, errors: [{ path: 'shedding.low', message: 'Too big: expected number to be <=1' }] },
  { name: 'deleting a dependency still used by a job type', method: 'DELETE', path: '/v1/dependencies/db', errors: [{ path: 'jobTypes.job.dependencies.0.name', message: 'dependency "db" is still used by job type "job"' }] },
  {
    name: 'whole policy: structure and cross-references together',
    method: 'PUT',
    path: '/v1/policy',
    body: { dependencies: { 'Bad Name': {}, api: { rate: { limit: 1, periodMs: 0 } } }, jobTypes: { j: { dependencies: [{ name: 'nope' }] } }, extra: true },
    errors: [
      { path: 'dependencies.Bad Name', message: `invalid name: ${NAME_MSG}` },
      { path: 'dependencies.api.rate.periodMs', message: 'Too small: expected number to be >=1' },
      { path: 'extra', message: 'unknown field' },
      { path: 'jobTypes.j.dependencies.0.name', message: 'unknown dependency "nope"' },
    ],
  },
  { name: 'whole policy: dry run validates too', method: 'PUT', path: '/v1/policy?dryRun=true', body: { tenants: { a: { weight: -1 } } }, errors: [{ path: 'tenants.a.weight', message: 'Too small: expected number to be >=0.001' }] },
];

let h: AdminHarness;
let before: unknown;

beforeAll(async () => {
  h = await startAdmin('admin_validation');
  const seeded = await h.call('PUT', '/v1/policy', {
    dependencies: { db: { concurrency: 5 } },
    tenants: { acme: {} },
    jobTypes: { job: { dependencies: [{ name: 'db' }] } },
  });
  expect(seeded.status).toBe(200);
  before = (await h.call('GET', '/v1/policy')).body;
});

afterAll(async () => {
  await h.close();
});

describe('every invalid change is 422 naming each bad field, and the running policy stays as it was', () => {
  it.each(fixtures.map((f) => [f.name, f] as const))('%s', async (_name, f) => {
    const res = await h.call(f.method, f.path, f.body);
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.body).toMatchObject({ type: 'https://janus.dev/problems/invalid-policy', title: 'Invalid policy', status: 422 });
    expect(res.body.errors).toEqual(f.errors);
    expect((await h.call('GET', '/v1/policy')).body).toEqual(before);
    expect(h.rt.policy.version).toBe((before as { version: number }).version);
  });

  it('counted every failure', async () => {
    const text = await (await h.app.request('/metrics')).text();
    const total = [...text.matchAll(/^janus_policy_validation_failures_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    expect(total).toBe(fixtures.length);
  });
});

describe("PUT /v1/policy: the document's `version` (the expected version) must be an integer", () => {
  it.each([['"abc"', 'abc'], ['"1"', '1'], ['null', null], ['1.5', 1.5], ['true', true], ['an object', { v: 1 }]] as const)(
    'version %s is 422 naming `version`, with or without dryRun; nothing changes',
    async (_label, version) => {
      for (const path of ['/v1/policy', '/v1/policy?dryRun=true']) {
        const res = await h.call('PUT', path, { version, dependencies: {} });
        expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(422);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(res.body).toMatchObject({ type: 'https://janus.dev/problems/invalid-policy', title: 'Invalid policy', status: 422, detail: expect.any(String) });
        expect(res.body.errors).toEqual([{ path: 'version', message: 'must be an integer: the version read with GET /v1/policy (or leave it out)' }]);
        expect((await h.call('GET', '/v1/policy')).body).toEqual(before);
      }
    },
  );

  it('reported with every other problem of the document', async () => {
    const res = await h.call('PUT', '/v1/policy', { version: 'abc', tenants: { a: { weight: -1 } } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      { path: 'version', message: 'must be an integer: the version read with GET /v1/policy (or leave it out)' },
      { path: 'tenants.a.weight', message: 'Too small: expected number to be >=0.001' },
    ]);
  });

  it('an integer one that is not the current version is still 412', async () => {
    const { version } = before as { version: number };
    const res = await h.call('PUT', '/v1/policy', { version: version - 1, dependencies: {} });
    expect(res.status).toBe(412);
    expect((await h.call('GET', '/v1/policy')).body).toEqual(before);
  });
});
