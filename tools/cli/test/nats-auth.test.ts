import { readFileSync } from 'node:fs';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, ensureStreams, natsAuthConfig, natsNames } from '@janus/messaging';
import { TEST_SECRETS, REPO_ROOT, startNatsServer, type NatsServerProcess } from '@janus/testing';
import { runCli, type CliIo } from '../src/index.js';

/** The CLI in-process, with what it printed. */
async function cli(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { env, out: (l) => out.push(l), err: (l) => err.push(l), fetch: () => Promise.reject(new Error('no request expected')) };
  return { code: await runCli(argv, io), out, err };
}

/** What `janus … > file` would write: each printed line and its newline. */
const written = (lines: string[]) => lines.map((l) => `${l}\n`).join('');

describe('janus nats-auth', () => {
  it('prints infra/nats-auth.conf for namespace janus, byte for byte', async () => {
    const r = await cli(['nats-auth']);
    expect(r.code).toBe(0);
    expect(written(r.out)).toBe(readFileSync(path.join(REPO_ROOT, 'infra/nats-auth.conf'), 'utf8'));
    expect((await cli(['nats-auth', '--namespace', 'janus'])).out).toEqual(r.out);
  });

  it('prints the block for another namespace, from --namespace or JANUS_NAMESPACE', async () => {
    const flag = await cli(['nats-auth', '--namespace', 'acme']);
    expect(flag.code).toBe(0);
    expect(written(flag.out)).toBe(natsAuthConfig('acme'));
    expect(written(flag.out)).toContain('"$JS.API.CONSUMER.MSG.NEXT.ACME_JOBS.*"');
    expect((await cli(['nats-auth'], { JANUS_NAMESPACE: 'acme' })).out).toEqual(flag.out);
    expect((await cli(['nats-auth', '-n', 'acme'], { JANUS_NAMESPACE: 'other' })).out).toEqual(flag.out);
    const json = await cli(['nats-auth', '--namespace', 'acme', '--json']);
    const parsed = JSON.parse(json.out.join('\n')) as { namespace: string; users: { worker: { publish: { allow: string[] } } } };
    expect(parsed.namespace).toBe('acme');
    expect(parsed.users.worker.publish.allow).toContain('acme.outcomes.>');
  });

  it('refuses a namespace the apps would refuse, and stray arguments, with exit 2', async () => {
    const bad = await cli(['nats-auth', '--namespace', 'Bad.Name']);
    expect(bad.code).toBe(2);
    expect(bad.err[0]).toContain('must match ^[a-z][a-z0-9_]{0,39}$');
    expect(bad.out).toEqual([]);
    expect((await cli(['nats-auth', 'extra'])).code).toBe(2);
    expect((await cli(['nats-auth', '--namespace'])).code).toBe(2);
    const help = await cli(['nats-auth', '--help']);
    expect(help.code).toBe(0);
    expect(help.out[0]).toContain('usage: janus nats-auth');
    expect((await cli(['--help'])).out[0]).toContain('nats-auth');
  });
});

describe('janus streams against a NATS that requires users', () => {
  const ns = 'clitest';
  const APP_PASSWORD = TEST_SECRETS.natsPassword;
  const WORKER_PASSWORD = TEST_SECRETS.natsWorkerPassword;
  let server: NatsServerProcess;

  beforeAll(async () => {
    server = await startNatsServer({
      files: { 'nats-auth.conf': natsAuthConfig(ns) },
      config: 'include ./nats-auth.conf',
      env: { JANUS_NATS_PASSWORD: APP_PASSWORD, JANUS_WORKER_NATS_PASSWORD: WORKER_PASSWORD },
    });
    const nc = await connectNats({ natsServers: [server.url], natsAuth: { user: 'janus', password: APP_PASSWORD } }, { name: 'cli-test' });
    await ensureStreams(await jetstreamManager(nc), natsNames(ns));
    await nc.close();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('lists the streams as the apps’ user, and says what is wrong otherwise (exit 3)', async () => {
    const env = { NATS_URL: server.url, JANUS_NAMESPACE: ns };
    const ok = await cli(['streams', '--json'], { ...env, NATS_USER: 'janus', NATS_PASSWORD: APP_PASSWORD });
    expect(ok.code, ok.err.join('\n')).toBe(0);
    expect((JSON.parse(ok.out.join('\n')) as { streams: { name: string }[] }).streams.map((s) => s.name)).toEqual(Object.values(natsNames(ns).streams).sort());

    const none = await cli(['streams'], env);
    expect([none.code, none.err[0]]).toEqual([3, expect.stringContaining('refused the login: Authorization Violation (it requires users: set NATS_USER and NATS_PASSWORD)')]);
    const wrong = await cli(['streams'], { ...env, NATS_USER: 'janus', NATS_PASSWORD: 'NotThePassword' });
    expect([wrong.code, wrong.err[0]]).toEqual([3, expect.stringContaining('check NATS_USER and NATS_PASSWORD')]);
    expect(wrong.err.join('\n')).not.toContain('NotThePassword');
    const half = await cli(['streams'], { ...env, NATS_USER: 'janus' });
    expect([half.code, half.err[0]]).toEqual([3, 'NATS_PASSWORD is not set (NATS_USER and NATS_PASSWORD go together)']);
    // A worker may not list streams.
    const worker = await cli(['streams'], { ...env, NATS_USER: 'worker', NATS_PASSWORD: WORKER_PASSWORD });
    expect([worker.code, worker.err[0]]).toEqual([3, expect.stringContaining('Permissions Violation')]);
  });
});
