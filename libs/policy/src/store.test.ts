import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { apiKeys, createDb, migrate, type DbHandle } from '@janus/db';
import { dropPgNamespace, testEnv, testNamespace } from '@janus/testing';
import { hashApiKey } from './api-keys.js';
import { ApiKeyStore } from './api-key-store.js';
import { PolicyStore } from './store.js';

const ns = testNamespace('policy_store');
const settings = loadSettings(testEnv(ns));
let handle: DbHandle;
let store: PolicyStore;
let keys: ApiKeyStore;

beforeAll(async () => {
  await migrate(settings);
  handle = createDb(settings, { max: 25 });
  store = new PolicyStore(handle.db);
  keys = new ApiKeyStore(handle.db);
});

afterAll(async () => {
  await handle.close();
  await dropPgNamespace(settings.databaseUrl, ns);
});

const withTenant = (doc: PolicyDocument, id: string) => ({ ...doc, tenants: { ...doc.tenants, [id]: { weight: 1 } } });

describe('PolicyStore versions', () => {
  it('starts empty at version 0 and stores each change as the next version with its audit entry', async () => {
    expect(await store.current()).toMatchObject({ version: 0 });
    const first = await store.update((c) => withTenant(c.document, 'acme'), { actor: 'tok_a', action: 'tenant.put', target: 'tenants/acme' });
    expect(first).toMatchObject({ ok: true, changed: true, previousVersion: 0, policy: { version: 1 } });
    expect(first.ok && first.diff).toEqual([{ op: 'add', path: 'tenants.acme', after: { weight: 1 } }]);
    expect(await store.currentVersion()).toBe(1);
    const [entry] = await store.audit({ limit: 1 });
    expect(entry).toMatchObject({ actor: 'tok_a', action: 'tenant.put', target: 'tenants/acme', fromVersion: 0, toVersion: 1 });
    expect(entry?.diff).toEqual([{ op: 'add', path: 'tenants.acme', after: { weight: 1 } }]);
  });

  it('stores nothing for a change that changes nothing', async () => {
    const before = await store.currentVersion();
    const same = await store.update((c) => c.document, { actor: 'tok_a', action: 'noop' });
    expect(same).toMatchObject({ ok: true, changed: false, policy: { version: before } });
    expect(await store.currentVersion()).toBe(before);
  });

  it('answers version_conflict when expectedVersion moved on, and passes typed refusals back', async () => {
    const v = await store.currentVersion();
    expect(await store.update((c) => withTenant(c.document, 'x'), { actor: 'a', action: 'b' }, { expectedVersion: v - 1 })).toEqual({
      ok: false,
      reason: 'version_conflict',
      currentVersion: v,
    });
    const refused = await store.apply(() => ({ ok: false, refusal: { status: 422 } }));
    expect(refused).toEqual({ ok: false, reason: 'refused', refusal: { status: 422 }, currentVersion: v });
    expect(await store.currentVersion()).toBe(v);
  });

  it('never loses an update: 20 concurrent writers without If-Match all land, versions consecutive', async () => {
    const start = await store.currentVersion();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.update((c) => withTenant(c.document, `t${i}`), { actor: 'a', action: 'tenant.put' })),
    );
    const versions = results.map((r) => (r.ok ? r.policy.version : -1)).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => start + i + 1));
    const { document } = await store.current();
    for (let i = 0; i < 20; i++) expect(document.tenants).toHaveProperty(`t${i}`);
  });

  it('with If-Match, exactly one of 20 concurrent writers on the same version wins', async () => {
    const v = await store.currentVersion();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.update((c) => withTenant(c.document, `race${i}`), { actor: 'a', action: 'tenant.put' }, { expectedVersion: v }),
      ),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.reason === 'version_conflict')).toHaveLength(19);
    expect(await store.currentVersion()).toBe(v + 1);
  });

  it('lists versions newest first and reads a stored version back', async () => {
    const list = await store.versions(3);
    expect(list.map((r) => r.version)).toEqual([list[0]!.version, list[0]!.version - 1, list[0]!.version - 2]);
    expect((await store.get(1))?.document.tenants).toEqual({ acme: { weight: 1 } });
    expect(await store.get(9999)).toBeUndefined();
  });
});

describe('ApiKeyStore', () => {
  it('creates a key only for a tenant of the live policy, stores only its hash, and revokes it', async () => {
    expect(await keys.createKey('nobody', { actor: 'a' })).toEqual({ ok: false, reason: 'unknown_tenant' });
    const created = await keys.createKey('acme', { actor: 'tok_a', label: 'ci' });
    if (!created.ok) throw new Error('expected a key');
    expect(created.key).toMatch(new RegExp(`^jns_${created.keyId}_[A-Za-z0-9_-]{32}$`));
    const [row] = await handle.db.select().from(apiKeys).where(eq(apiKeys.keyId, created.keyId));
    expect(row?.keyHash).toBe(hashApiKey(created.key));
    expect(JSON.stringify(row)).not.toContain(created.key);
    expect((await keys.activeKeys()).get(hashApiKey(created.key))).toEqual({ keyId: created.keyId, tenant: 'acme' });
    expect(await keys.listKeys('acme')).toEqual([
      expect.objectContaining({ keyId: created.keyId, tenant: 'acme', label: 'ci', revokedAt: null }),
    ]);

    expect(await keys.revokeKey('other', created.keyId, { actor: 'a' })).toBe('not_found');
    expect(await keys.revokeKey('acme', created.keyId, { actor: 'tok_a' })).toBe('revoked');
    expect(await keys.revokeKey('acme', created.keyId, { actor: 'tok_a' })).toBe('already_revoked');
    expect((await keys.activeKeys()).has(hashApiKey(created.key))).toBe(false);
    const actions = (await store.audit({ limit: 2 })).map((e) => [e.action, e.target]);
    expect(actions).toEqual([
      ['key.revoke', `tenants/acme/keys/${created.keyId}`],
      ['key.create', `tenants/acme/keys/${created.keyId}`],
    ]);
  });

  it('revokes a tenant\'s keys in the same transaction that deletes the tenant', async () => {
    const a = await keys.createKey('t1', { actor: 'a' });
    const b = await keys.createKey('t1', { actor: 'a' });
    if (!a.ok || !b.ok) throw new Error('expected keys');
    let revoked = 0;
    await store.update(
      (c) => ({ ...c.document, tenants: Object.fromEntries(Object.entries(c.document.tenants).filter(([k]) => k !== 't1')) }),
      { actor: 'a', action: 'tenant.delete' },
      { within: async (tx) => void (revoked = await ApiKeyStore.revokeTenantKeys(tx, 't1')) },
    );
    expect(revoked).toBe(2);
    const active = await keys.activeKeys();
    expect(active.has(hashApiKey(a.key)) || active.has(hashApiKey(b.key))).toBe(false);
  });
});
