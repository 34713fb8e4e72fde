import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

/**
 * No input yields a 5xx (CONTRACT §6.7): a NUL (U+0000) or a lone UTF-16 surrogate — which
 * PostgreSQL can store neither in text nor in jsonb — in a path parameter, a query parameter or a
 * string of the body is a 4xx problem naming the field, answered as the route answers any other
 * invalid value there; nothing reaches PostgreSQL.
 */
let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin('admin_text_inputs');
  const seeded = await h.call('PUT', '/v1/policy', { dependencies: { db: { concurrency: 5 } }, tenants: { acme: {} }, jobTypes: { job: { dependencies: [{ name: 'db' }] } } });
  expect(seeded.status).toBe(200);
});
afterAll(async () => {
  await h.close();
});

const RULE = 'must not contain U+0000 (NUL) or a lone UTF-16 surrogate';
// Raw JSON texts: `\u0000` and `\ud800` as JSON escapes, as a client would send them.
const NUL_JSON = '"a\\u0000b"';
const SURROGATE_JSON = '"\\ud800"';

describe('API keys', () => {
  it('a NUL in the tenant or key id of a path is 404, as any name that cannot exist', async () => {
    const bad = await h.call('GET', '/v1/tenants/Bad_Name/keys');
    expect(bad.status).toBe(404);
    for (const [method, path] of [
      ['GET', '/v1/tenants/%00/keys'],
      ['GET', '/v1/tenants/a%00b/keys'],
      ['DELETE', '/v1/tenants/acme/keys/%00'],
      ['DELETE', '/v1/tenants/acme/keys/a%00b'],
      ['DELETE', '/v1/tenants/%00/keys/abc'],
      ['POST', '/v1/tenants/%00/keys'],
    ] as const) {
      const res = await h.call(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.body).toMatchObject({ type: bad.body.type, title: 'Not found', status: 404 });
    }
    // what an existing key's revocation looks like is unchanged
    const created = await h.call('POST', '/v1/tenants/acme/keys', { label: 'ok' });
    expect(created.status).toBe(201);
    expect((await h.call('DELETE', `/v1/tenants/acme/keys/${created.body.keyId}`)).status).toBe(204);
  });

  it.each([
    ['a NUL', `{"label":${NUL_JSON}}`],
    ['a lone surrogate', `{"label":${SURROGATE_JSON}}`],
  ])('a label with %s is 422 invalid-request naming label, as a label too long', async (_what, body) => {
    const tooLong = await h.call('POST', '/v1/tenants/acme/keys', { label: 'x'.repeat(201) });
    expect(tooLong.status).toBe(422);
    const res = await h.call('POST', '/v1/tenants/acme/keys', body);
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.body).toMatchObject({ type: tooLong.body.type, title: 'Invalid request', status: 422, errors: [{ path: 'label', message: RULE }] });
    expect((await h.call('GET', '/v1/tenants/acme/keys')).body.keys.every((k: { label: string | null }) => k.label === 'ok')).toBe(true);
  });
});

describe('every admin route with a path parameter or a string field', () => {
  const segments = ['%00', 'a%00b', '%ED%A0%80', '%C0%80'];
  const strings = [NUL_JSON, SURROGATE_JSON, '"\\u0000"', '"\\udc00x"'];
  const cases: [string, string, string?, Record<string, string>?][] = [];
  for (const p of segments) {
    cases.push(['GET', `/v1/tenants/${p}/keys`], ['POST', `/v1/tenants/${p}/keys`, '{}'], ['DELETE', `/v1/tenants/acme/keys/${p}`], ['DELETE', `/v1/tenants/${p}/keys/abc`]);
    for (const r of ['dependencies', 'tenants', 'job-types']) {
      cases.push(['GET', `/v1/${r}/${p}`], ['PUT', `/v1/${r}/${p}`, r === 'job-types' ? '{"dependencies":[]}' : '{}'], ['DELETE', `/v1/${r}/${p}`]);
    }
    for (const r of ['dependencies', 'job-types']) cases.push(['POST', `/v1/${r}/${p}/pause`], ['POST', `/v1/${r}/${p}/resume`], ['GET', `/v1/${r}/${p}/pause`]);
    cases.push(['GET', `/v1/dependencies/${p}/state`]);
    cases.push(['POST', `/v1/tenants/${p}/credits`, '{"amount":1}', { 'idempotency-key': 'k1' }], ['GET', `/v1/tenants/${p}/credits`], ['GET', `/v1/tenants/${p}/credits?reconcile=true`]);
    cases.push(['GET', `/v1/admin/jobs/${p}`], ['POST', `/v1/admin/jobs/${p}/replay`], ['DELETE', `/v1/admin/tokens/${p}`]);
    cases.push(['GET', `/v1/admin/jobs?tenant=${p}`], ['GET', `/v1/admin/jobs?type=${p}`], ['GET', `/v1/admin/jobs?status=${p}`], ['GET', `/v1/admin/jobs?cursor=${p}`], ['GET', `/v1/audit?before=${p}`]);
  }
  for (const v of strings) {
    cases.push(['POST', '/v1/tenants/acme/keys', `{"label":${v}}`]);
    cases.push(['POST', '/v1/admin/tokens', `{"name":${v}}`]);
    cases.push(['POST', '/v1/dependencies/db/pause', `{"until":${v}}`]);
    cases.push(['POST', '/v1/tenants/acme/credits', `{"amount":1,${v}:1}`, { 'idempotency-key': 'k2' }]);
    // strings anywhere in a policy: names (record keys, dependency names), enums, unknown fields
    for (const doc of [
      `{"dependencies":{${v}:{}}}`,
      `{${v}:1}`,
      `{"dependencies":{"db":{${v}:1}}}`,
      `{"dependencies":{"db":{"failMode":${v}}}}`,
      `{"dependencies":{"db":{}},"jobTypes":{"j":{"dependencies":[{"name":${v}}]}}}`,
      `{"dependencies":{"db":{}},"jobTypes":{"j":{"dependencies":[],"retryPriority":${v}}}}`,
      `{"global":{"shedding":{${v}:1}}}`,
    ]) {
      cases.push(['PUT', '/v1/policy', doc], ['PUT', '/v1/policy?dryRun=true', doc]);
    }
    cases.push(['PUT', '/v1/job-types/j', `{"dependencies":[{"name":${v}}]}`], ['PUT', '/v1/job-types/j', `{"dependencies":[],${v}:1}`]);
    cases.push(['PUT', '/v1/dependencies/d', `{${v}:1}`], ['PUT', '/v1/tenants/t', `{${v}:1}`], ['PUT', '/v1/tenants/t', `{"weight":${v}}`], ['PUT', '/v1/global', `{${v}:1}`]);
  }

  it(`answers each of ${cases.length} requests with a 4xx problem+json`, async () => {
    const fives: string[] = [];
    for (const [method, path, body, headers] of cases) {
      const res = await h.call(method, path, body, headers);
      if (res.status >= 500 || res.status < 400 || res.headers.get('content-type') !== 'application/problem+json') fives.push(`${res.status} ${method} ${path} ${body ?? ''}`);
    }
    expect(fives).toEqual([]);
    // and nothing was stored
    expect((await h.call('GET', '/v1/policy')).body.version).toBe(1);
  });
});
