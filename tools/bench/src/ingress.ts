// Ingress throughput: POST /v1/jobs on the admitted path (limiter admit + JetStream publish acked)
// against a bare Hono endpoint that only validates the same body (this machine's HTTP ceiling),
// measured in one run with autocannon (64 connections), three alternating rounds, medians compared.
// Usage: npm run bench:ingress [-- --smoke] [--rounds N] [--seconds S] [--against <other checkout>] [--tsx] [--rate R]
//   --smoke: one round of 3 s, for CI. --against: also run that checkout's ingress in the same rounds.
//   The servers run bundled, as the image runs them; --tsx runs the sources through tsx (`npm start`).
// Env for investigations: BENCH_CPU_PROF=<dir> (V8 CPU profiles of the servers, see bench:profile),
// BENCH_NODE_FLAGS="<node flags>" for the servers, BENCH_CHILD_STDOUT=1 (e.g. with --trace-gc).
// Each line also gives the server process's CPU per request (from /proc): steadier than req/s on a
// shared machine, and the figure to watch when optimising the admission path; redis-server's and
// nats-server's CPU per request (they share the machine's cores), and the Lua script calls Redis
// ran per request (INFO commandstats: how well the limiter coalesces).
// Both servers run as child processes; this process only drives load.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { loadSettings } from '@janus/config';
import { natsAuthOptions, natsTlsOptions } from '@janus/messaging';
import { PolicyDocument } from '@janus/contracts';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, killOnExit } from '@janus/testing';
// tools/scripts holds plain Node scripts (no Nx project); this one is the single source of an app's Node flags.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { withNodeOptions } from '../../scripts/node-options.mjs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { buildApps, bundle } from '../../scripts/build-apps.mjs';
import { cpuUs, cpuUsOf, pidsOf } from './proc-cpu.js';

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '../../..');

await main();

interface CaseResult {
  name: string;
  requestsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** CPU time (user + system) the server process spent per answered request, when /proc tells. */
  serverCpuUsPerRequest?: number;
  /** The same for redis-server and nats-server (all instances on this machine). */
  redisCpuUsPerRequest?: number;
  natsCpuUsPerRequest?: number;
  /** Lua script calls (EVALSHA) Redis ran per answered request: how well the limiter coalesces. */
  redisCallsPerRequest?: number;
}

/** EVALSHA calls Redis has run (INFO commandstats); NaN when it cannot tell (e.g. REDIS_URL names a cluster). */
async function scriptCalls(redis: Redis): Promise<number> {
  try {
    return Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

/** The round with the median throughput (its latencies come with it). */
function medianRound(rounds: CaseResult[]): CaseResult {
  const sorted = [...rounds].sort((a, b) => a.requestsPerSec - b.requestsPerSec);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function waitHttp(url: string, ok: (res: Response) => Promise<boolean> | boolean, timeoutMs: number, init?: RequestInit): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, init);
      if (await ok(res)) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts a server: a bundle (`.js`) as the image runs it, or sources (`.ts`) through tsx as `npm start` does. */
function child(script: string, env: Record<string, string>, cwd = root): ChildProcess {
  const extra = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : ['--enable-source-maps'];
  const stdout = process.env.BENCH_CHILD_STDOUT ? 'inherit' : 'ignore';
  return killOnExit(spawn(process.execPath, [...profile, ...extra, ...loader, script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'inherit'] }));
}

interface RunOptions {
  /** The server measured: its CPU per request is reported. */
  readonly server?: ChildProcess;
  /** A client to read Redis's script calls with (INFO). */
  readonly redis?: Redis;
  /** Requests per second offered in all (--rate); undefined: as many as the server answers (closed loop). */
  readonly rate?: number | undefined;
}

async function run(name: string, url: string, headers: Record<string, string>, body: string, seconds: number, { server, redis, rate }: RunOptions = {}): Promise<CaseResult> {
  const callsBefore = redis ? await scriptCalls(redis) : 0;
  const cpuBefore = cpuUs(server?.pid);
  const redisPids = pidsOf('redis-server');
  const natsPids = pidsOf('nats-server');
  const redisBefore = cpuUsOf(redisPids);
  const natsBefore = cpuUsOf(natsPids);
  const result = await autocannon({ url, method: 'POST', headers, body, connections: 64, duration: seconds, ...(rate !== undefined ? { overallRate: rate } : {}) });
  const cpuAfter = cpuUs(server?.pid);
  const perRequest = (us: number) => Math.round((us / Math.max(1, result.requests.total)) * 10) / 10;
  const redisCpu = redisPids.length > 0 ? perRequest(cpuUsOf(redisPids) - redisBefore) : undefined;
  const natsCpu = natsPids.length > 0 ? perRequest(cpuUsOf(natsPids) - natsBefore) : undefined;
  const calls = redis ? Math.round(((await scriptCalls(redis)) - callsBefore) / Math.max(1, result.requests.total) * 1000) / 1000 : undefined;
  const r: CaseResult = {
    name,
    requestsPerSec: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p90Ms: result.latency.p90,
    p99Ms: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    ...(cpuBefore !== undefined && cpuAfter !== undefined && result.requests.total > 0
      ? { serverCpuUsPerRequest: Math.round(((cpuAfter - cpuBefore) / result.requests.total) * 10) / 10 }
      : {}),
    ...(redisCpu !== undefined ? { redisCpuUsPerRequest: redisCpu } : {}),
    ...(natsCpu !== undefined ? { natsCpuUsPerRequest: natsCpu } : {}),
    ...(calls !== undefined ? { redisCallsPerRequest: calls } : {}),
  };
  const cpu =
    (r.serverCpuUsPerRequest !== undefined ? `  server CPU ${r.serverCpuUsPerRequest} µs/req` : '') +
    (redisCpu !== undefined ? `  redis ${redisCpu}` : '') +
    (natsCpu !== undefined ? `  nats ${natsCpu}` : '') +
    (calls !== undefined ? `  redis calls/req ${calls}` : '');
  process.stdout.write(`${name.padEnd(10)} ${String(r.requestsPerSec).padStart(7)} req/s  p50 ${r.p50Ms} ms  p90 ${r.p90Ms} ms  p99 ${r.p99Ms} ms  non-2xx ${r.non2xx}  errors ${r.errors}${cpu}\n`);
  return r;
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, tsx: { type: 'boolean', default: false }, rounds: { type: 'string' }, seconds: { type: 'string' }, against: { type: 'string' }, rate: { type: 'string' } } });
  // --rate R: offer R requests/s in all instead of as many as answered. Below saturation every case
  // batches alike, so the CPU per request of two versions compares steadily (the ratio to the
  // ceiling is then meaningless: both answer R/s).
  const rate = flags.rate === undefined ? undefined : Number(flags.rate);
  // --against <checkout>: also run the ingress of another checkout (with its own npm ci), in the
  // same rounds, to compare two versions of the code under the same machine conditions.
  const against = flags.against === undefined ? undefined : path.resolve(flags.against);
  const smoke = flags.smoke;
  const seconds = Number(flags.seconds ?? (smoke ? 3 : 10));
  const settings = loadSettings({ ...process.env, NODE_ENV: 'development' });
  const ns = `bench_ingress_${randomBytes(3).toString('hex')}`;
  const otherNs = `${ns}_b`;
  const namespaces = against ? [ns, otherNs] : [ns];
  const ingressPort = await freePort();
  const otherPort = await freePort();
  const ceilingPort = await freePort();
  const children: ChildProcess[] = [];
  const key = `jns_bench_${randomBytes(24).toString('base64url')}`;
  const body = JSON.stringify({ type: 'bench', payload: { to: 'user@example.com', template: 'welcome', n: 42 } });
  const pool = new pg.Pool({ connectionString: settings.databaseUrl, max: 2 });
  // Only reads INFO (script calls per request); the servers have their own connections.
  const stats = new Redis(settings.redisUrl, { lazyConnect: true });

  // The servers run as the image runs them: esbuild bundles (tools/scripts/build-apps.mjs) under
  // plain node; --tsx runs the sources through tsx instead, as `npm start` does. Another checkout's
  // ingress is bundled by this checkout's bundler, so the two differ only in their code.
  const entryOf = async (checkout: string): Promise<string> => {
    if (flags.tsx) return path.join(checkout, 'apps/ingress/src/main.ts');
    return path.join(await buildApps(checkout, ['ingress'], 'dist/bench'), 'ingress/main.js');
  };
  const startIngress = async (namespace: string, port: number, cwd: string): Promise<ChildProcess> => {
    // The ingress runs with its own Node flags, as `npm start` and the image run it.
    const proc = child(await entryOf(cwd), {
      NODE_OPTIONS: withNodeOptions(process.env, 'ingress', cwd).NODE_OPTIONS ?? '',
      NODE_ENV: 'production',
      JANUS_NAMESPACE: namespace,
      JANUS_INGRESS_PORT: String(port),
      JANUS_SIGNING_KEY: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'warn',
      JANUS_LOG_FORMAT: 'json',
    }, cwd);
    children.push(proc);
    // Started: its readiness no longer says "starting" (it has migrated the schema; it serves
    // /healthz from its first moment, before that).
    await waitHttp(`http://127.0.0.1:${port}/readyz`, async (r) => ((await r.json().catch(() => ({}))) as { status?: string }).status !== 'starting', 30_000);
    // Policy and key, as policy-admin would write them (the ingress migrated the schema at start).
    const doc = PolicyDocument.parse({
      dependencies: { smtp: { rate: { limit: 100_000_000, periodMs: 1000 }, concurrency: 100_000_000 } },
      tenants: { acme: { rate: { limit: 100_000_000, periodMs: 1000 } } },
      jobTypes: { bench: { dependencies: [{ name: 'smtp' }], timeoutMs: 60_000 } },
    });
    await pool.query(`INSERT INTO "${namespace}".policy_versions (version, document, created_by) VALUES (1, $1, 'bench')`, [JSON.stringify(doc)]);
    await pool.query(`INSERT INTO "${namespace}".api_keys (key_id, tenant, key_hash) VALUES ('bench', 'acme', $1)`, [createHash('sha256').update(key).digest('hex')]);
    const nc = await connect({ servers: [...settings.natsServers], ...natsTlsOptions(settings.natsServers), ...natsAuthOptions(settings.natsAuth) });
    nc.publish(`${namespace}.config.changed`, JSON.stringify({ version: 1 }));
    await nc.flush();
    await nc.close();
    await waitHttp(`http://127.0.0.1:${port}/v1/jobs`, (r) => r.status === 202, 30_000, { method: 'POST', headers, body });
    return proc;
  };
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };

  try {
    const ingress = await startIngress(ns, ingressPort, root);
    const other = against ? await startIngress(otherNs, otherPort, against) : undefined;
    // The same Node flags for the ceiling: only the code differs between the two.
    const ceilingSource = path.join(root, 'tools/bench/src/ingress-ceiling.ts');
    const ceilingBundle = path.join(root, 'dist/bench/ceiling/main.js');
    if (!flags.tsx) await bundle(ceilingSource, ceilingBundle);
    const ceiling = child(flags.tsx ? ceilingSource : ceilingBundle, { CEILING_PORT: String(ceilingPort), NODE_OPTIONS: withNodeOptions(process.env, 'ingress').NODE_OPTIONS ?? '' });
    children.push(ceiling);
    await waitHttp(`http://127.0.0.1:${ceilingPort}/v1/jobs`, (r) => r.status === 202, 30_000, { method: 'POST', headers, body });

    const rounds = Number(flags.rounds ?? (smoke ? 1 : 3));
    process.stdout.write(`ingress bench: 64 connections, ${rounds} round(s) of ${seconds} s per case, alternating${smoke ? ' (smoke)' : ''}, ${cpus().length} CPUs\n`);
    // A warm-up of each (JIT, connection pools), then rounds that alternate the cases, so that drift
    // of the shared machine hits all of them; the medians are compared.
    const warmup = smoke ? 2 : 3; // seconds: a 1 s warm-up left the ingress's JIT visibly cold
    await run('warmup', `http://127.0.0.1:${ceilingPort}/v1/jobs`, headers, body, warmup, { rate });
    await run('warmup', `http://127.0.0.1:${ingressPort}/v1/jobs`, headers, body, warmup, { rate });
    if (other) await run('warmup', `http://127.0.0.1:${otherPort}/v1/jobs`, headers, body, warmup, { rate });
    const ceilingRounds: CaseResult[] = [];
    const ingressRounds: CaseResult[] = [];
    const otherRounds: CaseResult[] = [];
    for (let r = 0; r < rounds; r++) {
      ceilingRounds.push(await run('ceiling', `http://127.0.0.1:${ceilingPort}/v1/jobs`, headers, body, seconds, { server: ceiling, rate }));
      ingressRounds.push(await run('ingress', `http://127.0.0.1:${ingressPort}/v1/jobs`, headers, body, seconds, { server: ingress, redis: stats, rate }));
      if (other) otherRounds.push(await run('against', `http://127.0.0.1:${otherPort}/v1/jobs`, headers, body, seconds, { server: other, redis: stats, rate }));
    }
    if (other) {
      const median = (rs: CaseResult[]) => [...rs].map((r) => r.serverCpuUsPerRequest ?? Number.NaN).sort((a, b) => a - b)[Math.floor(rs.length / 2)]!;
      const a = medianRound(otherRounds);
      process.stdout.write(`against    ${against}: ${a.requestsPerSec} req/s, median server CPU ${median(otherRounds)} µs/req (this checkout: ${median(ingressRounds)} µs/req)\n`);
    }
    const ceilingResult = medianRound(ceilingRounds);
    const ingressResult = medianRound(ingressRounds);
    process.stdout.write(`median     ceiling ${ceilingResult.requestsPerSec} req/s (p99 ${ceilingResult.p99Ms} ms), ingress ${ingressResult.requestsPerSec} req/s (p50 ${ingressResult.p50Ms} ms, p99 ${ingressResult.p99Ms} ms)\n`);
    const ratio = ingressResult.requestsPerSec / ceilingResult.requestsPerSec;
    const verdict = {
      ratioOfCeiling: Math.round(ratio * 1000) / 1000,
      targetRatio: 0.5,
      targetP99Ms: 15,
      met: ratio >= 0.5 && ingressResult.p99Ms <= 15 && ingressRounds.every((r) => r.non2xx === 0 && r.errors === 0),
    };
    process.stdout.write(`ingress admissions/s = ${(ratio * 100).toFixed(1)}% of the ceiling; p99 ${ingressResult.p99Ms} ms; target ≥50% and p99 ≤ 15 ms: ${verdict.met ? 'met' : 'NOT met'}${smoke ? ' (smoke: one short round, indicative only; the figure is a full run)' : ''}\n`);

    mkdirSync(path.join(root, 'bench-results'), { recursive: true });
    const file = path.join(root, 'bench-results', `ingress-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify({ bench: 'ingress', at: new Date().toISOString(), smoke, seconds, connections: 64, cpus: cpus().length, node: process.version, cases: [ceilingResult, ingressResult], rounds: { ceiling: ceilingRounds, ingress: ingressRounds }, ...verdict }, null, 2),
    );
    process.stdout.write(`wrote ${path.relative(root, file)}\n`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(undefined) : c.once('exit', r)))));
    await pool.end();
    stats.disconnect();
    for (const n of namespaces) {
      await dropPgNamespace(settings.databaseUrl, n).catch(() => undefined);
      await dropRedisNamespace(settings.redisUrl, n);
      await dropNatsNamespace([...settings.natsServers], n, settings.natsAuth);
    }
  }
}
