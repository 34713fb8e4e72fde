import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { apiKeys, createDb, migrate, type DbHandle } from '@janus/db';
import { connectNats, ensureStreams, natsNames } from '@janus/messaging';
import { PolicyStore, generateApiKey } from '@janus/policy';
import { REPO_ROOT, dropNatsNamespace, dropPgNamespace, dropRedisNamespace, startAppProcess, testEnv, testNamespace, type AppProcess } from '@janus/testing';

/**
 * The packages a user installs (issue #15), tested the way a user meets them: built and packed
 * (`npm pack`), installed from their tarballs into a scratch project outside the workspace, and
 * run with plain `node` — a worker (@janus/worker-sdk) and a producer (@janus/client) against a
 * running Janus — plus a CommonJS `require` and a strict TypeScript check against their types.
 */
const run = promisify(execFile);
const ns = testNamespace('packages');
const settings = loadSettings(testEnv(ns));
let scratch: string;
let db: DbHandle;
let apiKey: string;
const apps: AppProcess[] = [];
let tarballs: { name: string; tarball: string }[] = [];

beforeAll(async () => {
  // Build and pack first: the scratch project installs exactly what `npm pack` produced. The two
  // libraries only: the CLI (@janus/cli) is built and run by tools/cli's own test, which may be
  // running it from dist/packages/cli right now (a build here would delete it under that test).
  await run(process.execPath, ['tools/scripts/build-packages.mjs', '--pack', 'worker-sdk', 'client'], { cwd: REPO_ROOT, maxBuffer: 10 * 1024 * 1024 });
  tarballs = JSON.parse(readFileSync(path.join(REPO_ROOT, 'dist/packages/built.json'), 'utf8')) as { name: string; tarball: string }[];

  scratch = mkdtempSync(path.join(tmpdir(), 'janus-user-'));
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'janus-user', private: true, type: 'module' }));
  // From the local cache when it has the dependencies (CI ran `npm ci` just before), else the
  // registry. A Node user's TypeScript project has Node's types (fetch's Response, AbortSignal, …).
  const nodeTypes = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...tarballs.map((t) => t.tarball), `@types/node@${nodeTypes}`], { cwd: scratch, maxBuffer: 10 * 1024 * 1024 });

  // A Janus to talk to: a policy with one job type, an API key, and the three apps.
  await migrate(settings);
  db = createDb(settings);
  const saved = await new PolicyStore(db.db).update(
    () => ({ dependencies: { mail: { concurrency: 10 } }, tenants: { acme: {} }, jobTypes: { greet: { dependencies: [{ name: 'mail' }], timeoutMs: 10_000 } }, global: { shedding: { low: 0.8, normal: 1 } } }) as never,
    { actor: 'test', action: 'seed' },
  );
  if (!saved.ok) throw new Error('policy seed failed');
  const key = generateApiKey();
  await db.db.insert(apiKeys).values({ keyId: key.keyId, tenant: 'acme', keyHash: key.keyHash });
  apiKey = key.key;
  const nc = await connectNats(settings, { name: 'packages-test' });
  await ensureStreams(await jetstreamManager(nc), natsNames(ns));
  await nc.close();
  const env = testEnv(ns, { LOG_LEVEL: 'warn' });
  apps.push(...(await Promise.all([startAppProcess('ingress', env), startAppProcess('retry-scheduler', env), startAppProcess('persister', env)])));
}, 240_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.kill('SIGKILL').catch(() => undefined)));
  await db?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

/** Runs `node <file>` in the scratch project (its own node_modules only) and returns stdout. */
async function node(file: string, source: string, env: Record<string, string> = {}): Promise<string> {
  writeFileSync(path.join(scratch, file), source);
  const { stdout } = await run(process.execPath, [file], { cwd: scratch, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 120_000 });
  return stdout;
}

describe('installable packages', () => {
  it('are plain JavaScript with their types: they install outside the workspace, load with import and require, and type-check', async () => {
    for (const t of tarballs) expect(existsSync(t.tarball), t.tarball).toBe(true);
    expect(tarballs.map((t) => t.name).sort()).toEqual(['@janus/client', '@janus/worker-sdk']);
    // No workspace package leaked in as a dependency (they are private and unpublished).
    for (const t of tarballs) {
      const pkg = JSON.parse(readFileSync(path.join(scratch, 'node_modules', t.name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      expect(Object.keys(pkg.dependencies ?? {}).filter((d) => d.startsWith('@janus/'))).toEqual([]);
    }
    const esm = await node('esm.mjs', `import { startWorker, Throttled, Permanent } from '@janus/worker-sdk';\nimport { JanusClient } from '@janus/client';\nconsole.log([typeof startWorker, typeof Throttled, typeof Permanent, typeof JanusClient].join(','));\n`);
    expect(esm.trim()).toBe('function,function,function,function');
    const cjs = await node('cjs.cjs', `const { startWorker } = require('@janus/worker-sdk');\nconst { JanusClient } = require('@janus/client');\nconsole.log(typeof startWorker, typeof JanusClient);\n`);
    expect(cjs.trim()).toBe('function function');

    // A user's TypeScript against the packages' declarations (strict, and not skipping them).
    writeFileSync(
      path.join(scratch, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['esnext'], strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['check.ts'] }),
    );
    writeFileSync(
      path.join(scratch, 'check.ts'),
      [
        `import { startWorker, Throttled, type JobHandler } from '@janus/worker-sdk';`,
        `import { JanusClient } from '@janus/client';`,
        `const handler: JobHandler = async (job, ctx) => {`,
        `  if (job.attempt > 3) throw new Throttled({ retryAfterMs: 1000 });`,
        `  await ctx.extendLease(1000);`,
        `  return { actualCost: 1 };`,
        `};`,
        `const client = new JanusClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: 'k' });`,
        `export const used = [handler, startWorker, client];`,
      ].join('\n'),
    );
    const tsc = await run(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: scratch }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? String(error) }));
    expect(tsc.stdout).toBe('');
  });

  it('a worker and a producer written against them run under plain node against a running Janus', async () => {
    const ingress = apps[0]!;
    const env = { NATS_URL: settings.natsServers[0] ?? 'nats://127.0.0.1:4222', JANUS_NAMESPACE: ns, JANUS_URL: ingress.url, JANUS_API_KEY: apiKey };
    // The retry-scheduler creates the job type's worker consumer once it has loaded the policy.
    const worker = node(
      'worker.mjs',
      `import { connect } from '@nats-io/transport-node';
import { startWorker } from '@janus/worker-sdk';
const nc = await connect({ servers: process.env.NATS_URL });
let worker;
for (let i = 0; worker === undefined; i++) {
  try {
    worker = await startWorker({ nc, namespace: process.env.JANUS_NAMESPACE, jobType: 'greet', concurrency: 4, handler: async (job) => ({ actualCost: 1 }) });
  } catch (error) {
    if (i > 100) throw error;
    await new Promise((r) => setTimeout(r, 200));
  }
}
// Runs until it has handled the producer's 5 jobs, then stops gracefully.
while (worker.processed < 5) await new Promise((r) => setTimeout(r, 50));
await worker.stop();
await nc.close();
console.log(JSON.stringify({ processed: worker.processed }));
`,
      env,
    );
    const producer = await node(
      'producer.mjs',
      `import { JanusClient } from '@janus/client';
const client = new JanusClient({ baseUrl: process.env.JANUS_URL, apiKey: process.env.JANUS_API_KEY });
const ids = [];
for (let i = 0; i < 5; i++) {
  const r = await client.submit({ type: 'greet', payload: { n: i } });
  if (r.kind !== 'admitted') throw new Error('not admitted: ' + JSON.stringify(r));
  ids.push(r.body.jobId);
}
const deadline = Date.now() + 60_000;
const statuses = async () => Promise.all(ids.map(async (id) => (await client.get(id))?.status));
let now = await statuses();
while (now.some((s) => s !== 'succeeded') && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 200));
  now = await statuses();
}
console.log(JSON.stringify({ ids, statuses: now }));
`,
      env,
    );
    const produced = JSON.parse(producer.trim().split('\n').pop() ?? '{}') as { ids: string[]; statuses: string[] };
    expect(produced.statuses).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    const worked = JSON.parse((await worker).trim().split('\n').pop() ?? '{}') as { processed: number };
    expect(worked.processed).toBe(5);
  });
});
