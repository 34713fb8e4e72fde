#!/usr/bin/env node
// `npm start`: validate the environment, make sure Redis/NATS/PostgreSQL are up, apply migrations,
// then run the four apps in the foreground with readable, prefixed logs, print where everything is
// once they are ready, and stop them all cleanly on Ctrl-C.
//
// Ctrl-C: the apps run in their own process groups, so the terminal's SIGINT reaches only this
// runner (and npm, which forwards it here again within milliseconds: that echo is the same Ctrl-C).
// package.json's script `exec`s this file, so that no `sh` sits between npm and the runner: sh would
// die of the SIGINT at once, npm with it, and the prompt would come back while the apps still drain.
// The runner sends each app one SIGTERM and waits for it to drain. A second Ctrl-C, a second or more
// later, forces: SIGKILL to every app still running.
//
// `npm start -- --nats-auth`: NATS with users (CONTRACT §4 "Who may do what"): a second nats-server
// on 127.0.0.1:4223 whose configuration includes infra/nats-auth.conf (stack.mjs starts it), the
// apps connected as user `janus`, the passwords kept in .janus/nats-auth/. Without the flag nothing
// changes.
import { spawnSync } from 'node:child_process';
import { APPS, appsEnv, natsAuthEnv, root, spawnApps, stopApps, urlOf, waitReady } from './apps.mjs';

const say = (line) => process.stdout.write(`[start] ${line}\n`);
const step = (label, args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    process.stderr.write(`[start] ${label} failed\n`);
    process.exit(r.status ?? 1);
  }
};

const withNatsAuth = process.argv.includes('--nats-auth');
step('environment check', ['--import', 'tsx', 'tools/scripts/check-env.ts']);
step('service stack', ['tools/scripts/stack.mjs', ...(withNatsAuth ? ['--nats-auth'] : [])]);
step('migrations', ['--import', 'tsx', 'libs/db/src/cli.ts']);

const natsAuth = withNatsAuth ? natsAuthEnv(process.env) : undefined;
if (natsAuth && process.env.NATS_URL && process.env.NATS_URL !== natsAuth.url) say(`--nats-auth: the apps use ${natsAuth.url}, not NATS_URL=${process.env.NATS_URL}`);
const { admin, env } = appsEnv({ ...process.env, ...natsAuth?.appEnv, FORCE_COLOR: process.stdout.isTTY ? '1' : '0' });
if (!admin) {
  process.stderr.write(`[start] JANUS_ADMIN_TOKEN is required with NODE_ENV=${process.env.NODE_ENV}: policy-admin generates a token only in development (CONTRACT §1)\n`);
  process.exit(1);
}

const children = spawnApps(env);

let stopping;
let firstSignalAt = 0;
function stopAll(exitCode) {
  stopping ??= (async () => {
    say('stopping all apps (Ctrl-C again to force)…');
    const results = await stopApps(children);
    const unclean = results.map((r, i) => ({ ...r, name: children[i].name })).filter((r) => r.code !== 0);
    for (const r of unclean) say(`${r.name} ended with ${r.signal ?? `exit code ${r.code}`}`);
    say(unclean.length === 0 ? 'all apps stopped cleanly' : 'stopped');
    process.exit(unclean.length === 0 ? exitCode : exitCode || 1);
  })();
  return stopping;
}

function onSignal() {
  const now = Date.now();
  if (!firstSignalAt) {
    firstSignalAt = now;
    void stopAll(0);
  } else if (now - firstSignalAt > 1_000) {
    say('second Ctrl-C: killing every app still running');
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
  }
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

for (const { name, exited } of children) {
  void exited.then(({ code, signal }) => {
    if (stopping) return;
    process.stderr.write(`[start] ${name} exited (${signal ?? code}); stopping the others\n`);
    void stopAll(code || 1);
  });
}

try {
  await waitReady(env);
} catch (error) {
  if (!stopping) say(`${error.message}; the logs above say why (GET /readyz names what is down)`);
}
if (!stopping) {
  // Where a password is, never the password: its variable, or the file it is kept in.
  const passwordRef = ({ source }) => (source.startsWith('JANUS_') ? `$${source}` : `$(cat ${source})`);
  const url = (name) => urlOf(APPS.find((a) => a.name === name), env);
  // Never the token itself either (docs/operations.md "Secrets in logs"): where it is.
  const tokenFile = admin.source.replace(' (new)', '');
  const tokenHint = admin.source === 'JANUS_ADMIN_TOKEN' ? 'the one in JANUS_ADMIN_TOKEN (set in this shell already)' : `kept in ${tokenFile}, the same at every start`;
  const tokenExport = admin.source === 'JANUS_ADMIN_TOKEN' ? [] : [`                     export JANUS_ADMIN_TOKEN=$(cat ${tokenFile})`];
  process.stdout.write(
    [
      '',
      '  Janus is running.',
      `    producers' API   ${url('ingress')}          (POST /v1/jobs)`,
      `    API docs         ${url('ingress')}/docs     and ${url('policy-admin')}/docs (admin API)`,
      `    dashboard        ${url('policy-admin')}/dashboard`,
      `    admin token      ${tokenHint}${tokenExport.length > 0 ? ':' : ''}`,
      ...tokenExport,
      ...(natsAuth
        ? [
            `    NATS with users  ${natsAuth.url}: the apps connect as janus; a worker (or npm run demo) connects as worker:`,
            `                     export NATS_URL=${natsAuth.url} NATS_USER=worker NATS_PASSWORD=${passwordRef(natsAuth.worker)}`,
            `                     (janus streams: NATS_USER=janus NATS_PASSWORD=${passwordRef(natsAuth.app)})`,
          ]
        : []),
      '',
      '  Next:',
      '    1. npm run demo                  the whole tour: policy, a key, a worker, jobs that succeed, retry and dead-letter',
      '    2. npm run policy -- apply -f infra/policy.example.yaml     your policy from a file (with the token above)',
      `    3. open ${url('policy-admin')}/dashboard and paste the token; README.md "First hour" says more`,
      '',
      '  Ctrl-C stops every app cleanly.',
      '',
    ].join('\n') + '\n',
  );
}
