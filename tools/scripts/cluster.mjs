#!/usr/bin/env node
// Starts and stops LOCAL test clusters on loopback, for tests of Janus on a Redis Cluster and a NATS
// cluster (the everyday single servers of stack.mjs on 6379/4222/5432 are left alone). Ports and the
// environment to use are in cluster-layout.mjs; everything lives under .janus/cluster/.
//   start [--redis-replicas]  Redis Cluster of 3 primaries on 7101–7103 (with --redis-replicas also one
//                             replica each on 7104–7106) and a NATS cluster n1–n3 (clients 4301–4303,
//                             routes 6301–6303, monitoring 8301–8303) with JetStream; waits until the
//                             Redis Cluster says cluster_state:ok on every node and JetStream has a meta
//                             leader on all three servers, then prints the environment to use.
//                             Clusters already up and healthy are reused; stale state of a dead run is
//                             removed first.
//   stop                      SIGTERM (SIGKILL after 5 s) to every server start started, then removes
//                             .janus/cluster/.
//   status                    each node up/down; Redis role and slots, NATS JetStream and meta leader.
//                             Exit 0 when every expected node is up, else 1.
//   kill <redis|nats> <which>     SIGKILL one node (redis: port 7101–7106 or 1–6; nats: 1–3, n1–n3 or a port).
//   restart <redis|nats> <which>  starts that node again with its configuration and data, waits until it answers.
//   env                       `export REDIS_URL=…` lines, for `eval $(node tools/scripts/cluster.mjs env)`.
// Each Redis node runs in .janus/cluster/redis-<port>/ (redis.conf, nodes.conf, AOF with appendfsync
// always so that a killed and restarted primary keeps its data, redis.log); each NATS server from
// .janus/cluster/nats-<i>.conf with its store and log in .janus/cluster/nats-<i>/; the pid files are
// .janus/cluster/<redis-<port>|nats-<i>>.pid. A missing redis-server, redis-cli or nats-server is
// installed as stack.mjs does (root with apt-get), else the script says which Debian package to install.
// Usable from tests too: startClusters, stopClusters, killNode, restartNode, clusterStatus (see
// cluster.d.mts); there a failure throws instead of exiting.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CLUSTER_HOST,
  NATS_CLUSTER_NAME,
  NATS_NODES,
  REDIS_PORTS,
  clusterEnv,
  natsNodeOf,
  redisNodePorts,
  redisPortOf,
} from './cluster-layout.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = path.join(root, '.janus');
const clusterDir = path.join(dataDir, 'cluster');
const layoutFile = path.join(clusterDir, 'layout.json');
const rel = (p) => path.relative(root, p);

const say = (msg) => process.stdout.write(`[cluster] ${msg}\n`);
/** A failure to report: the CLI prints it and exits 1, a library caller gets it thrown. */
export class ClusterError extends Error {
  name = 'ClusterError';
}
const fail = (msg) => {
  throw new ClusterError(msg);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Programs (the same rule as stack.mjs: installed → use it; root with apt-get → install it; else say what to install)

const which = (cmd) => {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const firstExisting = (paths) => paths.find((p) => existsSync(p));

const PROGRAMS = {
  'redis-server': { pkg: 'redis-server', find: () => which('redis-server') ?? firstExisting(['/usr/bin/redis-server']) },
  'redis-cli': { pkg: 'redis-tools', find: () => which('redis-cli') ?? firstExisting(['/usr/bin/redis-cli']) },
  'nats-server': { pkg: 'nats-server', find: () => which('nats-server') ?? firstExisting(['/usr/sbin/nats-server', '/usr/bin/nats-server']) },
};

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

/** The paths of the named programs, installing their Debian packages first when missing and allowed. */
function programs(names) {
  const found = Object.fromEntries(names.map((n) => [n, PROGRAMS[n].find()]));
  let missing = names.filter((n) => !found[n]);
  if (missing.length === 0) return found;
  const packages = [...new Set(missing.map((n) => PROGRAMS[n].pkg))];
  if (aptInstall(packages, `${missing.join(', ')} not installed`)) {
    for (const n of missing) found[n] = PROGRAMS[n].find();
    missing = missing.filter((n) => !found[n]);
  }
  if (missing.length > 0) {
    const still = [...new Set(missing.map((n) => PROGRAMS[n].pkg))];
    const names = missing.length > 1 ? `${missing.slice(0, -1).join(', ')} and ${missing.at(-1)}` : missing[0];
    fail(`${names} ${missing.length > 1 ? 'are' : 'is'} not installed: install the Debian package${still.length > 1 ? 's' : ''} ${still.join(' ')} (Debian/Ubuntu: sudo apt-get install -y ${still.join(' ')})`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Processes

function reachable(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: CLUSTER_HOST, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const readPid = (file) => {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
};

/** The process is alive (not a zombie) and runs `program`: a pid file's number may be reused by now. */
function isRunning(pid, program) {
  if (!pid) return false;
  if (!existsSync('/proc/self')) {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    if (state === 'Z' || state === 'X') return false;
    // Redis rewrites its title ("/usr/bin/redis-server 127.0.0.1:7101 [cluster]"); the name stays.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(program);
  } catch {
    return false;
  }
}

const logTail = (file, lines = 12) => {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
};

/** Starts a server in its own process group, output appended to `logFile`, its pid in `pidFile`. */
function startDetached(cmd, args, logFile, pidFile, opts = {}) {
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log = openSync(logFile, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', log, log], ...opts });
  closeSync(log);
  const state = { child, exited: false, error: undefined };
  child.once('error', (error) => {
    state.error = error;
    state.exited = true;
  });
  child.once('exit', () => {
    state.exited = true;
  });
  if (child.pid) writeFileSync(pidFile, `${child.pid}\n`);
  child.unref();
  return state;
}

/** Polls `check` until it returns a truthy value; fails when `started` died or after `seconds`. */
async function waitUntil(what, check, { seconds = 30, started, log } = {}) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (started?.exited) fail(`${what}: the server exited${started.error ? ` (${started.error.message})` : ''}; ${log ? `the end of ${rel(log)}:\n${logTail(log)}` : ''}`);
    if (Date.now() > deadline) fail(`${what}: not within ${seconds}s${log ? `; the end of ${rel(log)}:\n${logTail(log)}` : ''}`);
    await sleep(200);
  }
}

/** SIGTERM to each, SIGKILL to what still runs after `graceMs`; resolves when all are gone. */
async function terminate(procs, graceMs = 5000) {
  const live = procs.filter((p) => isRunning(p.pid, p.program));
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + graceMs;
  while (live.some((p) => isRunning(p.pid, p.program)) && Date.now() < deadline) await sleep(100);
  const stubborn = live.filter((p) => isRunning(p.pid, p.program));
  for (const p of stubborn) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  const killDeadline = Date.now() + 5000;
  while (stubborn.some((p) => isRunning(p.pid, p.program)) && Date.now() < killDeadline) await sleep(100);
  return { stopped: live, killed: stubborn };
}

/** Runs a program to its end (at most `timeoutMs`), with its output. */
function run(cmd, args, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ status: -1, out: `${out}${error.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, out: signal ? `${out}\n(ended by ${signal})` : out });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Redis

const redisDir = (port) => path.join(clusterDir, `redis-${port}`);
const redisConf = (port) => path.join(redisDir(port), 'redis.conf');
const redisLog = (port) => path.join(redisDir(port), 'redis.log');
const redisPidFile = (port) => path.join(clusterDir, `redis-${port}.pid`);

/** One command to one node (RESP over a socket, so that status needs no redis-cli): { value } or { error }. */
function redisCommand(port, args, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: CLUSTER_HOST, port });
    let buf = Buffer.alloc(0);
    let finished = false;
    const done = (reply) => {
      if (finished) return;
      finished = true;
      socket.destroy();
      resolve(reply);
    };
    socket.setTimeout(timeoutMs, () => done({ error: 'timeout' }));
    socket.once('error', (e) => done({ error: e.code || e.message }));
    socket.once('close', () => done({ error: 'connection closed' }));
    socket.once('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.on('data', (data) => {
      buf = Buffer.concat([buf, data]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const type = String.fromCharCode(buf[0]);
      const line = buf.subarray(1, eol).toString();
      if (type === '+' || type === ':') return done({ value: line });
      if (type === '-') return done({ error: line });
      if (type !== '$') return done({ error: `unexpected reply type ${type}` });
      const len = Number(line);
      if (len < 0) return done({ value: null });
      if (buf.length >= eol + 2 + len) done({ value: buf.subarray(eol + 2, eol + 2 + len).toString() });
    });
  });
}

const redisPing = async (port) => (await redisCommand(port, ['PING'])).value === 'PONG';

/** `key:value` lines of CLUSTER INFO / INFO as an object; undefined when the node does not answer. */
async function redisInfo(port, args) {
  const reply = await redisCommand(port, args);
  if (typeof reply.value !== 'string') return undefined;
  return Object.fromEntries(
    reply.value
      .split(/\r?\n/)
      .filter((l) => l.includes(':') && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

/** CLUSTER NODES as seen by `port`: [{ id, port, flags[], primaryId, slots[], link }]; undefined when it does not answer. */
async function clusterNodes(port) {
  const reply = await redisCommand(port, ['CLUSTER', 'NODES']);
  if (typeof reply.value !== 'string') return undefined;
  return reply.value
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, addr, flags, primaryId, , , , link, ...slots] = line.trim().split(' ');
      // 127.0.0.1:7101@17101[,hostname]
      const hostPort = addr.split('@')[0];
      return { id, port: Number(hostPort.slice(hostPort.lastIndexOf(':') + 1)), flags: flags.split(','), primaryId, link, slots };
    });
}

const isPrimary = (n) => n.flags.includes('master');
const isFailing = (n) => n.flags.some((f) => ['fail', 'fail?', 'handshake', 'noaddr'].includes(f));

/** Is the Redis Cluster of these ports up: every node answers with cluster_state:ok and sees them all, healthy? */
async function redisHealth(ports) {
  for (const port of ports) {
    const info = await redisInfo(port, ['CLUSTER', 'INFO']);
    if (!info) return { ok: false, reason: `node ${port} does not answer` };
    if (info.cluster_state !== 'ok') return { ok: false, reason: `node ${port} has cluster_state:${info.cluster_state}` };
  }
  const nodes = await clusterNodes(ports[0]);
  if (!nodes) return { ok: false, reason: `node ${ports[0]} does not answer CLUSTER NODES` };
  const seen = nodes.map((n) => n.port).sort((a, b) => a - b);
  if (seen.join(',') !== [...ports].sort((a, b) => a - b).join(',')) return { ok: false, reason: `the cluster has nodes ${seen.join(' ')}, not ${ports.join(' ')}` };
  const failing = nodes.filter(isFailing);
  if (failing.length > 0) return { ok: false, reason: `node ${failing.map((n) => n.port).join(' ')} is flagged ${failing[0].flags.join(',')}` };
  const withSlots = nodes.filter((n) => isPrimary(n) && n.slots.length > 0);
  if (withSlots.length !== REDIS_PORTS.length) return { ok: false, reason: `${withSlots.length} primaries with slots, not ${REDIS_PORTS.length}` };
  return { ok: true };
}

const readLayout = () => {
  try {
    return JSON.parse(readFileSync(layoutFile, 'utf8'));
  } catch {
    return undefined;
  }
};

const redisStateExists = () => redisNodePorts(true).some((p) => existsSync(redisDir(p)) || existsSync(redisPidFile(p)));

/** Stops the Redis servers this script started (per their pid files) and removes their state. */
async function cleanRedis() {
  const procs = redisNodePorts(true).map((port) => ({ pid: readPid(redisPidFile(port)), program: 'redis-server' }));
  const { stopped } = await terminate(procs);
  if (stopped.length > 0) say(`redis      stopped ${stopped.length} server(s) of the previous run`);
  for (const port of redisNodePorts(true)) {
    rmSync(redisDir(port), { recursive: true, force: true });
    rmSync(redisPidFile(port), { force: true });
  }
  rmSync(layoutFile, { force: true });
}

function writeRedisConf(port) {
  const dir = redisDir(port);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    redisConf(port),
    [
      `# Written by tools/scripts/cluster.mjs: node ${port} of the local test Redis Cluster; rewritten when the cluster is created.`,
      `port ${port}`,
      `bind ${CLUSTER_HOST}`,
      'protected-mode no',
      'daemonize no',
      `dir ${JSON.stringify(dir)}`,
      `logfile ${JSON.stringify(redisLog(port))}`,
      'cluster-enabled yes',
      'cluster-config-file nodes.conf',
      'cluster-node-timeout 2000',
      // Losing one primary makes only its slots unavailable, not the whole cluster.
      'cluster-require-full-coverage no',
      'cluster-allow-reads-when-down no',
      'save ""',
      // Every write on disk before it is acknowledged: a killed and restarted primary comes back with its data.
      'appendonly yes',
      'appendfsync always',
      '',
    ].join('\n'),
  );
}

function startRedisNode(bin, port) {
  return startDetached(bin, [redisConf(port)], redisLog(port), redisPidFile(port), { cwd: redisDir(port) });
}

async function startRedis({ redisReplicas, bins }) {
  const ports = redisNodePorts(redisReplicas);
  const layout = readLayout();
  if (redisStateExists()) {
    if (layout && Boolean(layout.redisReplicas) === redisReplicas) {
      const health = await redisHealth(ports);
      if (health.ok) {
        say(`redis      cluster up and healthy on ${ports.join(' ')}: reusing it`);
        return 'reused';
      }
      say(`redis      the cluster under .janus/cluster is not healthy (${health.reason}): removing it and starting afresh`);
    } else if (layout) {
      say(`redis      the cluster under .janus/cluster has ${layout.redisReplicas ? '3 primaries and 3 replicas' : '3 primaries'}, ${redisReplicas ? 'replicas' : 'no replicas'} asked for: removing it and starting afresh`);
    } else {
      say('redis      removing stale state of a previous run under .janus/cluster');
    }
  }
  await cleanRedis();
  for (const port of ports) {
    for (const p of [port, port + 10000]) {
      if (await reachable(p)) fail(`port ${p} (redis node ${port}${p !== port ? ', cluster bus' : ''}) is in use by a process this script did not start (or whose pid file is gone): stop it first`);
    }
  }
  mkdirSync(clusterDir, { recursive: true });
  writeFileSync(layoutFile, `${JSON.stringify({ redisReplicas })}\n`);
  const started = ports.map((port) => {
    writeRedisConf(port);
    return { port, proc: startRedisNode(bins['redis-server'], port) };
  });
  await Promise.all(
    started.map(({ port, proc }) => waitUntil(`redis node ${port} answering PING`, () => redisPing(port), { started: proc, log: redisLog(port) })),
  );
  const created = await run(bins['redis-cli'], [
    '--cluster', 'create', ...ports.map((p) => `${CLUSTER_HOST}:${p}`),
    '--cluster-replicas', redisReplicas ? '1' : '0', '--cluster-yes',
  ]);
  if (created.status !== 0 || !created.out.includes('All 16384 slots covered')) {
    fail(`redis-cli --cluster create failed (exit ${created.status}):\n${created.out.trim()}`);
  }
  await waitUntil(
    'redis cluster_state:ok on every node',
    async () => {
      for (const port of ports) if ((await redisInfo(port, ['CLUSTER', 'INFO']))?.cluster_state !== 'ok') return false;
      return true;
    },
    { seconds: 30 },
  );
  if (redisReplicas) {
    // A replica can take over only once it has synchronised with its primary.
    await waitUntil(
      'redis replicas synchronised with their primaries',
      async () => {
        const nodes = (await clusterNodes(ports[0])) ?? [];
        const replicas = nodes.filter((n) => n.flags.includes('slave'));
        if (replicas.length !== ports.length - REDIS_PORTS.length) return false;
        for (const r of replicas) if ((await redisInfo(r.port, ['INFO', 'replication']))?.master_link_status !== 'up') return false;
        return true;
      },
      { seconds: 30 },
    );
  }
  const nodes = (await clusterNodes(ports[0])) ?? [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const n of [...nodes].sort((a, b) => a.port - b.port)) {
    say(
      `redis      ${n.port} ${isPrimary(n) ? `primary  slots ${n.slots.join(' ')}` : `replica of ${byId.get(n.primaryId)?.port ?? n.primaryId}`}  (dir ${rel(redisDir(n.port))})`,
    );
  }
  say(`redis      cluster created: ${REDIS_PORTS.length} primaries${redisReplicas ? ` and ${ports.length - REDIS_PORTS.length} replicas` : ''}, cluster_state:ok on every node`);
  return 'started';
}

// ---------------------------------------------------------------------------------------------
// NATS

const natsDir = (node) => path.join(clusterDir, `nats-${node.index}`);
const natsConf = (node) => path.join(clusterDir, `nats-${node.index}.conf`);
const natsLog = (node) => path.join(natsDir(node), 'nats.log');
const natsPidFile = (node) => path.join(clusterDir, `nats-${node.index}.pid`);

/** GET /jsz of a node's monitoring port: the parsed JSON, undefined when it does not answer. */
function jsz(node, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: CLUSTER_HOST, port: node.httpPort, path: '/jsz', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** The JetStream meta leader this node knows of, when it has one in a cluster of 3. */
const metaLeader = (j) =>
  j && !j.disabled && j.meta_cluster?.leader && j.meta_cluster.cluster_size === NATS_NODES.length ? j.meta_cluster.leader : undefined;

/** Is the NATS cluster up: every client port answers and all three servers agree on a JetStream meta leader? */
async function natsHealth() {
  const leaders = [];
  for (const node of NATS_NODES) {
    if (!(await reachable(node.port))) return { ok: false, reason: `${node.name} does not answer on ${node.port}` };
    const j = await jsz(node);
    if (!j) return { ok: false, reason: `${node.name} does not answer /jsz on ${node.httpPort}` };
    const leader = metaLeader(j);
    if (!leader) return { ok: false, reason: `${node.name} knows no JetStream meta leader of a cluster of ${NATS_NODES.length}` };
    leaders.push(leader);
  }
  if (new Set(leaders).size !== 1) return { ok: false, reason: `the servers name different meta leaders (${leaders.join(' ')})` };
  return { ok: true, leader: leaders[0] };
}

const natsStateExists = () => NATS_NODES.some((n) => existsSync(natsDir(n)) || existsSync(natsConf(n)) || existsSync(natsPidFile(n)));

/** Stops the NATS servers this script started (per their pid files) and removes their state. */
async function cleanNats() {
  const { stopped } = await terminate(NATS_NODES.map((n) => ({ pid: readPid(natsPidFile(n)), program: 'nats-server' })));
  if (stopped.length > 0) say(`nats       stopped ${stopped.length} server(s) of the previous run`);
  for (const n of NATS_NODES) {
    rmSync(natsDir(n), { recursive: true, force: true });
    rmSync(natsConf(n), { force: true });
    rmSync(natsPidFile(n), { force: true });
  }
}

function writeNatsConf(node) {
  mkdirSync(path.join(natsDir(node), 'store'), { recursive: true });
  const q = JSON.stringify;
  writeFileSync(
    natsConf(node),
    [
      `# Written by tools/scripts/cluster.mjs: server ${node.name} of the local test NATS cluster ${NATS_CLUSTER_NAME}; rewritten when the cluster is created.`,
      // A clustered JetStream needs a server_name on every server and a cluster name.
      `server_name: ${node.name}`,
      `listen: ${q(`${CLUSTER_HOST}:${node.port}`)}`,
      `http: ${q(`${CLUSTER_HOST}:${node.httpPort}`)}`,
      'jetstream {',
      `  store_dir: ${q(path.join(natsDir(node), 'store'))}`,
      '}',
      'cluster {',
      `  name: ${NATS_CLUSTER_NAME}`,
      `  listen: ${q(`${CLUSTER_HOST}:${node.routePort}`)}`,
      // Every server lists all three routes (its own included: nats-server notices and skips it).
      '  routes: [',
      ...NATS_NODES.map((n) => `    ${q(`nats-route://${CLUSTER_HOST}:${n.routePort}`)}`),
      '  ]',
      '}',
      '',
    ].join('\n'),
  );
}

function startNatsNode(bin, node) {
  return startDetached(bin, ['-c', natsConf(node)], natsLog(node), natsPidFile(node), { cwd: natsDir(node) });
}

async function startNats({ bins }) {
  if (natsStateExists()) {
    const health = await natsHealth();
    if (health.ok) {
      say(`nats       cluster up and healthy on ${NATS_NODES.map((n) => n.port).join(' ')} (JetStream meta leader ${health.leader}): reusing it`);
      return 'reused';
    }
    say(`nats       the cluster under .janus/cluster is not healthy (${health.reason}): removing it and starting afresh`);
  }
  await cleanNats();
  for (const node of NATS_NODES) {
    for (const [p, what] of [[node.port, 'client'], [node.routePort, 'route'], [node.httpPort, 'monitoring']]) {
      if (await reachable(p)) fail(`port ${p} (nats ${node.name} ${what}) is in use by a process this script did not start (or whose pid file is gone): stop it first`);
    }
  }
  const started = NATS_NODES.map((node) => {
    writeNatsConf(node);
    return { node, proc: startNatsNode(bins['nats-server'], node) };
  });
  await Promise.all(
    started.map(({ node, proc }) => waitUntil(`nats ${node.name} answering on ${node.port}`, () => reachable(node.port), { started: proc, log: natsLog(node) })),
  );
  const health = await waitUntil(
    'nats JetStream meta leader agreed on by all three servers',
    async () => {
      const h = await natsHealth();
      return h.ok ? h : undefined;
    },
    { seconds: 30 },
  );
  for (const node of NATS_NODES) {
    say(`nats       ${node.name} clients ${node.port}, routes ${node.routePort}, monitoring ${node.httpPort}  (${rel(natsConf(node))}, log ${rel(natsLog(node))})`);
  }
  say(`nats       cluster ${NATS_CLUSTER_NAME} up with JetStream, meta leader ${health.leader}`);
  return 'started';
}

// ---------------------------------------------------------------------------------------------
// Commands

const envLines = (prefix = '') => Object.entries(clusterEnv()).map(([k, v]) => `${prefix}${k}=${v}`);

/** `start`: both clusters up and healthy (reused when they are); returns the environment to use them with. */
export async function startClusters({ redisReplicas = false } = {}) {
  const bins = programs(['redis-server', 'redis-cli', 'nats-server']);
  mkdirSync(clusterDir, { recursive: true });
  const redis = await startRedis({ redisReplicas: Boolean(redisReplicas), bins });
  const nats = await startNats({ bins });
  say('environment for Janus on these clusters (or: eval $(node tools/scripts/cluster.mjs env)):');
  for (const line of envLines()) process.stdout.write(`${line}\n`);
  return { env: clusterEnv(), redis, nats };
}

/** `stop`: every server `start` started (SIGTERM, SIGKILL after 5 s), then .janus/cluster/ removed. */
export async function stopClusters() {
  if (!existsSync(clusterDir)) {
    say('nothing to stop (no .janus/cluster)');
    return { stopped: 0 };
  }
  const procs = readdirSync(clusterDir)
    .map((f) => /^(redis|nats)-(\d+)\.pid$/.exec(f))
    .filter(Boolean)
    .map(([file, kind, id]) => ({ name: `${kind} ${kind === 'nats' ? `n${id}` : id}`, pid: readPid(path.join(clusterDir, file)), program: `${kind}-server` }));
  const { stopped, killed } = await terminate(procs);
  for (const p of stopped) say(`${p.name.padEnd(10)} stopped (pid ${p.pid}${killed.includes(p) ? ', SIGKILL after 5 s' : ''})`);
  rmSync(clusterDir, { recursive: true, force: true });
  say(`removed ${rel(clusterDir)}`);
  return { stopped: stopped.length };
}

/** The node `kind`/`which` names, with its files and port. */
function target(kind, which) {
  if (kind === 'redis') {
    const port = redisPortOf(which);
    if (port === undefined) fail(`no redis node "${which}": give its port (7101–7106) or its number (1–6)`);
    return { kind, label: `redis ${port}`, port, program: 'redis-server', pidFile: redisPidFile(port), conf: redisConf(port), log: redisLog(port) };
  }
  if (kind === 'nats') {
    const node = natsNodeOf(which);
    if (!node) fail(`no nats node "${which}": give its number (1–3), name (n1–n3) or one of its ports`);
    return { kind, node, label: `nats ${node.name}`, port: node.port, program: 'nats-server', pidFile: natsPidFile(node), conf: natsConf(node), log: natsLog(node) };
  }
  return fail(`unknown kind "${kind}": redis or nats`);
}

/** `kill`: SIGKILL to one node. */
export async function killNode(kind, which) {
  const t = target(kind, which);
  const pid = readPid(t.pidFile);
  if (!isRunning(pid, t.program)) {
    say(`${t.label} was not running`);
    return { pid: undefined, port: t.port };
  }
  process.kill(pid, 'SIGKILL');
  await waitUntil(`${t.label} (pid ${pid}) gone after SIGKILL`, async () => !isRunning(pid, t.program) && !(await reachable(t.port)), { seconds: 10 });
  rmSync(t.pidFile, { force: true });
  say(`${t.label} killed (SIGKILL to pid ${pid})`);
  return { pid, port: t.port };
}

/** `restart`: one node started again with its configuration and data; resolves when it answers. */
export async function restartNode(kind, which) {
  const t = target(kind, which);
  if (!existsSync(t.conf)) fail(`${t.label} has no configuration under ${rel(clusterDir)} (${rel(t.conf)}): run \`node tools/scripts/cluster.mjs start\` first`);
  const running = readPid(t.pidFile);
  if (isRunning(running, t.program)) {
    say(`${t.label} is already running (pid ${running})`);
    return { pid: running, port: t.port };
  }
  if (await reachable(t.port)) fail(`port ${t.port} of ${t.label} is in use by a process this script did not start: stop it first`);
  const bins = programs([t.program]);
  const proc = t.kind === 'redis' ? startRedisNode(bins['redis-server'], t.port) : startNatsNode(bins['nats-server'], t.node);
  const pid = proc.child.pid;
  if (t.kind === 'redis') {
    await waitUntil(`${t.label} answering PING`, () => redisPing(t.port), { started: proc, log: t.log });
    // cluster_state:ok on it; settled in its role (a primary whose replica took over while it was
    // down comes back as that replica's replica: then with its replication link up); and seen so by
    // the other nodes, none flagging it as failed any more. So that the cluster is whole again: at most 15 s.
    const others = redisNodePorts(Boolean(readLayout()?.redisReplicas)).filter((p) => p !== t.port);
    const whole = async () => {
      const state = (await redisInfo(t.port, ['CLUSTER', 'INFO']))?.cluster_state;
      if (state !== 'ok') return `cluster_state:${state ?? '?'}`;
      const self = (await clusterNodes(t.port))?.find((n) => n.flags.includes('myself'));
      if (!self) return 'cluster_state:ok, but CLUSTER NODES has no answer';
      const primary = isPrimary(self);
      if (primary && self.slots.length === 0) return 'cluster_state:ok, but it is a primary without slots';
      if (!primary && (await redisInfo(t.port, ['INFO', 'replication']))?.master_link_status !== 'up') return 'cluster_state:ok, but its replication link is not up';
      for (const p of others) {
        const seen = (await clusterNodes(p))?.find((n) => n.port === t.port);
        if (seen && isFailing(seen)) return `cluster_state:ok, but ${p} still flags it ${seen.flags.join(',')}`;
        if (seen && isPrimary(seen) !== primary) return `cluster_state:ok, but ${p} does not see it as a ${primary ? 'primary' : 'replica'} yet`;
      }
      return undefined;
    };
    const deadline = Date.now() + 15_000;
    let problem;
    while ((problem = await whole()) && Date.now() < deadline) await sleep(200);
    say(`${t.label} restarted (pid ${pid}), ${problem ? `${problem} after 15 s` : `cluster_state:ok, ${(await clusterNodes(t.port))?.some((n) => n.flags.includes('myself') && !isPrimary(n)) ? 'a replica now' : 'a primary'}, seen so by every node`}`);
  } else {
    await waitUntil(`${t.label} answering on ${t.port}`, () => reachable(t.port), { started: proc, log: t.log });
    const deadline = Date.now() + 15_000;
    let leader;
    while (Date.now() < deadline && !(leader = metaLeader(await jsz(t.node)))) await sleep(200);
    say(`${t.label} restarted (pid ${pid}), ${leader ? `JetStream meta leader ${leader}` : 'no JetStream meta leader known to it after 15 s'}`);
  }
  return { pid, port: t.port };
}

/** `status`: every expected node up or down (printed); ok when all are up. */
export async function clusterStatus() {
  const layout = readLayout();
  if (!existsSync(clusterDir)) say(`no ${rel(clusterDir)}: the clusters were not started by this script`);
  const ports = redisNodePorts(Boolean(layout?.redisReplicas));
  const up = {};
  for (const port of ports) up[port] = await redisPing(port);
  // Roles and slots as one live node sees them (it also knows the roles of the nodes that are down).
  const viewFrom = ports.find((p) => up[p]);
  const nodes = (viewFrom && (await clusterNodes(viewFrom))) || [];
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const redis = [];
  for (const port of ports) {
    const n = byPort.get(port);
    const role = n ? (isPrimary(n) ? 'primary' : n.flags.includes('slave') ? `replica of ${byId.get(n.primaryId)?.port ?? '?'}` : n.flags.join(',')) : undefined;
    const state = up[port] ? (await redisInfo(port, ['CLUSTER', 'INFO']))?.cluster_state : undefined;
    const slots = n && isPrimary(n) ? n.slots.join(' ') : '';
    const flags = n ? n.flags.filter((f) => !['myself', 'master', 'slave'].includes(f)) : [];
    redis.push({ port, up: up[port], role, slots, clusterState: state, flags });
    say(
      `redis ${port}  ${up[port] ? 'up  ' : 'down'}  ${role ?? '(unknown to the cluster)'}${slots ? `  slots ${slots}` : ''}${state ? `  cluster_state:${state}` : ''}${flags.length ? `  flags ${flags.join(',')}` : ''}`,
    );
  }
  const nats = [];
  for (const node of NATS_NODES) {
    const isUp = await reachable(node.port);
    const j = isUp ? await jsz(node) : undefined;
    const jetstream = Boolean(j && !j.disabled && j.config);
    const leader = j?.meta_cluster?.leader || undefined;
    nats.push({ name: node.name, port: node.port, up: isUp, jetstream, leader, clusterSize: j?.meta_cluster?.cluster_size });
    say(
      `nats  ${node.name} ${node.port}  ${isUp ? 'up  ' : 'down'}${isUp ? `  jetstream ${jetstream ? 'on' : 'off'}  meta leader ${leader ?? '(none)'}${j?.meta_cluster?.cluster_size ? ` of ${j.meta_cluster.cluster_size}` : ''}` : ''}`,
    );
  }
  const ok = redis.every((r) => r.up) && nats.every((n) => n.up);
  say(ok ? 'all nodes up' : `down: ${[...redis.filter((r) => !r.up).map((r) => `redis ${r.port}`), ...nats.filter((n) => !n.up).map((n) => `nats ${n.name}`)].join(', ')}`);
  return { ok, redis, nats };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = `usage: node tools/scripts/cluster.mjs <command>
  start [--redis-replicas]          Redis Cluster on 7101-7103 (+ replicas 7104-7106) and NATS cluster on 4301-4303
  stop                              stop them and remove .janus/cluster/
  status                            each node up/down (exit 1 when one is down)
  kill <redis|nats> <which>         SIGKILL one node (redis: 7101-7106 or 1-6; nats: 1-3, n1-n3 or a port)
  restart <redis|nats> <which>      start that node again and wait until it answers
  env                               export lines, for eval $(node tools/scripts/cluster.mjs env)
`;

async function main(args) {
  const [command, ...rest] = args;
  const usage = () => {
    process.stderr.write(USAGE);
    return 2;
  };
  switch (command) {
    case 'start': {
      if (rest.some((a) => a !== '--redis-replicas')) return usage();
      await startClusters({ redisReplicas: rest.includes('--redis-replicas') });
      return 0;
    }
    case 'stop':
      if (rest.length) return usage();
      await stopClusters();
      return 0;
    case 'status':
      if (rest.length) return usage();
      return (await clusterStatus()).ok ? 0 : 1;
    case 'kill':
    case 'restart':
      if (rest.length !== 2) return usage();
      await (command === 'kill' ? killNode(rest[0], rest[1]) : restartNode(rest[0], rest[1]));
      return 0;
    case 'env':
      if (rest.length) return usage();
      for (const line of envLines('export ')) process.stdout.write(`${line}\n`);
      return 0;
    default:
      return usage();
  }
}

const isEntryPoint = (() => {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isEntryPoint) {
  // A reader that goes away (`… start | head`) must not leave a half-started cluster behind.
  process.stdout.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
  });
  try {
    process.exit(await main(process.argv.slice(2)));
  } catch (error) {
    process.stderr.write(`[cluster] ${error instanceof ClusterError ? error.message : (error?.stack ?? String(error))}\n`);
    process.exit(1);
  }
}
