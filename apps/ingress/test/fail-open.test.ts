import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadSettings } from '@janus/config';
import { JobView } from '@janus/contracts';
import { TcpProxy, startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

/**
 * `failMode: open` (CONTRACT §3): while Redis cannot be reached, a job whose dependencies are all
 * `open` is admitted without the limiter — and it must then RUN, once, and count in its limits as
 * soon as Janus can count again. Before, such a job's lease was one Redis never knew: the worker
 * SDK's claim was refused, the job was acknowledged unrun and stayed `admitted` for ever. Its
 * tenant's budget is charged too, in Redis and in the ledger (before, only its concurrency counted).
 *
 * Through the real path: this ingress and the retry-scheduler (a child process) reach Redis through
 * TCP proxies cut together; the persister (a child process) and a worker (the SDK) run throughout.
 */
const ns = testNamespace('ingress-fail-open');
const settings = loadSettings(testEnv(ns));
let ingressRedis: TcpProxy;
let schedulerRedis: TcpProxy;
let ingress: Ingress;
let acme: string;
let scheduler: AppProcess;
const processes: AppProcess[] = [];
let worker: Worker | undefined;
const runs: { jobId: string; attempt: number }[] = [];
let running = 0;
let mostAtOnce = 0;

const HOLD_MS = 1_000;
const submit = async (n: number) => ingress.app.request('/v1/jobs', json({ type: 'warm', payload: { n } }, { authorization: `Bearer ${acme}` }));
const view = async (jobId: string): Promise<JobView | undefined> => {
  const res = await ingress.app.request(`/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${acme}` } });
  return res.status === 200 ? JobView.parse(await res.json()) : undefined;
};

beforeAll(async () => {
  ingressRedis = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
  schedulerRedis = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
  ingress = await start(ns, { REDIS_URL: ingressRedis.url(settings.redisUrl) });
  await setPolicy([ingress], {
    dependencies: { cache: { concurrency: 1, failMode: 'open' } },
    tenants: { acme: { budget: { limit: 1_000, periodMs: 3_600_000 } } },
    jobTypes: { warm: { dependencies: [{ name: 'cache' }], timeoutMs: 2_000, retry: { maxAttempts: 1 } } },
  });
  acme = (await createKey([ingress], 'acme')).key;
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  [scheduler] = await Promise.all([
    startAppProcess('retry-scheduler', { ...env, REDIS_URL: schedulerRedis.url(settings.redisUrl) }),
    startAppProcess('persister', env).then((p) => processes.push(p)),
  ]).then(([s]) => [s]);
  processes.push(scheduler);
  worker = await waitFor(
    () =>
      startWorker({
        nc: ingress.runtime.nc,
        namespace: ns,
        jobType: 'warm',
        concurrency: 4,
        ...(process.env.DEBUG_FO ? { logger: pino({ level: 'debug' }) } : {}),
        handler: async (job) => {
          runs.push({ jobId: job.jobId, attempt: job.attempt });
          running += 1;
          mostAtOnce = Math.max(mostAtOnce, running);
          await new Promise((r) => setTimeout(r, HOLD_MS));
          running -= 1;
        },
      }).catch(() => undefined),
    30_000,
    100,
  );
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  await ingress?.close();
  await ingressRedis?.close();
  await schedulerRedis?.close();
  await cleanup(settings, ns);
});

describe('a fail-open job', () => {
  it('admitted while Redis is unreachable runs once Redis answers, exactly once, and holds its slot while it runs', async () => {
    await ingressRedis.cut();
    await schedulerRedis.cut();
    const ids: string[] = [];
    for (let n = 0; n < 3; n++) {
      const res = await submit(n);
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { jobId: string }).jobId);
    }
    // Three admitted against a concurrency of 1: nothing could count them (that is what `open` means).
    const metrics = await (await ingress.app.request('/metrics')).text();
    expect(metrics).toMatch(/janus_fail_open_admissions_total\{job_type="warm",app="ingress"\} 3/);
    // Janus cannot tell yet whether they may run: the worker's claims wait — past the 2 s lease
    // their messages carry (the outage outlasts it), since no lease began while nothing counted it.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(runs).toEqual([]);

    await ingressRedis.restore();
    await schedulerRedis.restore();
    // Adopted from the persister's record, they run; while they do, their slots are held: a job
    // admitted now (through the limiter) is refused, the dependency's concurrency being full.
    await waitFor(() => runs.length > 0, 20_000, 50);
    const refused = await submit(100);
    expect(refused.status).toBe(429);
    expect((await ingress.limiter.inspect()).dependencies.cache?.inFlight).toBeGreaterThanOrEqual(1);

    const views = await Promise.all(ids.map((id) => waitFor(async () => ((await view(id))?.status === 'succeeded' ? view(id) : undefined), 30_000, 100)));
    for (const v of views) expect(v).toMatchObject({ status: 'succeeded', attempts: [{ attempt: 1, outcome: 'succeeded' }] });
    expect(runs.map((r) => r.jobId).sort()).toEqual([...ids].sort());
    expect(runs.every((r) => r.attempt === 1)).toBe(true);

    // Their slots are back: the next job is admitted and runs alone.
    await waitFor(async () => (await ingress.limiter.inspect()).dependencies.cache?.inFlight === 0, 10_000, 50);
    const next = await submit(101);
    expect(next.status).toBe(202);
    const nextId = ((await next.json()) as { jobId: string }).jobId;
    await waitFor(async () => ((await view(nextId))?.status === 'succeeded' ? true : undefined), 20_000, 100);
    expect(runs.filter((r) => r.jobId === nextId)).toHaveLength(1);
    expect(await (await fetch(`${scheduler.url}/metrics`)).text()).toMatch(/janus_fail_open_adopted_total\{app="retry-scheduler"\} 3/);

    // The budget counts all four jobs (cost 1 each): the three fail-open ones reserved as they were
    // adopted and settled as they succeeded, and the durable record (the ledger) says the same.
    expect((await ingress.limiter.usage('acme')).budget?.used).toBe(4);
    const ledger = await waitFor(async () => {
      const r = await ingress.runtime.db.pool.query<{ job_id: string; kind: string; amount: number }>(
        `SELECT job_id, kind, amount::int AS amount FROM budget_ledger WHERE job_id = ANY($1) ORDER BY job_id, kind`,
        [ids],
      );
      return r.rows.length === 6 ? r.rows : undefined;
    }, 20_000, 100);
    expect(ledger).toEqual([...ids].sort().flatMap((id) => [{ job_id: id, kind: 'reserve', amount: 1 }, { job_id: id, kind: 'settle', amount: 1 }]));
  }, 90_000);
});
