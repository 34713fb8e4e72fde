// What a Redis Cluster and replica acknowledgements cost the limiter, in one run (docs/scaling.md):
//   single           Limiter.admit on the local Redis (REDIS_URL), the bench:limiter job (one job per
//                    admit, 64 in flight, default coalescing)
//   cluster          the same through an ioredis Cluster client on the local Redis Cluster
//                    (tools/scripts/cluster.mjs: the namespace's slot lives on one primary; its
//                    nodes' AOF is switched off while measuring, as the single server keeps nothing)
//   cluster+wait     the same with JANUS_REDIS_WAIT_REPLICAS=1 (each script call followed by WAIT 1)
//   raw single / raw cluster   a Lua `return 1` on one key, the client + Redis ceilings
//   cluster, tenant shards   the same job with JANUS_REDIS_TENANT_SHARDS=6 (libs/limiter/src/shards.ts):
//                    its tenant's rate and budget in the tenant's shard, on another primary than
//                    the namespace's slot; two script calls per admission, one after the other.
// Alternating rounds; ratios against the single-server case of the same run.
// Usage: npm run bench:cluster [-- --smoke]   (starts the local clusters if they are not up)
import { mkdirSync, writeFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { compilePolicy, Limiter, shardTag, tenantShardOf } from '@janus/limiter';
// tools/scripts holds plain Node scripts (no Nx project): cluster.mjs starts the local clusters.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { startClusters } from '../../scripts/cluster.mjs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { REDIS_PORTS } from '../../scripts/cluster-layout.mjs';

const smoke = process.argv.includes('--smoke');
const IN_FLIGHT = 64;
const DURATION_MS = smoke ? 2000 : 5000;
const WARMUP_MS = smoke ? 300 : 1000;
const ROUNDS = smoke ? 1 : 3;

const settings = loadSettings({ ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'development' });
const ns = `benchc_${process.pid}`;
const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: { llm: { rate: { limit: 100_000_000, periodMs: 1000 }, costRate: { limit: 1_000_000_000, periodMs: 1000 }, concurrency: 100_000_000, perTenant: { concurrency: 100_000_000 } } },
    tenants: { acme: { rate: { limit: 100_000_000, periodMs: 1000 }, budget: { limit: 1_000_000_000_000, periodMs: 3_600_000 } } },
    global: { rate: { limit: 100_000_000, periodMs: 1000 } },
    jobTypes: { summarize: { dependencies: [{ name: 'llm', cost: 10 }], timeoutMs: 1000 } },
  }),
  1,
);

const SHARDS = 6;

/** A namespace whose tenant `acme`'s shard is served by another primary than the namespace's own slot. */
async function shardedNamespace(cluster: Cluster): Promise<{ namespace: string; slots: [number, number] }> {
  const primaryOf = async (tag: string) => {
    const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', tag));
    return { slot, primary: cluster.slots[slot]?.[0] };
  };
  for (let i = 0; ; i++) {
    const namespace = `${ns}_sharded_${i}`;
    const home = await primaryOf(namespace);
    const shard = await primaryOf(shardTag(namespace, tenantShardOf('acme', SHARDS)));
    if (home.primary !== undefined && shard.primary !== undefined && home.primary !== shard.primary) return { namespace, slots: [home.slot, shard.slot] };
  }
}

async function drive(op: () => Promise<unknown>, durationMs: number): Promise<{ perSec: number; done: number }> {
  let done = 0;
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < deadline) {
        await op();
        done += 1;
      }
    }),
  );
  return { perSec: done / ((performance.now() - started) / 1000), done };
}

/** Each server's CPU (user + sys) in µs, from INFO cpu. */
async function cpuUsOf(servers: readonly (Redis | Cluster)[]): Promise<number[]> {
  return Promise.all(
    servers.map(async (server) => {
      const info = await server.info('cpu');
      const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? Number.NaN);
      return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
    }),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const MEMORY_JOBS = 10_000;

/**
 * Redis memory a live job holds (its lease record, its share of the pools and expiry index; with a
 * key, its idempotency record too): used_memory before and after admitting MEMORY_JOBS jobs that
 * stay live (a 10-minute timeout), in a namespace of their own.
 */
async function memoryPerJob(redis: Redis): Promise<{ plain: number; keyed: number }> {
  const memNs = `${ns}_mem`;
  const long = compilePolicy(PolicyDocument.parse({ ...policy.document, jobTypes: { summarize: { dependencies: [{ name: 'llm', cost: 10 }], timeoutMs: 600_000 } } }), 1);
  const limiter = new Limiter({ redis, namespace: memNs, signingKey: settings.signingKey, policy: long });
  await limiter.init({ fresh: true });
  const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const fill = async (keyed: boolean) => {
    const before = await used();
    for (let b = 0; b < MEMORY_JOBS / 100; b++) {
      const jobs = Array.from({ length: 100 }, (_, i) => ({
        jobId: `m${keyed ? 'k' : 'p'}${b}_${i}`,
        tenant: 'acme',
        jobType: 'summarize',
        priority: 'normal' as const,
        ...(keyed ? { idempotency: { key: `key-${b}-${i}`, record: JSON.stringify({ jobId: `m${b}_${i}`, admittedAt: '@' }) } } : {}),
      }));
      const r = await limiter.admit({ jobs });
      if (r.kind !== 'admitted') throw new Error(`memory run admission was ${r.kind}`);
    }
    return Math.round(((await used()) - before) / MEMORY_JOBS);
  };
  const plain = await fill(false);
  const keyed = await fill(true);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${memNs}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  return { plain, keyed };
}

async function main(): Promise<void> {
  await startClusters({ redisReplicas: true });
  const single = new Redis(settings.redisUrl);
  const cluster = new Cluster(REDIS_PORTS.map((port) => ({ host: '127.0.0.1', port })));
  // The local cluster's nodes fsync every write (appendfsync always, so that a killed node comes
  // back with its data); the single local Redis keeps nothing on disk. Compare like with like: no
  // AOF on any node while measuring, restored afterwards.
  const nodes = REDIS_PORTS.concat([7104, 7105, 7106]).map((port) => new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null }));
  const aof = await Promise.all(
    nodes.map(async (n) => {
      const reply: unknown = await n.connect().then(() => n.config('GET', 'appendonly')).catch(() => []);
      return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
    }),
  );
  await Promise.all(nodes.map((n, i) => (aof[i] ? n.config('SET', 'appendonly', 'no') : undefined)));
  const noop = { numberOfKeys: 1, lua: 'return 1' };
  single.defineCommand('benchNoop', noop);
  cluster.defineCommand('benchNoop', noop);
  const rawOf = (c: Redis | Cluster) => () => (c as unknown as { benchNoop(key: string): Promise<number> }).benchNoop(`${ns}:{${ns}}:noop`);
  let seq = 0;
  const limiterOn = (redis: Redis | Cluster, replicaAcks = 0) => new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy, leaseRetentionMs: 1000, replicaAcks });
  const limiters = { single: limiterOn(single), cluster: limiterOn(cluster), wait: limiterOn(cluster, 1) };
  await limiters.single.init({ fresh: true });
  await limiters.cluster.init({ fresh: true });
  // The cross-slot case: the tenant's limits in a shard on another primary than the namespace's slot.
  const placed = await shardedNamespace(cluster);
  const sharded = new Limiter({ redis: cluster, namespace: placed.namespace, signingKey: settings.signingKey, policy, leaseRetentionMs: 1000, tenantShards: SHARDS });
  await sharded.init({ fresh: true });
  const shardExpiry = `${placed.namespace}:{${shardTag(placed.namespace, tenantShardOf('acme', SHARDS))}}:leases:expiry`;
  const admitWith = (l: Limiter) => async () => {
    seq += 1;
    const r = await l.admit({ jobs: [{ jobId: `j${seq}`, tenant: 'acme', jobType: 'summarize', priority: 'normal' }] });
    if (r.kind !== 'admitted') throw new Error(`bench admission was ${r.kind}`);
  };
  // The expiry index (the reaper's work list) trimmed out of band, as in bench:limiter.
  const trim = setInterval(() => {
    void single.zremrangebyscore(limiters.single.keys.leaseExpiry, '-inf', Date.now());
    void cluster.zremrangebyscore(limiters.cluster.keys.leaseExpiry, '-inf', Date.now());
    void cluster.zremrangebyscore(sharded.keys.leaseExpiry, '-inf', Date.now());
    void cluster.zremrangebyscore(shardExpiry, '-inf', Date.now());
  }, 250);
  const cases = [
    { name: 'raw single (Lua return 1)', op: rawOf(single), servers: 'single' },
    { name: 'raw cluster (Lua return 1)', op: rawOf(cluster), servers: 'primaries' },
    { name: 'limiter single', op: admitWith(limiters.single), servers: 'single' },
    { name: 'limiter cluster', op: admitWith(limiters.cluster), servers: 'primaries' },
    { name: 'limiter cluster + WAIT 1', op: admitWith(limiters.wait), servers: 'primaries' },
    { name: 'limiter cluster, tenant shards (2 slots)', op: admitWith(sharded), servers: 'primaries' },
  ] as const;
  // Redis CPU per admission (or call), summed over the servers and on the busiest one: what a
  // cross-slot admission costs the cluster, whatever this 2-core machine's client could drive.
  const primaries = REDIS_PORTS.map((port) => new Redis(port, '127.0.0.1'));
  const results = cases.map((c) => ({ name: c.name, opsPerSec: [] as number[], median: 0, redisCpuUsPerOp: [] as number[], busiestServerCpuUsPerOp: [] as number[] }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of cases.entries()) {
      await drive(c.op, WARMUP_MS);
      const servers = c.servers === 'single' ? [single] : primaries;
      const before = await cpuUsOf(servers);
      const run = await drive(c.op, DURATION_MS);
      const spent = (await cpuUsOf(servers)).map((after, j) => after - (before[j] ?? 0));
      results[i]!.opsPerSec.push(run.perSec);
      results[i]!.redisCpuUsPerOp.push(spent.reduce((a, b) => a + b, 0) / run.done);
      results[i]!.busiestServerCpuUsPerOp.push(Math.max(...spent) / run.done);
    }
  }
  clearInterval(trim);
  for (const p of primaries) p.disconnect();
  for (const r of results) r.median = median(r.opsPerSec);
  const by = (name: string) => results.find((r) => r.name === name)!.median;
  const ratios = {
    clusterVsSingle: by('limiter cluster') / by('limiter single'),
    waitVsCluster: by('limiter cluster + WAIT 1') / by('limiter cluster'),
    rawClusterVsRawSingle: by('raw cluster (Lua return 1)') / by('raw single (Lua return 1)'),
    tenantShardsVsOne: by('limiter cluster, tenant shards (2 slots)') / by('limiter cluster'),
  };
  console.log(`\nJanus limiter on a Redis Cluster${smoke ? ' (smoke)' : ''}: ${IN_FLIGHT} in flight, ${DURATION_MS} ms per round, ${ROUNDS} round(s), median shown`);
  console.log('| case | admits (or calls)/s | rounds | Redis CPU µs per admit, all servers / busiest |');
  console.log('| --- | ---: | --- | ---: |');
  for (const r of results) {
    const cpu = `${median(r.redisCpuUsPerOp).toFixed(1)} / ${median(r.busiestServerCpuUsPerOp).toFixed(1)}`;
    console.log(`| ${r.name} | ${Math.round(r.median).toLocaleString('en-US')} | ${r.opsPerSec.map((x) => Math.round(x)).join(', ')} | ${cpu} |`);
  }
  console.log(`\ncluster client = ${(ratios.clusterVsSingle * 100).toFixed(1)}% of a single server; WAIT 1 = ${(ratios.waitVsCluster * 100).toFixed(1)}% of the cluster without it; raw cluster = ${(ratios.rawClusterVsRawSingle * 100).toFixed(1)}% of raw single`);
  console.log(`tenant shards (the namespace's slot ${placed.slots[0]}, the tenant's shard ${placed.slots[1]}, on two primaries) = ${(ratios.tenantShardsVsOne * 100).toFixed(1)}% of the one-slot admission's rate`);
  const memory = await memoryPerJob(single);
  console.log(`Redis memory per live job (single server, ${MEMORY_JOBS.toLocaleString('en-US')} jobs in batches of 100): ${memory.plain} bytes; with an idempotency key: ${memory.keyed} bytes`);
  const out = { at: new Date().toISOString(), smoke, crossSlot: { slots: placed.slots }, node: process.version, inFlight: IN_FLIGHT, durationMs: DURATION_MS, rounds: ROUNDS, results, ratios, memoryBytesPerJob: memory };
  mkdirSync('bench-results', { recursive: true });
  const file = `bench-results/cluster-${out.at.replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${file}`);
  for (const node of [single, ...cluster.nodes('master')]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${ns}*`, 'COUNT', 1000);
      cursor = next;
      for (const k of keys) await node.unlink(k);
    } while (cursor !== '0');
  }
  await Promise.all(nodes.map((n, i) => (aof[i] ? n.config('SET', 'appendonly', aof[i]!).catch(() => undefined) : undefined)));
  for (const n of nodes) n.disconnect();
  single.disconnect();
  cluster.disconnect();
}

await main();
