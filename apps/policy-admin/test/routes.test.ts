import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, TOKEN, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin('admin_routes');
});
afterAll(async () => {
  await h.close();
});

describe('authentication', () => {
  it.each([
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer wrong-token-0123456789' }],
    ['other scheme', { authorization: `Basic ${TOKEN}` }],
  ])('401 problem+json with %s, on every /v1 route', async (_label, headers) => {
    for (const [method, path] of [
      ['GET', '/v1/policy'],
      ['PUT', '/v1/dependencies/x'],
      ['GET', '/v1/audit'],
      ['POST', '/v1/tenants/x/keys'],
      ['GET', '/v1/dashboard'],
      ['GET', '/v1/nothing-here'],
    ] as const) {
      const res = await h.app.request(path, { method, headers });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
      const body = await res.json();
      expect(body).toMatchObject({ type: 'https://janus.dev/problems/unauthorized', title: 'Unauthorized', status: 401 });
    }
  });

  it('leaves health, metrics, the dashboard page and the OpenAPI document open', async () => {
    for (const path of ['/healthz', '/metrics', '/', '/dashboard', '/dashboard/app.js', '/openapi.json']) {
      expect((await h.app.request(path)).status, path).toBe(200);
    }
    const ready = await h.app.request('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { redis: 'up', nats: 'up', postgres: 'up', policy: 'up' } });
  });
});

describe('resources', () => {
  it('PUT returns the stored object (defaults applied) and the new version; GET, list and DELETE follow', async () => {
    const put = await h.call('PUT', '/v1/dependencies/stripe', { rate: { limit: 100, periodMs: 1000 }, concurrency: 10 });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ name: 'stripe', version: 1, previousVersion: 0, changed: true, rate: { limit: 100, periodMs: 1000 }, concurrency: 10, failMode: 'closed' });
    expect(put.headers.get('etag')).toBe('"1"');

    expect((await h.call('GET', '/v1/dependencies/stripe')).body).toEqual({ name: 'stripe', version: 1, rate: { limit: 100, periodMs: 1000 }, concurrency: 10, failMode: 'closed' });
    expect((await h.call('GET', '/v1/dependencies')).body).toEqual({ version: 1, dependencies: { stripe: { rate: { limit: 100, periodMs: 1000 }, concurrency: 10, failMode: 'closed' } } });

    const tenant = await h.call('PUT', '/v1/tenants/acme', { weight: 2, budget: { limit: 1000, periodMs: 60000 } });
    expect(tenant.body).toMatchObject({ id: 'acme', version: 2, weight: 2, budget: { limit: 1000, periodMs: 60000 } });
    const jt = await h.call('PUT', '/v1/job-types/charge', { dependencies: [{ name: 'stripe' }], timeoutMs: 5000 });
    expect(jt.status).toBe(200);
    expect(jt.body).toMatchObject({ name: 'charge', version: 3, dependencies: [{ name: 'stripe', cost: 1 }], timeoutMs: 5000, retry: { maxAttempts: 3 } });
    const global = await h.call('PUT', '/v1/global', { concurrency: 500 });
    expect(global.body).toEqual({ version: 4, previousVersion: 3, changed: true, concurrency: 500, shedding: { low: 0.8, normal: 1 } });
    expect((await h.call('GET', '/v1/global')).body).toEqual({ version: 4, concurrency: 500, shedding: { low: 0.8, normal: 1 } });

    // The same PUT again changes nothing and stores no version.
    const again = await h.call('PUT', '/v1/global', { concurrency: 500 });
    expect(again.body).toMatchObject({ version: 4, changed: false });

    // The job type's worker consumer exists, with the job type's timeout as ack wait.
    const info = await h.rt.jsm.consumers.info(h.rt.names.streams.jobs, h.rt.names.consumers.workers('charge'));
    expect(info.config.filter_subject).toBe(h.rt.names.subjects.job('charge'));
    expect(info.config.ack_wait).toBe(5000 * 1_000_000);

    const del = await h.call('DELETE', '/v1/job-types/charge');
    expect(del.body).toEqual({ name: 'charge', deleted: true, version: 5, previousVersion: 4 });
    expect((await h.call('GET', '/v1/job-types/charge')).status).toBe(404);
  });

  it('404 for unknown resources and routes, never a 5xx', async () => {
    for (const [method, path] of [
      ['GET', '/v1/dependencies/nope'],
      ['GET', '/v1/dependencies/NOT A NAME'],
      ['DELETE', '/v1/tenants/nope'],
      ['GET', '/v1/job-types/nope'],
      ['GET', '/v1/unknown'],
      ['GET', '/v1/tenants/nope/keys'],
      ['POST', '/v1/tenants/nope/keys'],
      ['DELETE', '/v1/tenants/acme/keys/nokey'],
    ] as const) {
      const res = await h.call(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
    }
  });

  it('405 with Allow for a route served under other methods', async () => {
    const res = await h.call('PATCH', '/v1/tenants/acme', { weight: 2 });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('DELETE, GET, HEAD, PUT');
    expect(res.body).toMatchObject({ type: 'https://janus.dev/problems/method-not-allowed', status: 405 });
    expect((await h.call('GET', '/v1/tenants/acme/credits')).status).not.toBe(405);
    expect((await h.call('DELETE', '/v1/global')).headers.get('allow')).toBe('GET, HEAD, PUT');
  });

  it('malformed JSON is 400, a non-JSON body 415, a missing body 415', async () => {
    const bad = await h.call('PUT', '/v1/dependencies/x', '{"rate": ');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ type: 'https://janus.dev/problems/malformed-json', status: 400, errors: [{ path: '(body)', message: 'not valid JSON' }] });
    const text = await h.app.request('/v1/dependencies/x', { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' }, body: 'hi' });
    expect(text.status).toBe(415);
    const none = await h.app.request('/v1/policy', { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(none.status).toBe(415);
    const query = await h.call('PUT', '/v1/policy?dryRun=maybe', {});
    expect(query.status).toBe(400);
    expect(query.body.errors).toEqual([{ path: 'dryRun', message: expect.any(String) }]);
    const audit = await h.call('GET', '/v1/audit?limit=0');
    expect(audit.status).toBe(400);
  });

  it('If-Match: a moved-on version is 412 with the current version; the right one applies; one that is no version is 400', async () => {
    const { body } = await h.call('GET', '/v1/policy');
    const stale = await h.call('PUT', '/v1/tenants/beta', { weight: 1 }, { 'if-match': String(body.version - 1) });
    expect(stale.status).toBe(412);
    expect(stale.body).toMatchObject({ type: 'https://janus.dev/problems/precondition-failed', status: 412, currentVersion: body.version });
    const fresh = await h.call('PUT', '/v1/tenants/beta', { weight: 1 }, { 'if-match': `"${body.version}"` });
    expect(fresh.status).toBe(200);
    expect(fresh.body.version).toBe(body.version + 1);
    expect((await h.call('DELETE', '/v1/tenants/beta', undefined, { 'if-match': String(body.version) })).status).toBe(412);
    const garbage = await h.call('PUT', '/v1/tenants/beta', { weight: 1 }, { 'if-match': 'garbage' });
    expect(garbage.status).toBe(400);
    expect(garbage.body.errors).toEqual([{ path: 'If-Match', message: expect.stringContaining('not a policy version') }]);
  });
});

describe('whole policy', () => {
  const doc = {
    dependencies: { openai: { costRate: { limit: 90000, periodMs: 60000 } }, db: { concurrency: 20 } },
    tenants: { acme: { weight: 3 } },
    jobTypes: { summarize: { dependencies: [{ name: 'openai', cost: 500 }, { name: 'db' }] } },
    global: { concurrency: 200 },
  };

  it('dryRun returns the diff and changes nothing; PUT applies it; GET round-trips (its version acts as If-Match)', async () => {
    const before = (await h.call('GET', '/v1/policy')).body;
    const dry = await h.call('PUT', '/v1/policy?dryRun=true', doc);
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, version: before.version, changed: true });
    expect(dry.body.diff.map((c: { op: string; path: string }) => `${c.op} ${c.path}`)).toEqual([
      'add dependencies.db',
      'add dependencies.openai',
      'remove dependencies.stripe',
      'change tenants.acme',
      'remove tenants.beta',
      'add jobTypes.summarize',
      'change global',
    ]);
    expect((await h.call('GET', '/v1/policy')).body.version).toBe(before.version);

    const put = await h.call('PUT', '/v1/policy', doc);
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ version: before.version + 1, changed: true, tenants: { acme: { weight: 3 } } });
    expect(put.body.diff).toHaveLength(7);

    const got = (await h.call('GET', '/v1/policy')).body;
    expect(got).toMatchObject({ version: before.version + 1, ...doc });
    const same = await h.call('PUT', '/v1/policy', got);
    expect(same.body).toMatchObject({ version: got.version, changed: false });
    const stale = await h.call('PUT', '/v1/policy', { ...got, version: got.version - 1 });
    expect(stale.status).toBe(412);
  });

  it('dryRun on the single-resource routes (PUT and DELETE of a dependency, tenant or job type; PUT /v1/global) returns the diff and changes nothing', async () => {
    const before = (await h.call('GET', '/v1/policy')).body;
    const audit = (await h.call('GET', '/v1/audit?limit=1')).body.entries[0].id;
    const dryPut = await h.call('PUT', '/v1/dependencies/dryrun?dryRun=true', { concurrency: 3 });
    expect(dryPut.status).toBe(200);
    expect(dryPut.body).toMatchObject({ dryRun: true, version: before.version, changed: true, diff: [{ op: 'add', path: 'dependencies.dryrun' }] });
    expect((await h.call('GET', '/v1/dependencies/dryrun')).status).toBe(404);
    const dryDelete = await h.call('DELETE', '/v1/tenants/acme?dryRun=1');
    expect(dryDelete.body).toMatchObject({ dryRun: true, changed: true, diff: [{ op: 'remove', path: 'tenants.acme' }] });
    expect((await h.call('GET', '/v1/tenants/acme')).status).toBe(200);
    const dryGlobal = await h.call('PUT', '/v1/global?dryRun=true', { concurrency: 7 });
    expect(dryGlobal.body).toMatchObject({ dryRun: true, changed: true, diff: [{ op: 'change', path: 'global' }] });
    // invalid, unknown or stale: the same answers as without dryRun
    expect((await h.call('PUT', '/v1/job-types/dry?dryRun=true', { dependencies: [{ name: 'nope' }] })).status).toBe(422);
    expect((await h.call('DELETE', '/v1/job-types/nope?dryRun=true')).status).toBe(404);
    expect((await h.call('PUT', '/v1/global?dryRun=true', { concurrency: 7 }, { 'if-match': `"${before.version - 1}"` })).status).toBe(412);
    const after = (await h.call('GET', '/v1/policy')).body;
    expect(after).toEqual(before);
    expect((await h.call('GET', '/v1/audit?limit=1')).body.entries[0].id).toBe(audit);
  });

  it('the audit log names the token by its name only (JANUS_ADMIN_TOKEN is `token:env`), with versions and diffs, newest first, paged', async () => {
    const page = await h.call('GET', '/v1/audit?limit=2');
    expect(page.status).toBe(200);
    expect(page.body.entries).toHaveLength(2);
    const [latest] = page.body.entries;
    expect(latest).toMatchObject({ action: 'policy.put', target: 'policy', actor: 'token:env' });
    expect(latest.toVersion).toBe(latest.fromVersion + 1);
    expect(JSON.stringify(page.body)).not.toContain(TOKEN);
    const next = await h.call('GET', `/v1/audit?limit=2&before=${page.body.next}`);
    expect(next.body.entries[0].id).toBeLessThan(page.body.entries[1].id);
  });
});

describe('API keys', () => {
  it('creates (201, key shown once, only a hash stored), lists without the key, revokes (204)', async () => {
    const created = await h.call('POST', '/v1/tenants/acme/keys', { label: 'ci' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ keyId: expect.any(String), key: expect.stringMatching(/^jns_/), tenant: 'acme', label: 'ci' });
    const noBody = await h.app.request('/v1/tenants/acme/keys', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(noBody.status).toBe(201);
    // What a real server hands Hono for `curl -X POST` (no Content-Length, no Content-Type): an empty stream.
    const emptyStream = new Request('http://admin/v1/tenants/acme/keys', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      body: new ReadableStream({ start: (controller) => controller.close() }),
      duplex: 'half',
    } as RequestInit);
    expect((await h.app.request(emptyStream)).status).toBe(201);

    const list = await h.call('GET', '/v1/tenants/acme/keys');
    expect(list.status).toBe(200);
    expect(list.body.keys).toHaveLength(3);
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);
    expect(list.body.keys[0]).toMatchObject({ keyId: created.body.keyId, label: 'ci', revokedAt: null, active: true });

    expect((await h.call('DELETE', `/v1/tenants/acme/keys/${created.body.keyId}`)).status).toBe(204);
    expect((await h.call('DELETE', `/v1/tenants/acme/keys/${created.body.keyId}`)).status).toBe(204);
    const after = await h.call('GET', '/v1/tenants/acme/keys');
    expect(after.body.keys.find((k: { keyId: string }) => k.keyId === created.body.keyId)).toMatchObject({ active: false, revokedAt: expect.any(String) });
    expect((await h.rt.apiKeyStore.activeKeys()).size).toBe(2);

    const bad = await h.call('POST', '/v1/tenants/acme/keys', { label: 5, extra: true });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { path: string }) => e.path)).toEqual(['label', 'extra']);
  });

  it('deleting a tenant revokes its keys', async () => {
    await h.call('PUT', '/v1/tenants/gone', {});
    const key = await h.call('POST', '/v1/tenants/gone/keys');
    expect(key.status).toBe(201);
    expect((await h.call('DELETE', '/v1/tenants/gone')).status).toBe(200);
    const active = [...(await h.rt.apiKeyStore.activeKeys()).values()];
    expect(active.some((k) => k.tenant === 'gone')).toBe(false);
    // re-created, the tenant starts without keys: the old ones stay revoked
    expect((await h.call('PUT', '/v1/tenants/gone', {})).status).toBe(200);
    expect([...(await h.rt.apiKeyStore.activeKeys()).values()].some((k) => k.tenant === 'gone')).toBe(false);
    expect((await h.call('GET', '/v1/tenants/gone/keys')).body.keys).toEqual([expect.objectContaining({ keyId: key.body.keyId, active: false })]);
    expect((await h.call('DELETE', '/v1/tenants/gone')).status).toBe(200);
  });

  it('removing tenants through PUT /v1/policy revokes their keys as DELETE does (re-adding them brings no key back)', async () => {
    const { version: _v, ...doc } = (await h.call('GET', '/v1/policy')).body;
    expect((await h.call('PUT', '/v1/policy', { ...doc, tenants: { ...doc.tenants, tu: {}, tv: {} } })).status).toBe(200);
    const tu = await h.call('POST', '/v1/tenants/tu/keys');
    const tv = await h.call('POST', '/v1/tenants/tv/keys');
    const kept = await h.call('POST', '/v1/tenants/acme/keys');
    expect([tu.status, tv.status, kept.status]).toEqual([201, 201, 201]);

    // a dry run changes nothing
    expect((await h.call('PUT', '/v1/policy?dryRun=true', doc)).status).toBe(200);
    expect([...(await h.rt.apiKeyStore.activeKeys()).values()].filter((k) => k.tenant === 'tu' || k.tenant === 'tv')).toHaveLength(2);

    const removed = await h.call('PUT', '/v1/policy', doc);
    expect(removed.status).toBe(200);
    const active = [...(await h.rt.apiKeyStore.activeKeys()).values()];
    expect(active.some((k) => k.tenant === 'tu' || k.tenant === 'tv')).toBe(false);
    expect(active.some((k) => k.keyId === kept.body.keyId)).toBe(true);

    expect((await h.call('PUT', '/v1/tenants/tu', {})).status).toBe(200);
    expect([...(await h.rt.apiKeyStore.activeKeys()).values()].some((k) => k.tenant === 'tu')).toBe(false);
    expect((await h.call('GET', '/v1/tenants/tu/keys')).body.keys).toEqual([expect.objectContaining({ keyId: tu.body.keyId, active: false })]);
    expect((await h.call('DELETE', '/v1/tenants/tu')).status).toBe(200);
  });

  it('GET /v1/tenants/{id}/keys of a tenant not in the policy is 404, as POST is (also when it had keys once)', async () => {
    expect((await h.call('GET', '/v1/tenants/nope/keys')).status).toBe(404);
    expect((await h.call('POST', '/v1/tenants/gone/keys')).status).toBe(404);
    const list = await h.call('GET', '/v1/tenants/gone/keys');
    expect(list.status).toBe(404);
    expect(list.body).toMatchObject({ type: 'https://janus.dev/problems/not-found', detail: 'tenant "gone" does not exist' });
  });
});

describe('every problem answer carries a detail (RFC 9457; CONTRACT §3)', () => {
  it('bad bodies and headers of keys, credits and pause', async () => {
    expect((await h.call('PUT', '/v1/tenants/tl', {})).status).toBe(200);
    expect((await h.call('PUT', '/v1/dependencies/dc', {})).status).toBe(200);
    const cases: [string, string, unknown, Record<string, string>, number, string][] = [
      ['POST', '/v1/tenants/tl/keys', { label: 5 }, {}, 422, 'label'],
      ['POST', '/v1/tenants/tl/credits', { amount: 5 }, {}, 400, 'Idempotency-Key'],
      ['POST', '/v1/tenants/tl/credits', { amount: 5 }, { 'idempotency-key': '' }, 400, 'Idempotency-Key'],
      ['POST', '/v1/tenants/tl/credits', { amount: 5 }, { 'idempotency-key': 'k'.repeat(201) }, 400, 'Idempotency-Key'],
      ['POST', '/v1/tenants/tl/credits', { amount: 0 }, { 'idempotency-key': 'k' }, 400, 'amount'],
      ['POST', '/v1/dependencies/dc/pause', { until: '2040-01-01T00:00:00Z' }, {}, 400, 'until'],
      ['POST', '/v1/dependencies/dc/pause', { until: 'tomorrow' }, {}, 400, 'until'],
    ];
    for (const [method, path, body, headers, status, field] of cases) {
      const res = await h.call(method, path, body, headers);
      const what = `${method} ${path} ${JSON.stringify(body)} ${JSON.stringify(headers)}: ${JSON.stringify(res.body)}`;
      expect(res.status, what).toBe(status);
      expect(res.headers.get('content-type'), what).toBe('application/problem+json');
      expect(res.body, what).toMatchObject({ type: 'https://janus.dev/problems/invalid-request', title: 'Invalid request', status, detail: expect.any(String) });
      expect(res.body.detail.length, what).toBeGreaterThan(0);
      expect(res.body.errors.map((e: { path: string }) => e.path), what).toContain(field);
    }
  });
});

describe('metrics', () => {
  it('counts policy changes by resource and outcome, and validation failures', async () => {
    await h.call('PUT', '/v1/dependencies/x', { concurrency: 0 });
    const text = await (await h.app.request('/metrics')).text();
    expect(text).toMatch(/janus_policy_changes_total\{resource="dependencies",outcome="applied",app="policy-admin"\} [1-9]/);
    expect(text).toMatch(/janus_policy_changes_total\{resource="tenants",outcome="conflict",app="policy-admin"\} [1-9]/);
    expect(text).toMatch(/janus_policy_validation_failures_total\{resource="dependencies",app="policy-admin"\} [1-9]/);
    expect(text).toMatch(/janus_admin_auth_failures_total\{app="policy-admin"\} [1-9]/);
  });

  it('serves an OpenAPI document listing the contract routes', async () => {
    const doc = (await (await h.app.request('/openapi.json')).json()) as { paths: object; components: { schemas: object } };
    for (const path of ['/v1/dependencies/{name}', '/v1/tenants/{id}', '/v1/tenants/{id}/keys', '/v1/tenants/{id}/keys/{keyId}', '/v1/tenants/{id}/credits', '/v1/job-types/{name}', '/v1/global', '/v1/policy', '/v1/audit', '/v1/admin/tokens', '/v1/admin/tokens/{name}']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.components.schemas).toHaveProperty('PolicyDocument');
    expect(doc.components.schemas).toHaveProperty('CreateAdminToken');
  });
});
