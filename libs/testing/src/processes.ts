import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/** The repository root (this file is libs/testing/src/processes.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Children that must not outlive this process: if it ends without stopping them (a crash, an
 * unhandled error, `process.exit`), the `exit` hook SIGKILLs whichever still run — a benchmark or a
 * test that dies midway must not leave apps running against the shared services.
 */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers `child` to be SIGKILLed if this process exits while it still runs; returns it. */
export function killOnExit<C extends ChildProcess>(child: C): C {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

export type AppName = 'ingress' | 'policy-admin' | 'persister' | 'retry-scheduler';

const PORT_VARIABLE: Readonly<Record<AppName, string>> = {
  ingress: 'JANUS_INGRESS_PORT',
  'policy-admin': 'JANUS_ADMIN_PORT',
  persister: 'JANUS_PERSISTER_PORT',
  'retry-scheduler': 'JANUS_SCHEDULER_PORT',
};

export interface AppProcess {
  readonly app: AppName;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (with its code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Sends `signal` (SIGKILL: `kill -9`) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts an app as a real child process (`node --import tsx apps/<app>/src/main.ts`, as `npm start`
 * runs it) with `env` (from `testEnv`, plus anything else) and its own port (a free one unless
 * given: give the old one to restart an app in its place), and waits until it answers 200 on
 * `/readyz`. Rejects, with the process's output, if it exits or is not ready in time.
 * `bundle`: run that build of the app instead (`node --enable-source-maps <bundle>`, as the image
 * runs it: tools/scripts/build-apps.mjs); its Node flags are the caller's to put in `env.NODE_OPTIONS`.
 * `until: 'healthy'`: wait only until it answers 200 on `/healthz` (it may still be starting).
 */
export async function startAppProcess(
  app: AppName,
  env: Record<string, string>,
  opts: { port?: number; readyTimeoutMs?: number; bundle?: string; until?: 'ready' | 'healthy' } = {},
): Promise<AppProcess> {
  const port = opts.port ?? (await freePort());
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of the app, written when it exits (benchmarks; npm run bench:profile).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const entry = opts.bundle ? ['--enable-source-maps', opts.bundle] : ['--import', 'tsx', path.join('apps', app, 'src', 'main.ts')];
  const child = killOnExit(
    spawn(process.execPath, [...profile, ...entry], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env, [PORT_VARIABLE[app]]: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const handle: AppProcess = {
    app,
    port,
    url,
    child,
    exited,
    output: () => output,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${app} exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
        const res = await fetch(`${url}/${opts.until === 'healthy' ? 'healthz' : 'readyz'}`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
        return res?.status === 200;
      },
      opts.readyTimeoutMs ?? 60_000,
      100,
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error instanceof Error && error.message.includes('exited early') ? error : new Error(`${app} not ready on ${url}: ${String(error)}\n${output}`);
  }
  return handle;
}

export interface RedisProcess {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** SIGKILL, and wait for the exit: every key is gone (nothing is persisted). */
  kill(): Promise<void>;
  /** A new, empty server on the same port. */
  restart(): Promise<void>;
}

/**
 * A Redis of the test's own (`redis-server` from the PATH) on a free port, with no persistence
 * (`--save '' --appendonly no`): killing and restarting it is a Redis that lost its state, without
 * touching the shared one other test files use.
 */
export async function startRedisServer(opts: { port?: number; binary?: string } = {}): Promise<RedisProcess> {
  const port = opts.port ?? (await freePort());
  const binary = opts.binary ?? 'redis-server';
  const dir = mkdtempSync(path.join(tmpdir(), 'janus-redis-'));
  let child: ChildProcess | undefined;
  let output = '';
  const launch = async () => {
    output = '';
    // Empty on every start (a server that was once a replica stored its sync here).
    rmSync(path.join(dir, 'dump.rdb'), { force: true });
    // Its own directory: a replica stores the initial sync as dump.rdb in it, never in the repository.
    const c = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child = c;
    await waitFor(
      () => {
        if (c.exitCode !== null || c.signalCode !== null) throw new Error(`redis-server exited early:\n${output}`);
        return output.includes('Ready to accept connections');
      },
      10_000,
      20,
    );
  };
  await launch();
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
  };
}
