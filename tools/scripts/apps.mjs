// Runs the four apps as child processes for `npm start` and `npm run demo`: one Node process per app
// (tsx as an --import hook, no wrapper process), each in its OWN process group, so that a Ctrl-C in
// the terminal reaches only the runner, which then stops every app exactly once.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { withNodeOptions } from './node-options.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const stateDir = path.join(root, '.janus');

export const APPS = [
  { name: 'ingress', color: 36, portVar: 'JANUS_INGRESS_PORT', port: 8080 },
  { name: 'policy-admin', color: 35, portVar: 'JANUS_ADMIN_PORT', port: 8081 },
  { name: 'persister', color: 33, portVar: 'JANUS_PERSISTER_PORT', port: 8082 },
  { name: 'retry-scheduler', color: 32, portVar: 'JANUS_SCHEDULER_PORT', port: 8083 },
];

/** The port an app listens on under this environment. */
export const portOf = (app, env) => Number(env[app.portVar] || app.port);

/** Where to reach an app: its JANUS_HOST, or loopback when it listens on every address (or by default). */
export function urlOf(app, env) {
  const host = env.JANUS_HOST && !['0.0.0.0', '::'].includes(env.JANUS_HOST) ? env.JANUS_HOST : '127.0.0.1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${portOf(app, env)}`;
}

/**
 * The development admin token: JANUS_ADMIN_TOKEN when set, else the one kept in
 * `.janus/admin-token` (git-ignored), created on first use, so that exports and dashboard
 * sessions survive restarts.
 */
export function devAdminToken(env) {
  if (env.JANUS_ADMIN_TOKEN) return { token: env.JANUS_ADMIN_TOKEN, source: 'JANUS_ADMIN_TOKEN' };
  const file = path.join(stateDir, 'admin-token');
  if (existsSync(file)) {
    const kept = readFileSync(file, 'utf8').trim();
    if (kept.length >= 32) return { token: kept, source: '.janus/admin-token' };
  }
  mkdirSync(stateDir, { recursive: true });
  const token = `dev_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, source: '.janus/admin-token (new)' };
}

/**
 * `npm start -- --nats-auth`: a second nats-server, with the users of infra/nats-auth.conf
 * (CONTRACT §4 "Who may do what"), on its own port and store (`.janus/nats-auth/`), so that the
 * default NATS on 4222 stays as it is.
 */
export const NATS_AUTH_PORT = 4223;
export const natsAuthDir = path.join(stateDir, 'nats-auth');

/**
 * nats-server reads a `$VARIABLE` from its environment as a configuration value, not as text: a
 * password that starts with a digit becomes a number, a space or a quote ends it. Letters, digits
 * and `_`, starting with a letter, are always read as the text they are.
 */
export const NATS_PASSWORD_SHAPE = /^[A-Za-z][A-Za-z0-9_]{15,}$/;

/**
 * The passwords of the two users: JANUS_NATS_PASSWORD and JANUS_WORKER_NATS_PASSWORD when set,
 * else the ones kept in `.janus/nats-auth/<user>-password` (git-ignored), created on first use like
 * the admin token. Returns the environment the apps connect with and where each password is.
 */
export function natsAuthEnv(env) {
  const password = (variable, user) => {
    if (env[variable]) return { password: env[variable], source: variable };
    const file = path.join(natsAuthDir, `${user}-password`);
    if (existsSync(file)) {
      const kept = readFileSync(file, 'utf8').trim();
      if (NATS_PASSWORD_SHAPE.test(kept)) return { password: kept, source: path.relative(root, file) };
    }
    mkdirSync(natsAuthDir, { recursive: true });
    const created = `n${randomBytes(24).toString('hex')}`;
    writeFileSync(file, `${created}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    return { password: created, source: path.relative(root, file) };
  };
  const app = password('JANUS_NATS_PASSWORD', 'janus');
  const worker = password('JANUS_WORKER_NATS_PASSWORD', 'worker');
  const url = `nats://127.0.0.1:${NATS_AUTH_PORT}`;
  return {
    url,
    app,
    worker,
    /** What nats-server needs in its environment. */
    serverEnv: { JANUS_NATS_PASSWORD: app.password, JANUS_WORKER_NATS_PASSWORD: worker.password },
    /** What the apps need: the `janus` user. */
    appEnv: { NATS_URL: url, NATS_USER: 'janus', NATS_PASSWORD: app.password },
  };
}

/**
 * The environment every app of one run shares: the admin token, and the log format. The token is
 * JANUS_ADMIN_TOKEN, or in development (NODE_ENV unset or `development`) the kept development token
 * (devAdminToken); otherwise there is none (`admin` undefined): policy-admin refuses to start
 * without one outside development (CONTRACT §1), and so does `npm start`. (Until 2026-12-01 it
 * generated one in production too, and policy-admin came up with a token nobody had set.) The
 * signing key needs nothing here: JANUS_SIGNING_KEY, required in production, or in development the
 * checkout's key (`.janus/signing-key`, @janus/config devSigningKey), which an app started alone
 * (`npx nx serve <app>`) shares and which outlives a restart.
 */
export function appsEnv(env, { logFormat } = {}) {
  const admin = env.JANUS_ADMIN_TOKEN || (env.NODE_ENV || 'development') === 'development' ? devAdminToken(env) : undefined;
  return {
    admin,
    env: {
      ...env,
      ...(admin ? { JANUS_ADMIN_TOKEN: admin.token } : {}),
      JANUS_LOG_FORMAT: env.JANUS_LOG_FORMAT || logFormat || (process.stdout.isTTY ? 'pretty' : 'json'),
    },
  };
}

/**
 * Starts every app with `env` (from appsEnv); their output lines go to `write`, prefixed with the app's name.
 * Returns handles with an `exited` promise ({ code, signal }) each.
 */
export function spawnApps(env, write = (line) => process.stdout.write(line)) {
  const tty = process.stdout.isTTY;
  const width = Math.max(...APPS.map((a) => a.name.length));
  return APPS.map((app) => {
    const main = path.join('apps', app.name, 'src', 'main.ts');
    // Each app with its own Node flags (package.json `janus.nodeOptions`, e.g. the ingress's young generation).
    const child = spawn(process.execPath, ['--import', 'tsx', main], {
      cwd: root,
      env: withNodeOptions(env, app.name),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const prefix = tty ? `\x1b[${app.color}m${app.name.padEnd(width)}\x1b[0m │ ` : `${app.name.padEnd(width)} | `;
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => write(`${prefix}${line}\n`));
    }
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    return { ...app, child, exited };
  });
}

/** SIGTERM to each running app once; SIGKILL to those still running after `graceMs`. */
export async function stopApps(children, graceMs = 20_000) {
  for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const force = setTimeout(() => {
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, graceMs);
  const results = await Promise.all(children.map((c) => c.exited));
  clearTimeout(force);
  return results;
}

/** Resolves when every app answers 200 on /readyz, or rejects after `timeoutMs`. */
export async function waitReady(env, timeoutMs = 120_000, apps = APPS) {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(apps);
  while (pending.size > 0) {
    for (const app of [...pending]) {
      try {
        const res = await fetch(`${urlOf(app, env)}/readyz`, { signal: AbortSignal.timeout(1_000) });
        if (res.status === 200) pending.delete(app);
      } catch {
        // not listening yet
      }
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs / 1000} s: ${[...pending].map((a) => a.name).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
