// The waiting room (POST /v1/jobs with "mode": "queue"), against the real apps in a namespace of its own.
//   1. Dispatch throughput, in rounds: N jobs are submitted in mode "queue" and wait in the room (a
//      dependency's concurrency of 1 is already used, and no retry-scheduler runs); the baseline
//      follows: N jobs in mode "now" against an equally generous limit, with as many requests in
//      flight as the dispatcher admits at once (autocannon, 64 connections); then the limit is
//      raised and the retry-scheduler started, and the jobs/s leaving the room (admitted, published
//      to <NS>_JOBS) are measured. Both rates are taken the same way, from the stream's stored
//      timestamps of the first and last job message of the phase (the scheduler's start-up and its
//      initial load of the room are reported apart). Medians of the rounds are compared.
//   2. notBefore error, in two scenarios (SCENARIOS): tenants submit in mode "queue" to one
//      dependency limited to 50 jobs/s, together faster than it — "over": a backlog that grows all
//      along; "near": just over the rate, in small bursts, with a bucket of 5, so that the room is
//      often nearly empty. For every job answered `queued`: the job message's `admittedAt` minus the
//      `notBefore` of the 202 answer (p50/p90/p99), how many were admitted before notBefore (CONTRACT
//      §3: never; also checked against the limiter's decision time, the lease's expiresAt − the job
//      type's timeoutMs), and how many jobs in mode queue were admitted at once ahead of a job of
//      their type that was already waiting (§3: it does not jump the room).
// Usage: npm run bench:queue [-- --smoke] [--jobs N] [--rounds R] [--seconds S]
//   --smoke: one round of 500 jobs and 3 s per scenario, for CI; --jobs: jobs per round in part 1
//   (default 3000); --rounds: default 3; --seconds: submissions per scenario in part 2 (default 10).
// The baseline runs right before the room drains, so that the two measured phases of a round see
// the same machine; each phase's app CPU per job (from /proc) is printed too: steadier than jobs/s
// on a shared machine (the baseline's HTTP client also runs, in this process; the dispatcher needs none).
// The apps run as child processes (`node --import tsx`, each with its own Node flags); this process
// only drives load and reads PostgreSQL and JetStream. A broken invariant is printed as PROBLEM and
// makes the exit code 1 (a slow figure never does).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { connectNats, natsNames } from '@janus/messaging';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, killOnExit } from '@janus/testing';
// tools/scripts holds plain Node scripts (no Nx project); this one is the single source of an app's Node flags.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { withNodeOptions } from '../../scripts/node-options.mjs';
import { cpuUs } from './proc-cpu.js';

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '../../..');

const { values: flags } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, jobs: { type: 'string' }, rounds: { type: 'string' }, seconds: { type: 'string' } } });
const smoke = flags.smoke;
const JOBS = Number(flags.jobs ?? (smoke ? 500 : 3000));
const ROUNDS = Number(flags.rounds ?? (smoke ? 1 : 3));
const PACED_SECONDS = Number(flags.seconds ?? (smoke ? 3 : 10));
/** The dispatcher's default `maxInFlight`: the baseline keeps as many requests in flight. */
const IN_FLIGHT = 64;
/** Part 1's tenants (round robin). */
const DRAIN_TENANTS = ['t1', 't2', 't3', 't4'];

/** Part 2: tenants submitting in mode queue to one job type on one rate-limited dependency. */
interface Scenario {
  readonly name: string;
  readonly what: string;
  /** The job type and its dependency's name. */
  readonly type: string;
  readonly rate: { readonly limit: number; readonly periodMs: number; readonly burst?: number };
  /** Each tenant's jobs/s, sent `atOnce` at a time. */
  readonly tenants: readonly { readonly tenant: string; readonly perSec: number }[];
  readonly atOnce: number;
}
const SCENARIOS: readonly Scenario[] = [
  {
    name: 'over',
    what: 'three tenants at 40, 30 and 20 jobs/s against 50/s: a backlog that grows all along',
    type: 'paced',
    rate: { limit: 50, periodMs: 1000 },
    tenants: [
      { tenant: 'p1', perSec: 40 },
      { tenant: 'p2', perSec: 30 },
      { tenant: 'p3', perSec: 20 },
    ],
    atOnce: 1,
  },
  {
    name: 'near',
    what: 'three tenants at 18 jobs/s each (3 at a time) against 50/s with a bucket of 5: the room is often nearly empty',
    type: 'tight',
    rate: { limit: 50, periodMs: 1000, burst: 5 },
    tenants: [
      { tenant: 'q1', perSec: 18 },
      { tenant: 'q2', perSec: 18 },
      { tenant: 'q3', perSec: 18 },
    ],
    atOnce: 3,
  },
];
const BIG = 100_000_000;
/** Long leases: no job is reaped or handed back during the run (no workers take them). */
const TIMEOUT_MS = 600_000;

function policy(gateConcurrency: number) {
  return PolicyDocument.parse({
    dependencies: {
      // The room's lane in part 1: one slot (used by `blocker`, then by the jobs of earlier rounds)
      // while the room fills, then generous.
      gate: { rate: { limit: BIG, periodMs: 1000 }, concurrency: gateConcurrency },
      // The baseline's dependency: as generous as `gate` once raised.
      open: { rate: { limit: BIG, periodMs: 1000 }, concurrency: BIG },
      // Part 2: the binding rates.
      ...Object.fromEntries(SCENARIOS.map((sc) => [sc.type, { rate: sc.rate, concurrency: BIG }])),
    },
    tenants: Object.fromEntries(allTenants().map((t) => [t, { weight: 1, maxQueued: 50_000 }])),
    jobTypes: {
      probe: { dependencies: [{ name: 'open' }], timeoutMs: TIMEOUT_MS },
      blocker: { dependencies: [{ name: 'gate' }], timeoutMs: TIMEOUT_MS },
      // One job type per round and case (its subject in <NS>_JOBS holds exactly that phase's jobs).
      ...Object.fromEntries(Array.from({ length: ROUNDS }, (_, i) => [`drain-${i + 1}`, { dependencies: [{ name: 'gate' }], timeoutMs: TIMEOUT_MS }])),
      ...Object.fromEntries(Array.from({ length: ROUNDS }, (_, i) => [`direct-${i + 1}`, { dependencies: [{ name: 'open' }], timeoutMs: TIMEOUT_MS }])),
      ...Object.fromEntries(SCENARIOS.map((sc) => [sc.type, { dependencies: [{ name: sc.type }], timeoutMs: TIMEOUT_MS }])),
    },
  });
}

function allTenants(): string[] {
  return [...DRAIN_TENANTS, ...SCENARIOS.flatMap((sc) => sc.tenants.map((t) => t.tenant))];
}

// ---- HTTP client: keep-alive sockets, one per request in flight ------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT * 2 });

interface Answer {
  status: number;
  body: { jobId?: string; status?: string; notBefore?: string; admittedAt?: string; reason?: string };
}

function post(port: number, key: string, body: string, retried = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/v1/jobs', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${key}` } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { reason: text.slice(0, 200) } });
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A keep-alive socket the server closed while it sat idle (between the parts of the bench) fails
      // on reuse with ECONNRESET before the request reached the server: send it again, once (the
      // pattern Node's http docs give for `reusedSocket`).
      if (!retried && req.reusedSocket && error.code === 'ECONNRESET') post(port, key, body, true).then(resolve, reject);
      else reject(error);
    });
    req.end(body);
  });
}

/** `count` submissions with `IN_FLIGHT` in flight; the answers in submission order and the wall time. */
async function submitMany(count: number, make: (i: number) => { port: number; key: string; body: string }): Promise<{ answers: Answer[]; ms: number }> {
  const answers: Answer[] = new Array(count);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, count) }, async () => {
      for (let i = next++; i < count; i = next++) {
        const r = make(i);
        answers[i] = await post(r.port, r.key, r.body);
      }
    }),
  );
  return { answers, ms: performance.now() - started };
}

// ---- child processes ------------------------------------------------------------------------
interface App {
  readonly proc: ChildProcess;
  /** Its log lines at warn or above (pino JSON), kept for the report. */
  readonly warnings: string[];
}

function startApp(app: 'ingress' | 'retry-scheduler', env: Record<string, string>): App {
  const proc = killOnExit(
    spawn(process.execPath, ['--import', 'tsx', `apps/${app}/src/main.ts`], {
      cwd: root,
      env: { ...process.env, NODE_OPTIONS: withNodeOptions(process.env, app).NODE_OPTIONS ?? '', ...env, LOG_LEVEL: 'warn', JANUS_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const warnings: string[] = [];
  let partial = '';
  proc.stdout?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '' && warnings.length < 200) warnings.push(line);
  });
  return { proc, warnings };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- JetStream: the job messages of one job type, with their stored times ---------------------
interface Stored {
  jobId: string;
  tenant: string;
  /** The job message's `admittedAt`. */
  admittedAt: number;
  /** The limiter's decision (Redis time): the lease's `expiresAt` minus the job type's timeout. */
  decidedAt: number;
  /** JetStream's stored time. */
  storedAt: number;
}

async function readJobs(js: JetStreamClient, stream: string, subject: string, expected: number, timeoutMs: number): Promise<Stored[]> {
  const consumer = await js.consumers.get(stream, { filter_subjects: subject });
  const out: Stored[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < expected && Date.now() < deadline) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 1000 });
    for await (const m of batch) {
      const body = m.json<{ jobId: string; tenant: string; admittedAt: string; lease: { expiresAt: string } }>();
      out.push({ jobId: body.jobId, tenant: body.tenant, admittedAt: Date.parse(body.admittedAt), decidedAt: Date.parse(body.lease.expiresAt) - TIMEOUT_MS, storedAt: m.info.timestampNanos / 1e6 });
    }
  }
  await consumer.delete().catch(() => undefined);
  return out;
}

/** Jobs/s between the first and the last stored message (n − 1 intervals). */
function spanRate(msgs: readonly Stored[]): { perSec: number; spanMs: number } {
  if (msgs.length < 2) return { perSec: 0, spanMs: 0 };
  const times = msgs.map((m) => m.storedAt);
  const spanMs = Math.max(...times) - Math.min(...times);
  return { perSec: spanMs > 0 ? ((msgs.length - 1) * 1000) / spanMs : 0, spanMs };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/** A Prometheus text exposition's samples of one metric, as `labels → value`. */
async function scrape(port: number, metric: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === metric) out[m[2] ?? ''] = Number(m[3]);
  }
  return out;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

interface Round {
  round: number;
  enqueuedPerSec: number;
  baseline: { perSec: number; spanMs: number; clientAnsweredPerSec: number; ingressCpuUsPerJob: number | null; notAdmitted: number; inStream: number };
  room: { perSec: number; spanMs: number; schedulerCpuUsPerJob: number | null; firstAdmittedAfterSpawnMs: number; roomEmptyAfterSpawnMs: number; inStream: number; rows: Record<string, number> };
}

const median = (xs: readonly number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor(s.length / 2)] ?? Number.NaN);
};

async function main(): Promise<void> {
  const settings = loadSettings({ ...process.env, NODE_ENV: 'development' });
  const ns = `bench_queue_${randomBytes(3).toString('hex')}`;
  const names = natsNames(ns);
  const signingKey = randomBytes(32).toString('hex');
  const ingressPort = await freePort();
  const schedulerPort = await freePort();
  const apps: App[] = [];
  const pool = new pg.Pool({ connectionString: settings.databaseUrl, max: 2 });
  const nc = await connectNats(settings, { name: 'bench-queue' });
  const js = jetstream(nc);
  const keys = new Map<string, string>();
  const env = { NODE_ENV: 'production', JANUS_NAMESPACE: ns, JANUS_SIGNING_KEY: signingKey, JANUS_INGRESS_PORT: String(ingressPort), JANUS_SCHEDULER_PORT: String(schedulerPort) };
  const body = (type: string, mode: 'now' | 'queue') => JSON.stringify({ type, mode, payload: { to: 'user@example.com', template: 'welcome', n: 42 } });
  const waiting = async (type: string) =>
    (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${ns}".waiting_jobs WHERE type = $1 AND state IN ('queued', 'dispatching')`, [type])).rows[0]?.n ?? 0;
  let version = 0;
  const setPolicy = async (doc: ReturnType<typeof policy>) => {
    version += 1;
    await pool.query(`INSERT INTO "${ns}".policy_versions (version, document, created_by) VALUES ($1, $2, 'bench')`, [version, JSON.stringify(doc)]);
    nc.publish(names.subjects.configChanged, JSON.stringify({ version }));
    await nc.flush();
  };
  const stopApp = async (a: App) => {
    if (a.proc.exitCode !== null || a.proc.signalCode !== null) return;
    const exited = new Promise((r) => a.proc.once('exit', r));
    a.proc.kill('SIGTERM');
    // A clean shutdown takes a moment; one that hangs is not this benchmark's to wait for.
    const timer = setTimeout(() => a.proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };

  process.stdout.write(`queue bench${smoke ? ' (smoke)' : ''}: namespace ${ns}, ${ROUNDS} round(s) of ${JOBS} jobs in part 1, ${IN_FLIGHT} in flight, ${SCENARIOS.length} scenarios of ${PACED_SECONDS} s of rate-limited submissions in part 2, ${cpus().length} CPUs\n`);
  try {
    // ---- the ingress, its policy and one key per tenant (as policy-admin would write them) ----
    const ingress = startApp('ingress', env);
    apps.push(ingress);
    // Started (schema migrated): its readiness no longer says "starting" (/healthz answers from its first moment).
    const started = async () => ((await (await fetch(`http://127.0.0.1:${ingressPort}/readyz`)).json()) as { status?: string }).status !== 'starting';
    await waitFor('ingress started', async () => ((await started()) ? true : undefined), 60_000);
    for (const tenant of allTenants()) {
      const key = `jns_${tenant}_${randomBytes(24).toString('base64url')}`;
      keys.set(tenant, key);
      await pool.query(`INSERT INTO "${ns}".api_keys (key_id, tenant, key_hash) VALUES ($1, $2, $3)`, [tenant, tenant, createHash('sha256').update(key).digest('hex')]);
    }
    await setPolicy(policy(BIG));
    const keyOf = (tenant: string) => keys.get(tenant) ?? '';
    const drainKey = (i: number) => keyOf(DRAIN_TENANTS[i % DRAIN_TENANTS.length] ?? 't1');
    await waitFor('ingress admitting', async () => ((await post(ingressPort, keyOf('t1'), body('probe', 'now'))).status === 202 ? true : undefined), 30_000);
    // Warm-up (JIT, connection pools) on the probe type, both modes (nothing waits: both admit).
    await submitMany(smoke ? 200 : 1000, (i) => ({ port: ingressPort, key: drainKey(i), body: body('probe', i % 2 === 0 ? 'now' : 'queue') }));

    // ---- part 1: rounds of fill, baseline, drain --------------------------------------------
    const rounds: Round[] = [];
    const spawned: number[] = [];
    let scheduler: App | undefined;
    for (let r = 1; r <= ROUNDS; r++) {
      if (scheduler) await stopApp(scheduler);
      // The gate closes: concurrency 1, used by a blocker (or by the jobs of the earlier rounds, whose
      // leases outlast the run) — until the ingress applied it, a blocker is admitted.
      await setPolicy(policy(1));
      await waitFor('the gate to close', async () => ((await post(ingressPort, keyOf('t1'), body('blocker', 'now'))).status === 429 ? true : undefined), 30_000, 50);
      const drainType = `drain-${r}`;
      const directType = `direct-${r}`;
      const fill = await submitMany(JOBS, (i) => ({ port: ingressPort, key: drainKey(i), body: body(drainType, 'queue') }));
      const notQueued = fill.answers.filter((a) => a.status !== 202 || a.body.status !== 'queued');
      if (notQueued.length > 0) throw new Error(`${notQueued.length} of ${JOBS} jobs in mode queue were not queued, e.g. ${JSON.stringify(notQueued[0])}`);
      const inRoom = await waiting(drainType);

      // Baseline: mode "now", admitted at once (right before the drain: the same machine conditions),
      // driven by autocannon (a lighter client than this file's, so that it is the ingress measured).
      const ingressCpu0 = cpuUs(ingress.proc.pid);
      const baselineStarted = performance.now();
      const baseline = await autocannon({
        url: `http://127.0.0.1:${ingressPort}`,
        connections: IN_FLIGHT,
        amount: JOBS,
        requests: DRAIN_TENANTS.map((t) => ({ method: 'POST' as const, path: '/v1/jobs', headers: { 'content-type': 'application/json', authorization: `Bearer ${keyOf(t)}` }, body: body(directType, 'now') })),
      });
      const baselineMs = performance.now() - baselineStarted;
      const ingressCpu1 = cpuUs(ingress.proc.pid);
      const notAdmitted = JOBS - (baseline['2xx'] ?? 0) + baseline.errors + baseline.timeouts;
      const baselineCpuUs = ingressCpu0 !== undefined && ingressCpu1 !== undefined ? (ingressCpu1 - ingressCpu0) / JOBS : undefined;

      // The room drains: the limit is raised, then the retry-scheduler (its dispatcher) starts.
      await setPolicy(policy(BIG));
      const spawnedAt = Date.now();
      const started = startApp('retry-scheduler', env);
      apps.push(started);
      scheduler = started;
      // The scheduler's CPU per job from the first admissions seen on (its start-up left out).
      let draining: { cpuUs: number | undefined; left: number } | undefined;
      await waitFor(
        'the room to drain',
        async () => {
          const left = await waiting(drainType);
          if (draining === undefined && left < inRoom) draining = { cpuUs: cpuUs(started.proc.pid), left };
          return left === 0 ? true : undefined;
        },
        Math.max(60_000, JOBS * 20),
        50,
      );
      const drainedAt = Date.now();
      const schedulerCpu1 = cpuUs(started.proc.pid);
      const roomCpuUs = draining?.cpuUs !== undefined && schedulerCpu1 !== undefined && draining.left > 0 ? (schedulerCpu1 - draining.cpuUs) / draining.left : undefined;
      const rows = (await pool.query<{ state: string; n: number }>(`SELECT state, count(*)::int AS n FROM "${ns}".waiting_jobs WHERE type = $1 GROUP BY state`, [drainType])).rows;
      spawned.push(spawnedAt);
      rounds.push({
        round: r,
        enqueuedPerSec: round((JOBS * 1000) / fill.ms),
        baseline: { perSec: 0, spanMs: 0, clientAnsweredPerSec: round((JOBS * 1000) / baselineMs), ingressCpuUsPerJob: baselineCpuUs === undefined ? null : round(baselineCpuUs), notAdmitted, inStream: 0 },
        room: { perSec: 0, spanMs: 0, schedulerCpuUsPerJob: roomCpuUs === undefined ? null : round(roomCpuUs), firstAdmittedAfterSpawnMs: Number.NaN, roomEmptyAfterSpawnMs: drainedAt - spawnedAt, inStream: 0, rows: Object.fromEntries(rows.map((x) => [x.state, x.n])) },
      });
    }
    await waitFor('retry-scheduler /readyz', async () => ((await fetch(`http://127.0.0.1:${schedulerPort}/readyz`)).ok ? true : undefined), 30_000);
    // Each round's job messages, with their stored times.
    for (const [i, rd] of rounds.entries()) {
      const direct = await readJobs(js, names.streams.jobs, names.subjects.job(`direct-${rd.round}`), JOBS, 30_000);
      const drain = await readJobs(js, names.streams.jobs, names.subjects.job(`drain-${rd.round}`), JOBS, 30_000);
      const spawnedAt = spawned[i] ?? Number.NaN;
      const b = spanRate(direct);
      const d = spanRate(drain);
      rd.baseline = { ...rd.baseline, perSec: round(b.perSec), spanMs: round(b.spanMs), inStream: direct.length };
      rd.room = { ...rd.room, perSec: round(d.perSec), spanMs: round(d.spanMs), inStream: drain.length, firstAdmittedAfterSpawnMs: drain.length > 0 ? round(Math.min(...drain.map((m) => m.storedAt)) - spawnedAt) : Number.NaN };
      process.stdout.write(
        `round ${rd.round}    queued ${JOBS} at ${rd.enqueuedPerSec}/s; baseline ${Math.round(b.perSec)}/s (ingress ${rd.baseline.ingressCpuUsPerJob ?? 'n/a'} µs CPU/job); room ${Math.round(d.perSec)}/s (scheduler ${rd.room.schedulerCpuUsPerJob ?? 'n/a'} µs CPU/job; first admitted ${rd.room.firstAdmittedAfterSpawnMs} ms after the spawn, room empty after ${rd.room.roomEmptyAfterSpawnMs} ms; rows ${Object.entries(rd.room.rows).map(([k, v]) => `${k} ${v}`).join(', ')})\n`,
      );
    }
    const baseRate = median(rounds.map((x) => x.baseline.perSec));
    const roomRate = median(rounds.map((x) => x.room.perSec));
    const baseCpu = median(rounds.map((x) => x.baseline.ingressCpuUsPerJob ?? Number.NaN));
    const roomCpu = median(rounds.map((x) => x.room.schedulerCpuUsPerJob ?? Number.NaN));
    const ratio = baseRate > 0 ? roomRate / baseRate : Number.NaN;

    // ---- part 2: notBefore under a rate limit, tenants in mode queue ---------------------------
    const scenario = async (sc: Scenario) => {
      const triesBefore = await scrape(schedulerPort, 'janus_room_dispatched_total').catch(() => ({}) as Record<string, number>);
      const submitted: { tenant: string; at: number; answeredAt: number; answer: Answer }[] = [];
      const startedAt = Date.now();
      await Promise.all(
        sc.tenants.map(async ({ tenant, perSec }) => {
          const count = Math.round(perSec * PACED_SECONDS);
          const inFlight: Promise<void>[] = [];
          for (let i = 0; i < count; i++) {
            const due = startedAt + (Math.floor(i / sc.atOnce) * sc.atOnce * 1000) / perSec;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
            const at = Date.now();
            inFlight.push(post(ingressPort, keyOf(tenant), body(sc.type, 'queue')).then((answer) => void submitted.push({ tenant, at, answeredAt: Date.now(), answer })));
          }
          await Promise.all(inFlight);
        }),
      );
      const submitMs = Date.now() - startedAt;
      await waitFor(`the ${sc.name} jobs to leave the room`, async () => ((await waiting(sc.type)) === 0 ? true : undefined), 120_000, 100);
      const roomEmptyAfterMs = Date.now() - startedAt;
      const accepted = submitted.filter((x) => x.answer.status === 202 && x.answer.body.jobId !== undefined);
      const msgs = await readJobs(js, names.streams.jobs, names.subjects.job(sc.type), accepted.length, 30_000);
      const byId = new Map(msgs.map((m) => [m.jobId, m]));
      const queued = accepted.filter((x) => x.answer.body.status === 'queued');
      const errors: { tenant: string; jobId: string; sentAt: number; notBefore: number; m: Stored; errMs: number; decidedErrMs: number; storedErrMs: number; waitMs: number }[] = [];
      let missing = 0;
      for (const x of queued) {
        const m = byId.get(x.answer.body.jobId ?? '');
        if (m === undefined) {
          missing += 1;
          continue;
        }
        const nb = Date.parse(x.answer.body.notBefore ?? '');
        errors.push({ tenant: x.tenant, jobId: m.jobId, sentAt: x.at, notBefore: nb, m, errMs: m.admittedAt - nb, decidedErrMs: m.decidedAt - nb, storedErrMs: m.storedAt - nb, waitMs: m.admittedAt - x.at });
      }
      const sorted = errors.map((e) => e.errMs).sort((a, b) => a - b);
      const early = errors.filter((e) => e.errMs < 0);
      const rel = (t: number) => Math.round(t - startedAt);
      // CONTRACT §3: a job in mode queue does not jump the room. A job admitted at once "jumped" when a
      // queued job of its type, answered before it was sent, was admitted after it.
      const waitingSpans = queued.map((q) => ({ q, admittedAt: byId.get(q.answer.body.jobId ?? '')?.admittedAt ?? Number.POSITIVE_INFINITY }));
      const jumps = accepted.flatMap((x) => {
        if (x.answer.body.status !== 'admitted') return [];
        const admittedAt = Date.parse(x.answer.body.admittedAt ?? '');
        const overtaken = waitingSpans.filter((w) => w.q.answeredAt < x.at && w.admittedAt > admittedAt);
        if (overtaken.length === 0) return [];
        return [
          {
            jobId: x.answer.body.jobId,
            tenant: x.tenant,
            sentAt: rel(x.at),
            admittedAt: rel(admittedAt),
            overtook: overtaken.slice(0, 3).map((w) => ({ jobId: w.q.answer.body.jobId, tenant: w.q.tenant, answeredAt: rel(w.q.answeredAt), notBefore: rel(Date.parse(w.q.answer.body.notBefore ?? '')), admittedAt: rel(w.admittedAt) })),
          },
        ];
      });
      const waits = errors.map((e) => e.waitMs).sort((a, b) => a - b);
      // The dispatcher's tries by disposition (admitted; rejected: a refused try, back in the room).
      const triesAfter = await scrape(schedulerPort, 'janus_room_dispatched_total').catch(() => ({}) as Record<string, number>);
      // Summed by disposition (a rejection is also labelled with its reason).
      const tries: Record<string, number> = {};
      for (const [labels, v] of Object.entries(triesAfter)) {
        const disposition = /disposition="([^"]+)"/.exec(labels)?.[1] ?? labels;
        tries[disposition] = (tries[disposition] ?? 0) + v - (triesBefore[labels] ?? 0);
      }
      return {
        scenario: sc.name,
        what: sc.what,
        rate: sc.rate,
        tenants: sc.tenants,
        sentAtOnce: sc.atOnce,
        submitSeconds: PACED_SECONDS,
        submitted: submitted.length,
        admittedAtOnce: accepted.filter((x) => x.answer.body.status === 'admitted').length,
        queued: queued.length,
        notAccepted: submitted.length - accepted.length,
        missingFromStream: missing,
        admittedRatePerSec: round(spanRate(msgs).perSec),
        submitMs,
        roomEmptyAfterMs,
        // Times in ms (admission: the job message's admittedAt).
        errorMs: { p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN, min: sorted[0] ?? Number.NaN },
        admittedBeforeNotBefore: early.length,
        earliestByMs: early.length > 0 ? -Math.min(...early.map((e) => e.errMs)) : 0,
        // The same against the limiter's decision (the lease's expiresAt − timeoutMs) and JetStream's stored time.
        decidedBeforeNotBefore: errors.filter((e) => e.decidedErrMs < 0).length,
        decidedEarliestByMs: Math.max(0, ...errors.map((e) => -e.decidedErrMs)),
        storedBeforeNotBefore: errors.filter((e) => e.storedErrMs < 0).length,
        // Times in ms from the start of the scenario.
        early: early.slice(0, 10).map((e) => ({ jobId: e.jobId, tenant: e.tenant, sentAt: rel(e.sentAt), notBefore: rel(e.notBefore), admittedAt: rel(e.m.admittedAt), decidedAt: rel(e.m.decidedAt), storedAt: rel(e.m.storedAt) })),
        admittedAtOnceAheadOfWaitingJobs: jumps.length,
        jumps: jumps.slice(0, 10),
        waitMs: { p50: quantile(waits, 0.5), p99: quantile(waits, 0.99) },
        perTenant: sc.tenants.map(({ tenant }) => {
          const mine = errors.filter((e) => e.tenant === tenant).map((e) => e.errMs).sort((a, b) => a - b);
          return { tenant, submitted: submitted.filter((x) => x.tenant === tenant).length, queued: mine.length, p50Ms: quantile(mine, 0.5), p99Ms: quantile(mine, 0.99) };
        }),
        dispatcherTries: tries,
      };
    };
    const scenarios: Awaited<ReturnType<typeof scenario>>[] = [];
    for (const sc of SCENARIOS) scenarios.push(await scenario(sc));

    // ---- report ------------------------------------------------------------------------------
    process.stdout.write(`\nWaiting room benchmark${smoke ? ' (smoke: indicative only)' : ''}: ${ROUNDS} round(s) of ${JOBS} jobs, ${IN_FLIGHT} in flight, ${cpus().length} CPUs, medians\n`);
    const cpu = (us: number, app: string) => (Number.isFinite(us) ? `${Math.round(us)} (${app})` : 'n/a');
    const perSec = (xs: number[]) => xs.map((x) => Math.round(x)).join(', ');
    process.stdout.write('| case | jobs/s (first → last stored message) | rounds | app CPU µs/job |\n| --- | ---: | --- | ---: |\n');
    process.stdout.write(`| baseline: POST mode "now", admitted at once | ${Math.round(baseRate).toLocaleString('en-US')} | ${perSec(rounds.map((x) => x.baseline.perSec))} | ${cpu(baseCpu, 'ingress')} |\n`);
    process.stdout.write(`| waiting room: the dispatcher admits queued jobs | ${Math.round(roomRate).toLocaleString('en-US')} | ${perSec(rounds.map((x) => x.room.perSec))} | ${cpu(roomCpu, 'retry-scheduler')} |\n`);
    process.stdout.write(`\ndispatch throughput = ${(ratio * 100).toFixed(1)}% of the mode-now admission path (ratio ${ratio.toFixed(2)}); jobs entered the room at ${Math.round(median(rounds.map((x) => x.enqueuedPerSec)))}/s (mode queue, median)\n`);
    process.stdout.write(`\nnotBefore error = admission (job message admittedAt) − notBefore of the 202, ms; ${PACED_SECONDS} s of submissions per scenario:\n`);
    process.stdout.write('| scenario | jobs queued | p50 | p90 | p99 | max | admitted before notBefore (admittedAt / limiter decision) | admitted at once ahead of waiting jobs |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n');
    for (const r of scenarios) {
      const e = r.errorMs;
      process.stdout.write(`| ${r.scenario} | ${r.queued - r.missingFromStream} | ${e.p50} | ${e.p90} | ${e.p99} | ${e.max} | ${r.admittedBeforeNotBefore} / ${r.decidedBeforeNotBefore} | ${r.admittedAtOnceAheadOfWaitingJobs} |\n`);
    }
    for (const r of scenarios) {
      process.stdout.write(
        `${r.scenario}: ${r.what}; ${r.submitted} submitted, ${r.admittedAtOnce} admitted at once, ${r.queued} queued, ${r.notAccepted} other answers; admitted at ${r.admittedRatePerSec}/s; per tenant p50/p99 ms ${r.perTenant.map((t) => `${t.tenant} ${t.p50Ms}/${t.p99Ms}`).join(', ')}; dispatcher tries ${Object.entries(r.dispatcherTries).map(([k, v]) => `${k} ${v}`).join(', ') || 'n/a'}\n`,
      );
    }
    const warnings = apps.flatMap((a) => a.warnings);
    if (warnings.length > 0) process.stdout.write(`apps logged ${warnings.length} warning/error line(s), first: ${warnings[0]?.slice(0, 400)}\n`);

    const problems = [
      ...rounds.flatMap((x) => [
        x.baseline.notAdmitted > 0 ? `round ${x.round}: ${x.baseline.notAdmitted} baseline jobs not admitted` : undefined,
        x.baseline.inStream !== JOBS ? `round ${x.round}: ${x.baseline.inStream} of ${JOBS} baseline job messages in the stream` : undefined,
        x.room.inStream !== JOBS ? `round ${x.round}: ${x.room.inStream} of ${JOBS} dispatched job messages in the stream` : undefined,
      ]),
      ...scenarios.flatMap((r) => [
        r.queued === 0 ? `${r.scenario}: no job was queued` : undefined,
        r.notAccepted > 0 ? `${r.scenario}: ${r.notAccepted} submissions not answered 202` : undefined,
        r.missingFromStream > 0 ? `${r.scenario}: ${r.missingFromStream} queued jobs never reached the stream` : undefined,
        r.admittedBeforeNotBefore > 0 || r.decidedBeforeNotBefore > 0
          ? `${r.scenario}: ${r.admittedBeforeNotBefore} jobs admitted before their notBefore by their job message's admittedAt (by up to ${r.earliestByMs} ms), ${r.decidedBeforeNotBefore} by the limiter's decision time (by up to ${r.decidedEarliestByMs} ms), ${r.storedBeforeNotBefore} by JetStream's stored time; first: ${JSON.stringify(r.early[0])}`
          : undefined,
        r.admittedAtOnceAheadOfWaitingJobs > 0 ? `${r.scenario}: ${r.admittedAtOnceAheadOfWaitingJobs} jobs in mode queue admitted at once ahead of jobs of their type waiting in the room; first: ${JSON.stringify(r.jumps[0])}` : undefined,
      ]),
    ].filter((p): p is string => p !== undefined);
    for (const p of problems) process.stdout.write(`PROBLEM: ${p}\n`);

    mkdirSync(path.join(root, 'bench-results'), { recursive: true });
    const at = new Date().toISOString();
    const file = path.join(root, 'bench-results', `queue-${at.replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          bench: 'queue',
          at,
          smoke,
          node: process.version,
          cpus: cpus().length,
          jobsPerRound: JOBS,
          rounds: ROUNDS,
          inFlight: IN_FLIGHT,
          dispatch: {
            baselinePerSec: round(baseRate),
            roomPerSec: round(roomRate),
            ratio: round(ratio, 3),
            ingressCpuUsPerJob: round(baseCpu),
            schedulerCpuUsPerJob: round(roomCpu),
            enqueuedPerSec: round(median(rounds.map((x) => x.enqueuedPerSec))),
            rounds,
          },
          notBefore: scenarios,
          appWarnings: warnings.slice(0, 20),
          problems,
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`wrote ${path.relative(root, file)}\n`);
    if (problems.length > 0) process.exitCode = 1;
  } finally {
    await Promise.all(apps.map(stopApp));
    agent.destroy();
    await nc.close().catch(() => undefined);
    await pool.end();
    await dropPgNamespace(settings.databaseUrl, ns).catch(() => undefined);
    await dropRedisNamespace(settings.redisUrl, ns).catch(() => undefined);
    await dropNatsNamespace([...settings.natsServers], ns, settings.natsAuth).catch(() => undefined);
  }
}

await main();
