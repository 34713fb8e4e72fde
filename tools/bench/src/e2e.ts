// The whole loop, end to end, against BullMQ on the same Redis, in one run:
//   janus   producer HTTP (POST /v1/jobs/batch, 100 jobs a request) → admission (a job touching a
//           dependency rate and concurrency, a per-tenant concurrency, a tenant rate and budget and a
//           global rate) → JetStream → worker SDK (no-op handler) → outcome → settle → PostgreSQL.
//           Completed = its success stored in PostgreSQL (the job's status row says `succeeded`).
//   bullmq  Queue.addBulk (100 jobs a call) → Worker with a no-op processor → completed.
// Both run closed loop at the highest rate this machine sustains: several producers in flight, at
// most MAX_OUTSTANDING jobs accepted and not yet completed (so that neither side just queues).
// Reported: jobs completed per second (all completed ÷ time from the first submission to the last
// completion), Janus's admission-to-start (the worker's clock at the handler − the job's admittedAt)
// and admission-to-outcome (PostgreSQL: the attempt's finished_at − admitted_at) p50/p99, and CPU
// per job by process (/proc: the apps, Redis, and this process, which runs producers and workers).
// Usage: npm run bench:e2e [-- --smoke] [--seconds S] [--rounds N] [--tsx]   (--smoke: 4 s each, for CI; --rounds:
// BullMQ then Janus N times, the median round reported; --tsx: the apps from their sources through
// tsx, as `npm start` runs them, instead of the bundles the image runs)
import { randomBytes, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { ensureDatabase, migrate } from '@janus/db';
import { connectNats, natsNames } from '@janus/messaging';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, type AppProcess } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
// tools/scripts holds plain Node scripts (no Nx project): the apps' Node flags and their bundler.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { withNodeOptions } from '../../scripts/node-options.mjs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { buildApps } from '../../scripts/build-apps.mjs';
import { closedLoop, E2E_LOAD, redisPid, withBullmqLoop } from './e2e-load.js';
import { cpuUs, pidsOf } from './proc-cpu.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const { values: flags } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, tsx: { type: 'boolean', default: false }, seconds: { type: 'string' }, rounds: { type: 'string' } } });
const SECONDS = Number(flags.seconds ?? (flags.smoke ? 4 : 20));
/** BullMQ then Janus, this many times: the run-to-run spread on a shared machine is ±10 %; the median round is reported. */
const ROUNDS = Math.max(1, Math.floor(Number(flags.rounds ?? 1)) || 1);
const { batch: BATCH, producers: PRODUCERS, maxOutstanding: MAX_OUTSTANDING, workerConcurrency: WORKER_CONCURRENCY } = E2E_LOAD;
const BIG = 1_000_000_000;

const settings = loadSettings({ ...process.env, NODE_ENV: 'development' });
const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

interface Cpu {
  readonly name: string;
  readonly pid: number | undefined;
  /** Several processes summed (PostgreSQL's backends); read when the phase starts. */
  readonly pids?: () => number[];
}

/** CPU µs per job of each process over a phase. */
async function cpuPerJob<T>(procs: readonly Cpu[], run: () => Promise<{ jobs: number } & T>): Promise<T & { jobs: number; cpuUsPerJob: Record<string, number | null> }> {
  const groups = procs.map((p) => p.pids?.() ?? []);
  const read = (p: Cpu, i: number): number | undefined => {
    if (p.name === 'bench') return process.cpuUsage().user + process.cpuUsage().system;
    if (p.pids) return groups[i]!.reduce((sum, pid) => sum + (cpuUs(pid) ?? 0), 0);
    return cpuUs(p.pid);
  };
  const before = procs.map(read);
  const result = await run();
  const cpuUsPerJob: Record<string, number | null> = {};
  procs.forEach((p, i) => {
    const after = read(p, i);
    const b = before[i];
    cpuUsPerJob[p.name] = after === undefined || b === undefined || result.jobs === 0 ? null : round((after - b) / result.jobs);
  });
  return { ...result, cpuUsPerJob };
}

async function runJanus(redis: number | undefined) {
  const ns = `bench_e2e_${randomBytes(3).toString('hex')}`;
  const nsSettings = loadSettings({ ...process.env, NODE_ENV: 'development', JANUS_NAMESPACE: ns });
  await ensureDatabase(nsSettings.databaseUrl);
  await migrate(nsSettings);
  const pool = new pg.Pool({ connectionString: nsSettings.databaseUrl, max: 2 });
  const apps: AppProcess[] = [];
  const nc = await connectNats(nsSettings, { name: 'bench-e2e-worker' });
  try {
    const policy = PolicyDocument.parse({
      dependencies: { api: { rate: { limit: BIG, periodMs: 1000 }, concurrency: BIG, perTenant: { concurrency: BIG } } },
      tenants: { acme: { rate: { limit: BIG, periodMs: 1000 }, budget: { limit: BIG, periodMs: 3_600_000 } } },
      global: { rate: { limit: BIG, periodMs: 1000 } },
      jobTypes: { noop: { dependencies: [{ name: 'api' }], timeoutMs: 60_000 } },
    });
    await pool.query(`INSERT INTO "${ns}".policy_versions (version, document, created_by) VALUES (1, $1, 'bench')`, [JSON.stringify(policy)]);
    const key = `jns_${randomBytes(6).toString('hex')}_${randomBytes(24).toString('base64url')}`;
    await pool.query(`INSERT INTO "${ns}".api_keys (key_id, tenant, key_hash) VALUES ('bench', 'acme', $1)`, [createHash('sha256').update(key).digest('hex')]);
    const env = { NODE_ENV: 'production', JANUS_NAMESPACE: ns, JANUS_SIGNING_KEY: randomBytes(32).toString('hex'), JANUS_ADMIN_TOKEN: randomBytes(24).toString('hex'), LOG_LEVEL: 'warn', JANUS_LOG_FORMAT: 'json' };
    // The apps run as the image runs them: esbuild bundles under plain node with each app's Node
    // flags (--tsx: the sources through tsx, as `npm start` runs them).
    const janusApps = ['ingress', 'retry-scheduler', 'persister'] as const;
    const built = flags.tsx ? undefined : await buildApps(root, [...janusApps], 'dist/bench');
    for (const app of janusApps) {
      const own: Record<string, string> = flags.tsx ? {} : { NODE_OPTIONS: withNodeOptions(process.env, app).NODE_OPTIONS ?? '' };
      apps.push(await startAppProcess(app, { ...env, ...own }, built ? { bundle: path.join(built, app, 'main.js') } : {}));
    }
    const ingress = apps[0]!.url;

    const startDelays: number[] = [];
    let done = 0;
    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: 'noop',
      concurrency: WORKER_CONCURRENCY,
      handler: async (job) => {
        startDelays.push(Date.now() - Date.parse(job.admittedAt));
        done += 1;
      },
    });
    const body = JSON.stringify({ jobs: Array.from({ length: BATCH }, (_, i) => ({ type: 'noop', payload: { i } })) });
    const submit = async () => {
      const res = await fetch(`${ingress}/v1/jobs/batch`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      return res.status === 202 ? BATCH : 0;
    };
    // Warm-up: JIT, connection pools, the consumer.
    for (let i = 0; i < 5; i++) await submit();
    const warm = 5 * BATCH;
    while (done < warm) await sleep(20);

    // Probes, 10 a second while the load runs: the round trip of a lease claim (a forged token: the
    // scheduler answers from its event loop without Redis) and of a JetStream publish to the outcomes
    // stream (an outcome for no job: recorded and ignored) — where a worker's time per job goes.
    const names = natsNames(ns);
    const js = jetstream(nc);
    const claimRtt: number[] = [];
    const publishRtt: number[] = [];
    let probing = true;
    let probeSeq = 0;
    const probes = (async () => {
      while (probing) {
        const t0 = performance.now();
        await nc.request(names.subjects.leaseExtend, JSON.stringify({ leaseToken: 'probe_1.x', ms: 1 }), { timeout: 5_000 }).then(() => claimRtt.push(performance.now() - t0), () => undefined);
        const t1 = performance.now();
        probeSeq += 1;
        await js.publish(names.subjects.outcome('noop'), JSON.stringify({ jobId: `probe-${probeSeq}`, attempt: 1, leaseToken: 'probe_1.x', outcome: 'succeeded' }), { msgID: `probe-${probeSeq}.1` }).then(() => publishRtt.push(performance.now() - t1), () => undefined);
        await sleep(100);
      }
    })();
    const stored = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${ns}".jobs WHERE status = 'succeeded'`)).rows[0]?.n ?? 0;
    const procs: Cpu[] = [...apps.map((a) => ({ name: a.app, pid: a.child.pid })), { name: 'redis', pid: redis }, ...servers, { name: 'bench', pid: process.pid }];
    const measured = await cpuPerJob(procs, async () => {
      const d = await closedLoop(SECONDS, submit, () => done - warm);
      let n = await stored();
      const deadline = Date.now() + 120_000;
      while (n < d.accepted + warm && Date.now() < deadline) {
        await sleep(100);
        n = await stored();
      }
      const seconds = (performance.now() - d.firstAt) / 1000;
      return { jobs: n - warm, accepted: d.accepted, refused: d.refused, seconds };
    });
    probing = false;
    await probes;
    await worker.stop();
    const outcome = (
      await pool.query<{ p50: number; p99: number }>(
        `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
           FROM (SELECT extract(epoch FROM finished_at - admitted_at) * 1000 AS ms FROM "${ns}".attempts WHERE finished_at IS NOT NULL AND admitted_at IS NOT NULL) t`,
      )
    ).rows[0];
    const measuredDelays = startDelays.slice(warm);
    // How many applied outcomes the scheduler put in one message (it publishes those of a moment together).
    const appliedMessages = (await (await jetstreamManager(nc)).streams.info(names.streams.applied)).state.messages;
    const appliedOutcomes = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${ns}".attempts WHERE outcome IS NOT NULL`)).rows[0]?.n ?? 0);
    return {
      ...measured,
      appliedPerMessage: appliedMessages > 0 ? round(appliedOutcomes / appliedMessages) : 0,
      jobsPerSec: round(measured.jobs / measured.seconds),
      admissionToStartMs: { p50: quantile(measuredDelays, 0.5), p99: quantile(measuredDelays, 0.99) },
      admissionToOutcomeMs: { p50: round(Number(outcome?.p50)), p99: round(Number(outcome?.p99)) },
      probes: {
        claimRttMs: { p50: round(quantile(claimRtt, 0.5)), p99: round(quantile(claimRtt, 0.99)), n: claimRtt.length },
        outcomePublishRttMs: { p50: round(quantile(publishRtt, 0.5)), p99: round(quantile(publishRtt, 0.99)), n: publishRtt.length },
      },
    };
  } finally {
    await Promise.all(apps.map((a) => a.kill('SIGTERM')));
    await nc.drain().catch(() => undefined);
    await pool.end();
    await dropRedisNamespace(nsSettings.redisUrl, ns).catch(() => undefined);
    await dropNatsNamespace([...nsSettings.natsServers], ns, nsSettings.natsAuth).catch(() => undefined);
    await dropPgNamespace(nsSettings.databaseUrl, ns).catch(() => undefined);
  }
}

async function runBullmq(redis: number | undefined) {
  return withBullmqLoop(settings.redisUrl, { batch: BATCH, concurrency: WORKER_CONCURRENCY }, async ({ submit, completed }) => {
    const procs: Cpu[] = [{ name: 'redis', pid: redis }, ...servers, { name: 'bench', pid: process.pid }];
    const measured = await cpuPerJob(procs, async () => {
      const d = await closedLoop(SECONDS, submit, completed);
      const deadline = Date.now() + 120_000;
      while (completed() < d.accepted && Date.now() < deadline) await sleep(20);
      const seconds = (performance.now() - d.firstAt) / 1000;
      return { jobs: completed(), accepted: d.accepted, refused: d.refused, seconds };
    });
    return { ...measured, jobsPerSec: round(measured.jobs / measured.seconds) };
  });
}

const redis = await redisPid(settings.redisUrl);
// JetStream's and PostgreSQL's CPU too: the lowest-pid nats-server (the stack's, started first) and
// every `postgres` process on the machine — on a machine running other databases or a second NATS,
// these two figures include their work (run it with nothing else going).
const servers: Cpu[] = [
  { name: 'nats-server', pid: pidsOf('nats-server')[0] },
  { name: 'postgres', pid: undefined, pids: () => pidsOf('postgres') },
];
log(`e2e bench${flags.smoke ? ' (smoke)' : ''}: ${SECONDS} s each, ${ROUNDS} round(s), ${PRODUCERS} producers × ${BATCH} jobs a request, ≤ ${MAX_OUTSTANDING} outstanding, workers ${WORKER_CONCURRENCY} at once, ${cpus().length} CPUs`);
const rounds: { bullmq: Awaited<ReturnType<typeof runBullmq>>; janus: Awaited<ReturnType<typeof runJanus>>; ratio: number }[] = [];
const problems: string[] = [];
for (let r = 1; r <= ROUNDS; r++) {
  const bullmq = await runBullmq(redis);
  log(`bullmq: ${bullmq.jobs} jobs in ${round(bullmq.seconds)} s = ${bullmq.jobsPerSec} jobs/s; CPU µs/job ${JSON.stringify(bullmq.cpuUsPerJob)}`);
  const janus = await runJanus(redis);
  log(`janus:  ${janus.jobs} jobs in ${round(janus.seconds)} s = ${janus.jobsPerSec} jobs/s (${janus.refused} refused requests); admission→start p50 ${janus.admissionToStartMs.p50} ms, p99 ${janus.admissionToStartMs.p99} ms; admission→outcome p50 ${janus.admissionToOutcomeMs.p50} ms, p99 ${janus.admissionToOutcomeMs.p99} ms`);
  log(`janus CPU µs/job by process: ${JSON.stringify(janus.cpuUsPerJob)}`);
  log(`janus under load: a claim's round trip p50 ${janus.probes.claimRttMs.p50} ms, p99 ${janus.probes.claimRttMs.p99} ms; an outcome publish's p50 ${janus.probes.outcomePublishRttMs.p50} ms, p99 ${janus.probes.outcomePublishRttMs.p99} ms; applied outcomes per message ${janus.appliedPerMessage}`);
  const ratio = janus.jobsPerSec / bullmq.jobsPerSec;
  if (ROUNDS > 1) log(`round ${r}: ratio janus / bullmq ${(ratio * 100).toFixed(1)}%`);
  if (janus.jobs < janus.accepted) problems.push(`janus: ${janus.accepted - janus.jobs} accepted jobs not stored as succeeded`);
  if (bullmq.jobs < bullmq.accepted) problems.push(`bullmq: ${bullmq.accepted - bullmq.jobs} jobs not completed`);
  rounds.push({ bullmq, janus, ratio });
}
// The round with the median ratio (its figures come with it).
const { bullmq, janus, ratio } = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]!;
log(`ratio janus / bullmq${ROUNDS > 1 ? ` (median of ${ROUNDS} rounds: ${rounds.map((x) => `${(x.ratio * 100).toFixed(1)}%`).join(', ')})` : ''}: ${(ratio * 100).toFixed(1)}% (target ≥ 50%)`);
for (const p of problems) log(`PROBLEM: ${p}`);
mkdirSync(path.join(root, 'bench-results'), { recursive: true });
const file = path.join(root, 'bench-results', `e2e-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), seconds: SECONDS, smoke: flags.smoke, janus, bullmq, ratio, ...(ROUNDS > 1 ? { rounds } : {}) }, null, 2));
log(`wrote ${path.relative(root, file)}`);
process.exit(problems.length > 0 ? 1 : 0);
