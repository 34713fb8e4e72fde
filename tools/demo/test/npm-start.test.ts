/**
 * `npm start` as a user runs it: it comes up, says where everything is, and one Ctrl-C (SIGINT to
 * its whole process group, as a terminal sends it) stops every app cleanly, each exactly once.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, testEnv, testNamespace } from '@janus/testing';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ns = testNamespace('npm_start');
const env = testEnv(ns);

afterAll(async () => {
  await dropRedisNamespace(env.REDIS_URL!, ns);
  await dropNatsNamespace(env.NATS_URL!, ns);
  await dropPgNamespace(env.DATABASE_URL!, ns);
});

describe('npm start', () => {
  it('prints the URLs when every app is ready, and one SIGINT to its process group stops every app cleanly with exit 0', async () => {
    const ports = { JANUS_INGRESS_PORT: await freePort(), JANUS_ADMIN_PORT: await freePort(), JANUS_PERSISTER_PORT: await freePort(), JANUS_SCHEDULER_PORT: await freePort() };
    const child = spawn('npm', ['start'], {
      cwd: root,
      // A user's environment: development mode, JSON logs so that the test can read them.
      env: { ...process.env, ...env, NODE_ENV: 'development', LOG_LEVEL: 'info', JANUS_LOG_FORMAT: 'json', ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) },
      detached: true, // its own process group, like a shell job
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

    const deadline = Date.now() + 150_000;
    while (!output.includes('Janus is running.') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(output, output).toContain('Janus is running.');
    expect(output).toContain(`http://127.0.0.1:${ports.JANUS_INGRESS_PORT}/docs`);
    expect(output).toContain(`http://127.0.0.1:${ports.JANUS_ADMIN_PORT}/dashboard`);
    // where the admin token is, never the token (a black-box audit found it printed, in production too)
    expect(output).toContain('the one in JANUS_ADMIN_TOKEN');
    expect(output).not.toContain(env.JANUS_ADMIN_TOKEN!);
    const ready = await fetch(`http://127.0.0.1:${ports.JANUS_INGRESS_PORT}/readyz`);
    expect(ready.status).toBe(200);

    process.kill(-child.pid!, 'SIGINT');
    const { code, signal } = await exited;
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });

    const lines = output.split('\n');
    for (const app of ['ingress', 'policy-admin', 'persister', 'retry-scheduler']) {
      const own = lines.filter((l) => l.startsWith(`${app} `));
      expect(own.filter((l) => l.includes('"msg":"shutting down"')), `${app} drained once`).toHaveLength(1);
      expect(own.some((l) => l.includes('"msg":"stopped"')), `${app} logged a clean stop`).toBe(true);
      // Development listens on loopback only.
      expect(own.some((l) => l.includes('"host":"127.0.0.1"') && l.includes('"msg":"listening"')), `${app} listened on 127.0.0.1`).toBe(true);
    }
    expect(output).not.toContain('second signal');
    expect(output).toContain('[start] all apps stopped cleanly');
  });
});
