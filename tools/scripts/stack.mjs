#!/usr/bin/env node
// Makes sure Redis, NATS (JetStream on) and PostgreSQL answer at their URLs, so that `npm start`,
// `npm test` and CI work on a fresh machine. For each service:
//   reachable at its URL              → use it;
//   else its Debian program exists    → start it as a local process, data under .janus/, and say so;
//   else, as root with apt-get        → install the Debian package (and say so), then start it;
//   else                              → print exactly what to install (or `docker compose up -d`), exit 1.
// Finally creates the database named in DATABASE_URL if it is missing.
// `--browser` also makes sure Debian's chromium is installed (the browser tests of `npm test` drive
// it); the same rule: installed → use it, root with apt-get → install it, else say what to run.
// `--nats-auth` (`npm start -- --nats-auth`): instead of the NATS at NATS_URL, an auth-enabled
// nats-server of its own on 127.0.0.1:4223 (store .janus/nats-auth/store) whose configuration
// includes infra/nats-auth.conf (or, for another JANUS_NAMESPACE, the block `janus nats-auth`
// generates for it), with the passwords apps.mjs keeps in .janus/nats-auth/.
// `--stop` stops what this script started (the services under .janus/), nothing else.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { NATS_AUTH_PORT, NATS_PASSWORD_SHAPE, natsAuthDir, natsAuthEnv } from './apps.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = path.join(root, '.janus');
const say = (msg) => process.stdout.write(`[stack] ${msg}\n`);
const fail = (msg) => {
  process.stderr.write(`[stack] ${msg}\n`);
  process.exit(1);
};

function parseUrl(variable, fallback, defaultPort) {
  const raw = (process.env[variable] || fallback).split(',')[0].trim();
  let url;
  try {
    url = new URL(raw);
  } catch {
    fail(`${variable}: "${raw}" is not a valid URL`);
  }
  return { raw, host: url.hostname || '127.0.0.1', port: Number(url.port || defaultPort), url };
}

/**
 * The first server of a comma-separated list (NATS_URL; REDIS_URL's cluster seeds) that answers, or
 * undefined. An entry without a scheme takes the first entry's. (Only the first was asked before: with
 * it down and another up, a separate local server was started, and the apps used it.)
 */
async function firstReachable(variable, fallback, defaultPort) {
  const entries = (process.env[variable] || fallback).split(',').map((e) => e.trim()).filter((e) => e !== '');
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(entries[0] ?? '')?.[0] ?? '';
  for (const entry of entries) {
    let url;
    try {
      url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : scheme + entry);
    } catch {
      continue;
    }
    const host = url.hostname || '127.0.0.1';
    const port = Number(url.port || defaultPort);
    if (await reachable(host, port)) return entry;
  }
  return undefined;
}

function reachable(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitFor(name, host, port, seconds = 30) {
  for (let i = 0; i < seconds * 10; i++) {
    if (await reachable(host, port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`${name} did not come up on ${host}:${port} within ${seconds}s (see .janus/*.log)`);
}

const isLocal = (host) => ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host);
const which = (cmd) => {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const firstExisting = (paths) => paths.find((p) => existsSync(p));

function startDetached(cmd, args, logName, opts = {}) {
  mkdirSync(dataDir, { recursive: true });
  const log = openSync(path.join(dataDir, logName), 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', log, log], ...opts });
  child.unref();
  return child;
}

const howToInstall = (pkg) =>
  `install it (Debian/Ubuntu: apt-get install -y ${pkg}) or run the services with Docker: docker compose up -d redis nats postgres`;

// Installing is done only where it cannot surprise anyone: as root, with apt-get on the PATH.
const canApt = () => process.getuid?.() === 0 && which('apt-get') !== undefined;
let aptUpdated = false;

/** Installs Debian packages (root with apt-get only); returns false when that is not possible here. */
function aptInstall(packages, why) {
  if (!canApt()) return false;
  say(`installing ${packages.join(' ')} with apt-get (${why}) …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Wait for another apt run (a parallel install) instead of failing on its lock.
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  if (!aptUpdated) {
    spawnSync('apt-get', [...lock, 'update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    aptUpdated = true;
  }
  const r = spawnSync('apt-get', [...lock, 'install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (r.status !== 0) fail(`apt-get install ${packages.join(' ')} failed (exit ${r.status}); install it by hand: apt-get install -y ${packages.join(' ')}`);
  say(`installed ${packages.join(' ')}`);
  return true;
}

/** The program, installing its Debian package first when it is missing and that is allowed. */
function program(find, pkg, what) {
  const found = find();
  if (found) return found;
  if (aptInstall([pkg], `${what} is not installed`)) {
    const installed = find();
    if (installed) return installed;
  }
  return undefined;
}

async function ensureRedis() {
  const { host, port, raw } = parseUrl('REDIS_URL', 'redis://127.0.0.1:6379', 6379);
  const up = await firstReachable('REDIS_URL', 'redis://127.0.0.1:6379', 6379);
  if (up !== undefined) return say(`redis      up at ${up}`);
  if (!isLocal(host)) fail(`Redis is not reachable at ${raw} (REDIS_URL) and is not local, so it cannot be started here`);
  const bin = program(() => which('redis-server') ?? firstExisting(['/usr/bin/redis-server']), 'redis-server', 'redis-server');
  if (!bin) fail(`Redis is not reachable at ${raw} and redis-server is not installed: ${howToInstall('redis-server')}`);
  if (await reachable(host, port)) return say(`redis      up at ${raw} (started by its package)`);
  const dir = path.join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  startDetached(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--pidfile', path.join(dataDir, 'redis.pid')], 'redis.log');
  await waitFor('redis', host, port);
  say(`redis      started locally on ${port} (data .janus/redis, log .janus/redis.log)`);
}

async function ensureNats() {
  const { host, port, raw } = parseUrl('NATS_URL', 'nats://127.0.0.1:4222', 4222);
  const up = await firstReachable('NATS_URL', 'nats://127.0.0.1:4222', 4222);
  if (up !== undefined) return say(`nats       up at ${up}`);
  if (!isLocal(host)) fail(`NATS is not reachable at ${raw} (NATS_URL) and is not local, so it cannot be started here`);
  const bin = program(() => which('nats-server') ?? firstExisting(['/usr/sbin/nats-server', '/usr/bin/nats-server']), 'nats-server', 'nats-server');
  if (!bin) fail(`NATS is not reachable at ${raw} and nats-server is not installed: ${howToInstall('nats-server')}`);
  if (await reachable(host, port)) return say(`nats       up at ${raw} (started by its package; it must have JetStream on)`);
  const dir = path.join(dataDir, 'nats');
  mkdirSync(dir, { recursive: true });
  startDetached(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, '-P', path.join(dataDir, 'nats.pid')], 'nats.log');
  await waitFor('nats', host, port);
  say(`nats       started locally on ${port} with JetStream (data .janus/nats, log .janus/nats.log)`);
}

/** `--nats-auth`: the auth-enabled nats-server (CONTRACT §4 "Who may do what"), started unless it answers. */
async function ensureAuthNats() {
  const auth = natsAuthEnv(process.env);
  for (const [variable, { password, source }] of [['JANUS_NATS_PASSWORD', auth.app], ['JANUS_WORKER_NATS_PASSWORD', auth.worker]]) {
    // nats-server reads it as a configuration value: `12345` would be a number, a space would end it.
    if (!NATS_PASSWORD_SHAPE.test(password)) fail(`${variable} (from ${source}) must be 16 or more letters, digits or _, starting with a letter: nats-server reads it from its environment as a configuration value`);
  }
  const host = '127.0.0.1';
  const port = NATS_AUTH_PORT;
  const where = `users janus and worker, passwords in ${auth.app.source} and ${auth.worker.source}`;
  if (await reachable(host, port)) return say(`nats-auth  up at ${auth.url} (${where})`);
  const bin = program(() => which('nats-server') ?? firstExisting(['/usr/sbin/nats-server', '/usr/bin/nats-server']), 'nats-server', 'nats-server');
  if (!bin) fail(`nats-server is not installed: ${howToInstall('nats-server')}`);
  const namespace = process.env.JANUS_NAMESPACE || 'janus';
  mkdirSync(path.join(natsAuthDir, 'store'), { recursive: true });
  // nats-server 2.9 resolves an include relative to the including file, and only so.
  let include = path.relative(natsAuthDir, path.join(root, 'infra', 'nats-auth.conf'));
  if (namespace !== 'janus') {
    const generated = spawnSync(process.execPath, ['--import', 'tsx', 'tools/cli/src/main.ts', 'nats-auth', '--namespace', namespace], { cwd: root, encoding: 'utf8' });
    if (generated.status !== 0) fail(`janus nats-auth --namespace ${namespace} failed:\n${generated.stderr}`);
    writeFileSync(path.join(natsAuthDir, 'nats-auth.conf'), generated.stdout);
    include = './nats-auth.conf';
  }
  const conf = path.join(natsAuthDir, 'server.conf');
  writeFileSync(
    conf,
    [
      '# Written by tools/scripts/stack.mjs for `npm start -- --nats-auth`; rewritten at every start.',
      `listen: ${host}:${port}`,
      `jetstream { store_dir: ${JSON.stringify(path.join(natsAuthDir, 'store'))} }`,
      `include ${JSON.stringify(include)}`,
      '',
    ].join('\n'),
  );
  startDetached(bin, ['-c', conf, '-P', path.join(dataDir, 'nats-auth.pid')], 'nats-auth.log', { env: { ...process.env, ...auth.serverEnv } });
  await waitFor('nats-server with users', host, port);
  say(`nats-auth  started locally on ${port} with JetStream and users (${namespace === 'janus' ? 'infra/nats-auth.conf' : `users generated for namespace ${namespace}`}; ${where}; data .janus/nats-auth, log .janus/nats-auth.log)`);
}

function pgBinDir() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'pg_ctl')));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(base, versions[0], 'bin') : undefined;
}

async function ensurePostgres() {
  const { host, port, raw } = parseUrl('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/janus', 5432);
  if (!(await reachable(host, port))) {
    if (!isLocal(host)) fail(`PostgreSQL is not reachable at ${host}:${port} (DATABASE_URL) and is not local`);
    const bin = program(pgBinDir, 'postgresql', 'PostgreSQL');
    if (!bin) fail(`PostgreSQL is not reachable at ${host}:${port} and is not installed: ${howToInstall('postgresql')}`);
  }
  if (!(await reachable(host, port))) {
    const bin = pgBinDir();
    const dir = path.join(dataDir, 'pg');
    const asRoot = process.getuid?.() === 0;
    // initdb and postgres refuse to run as root: run them as the `postgres` system user then.
    const run = (cmd, args) =>
      asRoot ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
    if (!existsSync(path.join(dir, 'PG_VERSION'))) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (asRoot) {
        const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
        const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
        chownSync(dir, Number(id.stdout), Number(gid.stdout));
      }
      const init = run(path.join(bin, 'initdb'), ['-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
      if (init.status !== 0) fail(`initdb failed:\n${init.stderr}`);
    }
    const sockDir = '/tmp';
    const logFile = path.join(dataDir, 'postgres.log');
    if (asRoot) writeFileSync(logFile, '', { flag: 'a' });
    if (asRoot) spawnSync('chown', ['postgres', logFile]);
    const started = run(path.join(bin, 'pg_ctl'), [
      '-D', dir, '-l', logFile, '-w', '-t', '30',
      '-o', `-p ${port} -c listen_addresses=127.0.0.1 -k ${sockDir} -c max_connections=300 -c fsync=on`,
      'start',
    ]);
    if (started.status !== 0) fail(`PostgreSQL did not start:\n${started.stderr}${started.stdout}`);
    await waitFor('postgres', host, port);
    say(`postgres   started locally on ${port} (data .janus/pg, log .janus/postgres.log)`);
  } else {
    say(`postgres   up at ${host}:${port}`);
  }
  await ensureDatabase(raw);
}

async function ensureDatabase(databaseUrl) {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  url.pathname = '/postgres';
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ connectionString: url.toString() });
    try {
      await client.connect();
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (found.rowCount === 0) {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
        say(`postgres   created database "${name}"`);
      }
      return;
    } catch (error) {
      // The server may accept TCP a moment before it accepts logins.
      if (attempt >= 20 || error.code === '42P04') {
        if (error.code === '42P04') return;
        fail(`cannot use PostgreSQL at ${databaseUrl}: ${error.message}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await client.end().catch(() => {});
    }
  }
}

/** `--stop`: stops only what this script started (the services under .janus/), nothing else. */
function stopLocal() {
  const kill = (name, pidFile) => {
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    try {
      process.kill(pid, 'SIGTERM');
      say(`${name.padEnd(10)} stopped (pid ${pid})`);
    } catch {
      say(`${name.padEnd(10)} was not running`);
    }
  };
  kill('redis', path.join(dataDir, 'redis.pid'));
  kill('nats', path.join(dataDir, 'nats.pid'));
  kill('nats-auth', path.join(dataDir, 'nats-auth.pid'));
  const pgDir = path.join(dataDir, 'pg');
  const bin = pgBinDir();
  if (bin && existsSync(path.join(pgDir, 'postmaster.pid'))) {
    const args = ['-D', pgDir, 'stop', '-m', 'fast'];
    const r = process.getuid?.() === 0
      ? spawnSync('runuser', ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), ...args], { encoding: 'utf8' })
      : spawnSync(path.join(bin, 'pg_ctl'), args, { encoding: 'utf8' });
    say(r.status === 0 ? 'postgres   stopped' : `postgres   did not stop: ${r.stderr}`);
  }
}

/** Debian's chromium for the browser tests (nothing is downloaded by npm). */
function ensureBrowser() {
  const find = () => which('chromium') ?? firstExisting(['/usr/bin/chromium']);
  const bin = program(find, 'chromium', 'chromium (the browser tests drive it)');
  if (!bin) fail(`chromium is not installed and cannot be installed here (not root, or no apt-get): the browser tests need it. Run: sudo apt-get install -y chromium`);
  say(`chromium   ${bin}`);
}

if (process.argv.includes('--stop')) {
  stopLocal();
} else {
  await ensureRedis();
  if (process.argv.includes('--nats-auth')) await ensureAuthNats();
  else await ensureNats();
  await ensurePostgres();
  if (process.argv.includes('--browser')) ensureBrowser();
}
