import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, waitFor, type AdminHarness } from './harness.js';

/**
 * `constructor` — the one member of Object.prototype that matches the contract's name pattern
 * (lower case, not starting with `_`) — is a name like any other: a lookup of it when it does not
 * exist must not find the prototype's member (404), and when it exists it must work everywhere —
 * the policy's records (zod), every admin route and the limiter's compiled policy.
 */
let h: AdminHarness;

beforeAll(async () => {
  h = await startAdmin('admin_proto_names');
  expect((await h.call('PUT', '/v1/policy', { dependencies: { db: {} }, tenants: { acme: {} }, jobTypes: { job: { dependencies: [{ name: 'db' }] } } })).status).toBe(200);
});

afterAll(async () => {
  await h?.close();
});

describe('`constructor` and other Object.prototype names, when they do not exist', () => {
  it('every lookup is 404 (GET, DELETE, state, pause, resume, keys)', async () => {
    const name = 'constructor';
    for (const [method, path] of [
      ['GET', `/v1/dependencies/${name}`],
      ['GET', `/v1/dependencies/${name}/state`],
      ['GET', `/v1/dependencies/${name}/pause`],
      ['POST', `/v1/dependencies/${name}/pause`],
      ['POST', `/v1/dependencies/${name}/resume`],
      ['DELETE', `/v1/dependencies/${name}`],
      ['GET', `/v1/job-types/${name}`],
      ['GET', `/v1/job-types/${name}/pause`],
      ['POST', `/v1/job-types/${name}/pause`],
      ['POST', `/v1/job-types/${name}/resume`],
      ['DELETE', `/v1/job-types/${name}`],
      ['GET', `/v1/tenants/${name}`],
      ['DELETE', `/v1/tenants/${name}`],
      ['GET', `/v1/tenants/${name}/keys`],
      ['POST', `/v1/tenants/${name}/keys`],
    ] as const) {
      const res = await h.call(method, path);
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(404);
    }
  });

  it('a job type naming an unknown dependency `constructor` is 422 (one resource and the whole document)', async () => {
    const one = await h.call('PUT', '/v1/job-types/j2', { dependencies: [{ name: 'constructor' }] });
    expect(one.status).toBe(422);
    expect(one.body.errors).toEqual([{ path: 'dependencies.0.name', message: 'unknown dependency "constructor"' }]);
    const whole = await h.call('PUT', '/v1/policy', { dependencies: { db: {} }, jobTypes: { j2: { dependencies: [{ name: 'constructor' }] } } });
    expect(whole.status).toBe(422);
    expect(whole.body.errors).toEqual([{ path: 'jobTypes.j2.dependencies.0.name', message: 'unknown dependency "constructor"' }]);
  });
});

describe('`constructor` as a name that exists', () => {
  it('PUT of a dependency, a tenant and a job type named `constructor` stores them; GET, state, pause and DELETE work', async () => {
    const dep = await h.call('PUT', '/v1/dependencies/constructor', {});
    expect(dep.status, JSON.stringify(dep.body)).toBe(200);
    expect(dep.body).toMatchObject({ name: 'constructor', failMode: 'closed' });
    const tenant = await h.call('PUT', '/v1/tenants/constructor', { weight: 2 });
    expect(tenant.status, JSON.stringify(tenant.body)).toBe(200);
    const jt = await h.call('PUT', '/v1/job-types/constructor', { dependencies: [{ name: 'constructor' }] });
    expect(jt.status, JSON.stringify(jt.body)).toBe(200);
    await waitFor(() => h.limiter.policy.version === jt.body.version, 2_000);

    expect((await h.call('GET', '/v1/dependencies/constructor')).body).toMatchObject({ name: 'constructor' });
    expect((await h.call('GET', '/v1/tenants/constructor')).body).toMatchObject({ id: 'constructor', weight: 2 });
    expect((await h.call('GET', '/v1/dependencies/constructor/state')).body).toMatchObject({ dependency: 'constructor', inFlight: 0 });
    expect((await h.call('POST', '/v1/dependencies/constructor/pause')).body).toEqual({ dependency: 'constructor', paused: true, until: null });
    expect((await h.call('POST', '/v1/dependencies/constructor/resume')).body).toEqual({ dependency: 'constructor', paused: false, until: null });
    expect((await h.call('POST', '/v1/job-types/constructor/pause')).body).toEqual({ jobType: 'constructor', paused: true, until: null });
    expect((await h.call('POST', '/v1/job-types/constructor/resume')).body).toEqual({ jobType: 'constructor', paused: false, until: null });
    expect((await h.call('POST', '/v1/tenants/constructor/keys')).status).toBe(201);
    expect((await h.call('GET', '/v1/tenants/constructor/keys')).body.keys).toHaveLength(1);
    expect(h.limiter.policy.jobType('constructor')?.dependencies).toEqual([{ name: 'constructor', cost: 1 }]);

    expect((await h.call('DELETE', '/v1/job-types/constructor')).status).toBe(200);
    expect((await h.call('DELETE', '/v1/dependencies/constructor')).status).toBe(200);
    expect((await h.call('DELETE', '/v1/tenants/constructor')).status).toBe(200);
    expect((await h.call('GET', '/v1/dependencies/constructor')).status).toBe(404);
  });

  it('PUT /v1/policy with `constructor` in every section (and as a dependency of a job type)', async () => {
    const doc = {
      dependencies: { constructor: { concurrency: 3 }, db: {} },
      tenants: { constructor: {}, acme: {} },
      jobTypes: { constructor: { dependencies: [{ name: 'constructor' }, { name: 'db' }] }, job: { dependencies: [{ name: 'db' }] } },
    };
    const dry = await h.call('PUT', '/v1/policy?dryRun=true', doc);
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    const put = await h.call('PUT', '/v1/policy', doc);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toMatchObject({ dependencies: { constructor: { concurrency: 3 } }, tenants: { constructor: { weight: 1 } }, jobTypes: { constructor: { dependencies: [{ name: 'constructor', cost: 1 }, { name: 'db', cost: 1 }] } } });
    expect((await h.call('GET', '/v1/policy')).body.jobTypes).toHaveProperty('constructor');
    await waitFor(() => h.limiter.policy.version === put.body.version, 2_000);
    expect((await h.call('GET', '/v1/dependencies/constructor/state')).body).toMatchObject({ declared: { concurrency: 3 } });
  });
});
