import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadSettings } from '@janus/config';
import { REPO_ROOT, dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, testEnv, testNamespace, waitFor } from '@janus/testing';

/**
 * The apps built to JavaScript for production (tools/scripts/build-apps.mjs): each bundle starts
 * under plain `node` — no tsx, no TypeScript — applies the migrations it carries and becomes ready.
 */
const run = promisify(execFile);
const ns = testNamespace('apps_built');
const settings = loadSettings(testEnv(ns));
const APPS = { ingress: 'JANUS_INGRESS_PORT', 'policy-admin': 'JANUS_ADMIN_PORT', persister: 'JANUS_PERSISTER_PORT', 'retry-scheduler': 'JANUS_SCHEDULER_PORT' } as const;
const children: ChildProcess[] = [];

beforeAll(async () => {
  await run(process.execPath, ['tools/scripts/build-apps.mjs'], { cwd: REPO_ROOT });
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('apps built to JavaScript', () => {
  it('each of the four starts with plain node and becomes ready', async () => {
    const started = await Promise.all(
      Object.entries(APPS).map(async ([app, portVariable]) => {
        const bundle = path.join(REPO_ROOT, 'dist/apps', app, 'main.js');
        expect(existsSync(bundle), bundle).toBe(true);
        const port = await freePort();
        let output = '';
        const child = spawn(process.execPath, ['--enable-source-maps', bundle], {
          cwd: REPO_ROOT,
          env: { ...process.env, ...testEnv(ns, { LOG_LEVEL: 'warn' }), [portVariable]: String(port) },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
        child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
        children.push(child);
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200, 60_000, 200).catch((error: unknown) => {
          throw new Error(`${app} did not become ready: ${String(error)}\n${output.slice(-2000)}`);
        });
        return { app, port };
      }),
    );
    const ingress = started.find((s) => s.app === 'ingress')!;
    expect((await fetch(`http://127.0.0.1:${ingress.port}/openapi.json`)).status).toBe(200);
  });
});
