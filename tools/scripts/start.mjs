#!/usr/bin/env node
// `npm start`: validate the environment, make sure Redis/NATS/PostgreSQL are up, apply migrations,
// then run the four apps in the foreground with readable, prefixed logs until Ctrl-C, which stops
// all of them cleanly (SIGTERM, then wait for each to finish).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { withNodeOptions } from './node-options.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tsx = path.join(root, 'node_modules', '.bin', 'tsx');
const apps = [
  { name: 'ingress', color: 36 },
  { name: 'policy-admin', color: 35 },
  { name: 'persister', color: 33 },
  { name: 'retry-scheduler', color: 32 },
];

const step = (label, cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    process.stderr.write(`[start] ${label} failed\n`);
    process.exit(r.status ?? 1);
  }
};

step('environment check', tsx, ['tools/scripts/check-env.ts']);
step('service stack', process.execPath, ['tools/scripts/stack.mjs']);
step('migrations', tsx, ['libs/db/src/cli.ts']);

// All apps of one `npm start` share one signing key (ingress signs lease tokens, the scheduler
// verifies them): generated per start in development, as CONTRACT §1 says.
const env = {
  ...process.env,
  JANUS_SIGNING_KEY: process.env.JANUS_SIGNING_KEY || randomBytes(32).toString('base64url'),
  JANUS_LOG_FORMAT: process.env.JANUS_LOG_FORMAT || (process.stdout.isTTY ? 'pretty' : 'json'),
  FORCE_COLOR: process.stdout.isTTY ? '1' : '0',
};

const width = Math.max(...apps.map((a) => a.name.length));
const children = apps.map(({ name, color }) => {
  // Each app with its own Node flags (package.json `janus.nodeOptions`, e.g. the ingress's young generation).
  const child = spawn(tsx, [path.join('apps', name, 'src', 'main.ts')], { cwd: root, env: withNodeOptions(env, name), stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = process.stdout.isTTY ? `\x1b[${color}m${name.padEnd(width)}\x1b[0m │ ` : `${name.padEnd(width)} | `;
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  return { name, child, exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))) };
});

let stopping = false;
async function stopAll(exitCode) {
  if (stopping) return;
  stopping = true;
  process.stdout.write('[start] stopping all apps…\n');
  for (const { child } of children) if (child.exitCode === null) child.kill('SIGTERM');
  const force = setTimeout(() => {
    for (const { child } of children) if (child.exitCode === null) child.kill('SIGKILL');
  }, 20_000);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(force);
  process.stdout.write('[start] all apps stopped\n');
  process.exit(exitCode);
}

process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));
for (const { name, exited } of children) {
  void exited.then(({ code, signal }) => {
    if (stopping) return;
    process.stderr.write(`[start] ${name} exited (${signal ?? code}); stopping the others\n`);
    void stopAll(code || 1);
  });
}
