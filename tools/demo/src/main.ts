/**
 * `npm run demo`: the README's tour, end to end, against real services.
 *
 *   1. Janus: the one `npm start` runs, or (when nothing answers on the ports) its own four apps.
 *   2. The policy from a file: `npm run policy -- apply -f infra/policy.example.yaml`.
 *   3. An API key for tenant `acme` (POST /v1/tenants/acme/keys).
 *   4. A worker for `send-email` (the worker SDK: a handler and nothing else).
 *   5. Three jobs: one that succeeds, one that fails once and succeeds on its retry, one that always
 *      fails and ends as a dead letter after its 3 attempts; then each job's view from the API.
 *
 * Exits 0 only when every job ended as expected, so CI runs it and the tour cannot rot.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadSettingsOrExit } from '@janus/config';
import { connectWorker, startWorker } from '@janus/worker-sdk';
// tools/scripts holds plain Node scripts (no Nx project); apps.mjs is how `npm start` runs the apps.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { APPS, appsEnv, devAdminToken, root, spawnApps, stopApps, urlOf, waitReady, type RunningApp } from '../../scripts/apps.mjs';

const JOB_TYPE = 'send-email';
const TENANT = 'acme';
const say = (line: string) => process.stdout.write(`[demo] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Behaviour = 'ok' | 'flaky' | 'broken';
interface JobView {
  status: string;
  attempts: { attempt: number; outcome?: string; error?: string }[];
}

const settings = loadSettingsOrExit();
const env: Record<string, string | undefined> = { ...process.env };
const appUrl = (name: string) => {
  const app = APPS.find((a) => a.name === name);
  if (!app) throw new Error(`no app ${name}`);
  return urlOf(app, env);
};
const ingressUrl = appUrl('ingress');
const adminUrl = appUrl('policy-admin');

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) })).status === 200;
  } catch {
    return false;
  }
}

async function call<T>(method: string, url: string, token: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

// 1. Janus
let own: RunningApp[] = [];
let admin = devAdminToken(env);
if ((await answers(ingressUrl)) && (await answers(adminUrl))) {
  say(`using the Janus that runs on ${ingressUrl} (admin token from ${admin.source})`);
} else {
  say('no Janus answers on the ports: starting the four apps for the tour (logs in .janus/demo-apps.log)');
  const migrate = spawnSync(process.execPath, ['--import', 'tsx', 'libs/db/src/cli.ts'], { cwd: root, stdio: 'inherit', env });
  if (migrate.status !== 0) throw new Error('migrations failed');
  const { createWriteStream } = await import('node:fs');
  const log = createWriteStream(path.join(root, '.janus', 'demo-apps.log'), { flags: 'a' });
  const run = appsEnv(env, { logFormat: 'json' });
  if (!run.admin) throw new Error(`JANUS_ADMIN_TOKEN is required with NODE_ENV=${env.NODE_ENV ?? ''}: the tour starts apps with a development token only in development`);
  admin = run.admin;
  Object.assign(env, run.env);
  own = spawnApps(env, (line) => log.write(line));
  await waitReady(env);
}

let exitCode = 1;
// The demo's worker connects as a worker does: NATS_URL, and NATS_USER/NATS_PASSWORD when NATS
// requires users (the `worker` user of infra/nats-auth.conf), tls:// honoured.
const nc = await connectWorker({ servers: settings.natsServers, name: 'janus-demo' });
try {
  // 2. The policy from a file, with the policy CLI exactly as the README shows it.
  say('$ npm run policy -- apply -f infra/policy.example.yaml');
  const apply = spawnSync(process.execPath, ['--import', 'tsx', 'tools/cli/src/main.ts', 'policy', 'apply', '-f', 'infra/policy.example.yaml'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...env, JANUS_ADMIN_TOKEN: admin.token, JANUS_ADMIN_URL: adminUrl },
  });
  if (apply.status !== 0) throw new Error(`policy apply exited ${apply.status}`);

  // 3. An API key for the tenant.
  const key = await call<{ keyId: string; key: string }>('POST', `${adminUrl}/v1/tenants/${TENANT}/keys`, admin.token, {});
  if (key.status !== 201) throw new Error(`creating a key answered ${key.status}: ${JSON.stringify(key.body)}`);
  say(`API key ${key.body.keyId} for tenant ${TENANT}`);

  // 4. A worker. Its consumer is created when the policy naming the job type is applied, so it may
  //    take a moment to appear.
  const seen = new Map<string, number>();
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  for (let i = 0; !worker; i++) {
    try {
      worker = await startWorker({
        nc,
        namespace: settings.namespace,
        jobType: JOB_TYPE,
        concurrency: 4,
        handler: async (job) => {
          const behaviour = (job.payload as { behaviour?: Behaviour } | null)?.behaviour ?? 'ok';
          seen.set(job.jobId, job.attempt);
          say(`  worker: ${job.jobId} attempt ${job.attempt} (${behaviour})`);
          if (behaviour === 'broken' || (behaviour === 'flaky' && job.attempt === 1)) throw new Error(`the mail server said no (${behaviour})`);
        },
      });
    } catch (error) {
      if (i >= 40) throw error;
      await sleep(250);
    }
  }
  say(`worker started for ${JOB_TYPE}`);

  // 5. Jobs.
  const expected: Record<Behaviour, { status: string; attempts: number }> = {
    ok: { status: 'succeeded', attempts: 1 },
    flaky: { status: 'succeeded', attempts: 2 },
    broken: { status: 'dead', attempts: 3 },
  };
  const jobs: { behaviour: Behaviour; jobId: string }[] = [];
  for (const behaviour of Object.keys(expected) as Behaviour[]) {
    const res = await call<{ jobId: string; status: string }>('POST', `${ingressUrl}/v1/jobs`, key.body.key, { type: JOB_TYPE, payload: { to: `${behaviour}@example.com`, behaviour } });
    say(`POST /v1/jobs (${behaviour}) → ${res.status} ${JSON.stringify(res.body)}`);
    if (res.status !== 202) throw new Error(`submitting answered ${res.status}`);
    jobs.push({ behaviour, jobId: res.body.jobId });
  }

  const deadline = Date.now() + 60_000;
  const views = new Map<string, JobView>();
  while (Date.now() < deadline) {
    for (const { jobId } of jobs) {
      const view = await call<JobView>('GET', `${ingressUrl}/v1/jobs/${jobId}`, key.body.key);
      if (view.status === 200) views.set(jobId, view.body);
    }
    const done = jobs.every(({ behaviour, jobId }) => {
      const v = views.get(jobId);
      return v?.status === expected[behaviour].status && v.attempts.length === expected[behaviour].attempts && v.attempts.every((a) => a.outcome);
    });
    if (done) break;
    await sleep(500);
  }
  await worker.stop();

  say('GET /v1/jobs/{id}:');
  let ok = true;
  for (const { behaviour, jobId } of jobs) {
    const v = views.get(jobId);
    const want = expected[behaviour];
    const good = v?.status === want.status && v.attempts.length === want.attempts;
    ok &&= good;
    const attempts = v?.attempts.map((a) => `${a.attempt}:${a.outcome ?? '…'}`).join(' ') ?? 'not found';
    say(`  ${good ? '✓' : '✗'} ${behaviour.padEnd(6)} ${jobId}  ${v?.status ?? '?'} (want ${want.status})  attempts ${attempts}`);
  }
  const usage = await call<unknown>('GET', `${ingressUrl}/v1/usage`, key.body.key);
  say(`GET /v1/usage → ${usage.status} ${JSON.stringify(usage.body)}`);

  // The key was for the tour only.
  await call('DELETE', `${adminUrl}/v1/tenants/${TENANT}/keys/${key.body.keyId}`, admin.token);
  say(ok ? 'the tour ran end to end: a success, a retry that succeeded, a dead letter' : 'the tour did NOT end as expected (see ✗ above)');
  exitCode = ok ? 0 : 1;
} finally {
  await nc.drain().catch(() => undefined);
  if (own.length > 0) {
    const results = await stopApps(own);
    if (results.some((r) => r.code !== 0)) {
      say(`an app did not stop cleanly: ${JSON.stringify(results)}`);
      exitCode = 1;
    }
  }
}
process.exit(exitCode);
