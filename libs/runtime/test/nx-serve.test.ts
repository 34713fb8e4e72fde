// CONTRACT §1: "Each app also runs alone, so that several instances of one app can run side by side
// (ports from the env): `npx nx serve <app>`". Two `npx nx serve ingress` from one checkout both
// serve (Nx must not treat the second as the same running task and wait for the first), and a start
// that fails exits non-zero through nx, naming the variable.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, killOnExit, REPO_ROOT, testEnv, testNamespace } from '@janus/testing';
import { loadSettings } from '@janus/config';

const ns = testNamespace('nx_serve');
const env = testEnv(ns);
const started: ChildProcess[] = [];

/**
 * The environment of a user's shell: none of the variables an Nx process running this test (`npm
 * test` is `nx run-many -t test`) gives its tasks, among them the root of its chain of invocations,
 * by which a nested `nx serve` would count as a task of the same run.
 */
function shellEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('NX_')));
}

function serve(extra: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  // its own process group, so that the app under nx goes with it
  const child = killOnExit(spawn('npx', ['nx', 'serve', 'ingress'], { cwd: REPO_ROOT, env: { ...shellEnv(), ...env, NX_DAEMON: 'false', ...extra }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
  started.push(child);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

afterAll(async () => {
  for (const c of started) if (c.pid !== undefined && c.exitCode === null) process.kill(-c.pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 2_000));
  const settings = loadSettings(env);
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('npx nx serve <app>', () => {
  it('runs two instances of one app side by side', async () => {
    const ports = [await freePort(), await freePort()];
    for (const port of ports) serve({ JANUS_INGRESS_PORT: String(port) });
    await expect.poll(async () => (await Promise.all(ports.map(healthy))).every(Boolean), { timeout: 60_000, interval: 500 }).toBe(true);
  }, 90_000);

  it('exits non-zero, naming the variable, when the app cannot start', async () => {
    const bad = serve({ JANUS_INGRESS_PORT: 'abc' });
    expect(await bad.exited).not.toBe(0);
    expect(bad.output()).toContain('JANUS_INGRESS_PORT');
  }, 60_000);
});
