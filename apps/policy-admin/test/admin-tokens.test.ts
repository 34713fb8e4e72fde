import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadSettings } from '@janus/config';
import { testEnv } from '@janus/testing';
import { startAdmin, TOKEN, waitFor, type AdminHarness } from './harness.js';

/**
 * Named admin tokens (`/v1/admin/tokens`) and the admin API's failed-authentication throttle, on
 * two policy-admin instances sharing one namespace (as two processes would: each with its own
 * NATS connection, PostgreSQL pool and token cache). The test client's address comes from a header,
 * so that the throttle test hammers from an address of its own.
 */
const clientAddress = (c: { req: { header(name: string): string | undefined } }) => c.req.header('x-test-client') ?? 'local';
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, new Writable({ write: (chunk: Buffer, _enc, done) => (logLines.push(chunk.toString()), done()) }));

let a: AdminHarness;
let b: AdminHarness;
const secrets: string[] = [];

beforeAll(async () => {
  a = await startAdmin('admin_tokens', { clientAddress, logger });
  b = await startAdmin('admin_tokens', { ns: a.ns, clientAddress, logger });
});

afterAll(async () => {
  await b?.stop();
  await a?.close();
});

const bearer = (token: string, client?: string) => ({ authorization: `Bearer ${token}`, ...(client ? { 'x-test-client': client } : {}) });
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function create(name: string): Promise<string> {
  const res = await a.call('POST', '/v1/admin/tokens', { name });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  secrets.push(res.body.token);
  return res.body.token as string;
}

describe('named admin tokens', () => {
  it('creates a token (shown once), which then works on every instance; the audit log and the dashboard name it, never a secret', async () => {
    const created = await a.call('POST', '/v1/admin/tokens', { name: 'alice' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ name: 'alice', token: expect.stringMatching(/^jadm_[A-Za-z0-9_-]{43}$/), createdAt: expect.any(String), createdBy: 'token:env' });
    expect(created.headers.get('cache-control')).toBe('no-store');
    const alice = created.body.token as string;
    secrets.push(alice);

    // On the instance that made it at once; on the other one as soon as the announcement arrives.
    const put = await a.call('PUT', '/v1/dependencies/stripe', { concurrency: 5 }, bearer(alice));
    expect(put.status).toBe(200);
    await waitFor(async () => (await b.call('GET', '/v1/policy', undefined, bearer(alice))).status === 200, 1_000);
    expect((await b.call('PUT', '/v1/tenants/acme', {}, bearer(alice))).status).toBe(200);

    const audit = (await a.call('GET', '/v1/audit?limit=10')).body.entries as { actor: string; action: string; target: string }[];
    expect(audit.slice(0, 3)).toMatchObject([
      { actor: 'token:alice', action: 'tenants.put', target: 'tenants/acme' },
      { actor: 'token:alice', action: 'dependencies.put', target: 'dependencies/stripe' },
      { actor: 'token:env', action: 'admin-token.create', target: 'admin/tokens/alice' },
    ]);
    const dashboard = await a.call('GET', '/v1/dashboard', undefined, bearer(alice));
    expect(dashboard.status).toBe(200);
    expect(dashboard.body.policy.recentChanges[0]).toMatchObject({ actor: 'token:alice', action: 'tenants.put' });
    expect(dashboard.body.policy.history[0]).toMatchObject({ createdBy: 'token:alice' });

    // The list: JANUS_ADMIN_TOKEN as `env`, then alice; no token, no hash anywhere. `lastUsedAt` is written in the background.
    await waitFor(async () => (await a.call('GET', '/v1/admin/tokens')).body.tokens[1]?.lastUsedAt !== null, 1_000);
    const list = await a.call('GET', '/v1/admin/tokens', undefined, bearer(alice));
    expect(list.status).toBe(200);
    expect(list.body.tokens).toEqual([
      { name: 'env', source: 'env', createdAt: null, createdBy: null, lastUsedAt: null, revokedAt: null, revokedBy: null },
      { name: 'alice', source: 'api', createdAt: created.body.createdAt, createdBy: 'token:env', lastUsedAt: expect.any(String), revokedAt: null, revokedBy: null },
    ]);
    for (const body of [list.body, audit, dashboard.body]) {
      const text = JSON.stringify(body);
      for (const secret of [alice, sha256(alice), TOKEN, sha256(TOKEN)]) expect(text).not.toContain(secret);
    }
    // Stored as its SHA-256 only.
    const rows = await a.rt.db.pool.query<Record<string, unknown>>(`SELECT * FROM "${a.ns}".admin_tokens WHERE name = 'alice'`);
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0]?.['token_hash']).toBe(sha256(alice));
    expect(JSON.stringify(rows.rows)).not.toContain(alice);
  });

  it('refuses a taken or reserved name (409) and a bad one (422), naming the field', async () => {
    const dup = await a.call('POST', '/v1/admin/tokens', { name: 'alice' });
    expect(dup.status).toBe(409);
    expect(dup.headers.get('content-type')).toBe('application/problem+json');
    expect(dup.body).toMatchObject({ type: 'https://janus.dev/problems/admin-token-conflict', status: 409 });
    expect((await a.call('POST', '/v1/admin/tokens', { name: 'env' })).status).toBe(409);
    for (const name of ['Alice', '-x', '', 'a'.repeat(64), 'a b', 'a/b']) {
      const bad = await a.call('POST', '/v1/admin/tokens', { name });
      expect(bad.status, name).toBe(422);
      expect(bad.body.errors.map((e: { path: string }) => e.path)).toEqual(['name']);
    }
    expect((await a.call('POST', '/v1/admin/tokens', { name: 'x', extra: 1 })).status).toBe(422);
    expect((await a.call('POST', '/v1/admin/tokens', { name: `a${'b'.repeat(62)}` })).status).toBe(201);
    expect((await a.call('POST', '/v1/admin/tokens', { name: 'ci.deploy-bot_2' })).status).toBe(201);
    expect((await a.call('DELETE', '/v1/admin/tokens/env')).status).toBe(409);
    expect((await a.call('DELETE', '/v1/admin/tokens/Not%20A%20Name')).status).toBe(400);
    expect((await a.call('DELETE', '/v1/admin/tokens/nobody')).status).toBe(404);
  });

  it('a revoked token is refused by both instances within 1 s; the revocation is audited; the name may be given again', async () => {
    const bob = await create('bob');
    await waitFor(async () => (await b.call('GET', '/v1/policy', undefined, bearer(bob))).status === 200, 1_000);

    const started = performance.now();
    const revoke = await a.call('DELETE', '/v1/admin/tokens/bob', undefined, bearer(bob)); // a token may revoke itself
    expect(revoke.status).toBe(204);
    expect((await a.call('GET', '/v1/policy', undefined, bearer(bob))).status).toBe(401);
    await waitFor(async () => (await b.call('GET', '/v1/policy', undefined, bearer(bob))).status === 401, 1_000);
    const elapsed = performance.now() - started;
    console.log(`admin token revoked → refused on 2 instances in ${elapsed.toFixed(1)} ms`);
    expect(elapsed).toBeLessThan(1_000);
    const refused = await b.call('GET', '/v1/policy', undefined, bearer(bob));
    expect(refused.body).toMatchObject({ type: 'https://janus.dev/problems/unauthorized', status: 401, detail: 'unknown or revoked admin token' });

    expect((await a.call('DELETE', '/v1/admin/tokens/bob')).status).toBe(404);
    const [latest] = (await a.call('GET', '/v1/audit?limit=1')).body.entries;
    expect(latest).toMatchObject({ actor: 'token:bob', action: 'admin-token.revoke', target: 'admin/tokens/bob' });

    const active = (await a.call('GET', '/v1/admin/tokens')).body.tokens.map((t: { name: string }) => t.name);
    expect(active).not.toContain('bob');
    const all = (await a.call('GET', '/v1/admin/tokens?revoked=true')).body.tokens;
    expect(all.find((t: { name: string }) => t.name === 'bob')).toMatchObject({ revokedAt: expect.any(String), revokedBy: 'token:bob' });

    const bob2 = await create('bob');
    expect(bob2).not.toBe(bob);
    expect((await a.call('GET', '/v1/policy', undefined, bearer(bob2))).status).toBe(200);
    expect((await a.call('GET', '/v1/policy', undefined, bearer(bob))).status).toBe(401);
  });

  it('repeated wrong tokens from one address get 429 + Retry-After (as ingress); a right token from there still works', async () => {
    const carol = await create('carol');
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await a.app.request('/v1/policy', { headers: bearer(`wrong-${i}-0123456789abcdef`, 'hammer') })).status);
    const firstBlocked = statuses.indexOf(429);
    expect(firstBlocked).toBe(20);
    expect(statuses.slice(0, firstBlocked).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(firstBlocked).every((s) => s === 429)).toBe(true);

    // Every route, with a wrong token or none.
    for (const [method, path, headers] of [
      ['GET', '/v1/audit', bearer('wrong-token-0123456789', 'hammer')],
      ['POST', '/v1/admin/tokens', bearer('wrong-token-0123456789', 'hammer')],
      ['DELETE', '/v1/admin/tokens/carol', { 'x-test-client': 'hammer' }],
      ['GET', '/v1/nothing-here', { 'x-test-client': 'hammer' }],
    ] as const) {
      const blocked = await a.app.request(path, { method, headers });
      expect(blocked.status, `${method} ${path}`).toBe(429);
      expect(blocked.headers.get('content-type')).toBe('application/problem+json');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(Number(blocked.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      expect(await blocked.json()).toMatchObject({ type: 'https://janus.dev/problems/too-many-auth-failures', title: 'Too many failed authentications', status: 429 });
    }
    // Right tokens from the throttled address still work; another address is not throttled; the other instance counts its own.
    expect((await a.call('GET', '/v1/policy', undefined, bearer(TOKEN, 'hammer'))).status).toBe(200);
    expect((await a.call('GET', '/v1/policy', undefined, bearer(carol, 'hammer'))).status).toBe(200);
    expect((await a.app.request('/v1/policy', { headers: bearer('wrong-token-0123456789', 'elsewhere') })).status).toBe(401);
    expect((await b.app.request('/v1/policy', { headers: bearer('wrong-token-0123456789', 'hammer') })).status).toBe(401);
    expect(await (await a.app.request('/metrics')).text()).toMatch(/janus_admin_auth_failures_total\{app="policy-admin"\} (3[0-9]|[4-9][0-9])/);
  });

  it('a revocation that was not announced (a lost event) still reaches every instance by its poll', async () => {
    const dave = await create('dave');
    await waitFor(async () => (await b.call('GET', '/v1/policy', undefined, bearer(dave, 'poll'))).status === 200, 1_000);
    await a.rt.db.pool.query(`UPDATE "${a.ns}".admin_tokens SET revoked_at = now() WHERE name = 'dave'`);
    for (const h of [a, b]) await waitFor(async () => (await h.call('GET', '/v1/policy', undefined, bearer(dave, 'poll'))).status === 401, 3_000, 50);
  });

  it('no token, hash or JANUS_ADMIN_TOKEN in the logs or metrics; the logs name the tokens', async () => {
    const metrics = await (await a.app.request('/metrics')).text();
    const logs = logLines.join('');
    expect(logs).toContain('"tokenName":"alice"');
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const secret of [...secrets, ...secrets.map(sha256), TOKEN, sha256(TOKEN)]) {
      expect(logs).not.toContain(secret);
      expect(metrics).not.toContain(secret);
    }
  });
});

describe('JANUS_ADMIN_TOKEN length', () => {
  it('production refuses a 20-character token at settings load, naming the variable; test and development accept 16', () => {
    let error: unknown;
    try {
      loadSettings(testEnv('t_unused', { NODE_ENV: 'production', JANUS_ADMIN_TOKEN: 'p'.repeat(20) }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([{ variable: 'JANUS_ADMIN_TOKEN', message: 'must be at least 32 characters when NODE_ENV=production' }]);
    expect(loadSettings(testEnv('t_unused', { NODE_ENV: 'production', JANUS_ADMIN_TOKEN: 'p'.repeat(32) })).adminToken).toHaveLength(32);
    expect(loadSettings(testEnv('t_unused', { JANUS_ADMIN_TOKEN: 'p'.repeat(16) })).adminToken).toHaveLength(16);
  });
});
