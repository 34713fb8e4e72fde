import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { apiKeys, createDb, migrate, type DbHandle } from '@janus/db';
import { Limiter, compilePolicy } from '@janus/limiter';
import { connectNats, natsNames, type NatsConnection } from '@janus/messaging';
import { PolicyStore, generateApiKey } from '@janus/policy';
import { createRedis, type RedisClient } from '@janus/runtime';
import {
  dropNatsNamespace,
  dropPgNamespace,
  dropRedisNamespace,
  fetchJobViews,
  prng,
  Producers,
  RunTracker,
  startAppProcess,
  TcpProxy,
  testEnv,
  testNamespace,
  waitFor,
  type AppName,
  type AppProcess,
  type ProducerLedger,
  type ProducerRequest,
} from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';

/**
 * `kill -9` of an ingress instance while producers send to it (CONTRACT §6.1–6.3). Every app is a
 * real child process (two ingress instances, the persister, the retry-scheduler); workers (the
 * worker SDK) run the jobs and track what runs at once. Producers send single and batch requests,
 * some with an Idempotency-Key, to the instances; a request with a key that got no answer is sent
 * again, with that key, to the next instance; one refused (429, 503) is submitted anew.
 *
 * Promises checked for every submission: answered 202/200 → ends succeeded; answered 4xx/503 → never
 * runs; one submission never runs as two jobs; no job runs while its dependency is at its
 * concurrency limit; no job runs twice at once, no attempt twice.
 */
const ns = testNamespace('ingress_kill');
const env = testEnv(ns, { LOG_LEVEL: 'warn', JANUS_LOG_FORMAT: 'json' });
const settings = loadSettings(env);
const TIMEOUT_MS = 4_000;
const LIMITS = { api: 6, db: 4 } as const; // a batch (≤ 4 jobs) always fits
const TYPES: Readonly<Record<string, readonly (keyof typeof LIMITS)[]>> = { call: ['api'], store: ['db'], sync: ['api', 'db'] };
const retry = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300 };
const policyDoc: PolicyDocumentInput = {
  dependencies: { api: { concurrency: LIMITS.api }, db: { concurrency: LIMITS.db } },
  tenants: { acme: {} },
  jobTypes: Object.fromEntries(Object.entries(TYPES).map(([type, deps]) => [type, { dependencies: deps.map((name) => ({ name })), timeoutMs: TIMEOUT_MS, retry }])),
};

let db: DbHandle;
let redis: RedisClient;
let limiter: Limiter;
let nc: NatsConnection;
let apiKey: string;
let survivor: AppProcess; // the ingress instance alive throughout
const processes: AppProcess[] = [];
const workers: Worker[] = [];
const tracker = new RunTracker(LIMITS);

async function start(app: AppName, opts: { port?: number; env?: Record<string, string> } = {}): Promise<AppProcess> {
  const p = await startAppProcess(app, { ...env, ...opts.env }, opts.port !== undefined ? { port: opts.port } : {});
  processes.push(p);
  return p;
}

beforeAll(async () => {
  await migrate(settings);
  db = createDb(settings);
  const saved = await new PolicyStore(db.db).update(() => PolicyDocument.parse(policyDoc), { actor: 'test', action: 'seed' });
  if (!saved.ok) throw new Error('seeding the policy failed');
  const key = generateApiKey();
  await db.db.insert(apiKeys).values({ keyId: key.keyId, tenant: 'acme', keyHash: key.keyHash });
  apiKey = key.key;
  redis = createRedis(settings, 'ingress-kill-test');
  await redis.connect();
  limiter = new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy: compilePolicy(saved.policy.document, saved.policy.version) });
  await limiter.init({ fresh: true });
  nc = await connectNats(settings, { name: 'ingress-kill-test' });

  [survivor] = await Promise.all([start('ingress'), start('persister'), start('retry-scheduler')]);
  const names = natsNames(ns);
  const jsm = await jetstreamManager(nc);
  for (const type of Object.keys(TYPES)) await waitFor(() => jsm.consumers.info(names.streams.jobs, names.consumers.workers(type)).catch(() => undefined), 20_000);
  for (const [type, deps] of Object.entries(TYPES)) {
    workers.push(
      await startWorker({
        nc,
        namespace: ns,
        jobType: type,
        concurrency: 8, // more than any limit: the limit is what holds them back
        handler: async (job, { signal }) => {
          const end = tracker.start(job, deps);
          try {
            await new Promise((resolve) => {
              const timer = setTimeout(resolve, 20 + Math.floor(Math.random() * 40));
              signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)));
            });
          } finally {
            end();
          }
        },
      }),
    );
  }
}, 90_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await nc?.close();
  redis?.disconnect();
  await db?.close();
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
}, 60_000);

/** `jobs` jobs named `<prefix>NNN` in requests of 1 (60 %) or a batch of 2–4; `keyed` of them with an Idempotency-Key. */
function workload(prefix: string, jobs: number, keyed: number, seed: number): ProducerRequest[] {
  const random = prng(seed);
  const types = Object.keys(TYPES);
  const requests: ProducerRequest[] = [];
  let n = 0;
  while (n < jobs) {
    const size = random() < 0.6 ? 1 : Math.min(jobs - n, 2 + Math.floor(random() * 3));
    const batch = Array.from({ length: size }, () => ({ id: `${prefix}${String(n++).padStart(3, '0')}`, type: types[Math.floor(random() * types.length)]! }));
    requests.push({ jobs: batch, batch: size > 1 || random() < 0.2, keyed: random() < keyed });
  }
  return requests;
}

/**
 * Waits until every answered submission of `ledger` is succeeded (as GET /v1/jobs/{id} shows it:
 * what the persister stored), then long enough for a refused one to have run after a lease expiry
 * and a retry, and until no slot is held; returns what broke a promise, and a summary.
 */
async function verdict(ledger: ProducerLedger, prefix: string) {
  const ids = [...ledger.answered.values()];
  const views = () => fetchJobViews(survivor.url, apiKey, ids);
  const done = await waitFor(async () => {
    const all = await views();
    return ids.every((id) => all.get(id)?.status === 'succeeded') ? all : undefined;
  }, 90_000, 500).catch(() => views());
  await new Promise((r) => setTimeout(r, TIMEOUT_MS + 2_000));
  await waitFor(async () => {
    const deps = (await limiter.inspect()).dependencies;
    return deps.api?.inFlight === 0 && deps.db?.inFlight === 0;
  }, 20_000).catch(() => undefined);

  const runs = tracker.runs.filter((r) => r.submission?.startsWith(prefix));
  const ran = new Set(runs.map((r) => r.submission!));
  const jobIdsOf = new Map<string, Set<string>>();
  for (const run of runs) jobIdsOf.set(run.submission!, (jobIdsOf.get(run.submission!) ?? new Set()).add(run.jobId));
  const deps = (await limiter.inspect()).dependencies;
  return {
    notSucceeded: [...ledger.answered].filter(([, id]) => done.get(id)?.status !== 'succeeded').map(([k, id]) => `${k} ${id}: ${done.get(id)?.status ?? 'no view'}`),
    refusedRan: [...ledger.refused.keys()].filter((k) => ran.has(k)),
    strangers: [...ran].filter((k) => !ledger.answered.has(k) && !ledger.unknown.has(k) && !ledger.refused.has(k)),
    // A request sent again with its key must not be admitted twice.
    admittedTwice: [...jobIdsOf]
      .filter(([k, jobIds]) => jobIds.size > 1 || (ledger.answered.has(k) && !jobIds.has(ledger.answered.get(k)!)))
      .map(([k, jobIds]) => `${k}: ran as ${[...jobIds].join(', ')}, answered ${ledger.answered.get(k) ?? '-'}`),
    slotsHeld: { api: deps.api?.inFlight, db: deps.db?.inFlight },
    summary: {
      answered: ledger.answered.size,
      refused: ledger.refused.size,
      unknown: ledger.unknown.size,
      counts: Object.fromEntries(ledger.counts),
      runs: runs.length,
      unknownThatRan: [...ledger.unknown].filter((k) => ran.has(k)).length,
      // Answered submissions whose first attempt never ran (its message was never published; its
      // lease expired and the attempt after ran): no job fails here, so that is the only way.
      ranOnlyAfterExpiry: [...ledger.answered.keys()].filter((k) => runs.some((r) => r.submission === k) && runs.every((r) => r.submission !== k || r.attempt > 1)).length,
      peak: Object.fromEntries(tracker.peak),
    },
  };
}

function expectPromisesKept(v: Awaited<ReturnType<typeof verdict>>, ledger: ProducerLedger): void {
  expect(ledger.unanswered, 'every job was answered in the end').toEqual(new Set());
  expect(ledger.unexpected).toEqual([]);
  expect(v.notSucceeded, 'answered 202/200 but not succeeded').toEqual([]);
  expect(v.refusedRan, 'refused (4xx/503) but ran').toEqual([]);
  expect(v.strangers, 'ran but never submitted').toEqual([]);
  expect(v.admittedTwice, 'one submission, several jobs').toEqual([]);
  expect(tracker.violations, 'over a concurrency limit, or a job twice at once').toEqual([]);
  expect(tracker.repeatedAttempts(), 'an attempt run twice').toEqual([]);
  expect(v.slotsHeld).toEqual({ api: 0, db: 0 });
}

describe('ingress killed with SIGKILL', () => {
  it('mid-flight, twice, restarted in place, beside a second instance: every promise holds (300 jobs)', async () => {
    const JOBS = 300;
    const a = await start('ingress');
    // Two thirds of the sends go to `a` (its URL twice), so that several are in flight when it dies.
    const targets = [a.url, a.url, survivor.url];
    const producers = new Producers({ targets: () => targets, apiKey, concurrency: 12, requestTimeoutMs: 8_000 });
    const started = Date.now();
    const sending = producers.run(workload('m', JOBS, 0.5, 20_261_129));

    // Each kill once another quarter is answered, at a moment when requests to `a` are in flight
    // (several, if that happens soon enough); restarted in place: producers keep sending to its URL
    // (connection refused meanwhile: they go on to the next instance).
    const kills: { inFlight: number; answered: number; atMs: number }[] = [];
    for (const share of [0.25, 0.5]) {
      await waitFor(() => producers.answeredJobs >= JOBS * share && producers.inFlight(a.url) >= (producers.answeredJobs < JOBS * (share + 0.15) ? 4 : 1), 60_000, 1);
      kills.push({ inFlight: producers.inFlight(a.url), answered: producers.answeredJobs, atMs: Date.now() - started });
      await a.kill('SIGKILL');
      await start('ingress', { port: a.port });
    }
    const ledger = await sending;
    const v = await verdict(ledger, 'm');
    console.log('ingress kill -9 mid-flight:', JSON.stringify({ kills, sendingMs: Date.now() - started, ...v.summary }));

    for (const kill of kills) expect(kill.inFlight).toBeGreaterThan(0); // each kill happened mid-flight
    expectPromisesKept(v, ledger);
  }, 240_000);

  it('between admission and publish (its JetStream stalled): a never-published admission is in progress, then admitted afresh; every job runs as attempt 1', async () => {
    // An instance whose NATS connection goes through a proxy: stalled, its publishes hang after the
    // admission is taken in Redis — then it is killed. What it admitted during the stall was never
    // published (or never confirmed): the request, sent again with its key, is answered 409
    // idempotency-key-in-progress by the survivor until the pending lease expires, which releases it
    // as no attempt; then it is admitted afresh and runs as attempt 1. (A message stored just before
    // the stall, its ack held back, is run by a worker, which claims its pending lease.)
    const natsUrl = new URL(settings.natsServers[0]!);
    const proxy = await TcpProxy.start({ host: natsUrl.hostname, port: Number(natsUrl.port || 4222) });
    try {
      const c = await start('ingress', { env: { NATS_URL: proxy.url(settings.natsServers[0]!) } });
      let targets = [c.url];
      const producers = new Producers({ targets: () => targets, apiKey, concurrency: 16, requestTimeoutMs: 8_000, maxBackoffMs: 100 });
      const sending = producers.run(workload('s', 60, 1, 7)); // every request keyed: each one in flight is sent again
      await waitFor(() => producers.answeredJobs >= 10, 30_000, 5);
      proxy.stall();
      // Less than the 1.5 s publish timeout: requests pile up admitted (as slots free), unpublished.
      await new Promise((r) => setTimeout(r, 1_100));
      const inFlight = producers.inFlight(c.url);
      targets = [survivor.url];
      await c.kill('SIGKILL');
      await proxy.cut(); // what the stall held back is dropped: never reaches JetStream
      const ledger = await sending;
      const v = await verdict(ledger, 's');
      console.log('ingress kill -9 between admission and publish:', JSON.stringify({ inFlight, ...v.summary }));

      expect(inFlight).toBeGreaterThan(0);
      expect(ledger.counts.get('in_progress_409') ?? 0, 'a request sent again found its admission in progress').toBeGreaterThan(0);
      expect(v.summary.ranOnlyAfterExpiry, 'no attempt was used up by an admission that never ran').toBe(0);
      expectPromisesKept(v, ledger);
    } finally {
      await proxy.close();
    }
  }, 180_000);
});
