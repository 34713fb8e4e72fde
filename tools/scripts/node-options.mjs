#!/usr/bin/env node
// The Node.js runtime flags an app runs with, from the `janus.nodeOptions` field of its package.json
// (one place for `npm start`, the Docker image and the benchmarks).
//   import { nodeOptionsFor } from './node-options.mjs';  nodeOptionsFor('ingress')  → '--max-semi-space-size=64'
//   node tools/scripts/node-options.mjs ingress           → prints them (the Docker image's CMD uses this)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const defaultRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The app's Node flags as one NODE_OPTIONS string ('' when it has none). */
export function nodeOptionsFor(app, root = defaultRoot) {
  const pkg = JSON.parse(readFileSync(path.join(root, 'apps', app, 'package.json'), 'utf8'));
  const options = pkg.janus?.nodeOptions ?? [];
  if (!Array.isArray(options) || !options.every((o) => typeof o === 'string' && /^--[a-z0-9-]+(=[\w.-]+)?$/.test(o))) {
    throw new Error(`apps/${app}/package.json: janus.nodeOptions must be a list of --flags`);
  }
  return options.join(' ');
}

/** NODE_OPTIONS for the app: what the environment already has, then the app's own flags. */
export function withNodeOptions(env, app, root = defaultRoot) {
  const own = nodeOptionsFor(app, root);
  return own === '' ? env : { ...env, NODE_OPTIONS: [env.NODE_OPTIONS, own].filter(Boolean).join(' ') };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const app = process.argv[2];
  if (!app) {
    process.stderr.write('usage: node tools/scripts/node-options.mjs <app>\n');
    process.exit(2);
  }
  process.stdout.write(`${nodeOptionsFor(app)}\n`);
}
