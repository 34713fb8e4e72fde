/**
 * Janus on a Redis Cluster (REDIS_URL=redis+cluster://…, tools/scripts/cluster.mjs: 3 primaries,
 * a replica each), every app a real child process, NATS and PostgreSQL the usual local ones.
 *
 * - The overspend storm: two ingress instances × 256 clients against a rate, a concurrency and a
 *   budget: each admits exactly its limit, no more.
 * - Where the keys are: every key of a namespace shares ONE slot (the `{<ns>}` hash tag), so one
 *   admission stays one atomic script; the cluster places that slot on one primary. (With tenant
 *   shards a namespace spreads over several: tenant-shards.test.ts.)
 * - The primary holding that slot is killed mid-storm with JANUS_REDIS_WAIT_REPLICAS=1: admission
 *   fails closed (503) while its replica is promoted and as long as the promoted node has no replica
 *   to acknowledge writes; once the old node is back (now a replica) it admits again. No limit is
 *   ever exceeded, because every decision Janus acted on was on the replica before the producer
 *   heard 202. Meanwhile a second namespace, whose slot another primary serves, admits throughout:
 *   only the limits on the dead primary fail closed.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, testEnv, testNamespace, waitFor, type AppName, type AppProcess } from '@janus/testing';
// tools/scripts holds plain Node scripts (no Nx project): cluster.mjs starts and breaks the local clusters.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { killNode, restartNode } from '../../scripts/cluster.mjs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { REDIS_PORTS, redisClusterUrl } from '../../scripts/cluster-layout.mjs';
import { adminCall, count, primaryOf, submit as post } from './support.js';

const ns = testNamespace('rcluster');
const env = testEnv(ns, { REDIS_URL: redisClusterUrl(), JANUS_REDIS_WAIT_REPLICAS: '1', LOG_LEVEL: 'warn' });
const HOUR = 3_600_000;
const LIMITS = { concurrency: 17, rate: 23, budget: 29, failover: 2_000 } as const;
const policy = {
  dependencies: {
    pay: { concurrency: LIMITS.concurrency },
    sms: { rate: { limit: LIMITS.rate, periodMs: HOUR } },
    ledger: { concurrency: LIMITS.failover, rate: { limit: LIMITS.failover, periodMs: HOUR } },
    free: {},
  },
  tenants: { acme: {}, lean: { budget: { limit: LIMITS.budget, periodMs: HOUR } } },
  jobTypes: {
    charge: { dependencies: [{ name: 'pay' }], timeoutMs: HOUR },
    text: { dependencies: [{ name: 'sms' }], timeoutMs: HOUR },
    bill: { dependencies: [{ name: 'free' }], timeoutMs: HOUR },
    post: { dependencies: [{ name: 'ledger' }], timeoutMs: HOUR },
    ping: { dependencies: [{ name: 'free' }], timeoutMs: HOUR },
  },
};

/** A second deployment (its own namespace, policy-admin and ingress) whose slot another primary serves. */
let other: { ns: string; env: Record<string, string>; key: string; admin?: AppProcess; ingress?: AppProcess } | undefined;
const apps = new Map<string, AppProcess>();
const keys: Record<string, string> = {};
let cluster: Cluster;
/** A node this file killed and has not started again (afterAll does, whatever failed). */
let down: number | undefined;

async function start(name: string, app: AppName): Promise<AppProcess> {
  const p = await startAppProcess(app, env);
  apps.set(name, p);
  return p;
}

function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  return adminCall(apps.get('admin')!.url, env.JANUS_ADMIN_TOKEN!, method, path, body);
}

function submit(ingress: AppProcess, tenant: string, type: string, key = keys[tenant]!): Promise<number> {
  return post(ingress.url, key, type);
}

/** 256 clients, half on each ingress instance, `perClient` submissions each; the statuses. */
async function storm(tenant: string, type: string, perClient: number, until?: () => boolean): Promise<number[]> {
  const ingress = [apps.get('ingress-a')!, apps.get('ingress-b')!];
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 256 }, async (_, c) => {
      for (let i = 0; i < perClient && !(until?.() ?? false); i++) statuses.push(await submit(ingress[c % 2]!, tenant, type));
    }),
  );
  return statuses;
}

beforeAll(async () => {
  cluster = new Cluster(REDIS_PORTS.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } });
  cluster.on('error', () => {}); // a node killed below: its connection errors are expected
  await start('admin', 'policy-admin');
  await admin('PUT', '/v1/policy', policy);
  for (const tenant of ['acme', 'lean']) keys[tenant] = ((await admin('POST', `/v1/tenants/${tenant}/keys`)) as { key: string }).key;
  await Promise.all([start('persister', 'persister'), start('scheduler', 'retry-scheduler'), start('ingress-a', 'ingress'), start('ingress-b', 'ingress')]);

  // The second namespace: names drawn until its slot lies on another primary than the first's.
  const home = await primaryOf(`{${ns}}`);
  let otherNs = testNamespace('rcluster_other');
  while ((await primaryOf(`{${otherNs}}`)) === home) otherNs = testNamespace('rcluster_other');
  const otherEnv = testEnv(otherNs, { REDIS_URL: redisClusterUrl(), JANUS_REDIS_WAIT_REPLICAS: '1', LOG_LEVEL: 'warn' });
  other = { ns: otherNs, env: otherEnv, key: '' };
  other.admin = await startAppProcess('policy-admin', otherEnv);
  const put = await fetch(`${other.admin.url}/v1/policy`, { method: 'PUT', headers: { authorization: `Bearer ${otherEnv.JANUS_ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(policy) });
  expect(put.status).toBe(200);
  const created = await fetch(`${other.admin.url}/v1/tenants/acme/keys`, { method: 'POST', headers: { authorization: `Bearer ${otherEnv.JANUS_ADMIN_TOKEN}` } });
  other.key = ((await created.json()) as { key: string }).key;
  other.ingress = await startAppProcess('ingress', otherEnv);
}, 180_000);

afterAll(async () => {
  await Promise.all([...apps.values(), ...(other?.admin ? [other.admin] : []), ...(other?.ingress ? [other.ingress] : [])].map((p) => p.kill('SIGKILL')));
  if (other) {
    await dropRedisNamespace(redisClusterUrl(), other.ns).catch(() => undefined);
    await dropNatsNamespace(other.env.NATS_URL!, other.ns).catch(() => undefined);
    await dropPgNamespace(other.env.DATABASE_URL!, other.ns).catch(() => undefined);
  }
  if (down !== undefined) await restartNode('redis', down).catch(() => undefined);
  cluster?.disconnect();
  await dropRedisNamespace(redisClusterUrl(), ns).catch(() => undefined);
  await dropNatsNamespace(env.NATS_URL!, ns).catch(() => undefined);
  await dropPgNamespace(env.DATABASE_URL!, ns).catch(() => undefined);
}, 60_000);

describe('Janus on a Redis Cluster', () => {
  it('two ingress instances × 256 clients: a concurrency, a rate and a budget each admit exactly their limit', async () => {
    const concurrency = await storm('acme', 'charge', 2);
    expect(count(concurrency, 202)).toBe(LIMITS.concurrency);
    expect(count(concurrency, 429)).toBe(512 - LIMITS.concurrency);
    const rate = await storm('acme', 'text', 2);
    expect(count(rate, 202)).toBe(LIMITS.rate);
    expect(count(rate, 429)).toBe(512 - LIMITS.rate);
    const budget = await storm('lean', 'bill', 2);
    expect(count(budget, 202)).toBe(LIMITS.budget);
    expect(count(budget, 429)).toBe(512 - LIMITS.budget);
  });

  it("every key of the namespace lies in the one slot of its hash tag, on one primary, and has reached that primary's replica", async () => {
    const found: string[] = [];
    for (const node of cluster.nodes('master')) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${ns}:*`, 'COUNT', 1000);
        cursor = next;
        found.push(...batch);
      } while (cursor !== '0');
    }
    expect(found.length).toBeGreaterThan(LIMITS.concurrency); // limits, leases, stats …
    const slots = new Set(await Promise.all(found.map(async (k) => Number(await cluster.cluster('KEYSLOT', k)))));
    expect(slots.size).toBe(1);
    const primary = await primaryOf(`{${ns}}`);
    // The replica of that primary holds the admission state (JANUS_REDIS_WAIT_REPLICAS=1).
    const own = new Redis(primary, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      const replicas = (await own.info('replication')).match(/slave\d+:ip=[^,]+,port=(\d+)/g) ?? [];
      expect(replicas).toHaveLength(1);
      const replicaPort = Number(/port=(\d+)/.exec(replicas[0]!)![1]);
      const r = new Redis(replicaPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
      try {
        await r.readonly();
        const pool = `${ns}:{${ns}}:dep:pay:conc`;
        expect(await r.hget(pool, 'n')).toBe(String(LIMITS.concurrency));
      } finally {
        r.disconnect();
      }
    } finally {
      own.disconnect();
    }
  });

  it('the primary of the slot killed mid-storm: 503 while it fails over, admitted again after, never over a limit', async () => {
    const primary = await primaryOf(`{${ns}}`);
    let killedAt = 0;
    let promotedAt = 0;
    const statuses: { type: string; status: number; at: number }[] = [];
    const ingress = [apps.get('ingress-a')!, apps.get('ingress-b')!];
    let stop = false;
    const clients = Promise.all(
      Array.from({ length: 256 }, async (_, c) => {
        while (!stop) {
          const type = c % 4 === 0 ? 'ping' : 'post';
          const status = await submit(ingress[c % 2]!, 'acme', type);
          statuses.push({ type, status, at: Date.now() });
          if (status !== 202) await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    // Killed with ledger's limits about a quarter used: grants lost in the failover would show as
    // more than the limit admitted by the end.
    // The other namespace's producers, all along (its slot is on a primary that stays up).
    const elsewhere: { status: number; at: number }[] = [];
    const otherClients = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!stop) {
          elsewhere.push({ status: await submit(other!.ingress!, 'acme', 'ping', other!.key), at: Date.now() });
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
    );
    await waitFor(() => count(statuses.filter((s) => s.type === 'post').map((s) => s.status), 202) >= LIMITS.failover / 4, 30_000, 5);
    killedAt = Date.now();
    down = primary;
    await killNode('redis', primary);
    // Readiness tells the truth about the namespace's own node: the instances of this namespace are
    // unready until the slot is served again, the other namespace's instance stays ready.
    const readiness = async (p: AppProcess) => {
      const res = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      return { status: res?.status ?? 0, down: ((await res?.json().catch(() => ({}))) as { down?: string[] } | undefined)?.down ?? [] };
    };
    const [unready, elsewhereReady] = await Promise.all([readiness(ingress[0]!), readiness(other!.ingress!)]);
    // Promoted: the slot is served by another node.
    await waitFor(async () => (await primaryOf(`{${ns}}`).catch(() => primary)) !== primary, 30_000, 200);
    promotedAt = Date.now();
    // The promoted replica has no replica of its own: with JANUS_REDIS_WAIT_REPLICAS=1 no write can
    // be acknowledged, so admission stays closed …
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await submit(ingress[0]!, 'acme', 'ping')).toBe(503);
    expect(await submit(ingress[1]!, 'acme', 'ping')).toBe(503);
    // … until the dead node comes back (as the new primary's replica): then both instances admit.
    await restartNode('redis', primary);
    down = undefined;
    const restartedAt = Date.now();
    await waitFor(async () => (await submit(ingress[0]!, 'acme', 'ping')) === 202 && (await submit(ingress[1]!, 'acme', 'ping')) === 202, 30_000, 200);
    const backAt = Date.now();
    // On until ledger's limits are used up: 'post' is refused (429) after the recovery.
    await waitFor(() => statuses.some((s) => s.type === 'post' && s.status === 429 && s.at > backAt), 60_000, 50);
    stop = true;
    await Promise.all([clients, otherClients]);

    const during = statuses.filter((s) => s.at > killedAt && s.at < promotedAt);
    const unavailable = count(during.map((s) => s.status), 503);
    const posted = count(statuses.filter((s) => s.type === 'post').map((s) => s.status), 202);
    // eslint-disable-next-line no-console
    console.log(`[redis-cluster] primary ${primary} killed; replica promoted after ${promotedAt - killedAt} ms; old primary back as a replica after ${restartedAt - killedAt} ms, admitting again after ${backAt - killedAt} ms; ${unavailable} × 503 meanwhile; ${posted} 'post' jobs admitted (limit ${LIMITS.failover})`);
    expect(unready.status).toBe(503);
    expect(unready.down).toContain('redis');
    expect(elsewhereReady.status).toBe(200);
    expect(unavailable).toBeGreaterThan(0); // it failed closed …
    expect(statuses.some((s) => s.at > backAt && s.status === 202)).toBe(true); // … and came back
    // Never over a limit: producers heard 202 for at most `ledger`'s concurrency (and rate) of 'post'
    // jobs, across the failover. And little is wasted: an admission Redis ran but no replica
    // acknowledged (or that answered too late) was revoked; only those in flight when the primary
    // died (at most one per client) may hold their slots until their leases expire.
    expect(posted).toBeLessThanOrEqual(LIMITS.failover);
    expect(posted).toBeGreaterThanOrEqual(LIMITS.failover - 256);
    // Only the dead primary's limits failed closed: the other namespace admitted all along.
    const otherDuring = elsewhere.filter((s) => s.at > killedAt && s.at < backAt).map((s) => s.status);
    // eslint-disable-next-line no-console
    console.log(`[redis-cluster] meanwhile the other namespace (slot on another primary): ${count(otherDuring, 202)} × 202, ${count(otherDuring, 503)} × 503, ${otherDuring.length - count(otherDuring, 202) - count(otherDuring, 503)} other`);
    expect(count(otherDuring, 202)).toBeGreaterThan(100);
    expect(count(otherDuring, 202)).toBe(otherDuring.length);
  });
});
