// What the contract's loop costs with no Janus in it: the floor under `npm run bench:e2e`.
//
// CONTRACT §4 fixes the durable messages of a job: its message on JANUS_JOBS (published at
// admission, delivered to a worker and to the persister), its outcome on JANUS_OUTCOMES (published
// by the worker, delivered to the scheduler and to the persister) and, for a tenant with a budget
// (bench:e2e's policy has one), a `reserve` and a `settle` on JANUS_LEDGER (each delivered to the
// persister). #18 asks for the loop "while Janus persists every job". This benchmark runs exactly
// that and nothing more, in ONE Node process (no hand-off between apps), with no Redis, no
// admission, no lease, no validation beyond JSON.parse, and the fewest rows (one per job, updated
// by its outcome; one per ledger entry), in batches:
//   http     node:http, POST of 100 jobs → 100 job messages (+ 100 `reserve`s) published at once
//            (msgID each), then 202
//   worker   a pull consumer on the jobs: publishes the outcome (msgID), then acks the job
//   settle   a pull consumer on the outcomes: publishes the `settle` (the budget variant), acks
//   persist  a pull consumer on each stream: multi-row INSERT / UPDATE per batch, then acks
// Against BullMQ's add → complete on the same machine in the same run, as bench:e2e measures it.
// Any implementation of the contract does at least this work per job; if this floor is under half
// of BullMQ, so is every Janus.
// Usage: npx tsx tools/bench/src/e2e-floor.ts [--seconds S] [--rounds N]   (npm run bench:e2e-floor)
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JsMsg } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { connectNats } from '@janus/messaging';
import { closedLoop, E2E_LOAD, redisPid, withBullmqLoop } from './e2e-load.js';
import { cpuUs, pidsOf } from './proc-cpu.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const { values: flags } = parseArgs({ options: { seconds: { type: 'string' }, rounds: { type: 'string' } } });
const SECONDS = Number(flags.seconds ?? 15);
const ROUNDS = Math.max(1, Math.floor(Number(flags.rounds ?? 1)) || 1);
// bench:e2e's load (E2E_LOAD)
const { batch: BATCH, producers: PRODUCERS, maxOutstanding: MAX_OUTSTANDING, workerConcurrency: WORKER_CONCURRENCY } = E2E_LOAD;
const PERSIST_BATCH = 500;

const settings = loadSettings({ ...process.env, NODE_ENV: 'development' });
const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const te = new TextEncoder();
const td = new TextDecoder();

interface Phase {
  jobs: number;
  seconds: number;
  cpuUsPerJob: Record<string, number | null>;
}

/** CPU of this process, Redis, nats-server and every postgres process, per job, over `run`. */
async function measure(redis: number | undefined, run: () => Promise<{ jobs: number; seconds: number }>): Promise<Phase> {
  const postgres = pidsOf('postgres');
  const nats = pidsOf('nats-server')[0];
  const read = (): Record<string, number> => {
    const own = process.cpuUsage();
    return {
      bench: own.user + own.system,
      redis: cpuUs(redis) ?? 0,
      'nats-server': cpuUs(nats) ?? 0,
      postgres: postgres.reduce((s, p) => s + (cpuUs(p) ?? 0), 0),
    };
  };
  const before = read();
  const r = await run();
  const after = read();
  const cpuUsPerJob = Object.fromEntries(Object.keys(before).map((k) => [k, r.jobs > 0 ? round(((after[k] ?? 0) - (before[k] ?? 0)) / r.jobs) : null]));
  return { ...r, cpuUsPerJob };
}

/**
 * Closed loop for SECONDS, as bench:e2e drives both sides (closedLoop; `completed` may be a query,
 * read every 20 ms); then waits until every accepted job is done.
 */
async function drive(submit: () => Promise<number>, completed: () => number | Promise<number>): Promise<{ jobs: number; seconds: number }> {
  let doneSeen = 0;
  const poll = setInterval(() => {
    void Promise.resolve(completed()).then((n) => (doneSeen = n));
  }, 20);
  try {
    const { accepted, firstAt } = await closedLoop(SECONDS, submit, () => doneSeen);
    const deadline = Date.now() + 120_000;
    while ((await completed()) < accepted && Date.now() < deadline) await sleep(20);
    return { jobs: await completed(), seconds: (performance.now() - firstAt) / 1000 };
  } finally {
    clearInterval(poll);
  }
}

async function runBullmq(redis: number | undefined): Promise<Phase> {
  return withBullmqLoop(settings.redisUrl, { batch: BATCH, concurrency: WORKER_CONCURRENCY }, ({ submit, completed }) => measure(redis, () => drive(submit, completed)));
}

/** The floor: the contract's messages and one row per job, in one process. `ledger`: the budget's `reserve` and `settle` too. */
async function runFloor(redis: number | undefined, ledger: boolean): Promise<Phase> {
  const ns = `bench_floor_${randomBytes(3).toString('hex')}`;
  const S = ns.toUpperCase();
  const nc = await connectNats(settings, { name: 'bench-e2e-floor' });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const pool = new pg.Pool({ connectionString: settings.databaseUrl, max: 8 });
  const stops: (() => Promise<void>)[] = [];
  let server: http.Server | undefined;
  try {
    // as Janus's streams: file storage, limits retention, a duplicate window
    const stream = (name: string, subject: string) =>
      jsm.streams.add({ name: `${S}_${name}`, subjects: [`${ns}.${subject}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File, duplicate_window: 120 * 1e9 });
    await stream('JOBS', 'jobs');
    await stream('OUTCOMES', 'outcomes');
    if (ledger) await stream('LEDGER', 'ledger');
    await pool.query(`CREATE SCHEMA "${ns}"`);
    await pool.query(`CREATE TABLE "${ns}".jobs (job_id text PRIMARY KEY, tenant text, type text, payload jsonb, status text NOT NULL, admitted_at timestamptz, finished_at timestamptz)`);
    await pool.query(`CREATE TABLE "${ns}".ledger (job_id text NOT NULL, kind text NOT NULL, tenant text NOT NULL, amount int NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (job_id, kind))`);

    /** A durable pull consumer whose messages go to `handle` in batches (one per pull, at most PERSIST_BATCH). */
    const consume = async (stream: string, durable: string, handle: (msgs: JsMsg[]) => Promise<void>, maxAckPending = 20_000) => {
      await jsm.consumers.add(`${S}_${stream}`, { durable_name: durable, ack_policy: AckPolicy.Explicit, max_ack_pending: maxAckPending });
      const consumer = await js.consumers.get(`${S}_${stream}`, durable);
      const messages = await consumer.consume({ max_messages: 1_000 });
      stops.push(async () => {
        await messages.close().catch(() => undefined);
        await flushing;
      });
      let pending: JsMsg[] = [];
      let flushing: Promise<void> = Promise.resolve();
      const flush = () => {
        const batch = pending;
        pending = [];
        flushing = flushing.then(() => handle(batch)).catch((e: unknown) => {
            log(`floor: ${durable} failed: ${String(e)}`);
          });
      };
      void (async () => {
        for await (const m of messages) {
          pending.push(m);
          if (pending.length >= PERSIST_BATCH) flush();
          else if (pending.length === 1) setImmediate(() => pending.length > 0 && flush());
        }
      })();
    };
    const rows = (msgs: JsMsg[]) => msgs.map((m) => JSON.parse(td.decode(m.data)) as Record<string, unknown>);
    // persister: one row per job, its status set by the outcome (which may be stored first); one row per ledger entry
    await consume('JOBS', 'persister-jobs', async (msgs) => {
      const jobs = rows(msgs);
      await pool.query(
        `INSERT INTO "${ns}".jobs (job_id, tenant, type, payload, status, admitted_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::timestamptz[])
         ON CONFLICT (job_id) DO UPDATE SET tenant = EXCLUDED.tenant, type = EXCLUDED.type, payload = EXCLUDED.payload, admitted_at = EXCLUDED.admitted_at`,
        [jobs.map((j) => j['jobId']), jobs.map((j) => j['tenant']), jobs.map((j) => j['type']), jobs.map((j) => JSON.stringify(j['payload'])), jobs.map(() => 'admitted'), jobs.map((j) => j['admittedAt'])],
      );
      for (const m of msgs) m.ack();
    });
    await consume('OUTCOMES', 'persister-outcomes', async (msgs) => {
      const outcomes = rows(msgs);
      await pool.query(`INSERT INTO "${ns}".jobs (job_id, status, finished_at) SELECT o.job_id, o.status, now() FROM unnest($1::text[], $2::text[]) AS o(job_id, status)
         ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at`, [
        outcomes.map((o) => o['jobId']),
        outcomes.map((o) => o['outcome']),
      ]);
      for (const m of msgs) m.ack();
    });
    if (ledger) {
      await consume('LEDGER', 'persister-ledger', async (msgs) => {
        const entries = rows(msgs);
        await pool.query(
          `INSERT INTO "${ns}".ledger (job_id, kind, tenant, amount, at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[]) ON CONFLICT DO NOTHING`,
          [entries.map((e) => e['jobId']), entries.map((e) => e['kind']), entries.map((e) => e['tenant']), entries.map((e) => e['amount']), entries.map((e) => e['at'])],
        );
        for (const m of msgs) m.ack();
      });
      // the scheduler's part that writes: a `settle` per outcome
      await consume('OUTCOMES', 'scheduler', async (msgs) => {
        await Promise.all(
          rows(msgs).map((o) =>
            js.publish(`${ns}.ledger.acme`, te.encode(JSON.stringify({ tenant: 'acme', kind: 'settle', amount: 1, jobId: o['jobId'], attempt: 1, at: new Date().toISOString() })), { msgID: `${String(o['jobId'])}.1.settle` }),
          ),
        );
        for (const m of msgs) m.ack();
      });
    }
    // worker: the job's outcome published, then the job acked; at most WORKER_CONCURRENCY at once
    await consume(
      'JOBS',
      'workers',
      async (msgs) => {
        await Promise.all(
          msgs.map(async (m) => {
            const job = JSON.parse(td.decode(m.data)) as { jobId: string };
            await js.publish(`${ns}.outcomes.noop`, te.encode(JSON.stringify({ jobId: job.jobId, attempt: 1, leaseToken: 'x', outcome: 'succeeded' })), { msgID: `${job.jobId}.1` });
            m.ack();
          }),
        );
      },
      WORKER_CONCURRENCY,
    );

    // ingress: parse the batch, publish every job (and its `reserve`) at once, answer 202
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { jobs: { type: string; payload: unknown }[] };
        const admittedAt = new Date().toISOString();
        const publishes: Promise<unknown>[] = [];
        const ids: string[] = [];
        for (const j of body.jobs) {
          const jobId = randomBytes(8).toString('hex');
          ids.push(jobId);
          publishes.push(js.publish(`${ns}.jobs.${j.type}`, te.encode(JSON.stringify({ jobId, type: j.type, tenant: 'acme', attempt: 1, priority: 'normal', payload: j.payload, admittedAt })), { msgID: `${jobId}.1` }));
          if (ledger) publishes.push(js.publish(`${ns}.ledger.acme`, te.encode(JSON.stringify({ tenant: 'acme', kind: 'reserve', amount: 1, jobId, attempt: 1, at: admittedAt })), { msgID: `${jobId}.1.reserve` }));
        }
        Promise.all(publishes).then(
          () => {
            res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ jobs: ids.map((jobId) => ({ jobId, status: 'admitted' })) }));
          },
          () => res.writeHead(503).end(),
        );
      });
    });
    const listening = server;
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/jobs/batch`;
    const body = JSON.stringify({ jobs: Array.from({ length: BATCH }, (_, i) => ({ type: 'noop', payload: { i } })) });
    const submit = async () => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      return res.status === 202 ? BATCH : 0;
    };
    const succeeded = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${ns}".jobs WHERE status = 'succeeded'`)).rows[0]?.n ?? 0;
    for (let i = 0; i < 5; i++) await submit();
    while ((await succeeded()) < 5 * BATCH) await sleep(20);
    const base = await succeeded();
    return await measure(redis, () => drive(submit, async () => (await succeeded()) - base));
  } finally {
    server?.close();
    await Promise.all(stops.map((stop) => stop()));
    await nc.drain().catch(() => undefined);
    const cleanup = await connectNats(settings, { name: 'bench-e2e-floor-cleanup' });
    const m = await jetstreamManager(cleanup);
    for (const name of ['JOBS', 'OUTCOMES', 'LEDGER']) await m.streams.delete(`${S}_${name}`).catch(() => undefined);
    await cleanup.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${ns}" CASCADE`).catch(() => undefined);
    await pool.end();
  }
}

const redis = await redisPid(settings.redisUrl);
log(`e2e floor: ${SECONDS} s each, ${ROUNDS} round(s), ${PRODUCERS} producers × ${BATCH} jobs a request, ≤ ${MAX_OUTSTANDING} outstanding, ${cpus().length} CPUs`);
const results: { bullmq: Phase; jobsOutcomes: Phase; withLedger: Phase }[] = [];
const line = (name: string, p: Phase, against?: Phase) =>
  log(`${name.padEnd(30)} ${String(round(p.jobs / p.seconds, 0)).padStart(7)} jobs/s${against ? ` = ${((p.jobs / p.seconds / (against.jobs / against.seconds)) * 100).toFixed(1)}% of BullMQ` : ''}; CPU µs/job ${JSON.stringify(p.cpuUsPerJob)}`);
for (let r = 1; r <= ROUNDS; r++) {
  const bullmq = await runBullmq(redis);
  line('bullmq add → complete', bullmq);
  const jobsOutcomes = await runFloor(redis, false);
  line('floor: job + outcome', jobsOutcomes, bullmq);
  const withLedger = await runFloor(redis, true);
  line('floor: + reserve and settle', withLedger, bullmq);
  results.push({ bullmq, jobsOutcomes, withLedger });
}
mkdirSync(path.join(root, 'bench-results'), { recursive: true });
const file = path.join(root, 'bench-results', `e2e-floor-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), seconds: SECONDS, rounds: results }, null, 2));
log(`wrote ${path.relative(root, file)}`);
process.exit(0);
