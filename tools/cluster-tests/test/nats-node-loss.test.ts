/**
 * NATS node loss: about 2,000 jobs through the loss of one node of the 3-node NATS cluster, with
 * every JetStream stream at 3 replicas (JANUS_STREAM_REPLICAS=3). The node killed (SIGKILL) is the
 * leader of the `<NS>_JOBS` stream, once ~40% of the jobs are answered, and it stays down until
 * every job is done: R3 with one node lost still has a quorum, so nothing acknowledged may be lost
 * and Janus must go on by itself (the apps and the workers reconnect to the surviving nodes).
 *
 * Every app is a real child process (policy-admin, persister, retry-scheduler, two ingress
 * instances); Redis and PostgreSQL are the everyday single local services, only NATS is the
 * cluster. Workers (the worker SDK) run the jobs on dependencies with a concurrency limit and some
 * attempts fail, so retries flow through the scheduler too. Promises checked (CONTRACT §6): the
 * streams really are R3; every submission answered 202/200 ends succeeded; none the producer was
 * refused (4xx/503) runs; no concurrency limit is exceeded; no job runs twice at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import {
  dropNatsNamespace,
  dropPgNamespace,
  dropRedisNamespace,
  fetchJobViews,
  prng,
  Producers,
  RunTracker,
  startAppProcess,
  testEnv,
  testNamespace,
  waitFor,
  type AppName,
  type AppProcess,
  type ProducerRequest,
} from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
// tools/scripts holds plain Node scripts (no Nx project): cluster.mjs starts and breaks the local clusters.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { clusterStatus, killNode, restartNode } from '../../scripts/cluster.mjs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { NATS_NODES, natsClusterUrl, natsNodeOf, type NatsNode } from '../../scripts/cluster-layout.mjs';
import { adminCall } from './support.js';

const JOBS = 2_000;
const KILL_AT = 0.4; // share of the jobs answered when the node is killed
const SEND_MS = 200_000; // the producers are done by then (else the test reports what it has)
const SETTLE_MS = 120_000; // after the producers are done: every answered job succeeded by then
const TIMEOUT_MS = 5_000; // the job types' timeout (lease): a run lost with its connection is retried after it
const LIMITS = { api: 8, db: 4 } as const;
const TYPES: Readonly<Record<string, readonly (keyof typeof LIMITS)[]>> = { call: ['api'], sync: ['api', 'db'] };
const policy = {
  dependencies: { api: { concurrency: LIMITS.api }, db: { concurrency: LIMITS.db } },
  tenants: { acme: {} },
  jobTypes: Object.fromEntries(
    Object.entries(TYPES).map(([type, deps]) => [type, { dependencies: deps.map((name) => ({ name })), timeoutMs: TIMEOUT_MS, retry: { maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 400 } }]),
  ),
};
/** Every stream Janus creates in a namespace (`<NS>_<suffix>`, libs/messaging/src/names.ts). */
const STREAM_SUFFIXES = ['JOBS', 'OUTCOMES', 'DEAD', 'LEDGER', 'APPLIED', 'RETRIES', 'EXTENSIONS'] as const;

type JobView = Awaited<ReturnType<typeof fetchJobViews>> extends Map<string, infer V> ? V : never;

const ns = testNamespace('nats_loss');
const prefix = `${ns.toUpperCase()}_`;
const jobsStream = `${prefix}JOBS`;
const servers = natsClusterUrl().split(',');
const env = testEnv(ns, { NATS_URL: natsClusterUrl(), JANUS_STREAM_REPLICAS: '3', LOG_LEVEL: 'warn', JANUS_LOG_FORMAT: 'json' });
let apiKey: string;
/** The test's own connection (JetStream manager: stream info, leaders); the workers have theirs. */
let nc: NatsConnection | undefined;
let jsm: JetStreamManager;
let workerNc: NatsConnection | undefined;
const apps = new Map<string, AppProcess>();
const workers: Worker[] = [];
const tracker = new RunTracker(LIMITS);
/** The node killed (restarted in afterAll). */
let victim: NatsNode | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errorText = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/**
 * `fn` until it resolves, for at most `timeoutMs`: JetStream API calls fail for a few seconds
 * while a new meta (or stream) leader is elected after the node loss.
 */
async function retrying<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() - started > timeoutMs) throw new Error(`${what}: still failing after ${timeoutMs} ms: ${errorText(error)}`, { cause: error });
      await sleep(250);
    }
  }
}

/** The JetStream meta leader as the nodes still up see it (their monitoring port, /jsz). */
async function metaLeader(): Promise<string | undefined> {
  for (const node of NATS_NODES) {
    if (node === victim) continue;
    const res = await fetch(`http://127.0.0.1:${node.httpPort}/jsz`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    if (res?.status !== 200) continue;
    const body = (await res.json().catch(() => undefined)) as { meta_cluster?: { leader?: string } } | undefined;
    const leader = body?.meta_cluster?.leader;
    if (leader !== undefined && leader !== '') return leader;
  }
  return undefined;
}

/**
 * Each node's start time (/varz): a surviving node whose start time changed was restarted behind
 * the test's back (another test file's global setup that found the cluster unhealthy restarts it).
 */
async function nodeStarts(): Promise<Map<string, string | undefined>> {
  const starts = new Map<string, string | undefined>();
  for (const node of NATS_NODES) {
    const res = await fetch(`http://127.0.0.1:${node.httpPort}/varz`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    const body = res?.status === 200 ? ((await res.json().catch(() => undefined)) as { start?: string } | undefined) : undefined;
    starts.set(node.name, body?.start);
  }
  return starts;
}

async function start(name: string, app: AppName): Promise<AppProcess> {
  const p = await startAppProcess(app, env);
  apps.set(name, p);
  return p;
}

function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  return adminCall(apps.get('admin')!.url, env.JANUS_ADMIN_TOKEN!, method, path, body);
}

/** Attempt 1 of a quarter of the jobs fails, attempt 2 of a twentieth: retries through the scheduler. */
function fails(jobId: string, attempt: number): boolean {
  let h = 0;
  for (const ch of jobId) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return (attempt === 1 && h % 4 === 0) || (attempt === 2 && h % 20 === 1);
}

/** The apps' warn/error log lines (JSON), counted by app and message: what they made of the loss. */
function appLogSummary(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [name, p] of apps) {
    for (const line of p.output().split('\n')) {
      if (line.trim() === '') continue;
      let msg = line.slice(0, 120);
      try {
        const parsed = JSON.parse(line) as { level?: unknown; msg?: unknown };
        if (typeof parsed.level === 'number' && parsed.level < 40) continue;
        if (typeof parsed.msg === 'string') msg = parsed.msg;
      } catch {
        // not JSON: counted by its beginning
      }
      const key = `${name}: ${msg}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  }
  return counts;
}

/** The first warn/error line (truncated) of each app and message: the evidence behind the counts. */
function appLogSamples(): Record<string, string> {
  const samples: Record<string, string> = {};
  for (const [name, p] of apps) {
    for (const line of p.output().split('\n')) {
      let parsed: { level?: unknown; msg?: unknown } | undefined;
      try {
        parsed = JSON.parse(line) as { level?: unknown; msg?: unknown };
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined || typeof parsed.msg !== 'string' || (typeof parsed.level === 'number' && parsed.level < 40)) continue;
      samples[`${name}: ${parsed.msg}`] ??= line.slice(0, 700);
    }
  }
  return samples;
}

/** The consumers that move a job to `succeeded`: `name pending/ackPending/redelivered` of each with work. */
async function backlog(manager: JetStreamManager): Promise<string> {
  const parts: string[] = [];
  for (const suffix of ['JOBS', 'OUTCOMES', 'APPLIED', 'RETRIES'] as const) {
    try {
      for await (const c of manager.consumers.list(`${prefix}${suffix}`)) {
        if (c.num_pending + c.num_ack_pending + c.num_redelivered > 0) parts.push(`${c.name} ${c.num_pending}/${c.num_ack_pending}/${c.num_redelivered}`);
      }
    } catch (error) {
      parts.push(`${suffix}: ${errorText(error)}`);
    }
  }
  return parts.join(', ') || 'no backlog';
}

/** Each stream's leader and replicas, and each consumer's leader and backlog: the state after the loss. */
async function jetStreamState(): Promise<Record<string, unknown>> {
  const state: Record<string, unknown> = {};
  for (const suffix of STREAM_SUFFIXES) {
    const name = `${prefix}${suffix}`;
    try {
      const info = await jsm.streams.info(name);
      const consumers: Record<string, unknown> = {};
      for await (const c of jsm.consumers.list(name)) {
        consumers[c.name] = { leader: c.cluster?.leader, pending: c.num_pending, ackPending: c.num_ack_pending, redelivered: c.num_redelivered, delivered: c.delivered.stream_seq, ackFloor: c.ack_floor.stream_seq };
      }
      state[suffix] = {
        leader: info.cluster?.leader,
        replicas: (info.cluster?.replicas ?? []).map((r) => `${r.name}${r.offline ? ' offline' : ''}${r.current ? ' current' : ''}`),
        messages: info.state.messages,
        consumers,
      };
    } catch (error) {
      state[suffix] = errorText(error);
    }
  }
  return state;
}

beforeAll(async () => {
  await start('admin', 'policy-admin'); // first: it applies the migrations
  await admin('PUT', '/v1/policy', policy);
  apiKey = ((await admin('POST', '/v1/tenants/acme/keys')) as { key: string }).key;
  await Promise.all([start('persister', 'persister'), start('scheduler', 'retry-scheduler'), start('ingress-a', 'ingress'), start('ingress-b', 'ingress')]);

  nc = await connect({ servers, name: 'nats-loss-test', maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2_000, maxPingOut: 2 });
  jsm = await jetstreamManager(nc);
  workerNc = await connect({ servers, name: 'nats-loss-workers', maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2_000, maxPingOut: 2 });
  for (const [type, deps] of Object.entries(TYPES)) {
    workers.push(
      await waitFor(
        () =>
          startWorker({
            nc: workerNc!,
            namespace: ns,
            jobType: type,
            concurrency: 12, // more than any limit: the limit is what holds them back
            handler: async (job, { signal }) => {
              const end = tracker.start(job, deps);
              try {
                await new Promise((resolve) => {
                  const timer = setTimeout(resolve, 20 + Math.floor(Math.random() * 50));
                  signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)));
                });
              } finally {
                end();
              }
              if (fails(job.jobId, job.attempt)) throw new Error(`attempt ${job.attempt} fails`);
            },
          }).catch(() => undefined), // until the scheduler has created the workers consumer
        20_000,
        200,
      ),
    );
  }
}, 120_000);

afterAll(async () => {
  const step = async (what: string, fn: () => Promise<unknown>, timeoutMs = 20_000): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([fn(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`not done within ${timeoutMs} ms`)), timeoutMs)))]);
    } catch (error) {
      console.warn(`nats-node-loss afterAll: ${what} failed: ${errorText(error)}`);
    } finally {
      clearTimeout(timer);
    }
  };
  await step('stop workers', () => Promise.all(workers.map((w) => w.stop())));
  await step('kill apps', () => Promise.all([...apps.values()].map((p) => p.kill('SIGKILL'))));
  await step('close worker connection', async () => workerNc?.close());
  await step('close test connection', async () => nc?.close());
  // The next test file needs the whole cluster: the node killed comes back with its data.
  if (victim !== undefined) {
    const node = victim;
    await step(`restart nats ${node.name}`, () => restartNode('nats', node.index), 60_000);
  }
  await step('drop the Redis namespace', () => dropRedisNamespace(env.REDIS_URL!, ns));
  await step('drop the NATS namespace', () => retrying('drop the NATS namespace', () => dropNatsNamespace(servers, ns), 20_000), 30_000);
  await step('drop the PostgreSQL namespace', () => dropPgNamespace(env.DATABASE_URL!, ns));
}, 180_000);

function workload(): ProducerRequest[] {
  const random = prng(2_000);
  const types = Object.keys(TYPES);
  const requests: ProducerRequest[] = [];
  let n = 0;
  while (n < JOBS) {
    const size = random() < 0.7 ? 1 : Math.min(JOBS - n, 2 + Math.floor(random() * 3));
    const jobs = Array.from({ length: size }, () => ({ id: `n${String(n++).padStart(4, '0')}`, type: types[Math.floor(random() * types.length)]! }));
    const keyed = random() < 0.5;
    // A third of the single jobs in mode "queue": they wait in the room and are admitted by the
    // scheduler's dispatcher, which publishes them through the same cluster.
    requests.push({ jobs, batch: size > 1, keyed, queue: size === 1 && random() < 0.33 });
  }
  return requests;
}

describe('NATS node loss', () => {
  it('R3 streams: killing the JOBS stream leader mid-load loses no accepted job', async () => {
    // The promise holds only with replicated streams: check they are what the apps created.
    const streams = await retrying('stream infos', async () => {
      const infos: StreamInfo[] = [];
      for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) infos.push(await jsm.streams.info(name));
      return infos;
    });
    expect(streams.map((s) => s.config.name).sort(), 'the streams of the namespace').toEqual(STREAM_SUFFIXES.map((s) => `${prefix}${s}`).sort());
    for (const info of streams) {
      expect(info.config.num_replicas, `${info.config.name} replicas`).toBe(3);
      expect(info.cluster?.leader, `${info.config.name} has a leader`).toMatch(/^n[123]$/);
      expect(info.cluster?.replicas?.length, `${info.config.name} has two replicas besides its leader`).toBe(2);
    }

    const started = Date.now();
    const a = apps.get('ingress-a')!;
    const b = apps.get('ingress-b')!;
    const producers = new Producers({ targets: () => [a.url, b.url], apiKey, concurrency: 12, requestTimeoutMs: 10_000, maxBackoffMs: 300 });
    const sending = producers.run(workload());

    await waitFor(() => producers.answeredJobs >= JOBS * KILL_AT, 180_000, 5);
    const answeredAtKill = producers.answeredJobs;
    const leaderName = (await retrying('jobs stream info', () => jsm.streams.info(jobsStream))).cluster?.leader;
    const metaBefore = await metaLeader();
    const startsBefore = await nodeStarts();
    const node = leaderName !== undefined ? natsNodeOf(leaderName) : undefined;
    if (node === undefined) throw new Error(`the ${jobsStream} stream has no leader to kill (${String(leaderName)})`);
    const probe = await jetstreamManager(nc!, { timeout: 1_000 }); // created before the kill: it asks the API once
    const killAt = Date.now();
    victim = node;
    await killNode('nats', node.index);
    const killTookMs = Date.now() - killAt;

    // How long the cluster took to elect new leaders (measured beside the load, not blocking it;
    // with a short request timeout, so that the measure is not the 5 s default timeout of a request
    // that went to the dead leader).
    const newLeader = async (find: () => Promise<string | undefined>) => {
      const leader = await waitFor(async () => {
        const name = await find().catch(() => undefined);
        return name !== undefined && name !== node.name ? name : undefined;
      }, 60_000, 100).catch(() => undefined);
      return { leader, afterMs: Date.now() - killAt };
    };
    const failover = Promise.all([newLeader(async () => (await probe.streams.info(jobsStream)).cluster?.leader), newLeader(metaLeader)]).then(([stream, meta]) => ({
      streamLeader: stream.leader,
      streamLeaderAfterMs: stream.afterMs,
      metaLeader: meta.leader,
      metaLeaderAfterMs: meta.afterMs,
    }));

    const producersDone = await Promise.race([sending.then(() => true), sleep(SEND_MS).then(() => false)]);
    const ledger = producers.ledger;
    const sentMs = Date.now() - started;
    const ids = [...ledger.answered.values()];
    // Until every answered job succeeded: each poll asks only for the jobs not seen succeeded yet
    // (succeeded is final), so that a poll stays short; when each was first seen succeeded and what
    // the consumers held meanwhile go to the log (the settling tail).
    const final = new Map<string, JobView>();
    const seenSucceeded = new Map<string, number>();
    const timeline: string[] = [];
    await waitFor(async () => {
      const left = ids.filter((id) => !seenSucceeded.has(id));
      for (const [id, view] of await fetchJobViews(b.url, apiKey, left)) {
        final.set(id, view);
        if (view.status === 'succeeded') seenSucceeded.set(id, Date.now() - started);
      }
      const still = ids.length - seenSucceeded.size;
      if (still > 0) timeline.push(`+${Date.now() - started} ${still} left; ${await backlog(probe)}`);
      return still === 0;
    }, SETTLE_MS, 1_000).catch(() => undefined);
    const settledMs = Date.now() - started;
    const failedOver = await failover;

    // Everything above ran with the node down: check it still is (it comes back in afterAll).
    const status = await clusterStatus();
    const victimUp = status.nats.find((n) => n.name === node.name)?.up;
    const startsAfter = await nodeStarts();
    const restartedBehindOurBack = NATS_NODES.filter((n) => n !== node && startsAfter.get(n.name) !== startsBefore.get(n.name)).map((n) => n.name);
    const after = await jetStreamState();

    const ran = tracker.ranSubmissions();
    const jobIdsOf = new Map<string, Set<string>>();
    for (const run of tracker.runs) if (run.submission !== undefined) jobIdsOf.set(run.submission, (jobIdsOf.get(run.submission) ?? new Set()).add(run.jobId));
    const notSucceeded = [...ledger.answered].filter(([, id]) => final.get(id)?.status !== 'succeeded');
    const byStatus: Record<string, number> = {};
    for (const [, id] of notSucceeded) byStatus[final.get(id)?.status ?? 'no view'] = (byStatus[final.get(id)?.status ?? 'no view'] ?? 0) + 1;
    const refusedRan = [...ledger.refused.keys()].filter((k) => ran.has(k));
    // What the attempts ended as, and what the last jobs to finish went through (the settling tail).
    const attemptOutcomes: Record<string, number> = {};
    for (const view of final.values()) for (const at of view.attempts) attemptOutcomes[at.outcome ?? 'none'] = (attemptOutcomes[at.outcome ?? 'none'] ?? 0) + 1;
    const runsOf = (jobId: string) => tracker.runs.filter((r) => r.jobId === jobId).map((r) => `attempt ${r.attempt} ran +${r.startedAt - started}..+${r.endedAt !== undefined ? r.endedAt - started : '?'}`);
    const tail = [...seenSucceeded]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 3)
      .map(([jobId, seenMs]) => ({
        jobId,
        seenSucceededMs: seenMs,
        runs: runsOf(jobId),
        attempts: final.get(jobId)?.attempts.map((at) => `${at.attempt} ${at.outcome ?? '-'} admitted +${Date.parse(at.admittedAt) - started} finished +${at.finishedAt !== undefined ? Date.parse(at.finishedAt) - started : '-'}`),
      }));
    const lastRunStartedMs = tracker.runs.length > 0 ? Math.max(...tracker.runs.map((r) => r.startedAt)) - started : undefined;
    console.log(
      'nats-node-loss:',
      JSON.stringify({
        killed: { node: node.name, wasStreamLeader: true, wasMetaLeader: metaBefore === node.name, metaLeaderBefore: metaBefore, answeredAtKill, atMs: killAt - started, killTookMs, ...failedOver },
        victimStillDownAtEnd: victimUp === false,
        restartedBehindOurBack,
        producersDone,
        sentMs,
        settledMs,
        answered: ledger.answered.size,
        refused: ledger.refused.size,
        unknown: ledger.unknown.size,
        counts: Object.fromEntries(ledger.counts),
        runs: tracker.runs.length,
        ranSubmissions: ran.size,
        retries: tracker.runs.filter((r) => r.attempt > 1).length,
        peak: Object.fromEntries(tracker.peak),
        repeatedAttempts: tracker.repeatedAttempts(),
        attemptOutcomes,
        lastRunStartedMs,
        tail,
        settleTimeline: timeline,
        notSucceeded: notSucceeded.length,
        byStatus,
        sample: notSucceeded.slice(0, 5).map(([k, id]) => ({ k, id, view: final.get(id), runs: tracker.runs.filter((r) => r.jobId === id) })),
        appOutputBytes: Object.fromEntries([...apps].map(([name, p]) => [name, p.output().length])),
        appLogs: appLogSummary(),
        appLogSamples: appLogSamples(),
        jetStreamAfter: after,
      }),
    );

    expect(restartedBehindOurBack, 'surviving NATS nodes restarted during the test (by someone else: run this file alone)').toEqual([]);
    expect(victimUp, `nats ${node.name} stayed down until every job was done`).toBe(false);
    expect(producersDone, `the producers were done within ${SEND_MS} ms`).toBe(true);
    expect(ledger.unanswered, 'every job was answered in the end').toEqual(new Set());
    expect(ledger.unexpected).toEqual([]);
    expect(notSucceeded.map(([k, id]) => `${k} ${id}: ${final.get(id)?.status ?? 'no view'}`), 'answered 202/200 but not succeeded').toEqual([]);
    expect(refusedRan, 'refused (4xx/503) but ran').toEqual([]);
    expect([...ran].filter((k) => !ledger.answered.has(k) && !ledger.unknown.has(k) && !ledger.refused.has(k)), 'ran but never submitted').toEqual([]);
    expect(
      [...jobIdsOf].filter(([k, jobIds]) => jobIds.size > 1 || (ledger.answered.has(k) && !jobIds.has(ledger.answered.get(k)!))).map(([k, jobIds]) => `${k}: ${[...jobIds].join(', ')}`),
      'one submission, several jobs',
    ).toEqual([]);
    expect(tracker.violations, 'over a concurrency limit, or a job twice at once').toEqual([]);
  }, 420_000);
});
