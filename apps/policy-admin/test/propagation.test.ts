import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VersionedPolicy } from '@janus/contracts';
import { createDb, type DbHandle } from '@janus/db';
import { connectNats, type NatsConnection } from '@janus/messaging';
import { ApiKeyCache, ApiKeyStore, PolicyStore, PolicyWatcher } from '@janus/policy';
import { startAdmin, waitFor, type AdminHarness } from './harness.js';

/**
 * "Every running instance applies a change within one second": two stand-in app instances, each
 * with its own NATS connection and PostgreSQL pool (as two processes would have), each running a
 * PolicyWatcher and an ApiKeyCache refreshed on config events, exactly as apps do via startRuntime.
 */
interface Instance {
  nc: NatsConnection;
  db: DbHandle;
  watcher: PolicyWatcher<VersionedPolicy>;
  keys: ApiKeyCache;
}

let h: AdminHarness;
const instances: Instance[] = [];

beforeAll(async () => {
  h = await startAdmin('admin_propagation');
  for (let i = 0; i < 2; i++) {
    const nc = await connectNats(h.settings, { name: `instance-${i}` });
    const db = createDb(h.settings, { max: 3 });
    const store = new PolicyStore(db.db);
    const keys = new ApiKeyCache(new ApiKeyStore(db.db));
    // A poll far beyond the test's budget: only the announcement can make the deadline.
    const watcher = new PolicyWatcher({ store, nc, names: h.rt.names, compile: (p) => p, onConfigEvent: () => keys.refresh(), pollIntervalMs: 60_000 });
    await watcher.start();
    instances.push({ nc, db, watcher, keys });
  }
});

afterAll(async () => {
  for (const i of instances) {
    i.watcher.stop();
    await i.nc.close();
    await i.db.close();
  }
  await h.close();
});

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(0.99 * xs.length) - 1]!;

describe('live everywhere within a second', () => {
  it('a PUT is running on two instances within 1 s (p99 over 20 changes)', async () => {
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const res = await h.call('PUT', '/v1/dependencies/api', { rate: { limit: 100 + i, periodMs: 1000 } });
      expect(res.status).toBe(200);
      const version = res.body.version as number;
      await waitFor(() => instances.every((x) => x.watcher.version >= version), 2_000, 1);
      latencies.push(performance.now() - started);
      expect(instances[0]!.watcher.compiled.document.dependencies['api']?.rate?.limit).toBe(100 + i);
    }
    const worst = p99(latencies);
    console.log(`policy change → applied on 2 instances: p50 ${latencies.sort((a, b) => a - b)[9]!.toFixed(1)} ms, p99 ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThan(1_000);
  });

  it('a revoked key is refused by both instances within 1 s (p99 over 10 revocations)', async () => {
    expect((await h.call('PUT', '/v1/tenants/acme', {})).status).toBe(200);
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const created = await h.call('POST', '/v1/tenants/acme/keys', { label: `k${i}` });
      expect(created.status).toBe(201);
      const key = created.body.key as string;
      await waitFor(() => instances.every((x) => x.keys.lookup(key)?.tenant === 'acme'), 2_000, 1);

      const started = performance.now();
      expect((await h.call('DELETE', `/v1/tenants/acme/keys/${created.body.keyId}`)).status).toBe(204);
      await waitFor(() => instances.every((x) => x.keys.lookup(key) === undefined), 2_000, 1);
      latencies.push(performance.now() - started);
    }
    const worst = p99(latencies);
    console.log(`key revoked → refused on 2 instances: p99 ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThan(1_000);
  });

  it('the admin itself runs the new version too (its dashboard view follows)', async () => {
    const v = (await h.call('GET', '/v1/policy')).body.version as number;
    await waitFor(() => h.rt.policy.version === v && h.limiter.policy.version === v, 1_000);
  });
});
