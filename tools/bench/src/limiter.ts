// Limiter throughput against two baselines on the same Redis, in one run:
//   raw     the same ioredis client calling a trivial Lua script (client + Redis ceiling)
//   rlf     rate-limiter-flexible RateLimiterRedis.consume, one limit
//   limiter Limiter.admit, one job per call, a job touching 7 limits, default options (coalesced
//           into calls of up to 32 jobs, several in flight so that Node and Redis overlap)
//   limiter-window       the same job with its dependency's rate a sliding window (rate kind
//                        "window": a pool of admissions expiring periodMs later) instead of a bucket
//   limiter-per-tick     the same with one call per tick (coalesceJobs 1000), for reference
//   limiter-uncoalesced  the same with coalescing off (one Lua call per admission), for reference
// Usage: npm run bench:limiter [-- --smoke]   (--smoke: one ~2 s round per case, for CI)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { compilePolicy, Limiter, type LimiterOptions } from '@janus/limiter';

const smoke = process.argv.includes('--smoke');
const IN_FLIGHT = 64;
const DURATION_MS = smoke ? 2000 : 5000;
const WARMUP_MS = smoke ? 300 : 1000;
const ROUNDS = smoke ? 1 : 3;

const settings = loadSettings({ ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'development' });
const ns = `bench_${process.pid}`;

const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: {
      llm: {
        rate: { limit: 100_000_000, periodMs: 1000 },
        costRate: { limit: 1_000_000_000, periodMs: 1000 },
        concurrency: 100_000_000,
        perTenant: { concurrency: 100_000_000 },
      },
      // the same limits, its rate a sliding window
      llmw: {
        rate: { limit: 100_000_000, periodMs: 1000, kind: 'window' },
        costRate: { limit: 1_000_000_000, periodMs: 1000 },
        concurrency: 100_000_000,
        perTenant: { concurrency: 100_000_000 },
      },
    },
    tenants: { acme: { rate: { limit: 100_000_000, periodMs: 1000 }, budget: { limit: 1_000_000_000_000, periodMs: 3_600_000 } } },
    global: { rate: { limit: 100_000_000, periodMs: 1000 } },
    jobTypes: { summarize: { dependencies: [{ name: 'llm', cost: 10 }], timeoutMs: 1000 }, 'summarize-window': { dependencies: [{ name: 'llmw', cost: 10 }], timeoutMs: 1000 } },
  }),
  1,
);
const limitsTouched = policy.limitsFor('acme', 'summarize')?.length ?? 0;

interface CaseResult {
  name: string;
  opsPerSec: number[];
  median: number;
  jobsPerCall?: number;
}

async function drive(op: () => Promise<unknown>, durationMs: number): Promise<number> {
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
  return done / ((performance.now() - started) / 1000);
}

async function measure(op: () => Promise<unknown>): Promise<number> {
  await drive(op, WARMUP_MS);
  return drive(op, DURATION_MS);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function dropNamespace(redis: Redis): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${ns}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

async function main(): Promise<void> {
  const redis = new Redis(settings.redisUrl);
  const admin = new Redis(settings.redisUrl);
  redis.defineCommand('benchNoop', { numberOfKeys: 0, lua: 'return 1' });
  const raw = redis as unknown as { benchNoop(): Promise<number> };
  const rlf = new RateLimiterRedis({ storeClient: redis, keyPrefix: `${ns}_rlf`, points: 1_000_000_000, duration: 60 });
  let seq = 0;
  const makeLimiter = (opts: Partial<LimiterOptions> = {}) =>
    new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy, leaseRetentionMs: 1000, ...opts });
  const coalesced = makeLimiter();
  const windowed = makeLimiter();
  const perTick = makeLimiter({ coalesceJobs: 1000, maxCallsInFlight: Infinity });
  const single = makeLimiter({ maxJobsPerCall: 1 });
  await coalesced.init({ fresh: true });
  const admitWith = (l: Limiter, jobType = 'summarize') => async () => {
    seq += 1;
    const r = await l.admit({ jobs: [{ jobId: `j${seq}`, tenant: 'acme', jobType, priority: 'normal' }] });
    if (r.kind !== 'admitted') throw new Error(`bench admission was ${r.kind}`);
  };
  // Leases are not settled here (admission only): concurrency pools drop expired leases by themselves,
  // and the expiry index (the reaper's work list) is trimmed out of band, on another connection,
  // every 250 ms; that Redis work counts against the limiter's figure.
  const trim = setInterval(() => {
    void admin.zremrangebyscore(coalesced.keys.leaseExpiry, '-inf', Date.now());
  }, 250);

  const cases: { name: string; op: () => Promise<unknown>; limiter?: Limiter }[] = [
    { name: 'raw ceiling (ioredis, Lua return 1)', op: () => raw.benchNoop() },
    { name: 'rate-limiter-flexible consume (1 limit)', op: () => rlf.consume('acme') },
    { name: `janus limiter admit (${limitsTouched} limits, default coalescing)`, op: admitWith(coalesced), limiter: coalesced },
    { name: `janus limiter admit (${limitsTouched} limits, window rate, default coalescing)`, op: admitWith(windowed, 'summarize-window'), limiter: windowed },
    { name: `janus limiter admit (${limitsTouched} limits, one call per tick)`, op: admitWith(perTick), limiter: perTick },
    { name: `janus limiter admit (${limitsTouched} limits, uncoalesced)`, op: admitWith(single), limiter: single },
  ];
  const results: CaseResult[] = cases.map((c) => ({ name: c.name, opsPerSec: [], median: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of cases.entries()) {
      const before = c.limiter?.stats;
      results[i]!.opsPerSec.push(await measure(c.op));
      if (c.limiter && before) {
        const after = c.limiter.stats;
        results[i]!.jobsPerCall = (after.jobs - before.jobs) / Math.max(1, after.calls - before.calls);
      }
    }
  }
  clearInterval(trim);
  for (const r of results) r.median = median(r.opsPerSec);

  const [rawR, rlfR, limR, winR, tickR] = results;
  const vsRaw = (limR!.median / rawR!.median) * 100;
  const vsRlf = (limR!.median / rlfR!.median) * 100;
  console.log(`\nJanus limiter benchmark${smoke ? ' (smoke)' : ''}: ${IN_FLIGHT} in flight, ${DURATION_MS} ms per round, ${ROUNDS} round(s), median shown`);
  console.log('| case | ops/s (median) | rounds | jobs per Lua call |');
  console.log('| --- | ---: | --- | ---: |');
  for (const r of results) {
    console.log(`| ${r.name} | ${Math.round(r.median).toLocaleString('en-US')} | ${r.opsPerSec.map((x) => Math.round(x)).join(', ')} | ${r.jobsPerCall?.toFixed(1) ?? ''} |`);
  }
  console.log(`\nlimiter = ${vsRaw.toFixed(1)}% of the raw ceiling (target ≥ 60%), ${vsRlf.toFixed(1)}% of rate-limiter-flexible (target ≥ 100%)`);
  console.log(`limiter with a window rate = ${((winR!.median / limR!.median) * 100).toFixed(1)}% of the same with a bucket`);
  console.log(`limiter with one call per tick = ${((tickR!.median / rawR!.median) * 100).toFixed(1)}% of raw, ${((tickR!.median / rlfR!.median) * 100).toFixed(1)}% of rate-limiter-flexible`);

  const out = {
    at: new Date().toISOString(),
    smoke,
    node: process.version,
    cpus: cpus().length,
    redis: (await admin.info('server')).match(/redis_version:(\S+)/)?.[1] ?? 'unknown',
    inFlight: IN_FLIGHT,
    durationMs: DURATION_MS,
    rounds: ROUNDS,
    limitsTouched,
    results,
    ratios: { limiterVsRaw: vsRaw / 100, limiterVsRateLimiterFlexible: vsRlf / 100, windowVsBucket: winR!.median / limR!.median },
    targetsMet: vsRaw >= 60 && vsRlf >= 100,
  };
  mkdirSync('bench-results', { recursive: true });
  const file = `bench-results/limiter-${out.at.replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${file}`);
  await dropNamespace(admin);
  redis.disconnect();
  admin.disconnect();
}

await main();
