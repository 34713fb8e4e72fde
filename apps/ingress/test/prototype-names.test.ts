import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

/**
 * `constructor` (a member of Object.prototype that matches the name pattern) is a name like any
 * other for producers: a job of type `constructor` is 404 unknown-job-type while the policy has no
 * such job type, and is admitted once it does; a key of a tenant `constructor` that is not in the
 * policy is 403.
 */
const ns = testNamespace('ingress-proto-names');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let acme: string;

const post = (key: string, body: unknown) => ingress.app.request('/v1/jobs', json(body, { authorization: `Bearer ${key}` }));

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], { dependencies: { db: {} }, tenants: { acme: {} }, jobTypes: { job: { dependencies: [{ name: 'db' }] } } });
  acme = (await createKey([ingress], 'acme')).key;
});

afterAll(async () => {
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('the name `constructor`', () => {
  it('not defined: a job of type `constructor` is 404 unknown-job-type; a key of tenant `constructor` is 403', async () => {
    const res = await post(acme, { type: 'constructor' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { type: string }).type).toBe(`${PROBLEM_BASE}/unknown-job-type`);
    const orphan = (await createKey([ingress], 'constructor')).key;
    const refused = await post(orphan, { type: 'job' });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { type: string }).type).toBe(`${PROBLEM_BASE}/tenant-not-configured`);
  });

  it('defined (a dependency, a tenant and a job type named `constructor`): its jobs are admitted', async () => {
    await setPolicy([ingress], {
      dependencies: { db: {}, constructor: { concurrency: 1 } },
      tenants: { acme: {}, constructor: {} },
      jobTypes: { job: { dependencies: [{ name: 'db' }] }, constructor: { dependencies: [{ name: 'constructor' }] } },
    });
    const res = await post(acme, { type: 'constructor' });
    expect(res.status, await res.clone().text()).toBe(202);
    // the dependency's concurrency (1) applies: a second one waits (mode now: 429)
    expect((await post(acme, { type: 'constructor' })).status).toBe(429);
    const key = (await createKey([ingress], 'constructor')).key;
    expect((await post(key, { type: 'job' })).status).toBe(202);
  });
});
