#!/usr/bin/env node
// Builds the four apps to plain JavaScript for production (issue #15): each app's src/main.ts is
// bundled by esbuild with the workspace libraries it uses into dist/apps/<app>/main.js (ESM, Node
// 20); npm packages stay imports, resolved from node_modules at run time. The SQL migrations are
// copied beside the bundles (dist/apps/migrations: libs/db finds them relative to its own module,
// `new URL('../migrations', import.meta.url)`, which in a bundle is dist/apps/<app>/../migrations).
//
// Run one with plain node: `node dist/apps/ingress/main.js` (plus the app's Node flags, see
// tools/scripts/node-options.mjs). `npm start` keeps running the sources through tsx.
// Usage: node tools/scripts/build-apps.mjs [app…]
import { cpSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const APPS = ['ingress', 'policy-admin', 'persister', 'retry-scheduler'];
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

const externals = {
  name: 'externals',
  setup(b) {
    // Bundled: relative files and the workspace's libraries. Everything else comes from node_modules.
    b.onResolve({ filter: /^[^./]/ }, (a) => (builtins.has(a.path) || !a.path.startsWith('@janus/') ? { path: a.path, external: true } : undefined));
  },
};

/**
 * Bundles one entry point the way the image runs it. `outfile` must lie inside `checkout` (its
 * node_modules resolve the external imports at run time); the benchmarks also build another
 * checkout's apps with it, so both run the same kind of code.
 */
export async function bundle(entry, outfile) {
  await esbuild.build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', target: 'node20', format: 'esm', sourcemap: true, plugins: [externals], logLevel: 'warning' });
}

/** Builds the apps of `checkout` into `<checkout>/<outDir>/<app>/main.js`, migrations beside them. */
export async function buildApps(checkout = root, apps = APPS, outDir = 'dist/apps') {
  const out = join(checkout, outDir);
  rmSync(out, { recursive: true, force: true });
  for (const app of apps) await bundle(join(checkout, 'apps', app, 'src/main.ts'), join(out, app, 'main.js'));
  cpSync(join(checkout, 'libs/db/migrations'), join(out, 'migrations'), { recursive: true });
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const only = process.argv.slice(2);
  const apps = APPS.filter((a) => only.length === 0 || only.includes(a));
  await buildApps(root, apps);
  for (const app of apps) console.log(`apps/${app} → dist/apps/${app}/main.js`);
}
