import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { ensureDatabase, migrate } from '@janus/db';
import { connectNats } from '@janus/messaging';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, type AppProcess } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { produce } from './producers.js';
import type { MockApi } from './mock-api.js';
import type { RunFacts } from './report.js';
import type { Scenario } from './scenario.js';

const JOB_TYPE = 'call';

/**
 * What the scenario tells Janus about the API: its rate × `declaredRateFactor` (1: the truth), in
 * 100 ms periods where that is a whole number (the same steady rate with a small burst, so that the
 * spread between admission and the call cannot bunch calls beyond the API's own bucket), and its
 * concurrency. Every tenant with its weight; the job type with the scenario's retries.
 */
export function stormPolicy(sc: Scenario) {
  const declared = sc.api.ratePerSec * sc.declaredRateFactor;
  const rate = Number.isInteger(declared / 10) ? { limit: declared / 10, periodMs: 100 } : { limit: Math.max(1, Math.round(declared)), periodMs: 1000 };
  return PolicyDocument.parse({
    dependencies: { api: { rate, concurrency: sc.api.concurrency } },
    tenants: Object.fromEntries(sc.tenants.map((t) => [t.name, { weight: t.weight, maxQueued: 1_000_000 }])),
    jobTypes: {
      [JOB_TYPE]: {
        dependencies: [{ name: 'api', cost: sc.job.cost }],
        timeoutMs: sc.job.timeoutMs,
        retry: { maxAttempts: sc.job.maxAttempts, baseDelayMs: sc.job.baseDelayMs, maxDelayMs: sc.job.maxDelayMs },
      },
    },
  });
}

/**
 * Janus: the four apps as child processes in a namespace of their own; producers submit over HTTP
 * in mode `queue`; workers are the worker SDK with a handler that calls the API and returns its
 * Response (a 429's Retry-After becomes a throttled outcome). Retries, fairness and the API's
 * protection are Janus's.
 */
export async function runJanus(sc: Scenario, api: MockApi, apiUrl: string, log: (line: string) => void, trace = false): Promise<RunFacts> {
  const ns = `storm_${randomBytes(3).toString('hex')}`;
  const settings = loadSettings({ ...process.env, NODE_ENV: 'development', JANUS_NAMESPACE: ns });
  await ensureDatabase(settings.databaseUrl);
  await migrate(settings);
  const pool = new pg.Pool({ connectionString: settings.databaseUrl, max: 2 });
  const keys = new Map<string, string>();
  const apps: AppProcess[] = [];
  const nc = await connectNats(settings, { name: 'storm-workers' });
  try {
    await pool.query(`INSERT INTO "${ns}".policy_versions (version, document, created_by) VALUES (1, $1, 'storm')`, [JSON.stringify(stormPolicy(sc))]);
    for (const t of sc.tenants) {
      const key = `jns_${randomBytes(6).toString('hex')}_${randomBytes(24).toString('base64url')}`;
      keys.set(t.name, key);
      await pool.query(`INSERT INTO "${ns}".api_keys (key_id, tenant, key_hash) VALUES ($1, $2, $3)`, [`storm-${t.name}`, t.name, createHash('sha256').update(key).digest('hex')]);
    }
    const env = {
      NODE_ENV: 'production',
      JANUS_NAMESPACE: ns,
      JANUS_SIGNING_KEY: randomBytes(32).toString('hex'),
      JANUS_ADMIN_TOKEN: randomBytes(24).toString('hex'),
      LOG_LEVEL: 'warn',
      JANUS_LOG_FORMAT: 'json',
    };
    for (const app of ['ingress', 'retry-scheduler', 'persister', 'policy-admin'] as const) apps.push(await startAppProcess(app, { ...env, ...(trace && app === 'retry-scheduler' ? { LOG_LEVEL: 'debug' } : {}) }));
    const ingress = apps[0]!.url;

    const worker = await startWorker({
      nc,
      namespace: ns,
      jobType: JOB_TYPE,
      concurrency: sc.workers.concurrency,
      handler: async (job) => {
        const res = await fetch(`${apiUrl}/call`, { method: 'POST', headers: { 'x-tenant': job.tenant, 'x-job': job.jobId } });
        await res.arrayBuffer();
        return new Response(null, { status: res.status, headers: res.headers });
      },
    });

    const accepted: string[] = [];
    // --trace: once a second, the dependency's live state and the jobs by status (what Janus saw).
    const admin = apps[3]!.url;
    const tracer = trace
      ? setInterval(() => {
          void (async () => {
            const state = (await (await fetch(`${admin}/v1/dependencies/api/state`, { headers: { authorization: `Bearer ${env.JANUS_ADMIN_TOKEN}` } })).json()) as Record<string, unknown>;
            const rows = (await pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM "${ns}".jobs GROUP BY status`)).rows;
            const queued = (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${ns}".waiting_jobs WHERE state IN ('queued', 'dispatching')`)).rows[0]?.n ?? 0;
            const metrics = await (await fetch(`${apps[1]!.url}/metrics`)).text();
            const dispatched = metrics.split('\n').filter((l) => l.startsWith('janus_room_dispatched_total')).map((l) => l.replace('janus_room_dispatched_total', '')).join(' ');
            const s = state as { inFlight?: unknown; circuit?: unknown; effective?: { ratio?: unknown }; cooldownUntil?: unknown };
            log(`trace t=${api.elapsedS().toFixed(1)} room=${queued} jobs=${JSON.stringify(Object.fromEntries(rows.map((r) => [r.status, r.n])))} inFlight=${String(s.inFlight)} circuit=${JSON.stringify(s.circuit)} ratio=${String(s.effective?.ratio)} cooldown=${String(s.cooldownUntil)} dispatched=${dispatched}`);
          })().catch((error: unknown) => log(`trace failed: ${String(error)}`));
        }, 1_000)
      : undefined;
    api.reset();
    const produced = await produce(sc, async (tenant, seq) => {
      const res = await fetch(`${ingress}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keys.get(tenant)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: JOB_TYPE, mode: 'queue', payload: { seq } }),
      });
      const body = (await res.json().catch(() => ({}))) as { jobId?: string };
      if ((res.status === 202 || res.status === 200) && body.jobId) {
        accepted.push(body.jobId);
        return 'accepted';
      }
      return 'refused';
    });
    log(`janus: ${produced.accepted} jobs accepted in ${sc.durationS} s (${produced.refused} refused); draining`);

    const counts = async () => {
      const rows = (await pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM "${ns}".jobs WHERE job_id = ANY($1::text[]) GROUP BY status`, [accepted])).rows;
      return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
    };
    const drainUntil = Date.now() + sc.drainS * 1000;
    let c = await counts();
    while ((c.succeeded ?? 0) + (c.dead ?? 0) < accepted.length && Date.now() < drainUntil) {
      await new Promise((r) => setTimeout(r, 500));
      c = await counts();
    }
    clearInterval(tracer);
    if (trace) for (const app of apps) log(`trace: ${app.app}'s output\n${app.output().split('\n').filter((l) => /"level":(40|50|60)|none can be picked/.test(l)).slice(-80).join('\n')}`);
    await worker.stop();
    return { pipeline: 'janus', api: api.stats(), accepted: accepted.length, refused: produced.refused, succeeded: c.succeeded ?? 0, dead: c.dead ?? 0, admissionLatencyMs: produced.latencyMs };
  } finally {
    await Promise.all(apps.map((a) => a.kill('SIGTERM')));
    await nc.drain().catch(() => undefined);
    await pool.end();
    await dropRedisNamespace(settings.redisUrl, ns).catch(() => undefined);
    await dropNatsNamespace([...settings.natsServers], ns, settings.natsAuth).catch(() => undefined);
    await dropPgNamespace(settings.databaseUrl, ns).catch(() => undefined);
  }
}
