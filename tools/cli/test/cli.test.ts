import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { apiKeys, createDb, migrate, type DbHandle } from '@janus/db';
import { connectNats, ensureStreams, natsNames, type NatsConnection } from '@janus/messaging';
import { PolicyStore, generateApiKey } from '@janus/policy';
import { REPO_ROOT, dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, startAppProcess, testEnv, testNamespace, waitFor, type AppProcess } from '@janus/testing';
import { Permanent, startWorker, type Worker } from '@janus/worker-sdk';

/**
 * The `janus` CLI as a user runs it: the bundle tools/scripts/build-packages.mjs makes
 * (dist/packages/cli/dist/cli.js, under plain node), against a running Janus — ingress,
 * policy-admin, retry-scheduler and persister as child processes in a namespace of this file's
 * own. Each command's exit code and --json output, for success and for failure.
 */
const BIN = path.join(REPO_ROOT, 'dist/packages/cli/dist/cli.js');
const ns = testNamespace('cli');
const env = testEnv(ns, { LOG_LEVEL: 'warn' });
const settings = loadSettings(env);
const SEED = {
  dependencies: { mail: { concurrency: 10 } },
  tenants: { acme: {}, globex: {} },
  jobTypes: { greet: { dependencies: [{ name: 'mail' }], timeoutMs: 10_000 }, doomed: { dependencies: [{ name: 'mail' }], timeoutMs: 10_000 } },
  global: { shedding: { low: 0.8, normal: 1 } },
};
let db: DbHandle;
let nc: NatsConnection;
let apiKey: string;
let closedPort: number;
let scratch: string;
const apps: Partial<Record<'ingress' | 'admin', AppProcess>> = {};
const started: AppProcess[] = [];
const workers: Worker[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'janus-cli-'));
  // The build runs while Janus starts (it is mostly waiting on esbuild and rollup).
  const build = promisify(execFile)(process.execPath, ['tools/scripts/build-packages.mjs', 'cli'], { cwd: REPO_ROOT, maxBuffer: 10 * 1024 * 1024 });
  await migrate(settings);
  db = createDb(settings);
  const saved = await new PolicyStore(db.db).update(() => SEED as never, { actor: 'test', action: 'seed' });
  if (!saved.ok) throw new Error('policy seed failed');
  const key = generateApiKey();
  await db.db.insert(apiKeys).values({ keyId: key.keyId, tenant: 'acme', keyHash: key.keyHash });
  apiKey = key.key;
  nc = await connectNats(settings, { name: 'cli-test' });
  await ensureStreams(await jetstreamManager(nc), natsNames(ns));
  const start = async (app: 'ingress' | 'policy-admin' | 'retry-scheduler' | 'persister') => {
    const p = await startAppProcess(app, env);
    started.push(p);
    return p;
  };
  const [ingress, admin] = await Promise.all([start('ingress'), start('policy-admin'), start('retry-scheduler'), start('persister')]);
  apps.ingress = ingress;
  apps.admin = admin;
  closedPort = await freePort();
  await build;
}, 120_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
  await Promise.all(started.map((a) => a.kill('SIGKILL').catch(() => undefined)));
  await nc?.close();
  await db?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropPgNamespace(settings.databaseUrl, ns);
}, 60_000);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed (under --json); undefined when it is not JSON. */
  json: Record<string, unknown> & { [k: string]: unknown };
}

/** Runs `node cli.js …args` with the environment pointing at this file's Janus; `undefined` unsets a variable. */
function janus(args: string[], overrides: Record<string, string | undefined> = {}): Promise<Run> {
  const vars: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    JANUS_URL: apps.ingress?.url,
    JANUS_API_KEY: apiKey,
    JANUS_ADMIN_URL: apps.admin?.url,
    JANUS_ADMIN_TOKEN: env.JANUS_ADMIN_TOKEN,
    NATS_URL: settings.natsServers[0],
    JANUS_NAMESPACE: ns,
    ...overrides,
  };
  const childEnv = Object.fromEntries(Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: childEnv, cwd: scratch, timeout: 30_000 }, (error, stdout, stderr) => {
      let json: Run['json'];
      try {
        json = JSON.parse(stdout) as Run['json'];
      } catch {
        json = {};
      }
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr, json });
    });
  });
}

const ok = (r: Run) => {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
};

describe('janus CLI (built, against a running Janus)', () => {
  it('is an executable bundle: a hashbang, the bin in its package.json, npm dependencies only', () => {
    expect(readFileSync(BIN, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'dist/packages/cli/package.json'), 'utf8')) as { bin: Record<string, string>; dependencies: Record<string, string> };
    expect(pkg.bin).toEqual({ janus: './dist/cli.js' });
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['@nats-io/jetstream', '@nats-io/transport-node', 'yaml']);
  });

  it('usage errors exit 2 before any request; --help exits 0 and documents the exit codes', async () => {
    // No variables at all: a usage error is found before one is needed.
    const none = { JANUS_API_KEY: undefined, JANUS_ADMIN_TOKEN: undefined, JANUS_URL: `http://127.0.0.1:${closedPort}` };
    const cases: string[][] = [
      [],
      ['frobnicate'],
      ['jobs'],
      ['jobs', 'submit'],
      ['jobs', 'submit', 'greet', '--priority', 'urgent'],
      ['jobs', 'submit', 'greet', '--payload', '{nope'],
      ['jobs', 'submit', 'greet', '--cost', '0'],
      ['jobs', 'get', 'a', 'b'],
      ['jobs', 'list', '--status', 'lost'],
      ['jobs', 'list', '--all', '--cursor', 'x'],
      ['dead', 'replay'],
      ['dead', 'replay', 'x', '--all'],
      ['keys', 'revoke', 'acme'],
      ['admin-tokens', 'create'],
      ['admin-tokens', 'revoke', 'a', 'b'],
      ['admin-tokens', 'list', '--all'],
      ['deps', 'pause', 'mail', '--until', 'tomorrow'],
      ['types', 'resume', 'greet', '--until', '2030-01-01T00:00:00Z'],
      ['streams', 'extra'],
      ['policy', 'apply', '--force'],
    ];
    const runs = await Promise.all(cases.map((c) => janus(c, none)));
    runs.forEach((r, i) => expect(r.code, `${cases[i]?.join(' ')}: ${r.stderr}`).toBe(2));
    expect(runs[4]?.stderr).toContain('--priority must be one of high, normal, low, not "urgent"');
    expect(runs[4]?.stderr).toContain('usage: janus jobs --help');
    const groups = ['jobs', 'dead', 'policy', 'tenants', 'keys', 'admin-tokens', 'deps', 'types', 'streams'];
    const [help, helps] = await Promise.all([janus(['--help'], none), Promise.all(groups.map((g) => janus([g, '--help'], none)))]);
    expect(ok(help).stdout).toContain('exit codes:');
    helps.forEach((h, i) => {
      expect(ok(h).stdout).toContain(`usage: janus ${groups[i] ?? ''}`);
      expect(h.stdout).toContain('3  configuration or infrastructure');
    });
  });

  it('configuration and infrastructure faults exit 3: a variable not set, a wrong key or token, nothing listening', async () => {
    const [noKey, badKey, noJanus, noToken, badToken, noAdmin, noNats] = await Promise.all([
      janus(['jobs', 'list'], { JANUS_API_KEY: undefined }),
      janus(['jobs', 'list', '--json'], { JANUS_API_KEY: 'jk_wrong' }),
      janus(['jobs', 'get', 'x'], { JANUS_URL: `http://127.0.0.1:${closedPort}` }),
      janus(['tenants', 'list'], { JANUS_ADMIN_TOKEN: undefined }),
      janus(['deps', 'list'], { JANUS_ADMIN_TOKEN: 'wrong-token-0123456789' }),
      janus(['policy', 'get'], { JANUS_ADMIN_URL: `http://127.0.0.1:${closedPort}` }),
      janus(['streams'], { NATS_URL: `nats://127.0.0.1:${closedPort}` }),
    ]);
    expect([noKey.code, noKey.stderr]).toEqual([3, expect.stringContaining('JANUS_API_KEY is not set')]);
    expect([badKey.code, badKey.json['status'], badKey.stderr]).toEqual([3, 401, expect.stringContaining('check JANUS_API_KEY')]);
    expect([noJanus.code, noJanus.stderr]).toEqual([3, expect.stringContaining(`cannot reach Janus at http://127.0.0.1:${closedPort} (JANUS_URL)`)]);
    expect([noToken.code, noToken.stderr]).toEqual([3, expect.stringContaining('JANUS_ADMIN_TOKEN is not set')]);
    expect([badToken.code, badToken.stderr]).toEqual([3, expect.stringContaining('check JANUS_ADMIN_TOKEN')]);
    expect([noAdmin.code, noAdmin.stderr]).toEqual([3, expect.stringContaining('cannot reach policy-admin')]);
    expect([noNats.code, noNats.stderr]).toEqual([3, expect.stringContaining('cannot reach NATS')]);
  });

  it('tenants list|get and keys create|list|revoke; a created key works at ingress, a revoked one stops', async () => {
    const [list, listHuman, acme, missing, noTenant, noKey] = await Promise.all([
      janus(['tenants', 'list', '--json']),
      janus(['tenants', 'list']),
      janus(['tenants', 'get', 'acme', '--json']),
      janus(['tenants', 'get', 'nope', '--json']),
      janus(['keys', 'create', 'nope']),
      janus(['keys', 'revoke', 'globex', 'k_nope']),
    ]);
    expect(Object.keys(ok(list).json['tenants'] as object).sort()).toEqual(['acme', 'globex']);
    expect(ok(listHuman).stdout).toMatch(/^TENANT\s+SETTINGS/);
    expect(ok(acme).json['id']).toBe('acme');
    expect([noTenant.code, noKey.code]).toEqual([1, 1]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('policy-admin answered 404');
    expect(missing.json['status']).toBe(404);

    const created = ok(await janus(['keys', 'create', 'globex', '--label', 'from the cli', '--json']));
    const key = created.json['key'] as string;
    const keyId = created.json['keyId'] as string;
    expect(created.json['label']).toBe('from the cli');
    const human = ok(await janus(['keys', 'create', 'globex']));
    expect(human.stdout).toMatch(/^key id/m);
    expect(human.stderr).toContain('shown only once');
    const keys = ok(await janus(['keys', 'list', 'globex', '--json']));
    expect((keys.json['keys'] as { keyId: string; label: string | null }[]).find((k) => k.keyId === keyId)?.label).toBe('from the cli');
    expect(ok(await janus(['keys', 'list', 'globex'])).stdout).toContain(keyId);

    // The new key is the tenant's at ingress (within a second: the change is announced).
    await waitFor(async () => (await janus(['jobs', 'list'], { JANUS_API_KEY: key })).code === 0, 5_000, 100);
    const revoked = ok(await janus(['keys', 'revoke', 'globex', keyId, '--json']));
    expect(revoked.json).toEqual({ tenant: 'globex', keyId, revoked: true });
    await waitFor(async () => (await janus(['jobs', 'list'], { JANUS_API_KEY: key })).code === 3, 5_000, 100);
  });

  it('admin-tokens create|list|revoke: a created token works as JANUS_ADMIN_TOKEN and is named in the audit log; a revoked one stops', async () => {
    const created = ok(await janus(['admin-tokens', 'create', 'cli-bot', '--json']));
    const token = created.json['token'] as string;
    expect(created.json).toMatchObject({ name: 'cli-bot', createdBy: 'token:env', token: expect.stringMatching(/^jadm_/) });
    const human = ok(await janus(['admin-tokens', 'create', 'cli-human'], { JANUS_ADMIN_TOKEN: token }));
    expect(human.stdout).toMatch(/^name\s+cli-human\ntoken\s+jadm_/);
    expect(human.stderr).toContain('shown only once');
    const [dup, bad] = await Promise.all([janus(['admin-tokens', 'create', 'cli-bot']), janus(['admin-tokens', 'create', 'Not-A-Name', '--json'])]);
    expect([dup.code, dup.stderr]).toEqual([1, expect.stringContaining('policy-admin answered 409')]);
    expect([bad.code, bad.json['status']]).toEqual([1, 422]);

    // The new token is an admin token (it made cli-human above); the list shows who made which, never a token; the audit log names them.
    const list = ok(await janus(['admin-tokens', 'list', '--json'], { JANUS_ADMIN_TOKEN: token }));
    expect((list.json['tokens'] as { name: string; createdBy: string | null }[]).map((t) => [t.name, t.createdBy])).toEqual([
      ['env', null],
      ['cli-bot', 'token:env'],
      ['cli-human', 'token:cli-bot'],
    ]);
    const audit = await db.pool.query<{ actor: string; target: string }>(`SELECT actor, target FROM "${ns}".audit_log WHERE action = 'admin-token.create' ORDER BY id`);
    expect(audit.rows).toEqual([
      { actor: 'token:env', target: 'admin/tokens/cli-bot' },
      { actor: 'token:cli-bot', target: 'admin/tokens/cli-human' },
    ]);
    expect(list.stdout).not.toContain(token);
    expect(ok(await janus(['admin-tokens', 'list'])).stdout).toMatch(/^NAME\s+SOURCE\s+CREATED\s+CREATED BY\s+LAST USED\nenv\s+env\s+-/);
    ok(await janus(['deps', 'pause', 'mail', '--json'], { JANUS_ADMIN_TOKEN: token }));
    ok(await janus(['deps', 'resume', 'mail', '--json'], { JANUS_ADMIN_TOKEN: token }));
    ok(await janus(['tenants', 'list'], { JANUS_ADMIN_TOKEN: token }));

    const revoked = ok(await janus(['admin-tokens', 'revoke', 'cli-bot', '--json']));
    expect(revoked.json).toEqual({ name: 'cli-bot', revoked: true });
    const refused = await janus(['tenants', 'list'], { JANUS_ADMIN_TOKEN: token });
    expect([refused.code, refused.stderr]).toEqual([3, expect.stringContaining('check JANUS_ADMIN_TOKEN')]);
    const [again, env] = await Promise.all([janus(['admin-tokens', 'revoke', 'cli-bot']), janus(['admin-tokens', 'revoke', 'env'])]);
    expect([again.code, env.code]).toEqual([1, 1]);
    const withRevoked = ok(await janus(['admin-tokens', 'list', '--revoked', '--json']));
    expect((withRevoked.json['tokens'] as { name: string; revokedBy: string | null }[]).find((t) => t.name === 'cli-bot')?.revokedBy).toBe('token:env');
    ok(await janus(['admin-tokens', 'revoke', 'cli-human']));
  });

  it('jobs submit|get|list: admitted, read back, listed; refusals exit 1 with the problem', async () => {
    const submitted = ok(await janus(['jobs', 'submit', 'greet', '--payload', '{"n":1}', '--priority', 'high', '--idempotency-key', 'cli-1', '--json']));
    expect(submitted.json).toMatchObject({ status: 'admitted', attempt: 1 });
    const id = submitted.json['jobId'] as string;
    // The same key again: the first answer, marked as a duplicate.
    expect(ok(await janus(['jobs', 'submit', 'greet', '--payload', '{"n":1}', '--priority', 'high', '--idempotency-key', 'cli-1', '--json'])).json).toMatchObject({ jobId: id, duplicate: true });
    expect(ok(await janus(['jobs', 'submit', 'greet', '--cost', '2'])).stdout).toMatch(/^admitted \S+ \(attempt 1\)/);

    // GET is eventually consistent (the persister stores the admission).
    const got = await waitFor(async () => {
      const r = await janus(['jobs', 'get', id, '--json']);
      return r.code === 0 ? r : undefined;
    }, 10_000, 100);
    expect(got.json).toMatchObject({ jobId: id, type: 'greet', status: 'admitted', priority: 'high', payload: { n: 1 } });
    expect(ok(await janus(['jobs', 'get', id])).stdout).toMatch(/^job\s+\S+\ntype\s+greet\nstatus\s+admitted/);
    const gone = await janus(['jobs', 'get', 'job-that-is-not', '--json']);
    expect([gone.code, gone.json['status']]).toEqual([1, 404]);

    const listed = ok(await janus(['jobs', 'list', '--type', 'greet', '--status', 'admitted,queued', '--json']));
    expect((listed.json['jobs'] as { jobId: string }[]).map((j) => j.jobId)).toContain(id);
    const page = ok(await janus(['jobs', 'list', '--limit', '1', '--json']));
    expect((page.json['jobs'] as unknown[]).length).toBe(1);
    expect(typeof page.json['next']).toBe('string');
    const all = ok(await janus(['jobs', 'list', '--limit', '1', '--all', '--json']));
    expect((all.json['jobs'] as unknown[]).length).toBeGreaterThanOrEqual(2);
    expect(ok(await janus(['jobs', 'list', '--limit', '1'])).stdout).toMatch(/^JOB\s+TYPE\s+STATUS[^\n]*\n\S+\s+greet\s+admitted[^\n]*\nmore: --cursor \S+\n$/);
    const badCursor = await janus(['jobs', 'list', '--cursor', 'not-a-cursor']);
    expect([badCursor.code, badCursor.stderr]).toEqual([1, expect.stringContaining('  cursor: ')]);

    const unknown = await janus(['jobs', 'submit', 'nope', '--json']);
    expect([unknown.code, unknown.json['status']]).toEqual([1, 404]);
    const badKey = await janus(['jobs', 'submit', 'greet', '--idempotency-key', 'x'.repeat(201)]);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/^not submitted: 400 [^\n]*\n {2}Idempotency-Key: /);
  });

  it('types pause|resume; a paused job type: mode now is rejected (429), mode queue waits and can be cancelled once', async () => {
    const paused = ok(await janus(['types', 'pause', 'greet', '--json']));
    expect(paused.json).toEqual({ jobType: 'greet', paused: true, until: null });
    expect((await janus(['types', 'pause', 'nope'])).code).toBe(1);

    const rejected = await janus(['jobs', 'submit', 'greet', '--json']);
    expect(rejected.code).toBe(1);
    expect(rejected.json).toMatchObject({ status: 'rejected', reason: 'paused' });
    expect(rejected.stderr).toContain('rejected: paused');

    const queued = ok(await janus(['jobs', 'submit', 'greet', '--mode', 'queue', '--json']));
    expect(queued.json['status']).toBe('queued');
    const id = queued.json['jobId'] as string;
    expect(ok(await janus(['jobs', 'cancel', id, '--json'])).json).toEqual({ jobId: id, status: 'cancelled' });
    expect((await janus(['jobs', 'cancel', 'job-that-is-not'])).code).toBe(1);

    expect(ok(await janus(['types', 'resume', 'greet'])).stdout).toBe('job type greet resumed\n');
    // Admitted now: too late to cancel.
    const admitted = ok(await janus(['jobs', 'submit', 'greet', '--json'])).json['jobId'] as string;
    // Once the persister has stored it (until then it is no job ingress can read: 404).
    await waitFor(async () => (await janus(['jobs', 'get', admitted, '--json'])).code === 0, 10_000, 100);
    const late = await janus(['jobs', 'cancel', admitted, '--json']);
    expect([late.code, late.json['status']]).toEqual([1, 409]);
    expect(late.stderr).toContain(`job ${admitted} not cancelled: 409`);
  });

  it('dead list|replay and jobs replay: a dead job replayed once (409 the second time), then every dead job with --all', async () => {
    // A worker for which every `doomed` job fails permanently: dead after its first attempt.
    const worker = await waitFor(() => startWorker({ nc, namespace: ns, jobType: 'doomed', handler: () => Promise.reject(new Permanent('no such mailbox')) }).catch(() => undefined), 20_000, 100);
    workers.push(worker);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push(ok(await janus(['jobs', 'submit', 'doomed', '--json'])).json['jobId'] as string);
    const deadIds = async () => ((await janus(['dead', 'list', '--json'])).json['jobs'] as { jobId: string }[] | undefined)?.map((j) => j.jobId).sort() ?? [];
    await waitFor(async () => JSON.stringify(await deadIds()) === JSON.stringify([...ids].sort()), 20_000, 200);
    expect(ok(await janus(['dead', 'list'])).stdout).toMatch(/doomed\s+dead/);
    // Without a worker a replayed job stays admitted (not dead), whatever the timing.
    await worker.stop();

    const [first = '', second = ''] = ids;
    const replayed = ok(await janus(['jobs', 'replay', first, '--json']));
    expect(replayed.json).toMatchObject({ jobId: first, status: 'retrying', attempt: 2 });
    const twice = await janus(['jobs', 'replay', first, '--json']);
    expect(twice.code).toBe(1);
    expect(twice.json['status']).toBe(409);
    expect(twice.stderr).toContain(`job ${first} not replayed: 409`);
    expect((await janus(['dead', 'replay', 'job-that-is-not'])).code).toBe(1);

    // --all: every job still dead (the second one).
    expect(await deadIds()).toEqual([second]);
    const all = ok(await janus(['dead', 'replay', '--all', '--json']));
    expect((all.json['replayed'] as { jobId: string }[]).map((r) => r.jobId)).toEqual([second]);
    expect(all.json['refused']).toEqual([]);
    expect(ok(await janus(['dead', 'replay', '--all'])).stdout).toBe('no dead jobs\n');
  });

  it('credits get|topup|reconcile: a top-up once per --key, the balance read back, reconciled with the ledger; a bad amount or unknown tenant fails', async () => {
    expect(ok(await janus(['credits', 'get', 'globex', '--json'])).json).toMatchObject({ tenant: 'globex', account: false, balance: 0, reserved: 0 });
    const first = ok(await janus(['credits', 'topup', 'globex', '40', '--key', 'cli-topup-1', '--json']));
    expect(first.json).toMatchObject({ tenant: 'globex', account: true, balance: 40, reserved: 0 });
    // the same key again: one top-up
    expect(ok(await janus(['credits', 'topup', 'globex', '40', '--key', 'cli-topup-1', '--json'])).json).toMatchObject({ balance: 40 });
    expect(ok(await janus(['credits', 'topup', 'globex', '2', '--json'])).json).toMatchObject({ balance: 42 });
    const human = ok(await janus(['credits', 'get', 'globex']));
    expect(human.stdout).toContain('42');
    const reconciled = await waitFor(async () => {
      const r = await janus(['credits', 'reconcile', 'globex', '--json']);
      return r.code === 0 ? r : undefined;
    }, 20_000);
    expect(reconciled?.json).toMatchObject({ tenant: 'globex', balance: 42 });
    const [badAmount, unknown, reused] = await Promise.all([
      janus(['credits', 'topup', 'globex', '0']),
      janus(['credits', 'topup', 'nobody', '5']),
      janus(['credits', 'topup', 'globex', '7', '--key', 'cli-topup-1']),
    ]);
    expect([badAmount.code, unknown.code, reused.code]).toEqual([2, 1, 1]);
    expect(reused.stderr).toContain('422 Idempotency key reused');
  });

  it('deps list|state|pause|resume', async () => {
    const [list, state, human, missing, noResume] = await Promise.all([
      janus(['deps', 'list', '--json']),
      janus(['deps', 'state', 'mail', '--json']),
      janus(['deps', 'state', 'mail']),
      janus(['deps', 'state', 'nope']),
      janus(['deps', 'resume', 'nope']),
    ]);
    expect(Object.keys(ok(list).json['dependencies'] as object)).toEqual(['mail']);
    expect(ok(state).json).toMatchObject({ dependency: 'mail', paused: false, declared: { concurrency: 10 } });
    expect(ok(human).stdout).toContain('dependency: mail');
    expect([missing.code, noResume.code]).toEqual([1, 1]);
    const until = new Date(Date.now() + 3_600_000).toISOString();
    const paused = ok(await janus(['deps', 'pause', 'mail', '--until', until, '--json']));
    expect(paused.json).toMatchObject({ dependency: 'mail', paused: true });
    expect(Date.parse(paused.json['until'] as string)).toBeCloseTo(Date.parse(until), -3);
    expect(ok(await janus(['deps', 'state', 'mail', '--json'])).json['paused']).toBe(true);
    expect(ok(await janus(['deps', 'resume', 'mail', '--json'])).json).toEqual({ dependency: 'mail', paused: false, until: null });
  });

  it('policy get|diff|apply: a YAML file diffed and applied, an invalid one refused with each problem, a stale --if-match refused', async () => {
    const before = ok(await janus(['policy', 'get', '--json']));
    const version = before.json['version'] as number;
    expect(ok(await janus(['policy', 'get'])).stdout).toMatch(new RegExp(`^# policy version ${version}\\n`));
    const file = path.join(scratch, 'policy.yaml');
    writeFileSync(
      file,
      `dependencies:\n  mail: { concurrency: 10, rate: { limit: 5, periodMs: 1000 } }\ntenants: { acme: {}, globex: {} }\njobTypes:\n  greet: { dependencies: [{ name: mail }], timeoutMs: 10000 }\n  doomed: { dependencies: [{ name: mail }], timeoutMs: 10000 }\n  extra: { dependencies: [{ name: mail }] }\nglobal: { shedding: { low: 0.8, normal: 1 } }\n`,
    );
    const diff = ok(await janus(['policy', 'diff', '-f', file]));
    expect(diff.stdout).toContain('+ jobTypes.extra');
    expect(diff.stdout).toContain('nothing changed');
    expect(diff.stderr).toContain('warning: dependencies.mail.rate: a bucket with burst = limit');
    const applied = ok(await janus(['policy', 'apply', '-f', file, '--if-match', String(version), '--json']));
    expect(applied.json).toMatchObject({ changed: true, previousVersion: version, version: version + 1 });
    expect(applied.json['warnings']).toHaveLength(1);
    expect(ok(await janus(['policy', 'diff', '-f', file])).stdout).toMatch(/^no changes$/m);

    const stale = await janus(['policy', 'apply', '-f', file, '--if-match', String(version)]);
    expect([stale.code, stale.stderr]).toEqual([1, expect.stringContaining('412')]);
    writeFileSync(file, 'jobTypes:\n  x:\n    dependencies: [{ name: nope }]\n');
    const invalid = await janus(['policy', 'apply', '-f', file, '--json']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('  jobTypes.x.dependencies.0.name: unknown dependency "nope"');
    expect(invalid.json['status']).toBe(422);
  });

  it("streams: the namespace's streams and consumers with their counts, no other namespace's", async () => {
    const r = ok(await janus(['streams', '--json']));
    const streams = r.json['streams'] as { name: string; messages: number; consumers: { name: string; pending: number; ackPending: number; redelivered: number }[] }[];
    const NS = ns.toUpperCase();
    expect(streams.map((s) => s.name)).toEqual(Object.values(natsNames(ns).streams).sort());
    const jobs = streams.find((s) => s.name === `${NS}_JOBS`);
    expect(jobs?.messages).toBeGreaterThanOrEqual(5);
    expect(jobs?.consumers.map((c) => c.name)).toEqual(expect.arrayContaining(['persister-jobs', 'workers-greet', 'workers-doomed']));
    // No worker for greet: its admitted jobs are still pending there.
    expect(jobs?.consumers.find((c) => c.name === 'workers-greet')?.pending).toBeGreaterThanOrEqual(2);
    const human = ok(await janus(['streams']));
    expect(human.stdout).toMatch(/^STREAM\s+SUBJECTS\s+MESSAGES\s+BYTES\s+CONSUMERS\n/);
    expect(human.stdout).toContain(`${NS}_JOBS:\n  CONSUMER`);
    const other = ok(await janus(['streams', '--json'], { JANUS_NAMESPACE: `${ns}x` }));
    expect(other.json['streams']).toEqual([]);
  });
});
