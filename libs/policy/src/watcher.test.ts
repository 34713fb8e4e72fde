import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import type { PolicyDocument, VersionedPolicy } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { connectNats, natsNames, type NatsConnection } from '@janus/messaging';
import { dropPgNamespace, testEnv, testNamespace } from '@janus/testing';
import { ApiKeyStore } from './api-key-store.js';
import { ApiKeyCache } from './api-keys.js';
import { PolicyStore } from './store.js';
import { PolicyWatcher, announceConfigChange } from './watcher.js';

const ns = testNamespace('policy_watch');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);

/** One "instance": its own NATS connection, its own PostgreSQL pool, its own watcher and key cache. */
interface Instance {
  nc: NatsConnection;
  db: DbHandle;
  watcher: PolicyWatcher<{ version: number; tenants: string[] }>;
  keys: ApiKeyCache;
  failures: number[];
}

const instances: Instance[] = [];
let admin: { nc: NatsConnection; db: DbHandle; store: PolicyStore; keys: ApiKeyStore };

async function startInstance(pollIntervalMs: number): Promise<Instance> {
  const nc = await connectNats(settings, { name: 'watcher-test' });
  const db = createDb(settings, { max: 3 });
  const store = new PolicyStore(db.db);
  const keys = new ApiKeyCache(new ApiKeyStore(db.db));
  const failures: number[] = [];
  const watcher = new PolicyWatcher({
    store,
    nc,
    names,
    pollIntervalMs,
    compile: (p: VersionedPolicy) => {
      if ('poison' in p.document.tenants) throw new Error('cannot compile');
      return { version: p.version, tenants: Object.keys(p.document.tenants) };
    },
    onConfigEvent: () => keys.refresh(),
    onApplyFailure: (version) => failures.push(version),
  });
  await watcher.start();
  const instance = { nc, db, watcher, keys, failures };
  instances.push(instance);
  return instance;
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (predicate()) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

async function write(mutate: (doc: PolicyDocument) => PolicyDocument, announce = true): Promise<number> {
  const result = await admin.store.update((c) => mutate(c.document), { actor: 'test', action: 'test' });
  if (!result.ok) throw new Error('write failed');
  if (announce) await announceConfigChange(admin.nc, names, result.policy.version);
  return result.policy.version;
}

beforeAll(async () => {
  await migrate(settings);
  const db = createDb(settings, { max: 2 });
  admin = { nc: await connectNats(settings, { name: 'watcher-test-admin' }), db, store: new PolicyStore(db.db), keys: new ApiKeyStore(db.db) };
});

afterAll(async () => {
  for (const i of instances) {
    i.watcher.stop();
    await i.nc.close();
    await i.db.close();
  }
  await admin.nc.close();
  await admin.db.close();
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('PolicyWatcher', () => {
  it('loads at start and applies an announced version on two instances well within a second', async () => {
    const [a, b] = [await startInstance(60_000), await startInstance(60_000)];
    expect(a!.watcher.loaded && b!.watcher.loaded).toBe(true);
    expect(a!.watcher.version).toBe(0);
    const started = performance.now();
    const version = await write((d) => ({ ...d, tenants: { ...d.tenants, acme: { weight: 1 } } }));
    await waitFor(() => a!.watcher.version === version && b!.watcher.version === version, 1_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(a!.watcher.compiled).toEqual({ version, tenants: ['acme'] });
  });

  it('catches a missed event with the poll', async () => {
    const polled = await startInstance(200);
    const version = await write((d) => ({ ...d, tenants: { ...d.tenants, quiet: { weight: 1 } } }), false);
    await waitFor(() => polled.watcher.version === version, 1_500);
  });

  it('keeps the running version when a new one cannot be compiled, counts it once, and applies the next good one', async () => {
    const inst = await startInstance(100);
    const good = inst.watcher.version;
    const bad = await write((d) => ({ ...d, tenants: { ...d.tenants, poison: { weight: 1 } } }));
    await waitFor(() => inst.failures.length > 0, 1_000);
    await new Promise((r) => setTimeout(r, 400)); // several polls
    expect(inst.failures).toEqual([bad]);
    expect(inst.watcher.version).toBe(good);
    const fixed = await write((d) => ({ ...d, tenants: Object.fromEntries(Object.entries(d.tenants).filter(([k]) => k !== 'poison')) }));
    await waitFor(() => inst.watcher.version === fixed, 1_000);
  });

  it('ignores malformed events and stops listening after stop()', async () => {
    const inst = await startInstance(60_000);
    admin.nc.publish(names.subjects.configChanged, 'not json');
    await admin.nc.flush();
    inst.watcher.stop();
    const version = await write((d) => ({ ...d, tenants: { ...d.tenants, late: { weight: 1 } } }));
    await new Promise((r) => setTimeout(r, 300));
    expect(inst.watcher.version).toBeLessThan(version);
  });
});

describe('ApiKeyCache on config events', () => {
  it('a revoked key is refused by two instances within a second of the announcement', async () => {
    const [a, b] = [await startInstance(60_000), await startInstance(60_000)];
    const created = await admin.keys.createKey('acme', { actor: 'test' });
    if (!created.ok) throw new Error('no key');
    await announceConfigChange(admin.nc, names, await admin.store.currentVersion());
    await waitFor(() => a!.keys.lookup(created.key)?.tenant === 'acme' && b!.keys.lookup(created.key)?.tenant === 'acme', 1_000);
    expect(a!.keys.lookup(created.key)).toEqual({ tenant: 'acme', keyId: created.keyId });
    expect(a!.keys.lookup(`${created.key}x`)).toBeUndefined();

    const started = performance.now();
    expect(await admin.keys.revokeKey('acme', created.keyId, { actor: 'test' })).toBe('revoked');
    await announceConfigChange(admin.nc, names, await admin.store.currentVersion());
    await waitFor(() => a!.keys.lookup(created.key) === undefined && b!.keys.lookup(created.key) === undefined, 1_000);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
