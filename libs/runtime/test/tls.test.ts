// TLS to Redis, NATS and PostgreSQL (docs/operations.md#tls), against real servers that this file
// starts with a CA and a server certificate it makes with openssl: redis-server with no plain port,
// nats-server with a `tls {}` block (and a plain one), a private PostgreSQL cluster whose pg_hba
// rejects every connection without TLS. What an app does (the CA from NODE_EXTRA_CA_CERTS, which
// Node reads only at start) runs in a child process; what must fail runs in this one, whose Node
// trusts no private CA.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '@janus/db';
import { connectNats } from '@janus/messaging';
import { freePort, waitFor } from '@janus/testing';
import { createRedis } from '../src/redis.js';

const run = promisify(execFile);
const FIXTURE = fileURLToPath(new URL('./fixtures/tls-client.ts', import.meta.url));
const asRoot = process.getuid?.() === 0;

/** The program's path, or an error saying how to install it: a missing server must fail the file, not skip it. */
function program(name: string, candidates: string[], pkg: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const bin = found.status === 0 ? found.stdout.trim() : candidates.find((c) => existsSync(c));
  if (!bin) throw new Error(`${name} is not installed; the TLS tests start their own server: apt-get install -y ${pkg} (tools/scripts/stack.mjs does so as root)`);
  return bin;
}

function pgBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error('PostgreSQL server programs (initdb, pg_ctl) not found under /usr/lib/postgresql: apt-get install -y postgresql');
  return path.join(base, versions[0], 'bin');
}

function sh(cmd: string, args: string[], opts: { cwd?: string; asPostgres?: boolean } = {}): string {
  const [file, argv] = opts.asPostgres && asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const r = spawnSync(file, argv, { cwd: opts.cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * A CA, a server certificate it signs (SAN: IP 127.0.0.1 and localhost), a client certificate it
 * signs for the PostgreSQL role `certuser`, and a second, unrelated CA.
 */
function makeCertificates(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caExt = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  for (const name of ['ca', 'other-ca']) {
    sh('openssl', ['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=Janus TLS test ${name}`, ...caExt], { cwd: dir });
  }
  sh('openssl', ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], { cwd: dir });
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  sh('openssl', ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'], { cwd: dir });
  sh('openssl', ['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=certuser'], { cwd: dir });
  writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  sh('openssl', ['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2', '-extfile', 'client.ext'], { cwd: dir });
}

/** Spawns a server and waits for its ready line; its output is in the error when it exits or stalls. */
async function startServer(bin: string, args: string[], ready: string, hint: string): Promise<ChildProcess> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  children.push(child);
  try {
    await waitFor(() => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('exited');
      return output.includes(ready);
    }, 10_000);
  } catch (error) {
    throw new Error(`${path.basename(bin)} did not start (${(error as Error).message}; ${hint}):\n${output}`);
  }
  return child;
}

const children: ChildProcess[] = [];
let dir = '';
let pgData = '';
let ca = '';
let otherCa = '';
const ports = { redis: 0, nats: 0, natsMonitor: 0, natsPlain: 0, pg: 0 };

beforeAll(async () => {
  const redisServer = program('redis-server', ['/usr/bin/redis-server'], 'redis-server');
  const natsServer = program('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server'], 'nats-server');
  program('openssl', ['/usr/bin/openssl'], 'openssl');
  const pgBin = pgBinDir();

  // As root, under /tmp: the postgres user must be able to reach it (a TMPDIR under /root is not).
  dir = mkdtempSync(path.join(asRoot ? '/tmp' : tmpdir(), 'janus-tls-'));
  chmodSync(dir, 0o755); // the postgres user reads its copies of the certificate below
  makeCertificates(dir);
  ca = path.join(dir, 'ca.crt');
  otherCa = path.join(dir, 'other-ca.crt');
  const [cert, key] = [path.join(dir, 'server.crt'), path.join(dir, 'server.key')];
  for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort();

  // Redis: TLS only (`--port 0`: no plain listener), clients need no certificate of their own.
  const redis = startServer(
    redisServer,
    ['--port', '0', '--tls-port', String(ports.redis), '--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca,
      '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'],
    'Ready to accept connections',
    'an unknown tls-* option means this redis-server was built without TLS',
  );
  // NATS: TLS required on the client port, /connz on the monitoring port; and a plain server.
  const natsConf = path.join(dir, 'nats.conf');
  writeFileSync(
    natsConf,
    `listen: "127.0.0.1:${ports.nats}"\nhttp: "127.0.0.1:${ports.natsMonitor}"\ntls {\n  cert_file: "${cert}"\n  key_file: "${key}"\n  ca_file: "${ca}"\n  timeout: 2\n}\n`,
  );
  const nats = startServer(natsServer, ['-c', natsConf], 'Server is ready', 'nats-server with a tls {} block');
  const natsPlain = startServer(natsServer, ['-a', '127.0.0.1', '-p', String(ports.natsPlain)], 'Server is ready', 'plain nats-server');

  // PostgreSQL: a private cluster (initdb refuses root: run as the postgres user), TLS on, and
  // pg_hba: the role certuser only with a client certificate, other TLS connections trusted, every
  // TCP connection without TLS rejected.
  const pgDir = path.join(dir, 'pg');
  pgData = path.join(pgDir, 'data');
  mkdirSync(pgDir, { mode: 0o700 });
  copyFileSync(cert, path.join(pgDir, 'server.crt'));
  copyFileSync(key, path.join(pgDir, 'server.key'));
  copyFileSync(ca, path.join(pgDir, 'ca.crt'));
  chmodSync(path.join(pgDir, 'server.key'), 0o600); // PostgreSQL refuses a key others can read
  if (asRoot) {
    const uid = Number(sh('id', ['-u', 'postgres']));
    const gid = Number(sh('id', ['-g', 'postgres']));
    for (const p of [pgDir, ...['server.crt', 'server.key', 'ca.crt'].map((f) => path.join(pgDir, f))]) chownSync(p, uid, gid);
  }
  sh(path.join(pgBin, 'initdb'), ['-D', pgData, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '-N'], { asPostgres: true });
  writeFileSync(
    path.join(pgData, 'pg_hba.conf'),
    'local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n',
  );
  const serverOptions = [
    `-c port=${ports.pg}`, '-c listen_addresses=127.0.0.1', `-c unix_socket_directories=${pgDir}`, '-c fsync=off',
    '-c ssl=on', `-c ssl_cert_file=${path.join(pgDir, 'server.crt')}`, `-c ssl_key_file=${path.join(pgDir, 'server.key')}`,
    `-c ssl_ca_file=${path.join(pgDir, 'ca.crt')}`, // to check client certificates
  ];
  sh(path.join(pgBin, 'pg_ctl'), ['-D', pgData, '-l', path.join(pgDir, 'log'), '-w', '-t', '20', '-o', serverOptions.join(' '), 'start'], { asPostgres: true });

  sh(path.join(pgBin, 'psql'), ['-h', pgDir, '-p', String(ports.pg), '-U', 'postgres', '-d', 'postgres', '-c', 'CREATE ROLE certuser LOGIN'], { asPostgres: true });

  await Promise.all([redis, nats, natsPlain]);
}, 60_000);

afterAll(async () => {
  if (pgData && existsSync(path.join(pgData, 'postmaster.pid'))) {
    try {
      sh(path.join(pgBinDir(), 'pg_ctl'), ['-D', pgData, '-m', 'immediate', 'stop'], { asPostgres: true });
    } catch {
      // already gone
    }
  }
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }),
  );
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Rejects with the first error a pool connection gets. */
async function pgSsl(databaseUrl: string): Promise<boolean> {
  const db = createDb({ databaseUrl, namespace: 'public' }, { max: 1 });
  try {
    const { rows } = await db.pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return rows[0]?.ssl === true;
  } finally {
    await db.close();
  }
}

describe('an app with the CA in NODE_EXTRA_CA_CERTS', () => {
  it('reaches rediss://, tls:// NATS and PostgreSQL with sslmode=verify-full over verified TLS', async () => {
    const env = {
      ...process.env,
      NODE_EXTRA_CA_CERTS: ca,
      REDIS_URL: `rediss://127.0.0.1:${ports.redis}`,
      NATS_URL: `tls://127.0.0.1:${ports.nats}`,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${ports.pg}/janus_tls?sslmode=verify-full`,
      JANUS_NAMESPACE: 'tls_test',
      TLS_TEST_NATS_CONNZ: `http://127.0.0.1:${ports.natsMonitor}/connz`,
      // These servers have no users; empty counts as unset (a CI environment may set them).
      NATS_USER: '',
      NATS_PASSWORD: '',
    };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', FIXTURE], { env, timeout: 25_000 }).catch((error: Error & { stderr?: string }) => {
      throw new Error(`the TLS client failed: ${error.message}\n${error.stderr ?? ''}`);
    });
    const seen = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    // Redis has no plain port here, and the socket is a TLS socket whose certificate was verified.
    expect(seen.redis).toEqual({ pong: 'PONG', tlsSocket: true, authorized: true });
    // The server's own view of the connection names its TLS version.
    expect(seen.nats.tlsRequired).toBe(true);
    expect(seen.nats.serverTlsVersion).toMatch(/^1\.[23]$/);
    // PostgreSQL's pg_stat_ssl for the backend; migrate() created the database and the tables.
    expect(seen.pg.ssl).toBe(true);
    expect(seen.pg.version).toMatch(/^TLSv1\.[23]$/);
    expect(seen.pg.tables).toBeGreaterThan(0);
  });
});

describe('Redis', () => {
  it('refuses a certificate from a CA the process does not trust', async () => {
    const redis = createRedis({ redisUrl: `rediss://127.0.0.1:${ports.redis}` }, 'tls-untrusted');
    const firstError = new Promise<Error>((resolve) => redis.once('error', resolve));
    try {
      await expect(redis.connect()).rejects.toThrow();
      expect((await firstError).message).toMatch(/certificate/);
    } finally {
      redis.disconnect();
    }
  });

  it('serves no plain connection on that port (so a connection there is TLS)', async () => {
    const redis = createRedis({ redisUrl: `redis://127.0.0.1:${ports.redis}` }, 'tls-plain');
    try {
      await expect(redis.connect()).rejects.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});

describe('NATS', () => {
  it('refuses a certificate from a CA the process does not trust', async () => {
    await expect(connectNats({ natsServers: [`tls://127.0.0.1:${ports.nats}`] }, { name: 'tls-untrusted' })).rejects.toThrow(/certificate/);
  });

  it('tls:// refuses a server that offers no TLS, where nats:// connects', async () => {
    // nats.js ignores the scheme by itself: without connectNats's `tls: {}` this would connect in plain text.
    await expect(connectNats({ natsServers: [`tls://127.0.0.1:${ports.natsPlain}`] }, { name: 'tls-to-plain' })).rejects.toThrow(/tls/);
    const nc = await connectNats({ natsServers: [`nats://127.0.0.1:${ports.natsPlain}`] }, { name: 'plain' });
    await nc.close();
  });
});

describe('PostgreSQL', () => {
  it('sslmode=verify-full&sslrootcert=<CA file> in the URL alone is enough', async () => {
    expect(await pgSsl(`postgres://postgres@127.0.0.1:${ports.pg}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`)).toBe(true);
  });

  it('refuses a certificate from a CA the process does not trust, or from another CA named in sslrootcert', async () => {
    await expect(pgSsl(`postgres://postgres@127.0.0.1:${ports.pg}/postgres?sslmode=verify-full`)).rejects.toThrow(/certificate/);
    await expect(pgSsl(`postgres://postgres@127.0.0.1:${ports.pg}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(otherCa)}`)).rejects.toThrow(/certificate/);
  });

  it('sslcert and sslkey in the URL present a client certificate', async () => {
    const url = `postgres://certuser@127.0.0.1:${ports.pg}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
    const withCert = `${url}&sslcert=${encodeURIComponent(path.join(dir, 'client.crt'))}&sslkey=${encodeURIComponent(path.join(dir, 'client.key'))}`;
    expect(await pgSsl(withCert)).toBe(true);
    await expect(pgSsl(url)).rejects.toThrow(/certificate/);
  });

  it('the server rejects a connection without TLS (a URL without sslmode uses none)', async () => {
    await expect(pgSsl(`postgres://postgres@127.0.0.1:${ports.pg}/postgres`)).rejects.toThrow(/no encryption/);
  });
});
