/**
 * One namespace spread over the three primaries of a Redis Cluster (JANUS_REDIS_TENANT_SHARDS,
 * libs/limiter/src/shards.ts): each tenant's own limits in one of the namespace's tenant shards,
 * everything else in the namespace's slot. Every app a real child process.
 *
 * - The overspend storm: two ingress instances × 256 clients against a tenant rate, a tenant
 *   concurrency and a tenant budget whose keys lie on three different primaries; every admission is
 *   decided in two slots (the namespace's, then the tenant's shard). Each admits exactly its limit.
 * - Where the keys are: the namespace's keys on all three primaries, each tenant's limits in its
 *   shard's slot, none of them in the namespace's slot.
 * - A primary holding one tenant's shard (not the namespace's slot) is killed mid-storm, with a
 *   replica promoted and JANUS_REDIS_WAIT_REPLICAS=1: that tenant's admissions fail closed (503)
 *   until the slot is served and replicated again; a tenant whose shard is on another primary
 *   admits throughout; the dead primary's tenant never gets more than its limit.
 */
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, testEnv, testNamespace, waitFor, type AppName, type AppProcess } from '@janus/testing';
// tools/scripts holds plain Node scripts (no Nx project): cluster.mjs starts and breaks the local clusters.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { killNode, restartNode } from '../../scripts/cluster.mjs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { REDIS_PORTS, redisClusterUrl } from '../../scripts/cluster-layout.mjs';
import { adminCall, count, primaryOf, submit } from './support.js';

const SHARDS = 6;
const HOUR = 3_600_000;
const LIMITS = { concurrency: 17, rate: 23, budget: 29, failover: 2_000 } as const;

/** FNV-1a modulo the shard count: libs/limiter/src/shards.ts tenantShardOf (a copy: this test knows Janus only from outside). */
function shardOf(tenant: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tenant.length; i++) {
    h ^= tenant.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SHARDS;
}

const shardSlotKey = (ns: string, k: number) => `{${ns}:tenants:${k}}`;

interface Layout {
  readonly ns: string;
  readonly home: number;
  /** role → tenant name, each role's shard on a primary of its own */
  readonly tenants: { readonly rate: string; readonly conc: string; readonly budget: string };
  readonly primaries: { readonly rate: number; readonly conc: number; readonly budget: number };
}

/**
 * A namespace (drawn until it fits) whose tenants `rate`, `conc` and `budget` have their shards on
 * the three different primaries, `conc`'s not the one serving the namespace's own slot.
 */
async function drawLayout(): Promise<Layout> {
  for (let tries = 0; tries < 50; tries++) {
    const ns = testNamespace('rshards');
    const home = await primaryOf(`{${ns}}`);
    const byPrimary = new Map<number, string>();
    for (let i = 0; byPrimary.size < 3 && i < 200; i++) {
      const tenant = `tenant-${i}`;
      const primary = await primaryOf(shardSlotKey(ns, shardOf(tenant)));
      if (!byPrimary.has(primary)) byPrimary.set(primary, tenant);
    }
    if (byPrimary.size < 3) continue;
    const others = [...byPrimary].filter(([p]) => p !== home);
    const conc = others[0]!;
    const [rate, budget] = [...byPrimary].filter(([p]) => p !== conc[0]) as [[number, string], [number, string]];
    return { ns, home, tenants: { rate: rate[1], conc: conc[1], budget: budget[1] }, primaries: { rate: rate[0], conc: conc[0], budget: budget[0] } };
  }
  throw new Error('no namespace whose shards cover the three primaries in 50 draws');
}

let layout: Layout;
let env: Record<string, string>;
const apps = new Map<string, AppProcess>();
const keys: Record<string, string> = {};
let cluster: Cluster;
let down: number | undefined;

async function start(name: string, app: AppName): Promise<AppProcess> {
  const p = await startAppProcess(app, env);
  apps.set(name, p);
  return p;
}

function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  return adminCall(apps.get('admin')!.url, env.JANUS_ADMIN_TOKEN!, method, path, body);
}

/** 256 clients, half on each ingress instance, `perClient` submissions each: the statuses. */
async function storm(tenant: string, type: string, perClient: number): Promise<number[]> {
  const ingress = [apps.get('ingress-a')!, apps.get('ingress-b')!];
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 256 }, async (_, c) => {
      for (let i = 0; i < perClient; i++) statuses.push(await submit(ingress[c % 2]!.url, keys[tenant]!, type));
    }),
  );
  return statuses;
}

beforeAll(async () => {
  layout = await drawLayout();
  env = testEnv(layout.ns, { REDIS_URL: redisClusterUrl(), JANUS_REDIS_TENANT_SHARDS: String(SHARDS), JANUS_REDIS_WAIT_REPLICAS: '1', LOG_LEVEL: 'warn' });
  const { rate, conc, budget } = layout.tenants;
  cluster = new Cluster(REDIS_PORTS.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } });
  cluster.on('error', () => {}); // a node killed below: its connection errors are expected
  await start('admin', 'policy-admin');
  await admin('PUT', '/v1/policy', policyWith(LIMITS.concurrency));
  for (const tenant of [rate, conc, budget]) keys[tenant] = ((await admin('POST', `/v1/tenants/${tenant}/keys`)) as { key: string }).key;
  await Promise.all([start('persister', 'persister'), start('scheduler', 'retry-scheduler'), start('ingress-a', 'ingress'), start('ingress-b', 'ingress')]);
}, 180_000);

afterAll(async () => {
  await Promise.all([...apps.values()].map((p) => p.kill('SIGKILL')));
  if (down !== undefined) await restartNode('redis', down).catch(() => undefined);
  cluster?.disconnect();
  if (layout) {
    await dropRedisNamespace(redisClusterUrl(), layout.ns).catch(() => undefined);
    await dropNatsNamespace(env.NATS_URL!, layout.ns).catch(() => undefined);
    await dropPgNamespace(env.DATABASE_URL!, layout.ns).catch(() => undefined);
  }
}, 60_000);

describe('one namespace over three primaries (tenant shards)', () => {
  it('two ingress instances × 256 clients: a tenant rate, a tenant concurrency and a tenant budget on three primaries each admit exactly their limit', async () => {
    const { rate, conc, budget } = layout.tenants;
    const c = await storm(conc, 'call', 2);
    expect(count(c, 202)).toBe(LIMITS.concurrency);
    expect(count(c, 429)).toBe(512 - LIMITS.concurrency);
    const r = await storm(rate, 'call', 2);
    expect(count(r, 202)).toBe(LIMITS.rate);
    expect(count(r, 429)).toBe(512 - LIMITS.rate);
    const b = await storm(budget, 'held', 2);
    expect(count(b, 202)).toBe(LIMITS.budget);
    expect(count(b, 429)).toBe(512 - LIMITS.budget);
  });

  it("the namespace's keys lie on all three primaries; each tenant's limits in its shard's slot, none in the namespace's", async () => {
    const byPrimary = new Map<number, string[]>();
    for (const node of cluster.nodes('master')) {
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${layout.ns}:*`, 'COUNT', 1000);
        cursor = next;
        found.push(...batch);
      } while (cursor !== '0');
      if (found.length > 0) byPrimary.set(node.options.port!, found);
    }
    // (the primaries now: an earlier test file's failover may have promoted a replica)
    const primaries = cluster.nodes('master').map((n) => n.options.port!);
    expect(primaries).toHaveLength(3);
    expect([...byPrimary.keys()].sort()).toEqual(primaries.sort());
    const { ns } = layout;
    for (const role of ['rate', 'conc', 'budget'] as const) {
      const tenant = layout.tenants[role];
      const kind = role === 'conc' ? 'conc' : role;
      const key = `${ns}:${shardSlotKey(ns, shardOf(tenant))}:tenant:${tenant}:${kind}`;
      expect(byPrimary.get(layout.primaries[role]), `${key} on ${layout.primaries[role]}`).toContain(key);
    }
    const home = byPrimary.get(layout.home) ?? [];
    expect(home.some((k) => k.startsWith(`${ns}:{${ns}}:leases:`))).toBe(true);
    expect(home.filter((k) => k.startsWith(`${ns}:{${ns}}:tenant:`) && !k.endsWith(':credits'))).toEqual([]);
  });

  it("the primary of one tenant's shard killed mid-storm: that tenant fails closed, another admits throughout, the limit holds", async () => {
    const { conc, rate } = layout.tenants;
    // `conc`'s limits raised for a storm long enough to kill a node in (applied live, every instance)
    await admin('PUT', '/v1/policy', policyWith(LIMITS.failover));
    await new Promise((r) => setTimeout(r, 1_500));
    const primary = await primaryOf(shardSlotKey(layout.ns, shardOf(conc)));
    expect(primary).not.toBe(layout.home);
    const ingress = [apps.get('ingress-a')!, apps.get('ingress-b')!];
    const statuses: { status: number; at: number }[] = [];
    const elsewhere: { status: number; at: number }[] = [];
    let stop = false;
    const clients = Promise.all(
      Array.from({ length: 256 }, async (_, c) => {
        while (!stop) {
          const status = await submit(ingress[c % 2]!.url, keys[conc]!, 'held');
          statuses.push({ status, at: Date.now() });
          if (status !== 202) await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    // a tenant whose shard another primary serves (its rate is spent: 429 is its answer, never 503)
    const others = Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        while (!stop) {
          elsewhere.push({ status: await submit(ingress[c % 2]!.url, keys[rate]!, 'call'), at: Date.now() });
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
    );
    const held = () => count(statuses.map((s) => s.status), 202);
    await waitFor(() => held() >= (LIMITS.failover - LIMITS.concurrency) / 4, 30_000, 5);
    const killedAt = Date.now();
    down = primary;
    await killNode('redis', primary);
    await waitFor(async () => (await primaryOf(shardSlotKey(layout.ns, shardOf(conc))).catch(() => primary)) !== primary, 30_000, 200);
    const promotedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3_000));
    // the promoted replica has no replica of its own: with WAIT 1, that shard stays closed …
    const probe = async () => {
      const status = await submit(ingress[0]!.url, keys[conc]!, 'held');
      statuses.push({ status, at: Date.now() });
      return status;
    };
    expect(await probe()).toBe(503);
    // taken before the restart: restartNode returns once the node is back and synced, and by then
    // the storm may have been admitted up to its limit (a run failed so, 1,403 admitted meanwhile)
    const restartedAt = Date.now();
    await restartNode('redis', primary);
    down = undefined;
    // … until the old node is back as its replica: then the storm's clients are admitted again
    // (quickly up to the limit: a probe of its own could come too late for a 202)
    await waitFor(() => statuses.some((s) => s.at > restartedAt && s.status === 202), 30_000, 100).catch((e: unknown) => {
      const after = statuses.filter((s) => s.at > restartedAt).map((s) => s.status);
      const before = statuses.filter((s) => s.at <= killedAt).map((s) => s.status);
      const during = statuses.filter((s) => s.at > killedAt && s.at <= restartedAt).map((s) => s.status);
      console.log(`DEBUG before ${JSON.stringify(Object.fromEntries([202, 429, 503, 0].map((c) => [c, count(before, c)])))} during ${JSON.stringify(Object.fromEntries([202, 429, 503, 0].map((c) => [c, count(during, c)])))} after ${JSON.stringify(Object.fromEntries([202, 429, 503, 0].map((c) => [c, count(after, c)])))}`);
      throw e;
    });
    const backAt = Math.min(...statuses.filter((s) => s.at > restartedAt && s.status === 202).map((s) => s.at));
    await waitFor(() => statuses.some((s) => s.status === 429 && s.at > backAt), 90_000, 50);
    stop = true;
    await Promise.all([clients, others]);

    const unavailable = count(statuses.filter((s) => s.at > killedAt && s.at < promotedAt).map((s) => s.status), 503);
    const otherDuring = elsewhere.filter((s) => s.at > killedAt && s.at < backAt).map((s) => s.status);
    // eslint-disable-next-line no-console
    console.log(
      `[tenant-shards] shard primary ${primary} killed (namespace slot on ${layout.home}): promoted after ${promotedAt - killedAt} ms, admitting again after ${backAt - killedAt} ms; ` +
        `${unavailable} × 503 meanwhile; ${held()} 'held' jobs admitted (limit ${LIMITS.failover} less ${LIMITS.concurrency} running); the other tenant meanwhile: ${otherDuring.length} answers, ${count(otherDuring, 503)} × 503`,
    );
    expect(unavailable).toBeGreaterThan(0);
    // fail closed: from the promotion until the restart (the promoted replica has no replica for WAIT 1), nothing admitted
    expect(count(statuses.filter((s) => s.at > promotedAt && s.at < restartedAt).map((s) => s.status), 202)).toBe(0);
    expect(statuses.some((s) => s.at > backAt && s.status === 202)).toBe(true);
    // never over the tenant's concurrency (its 17 `call` jobs of the first test still run)
    expect(held()).toBeLessThanOrEqual(LIMITS.failover - LIMITS.concurrency);
    // and little is lost: only admissions in flight when the primary died (one per client at most) hold their slots until they expire
    expect(held()).toBeGreaterThanOrEqual(LIMITS.failover - LIMITS.concurrency - 256);
    // only that shard failed closed: the other tenant was answered, never with 503
    expect(otherDuring.length).toBeGreaterThan(50);
    expect(count(otherDuring, 503)).toBe(0);
  });
});

/** The policy, `conc`'s concurrency at `limit` (the storm's first, then the failover's). */
function policyWith(limit: number): unknown {
  const { rate, conc, budget } = layout.tenants;
  return {
    dependencies: { api: {}, ledger: {} },
    tenants: {
      [rate]: { rate: { limit: LIMITS.rate, periodMs: HOUR } },
      [conc]: { concurrency: limit, rate: { limit: LIMITS.failover, periodMs: HOUR } },
      [budget]: { budget: { limit: LIMITS.budget, periodMs: HOUR } },
    },
    jobTypes: {
      call: { dependencies: [{ name: 'api' }], timeoutMs: HOUR },
      held: { dependencies: [{ name: 'ledger', cost: 1 }], timeoutMs: HOUR },
    },
  };
}
