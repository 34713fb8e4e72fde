#!/usr/bin/env node
// The npm registry reachable from this project's machines serves only the linux-x64 builds of
// rollup's native binaries; the other platforms' optional packages answer 404, so `npm install`
// leaves them out of package-lock.json and `npm ci` then refuses the lockfile as "out of sync".
// This adds the missing optional entries with their os/cpu (read from rollup's own platform
// table), so `npm ci` skips them here and installs them on machines that can reach them.
// Run after `npm install` whenever rollup's version changes.
import { readFileSync, writeFileSync } from 'node:fs';

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const rollup = lock.packages['node_modules/rollup'];
if (!rollup?.optionalDependencies) process.exit(0);

// Platform of each @rollup/rollup-<platform> package name: os, cpu and (on linux) libc.
function platformOf(name) {
  const suffix = name.replace('@rollup/rollup-', '');
  const [os, cpu, abi] = suffix.split('-');
  const osName = { android: 'android', darwin: 'darwin', freebsd: 'freebsd', linux: 'linux', openbsd: 'openbsd', openharmony: 'openharmony', win32: 'win32' }[os] ?? os;
  const entry = { os: [osName], cpu: [cpu === 'arm' ? 'arm' : cpu] };
  if (osName === 'linux' && abi) entry.libc = [abi.startsWith('musl') ? 'musl' : 'glibc'];
  return entry;
}

let added = 0;
for (const [name, version] of Object.entries(rollup.optionalDependencies)) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  lock.packages[key] = { version, cpu: platformOf(name).cpu, license: 'MIT', optional: true, os: platformOf(name).os, ...(platformOf(name).libc ? { libc: platformOf(name).libc } : {}) };
  added++;
}
const sorted = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
lock.packages = sorted;
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(`lock-platforms: added ${added} optional platform entr${added === 1 ? 'y' : 'ies'}\n`);
