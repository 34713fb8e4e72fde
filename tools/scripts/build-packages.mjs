#!/usr/bin/env node
// Builds the packages users install from outside this repository (issue #15): each is bundled
// with the workspace libraries it uses (@janus/contracts, @janus/messaging, …, which are private
// and ship TypeScript source) into plain JavaScript — ESM `index.js` and CommonJS `index.cjs` by
// esbuild — and one `index.d.ts` by rollup-plugin-dts, so that it runs under plain `node` and
// type-checks in any TypeScript project. Its npm dependencies stay dependencies: they are listed
// in a generated package.json with the versions this workspace runs (package-lock.json).
//
// A package with `bin` also gets each executable: its entry bundled as ESM with a `#!/usr/bin/env node`
// line, listed in the generated package.json's `bin` (npm links it on install).
//
// Output: dist/packages/<name>/ (a package directory) and, with --pack, dist/packages/<name>-<version>.tgz
// (`npm pack`) and dist/packages/built.json listing them. Usage: node tools/scripts/build-packages.mjs [--pack] [name…]
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = join(root, 'dist/packages');

/** What is published: the workspace library and what its package is called; `bin`: command → its entry and the bundled file. */
const PACKAGES = [
  { name: '@janus/worker-sdk', dir: 'libs/worker-sdk', description: 'Janus worker SDK: run handlers for the jobs Janus admits, report their outcomes' },
  { name: '@janus/client', dir: 'libs/client', description: 'Janus producer client: submit jobs, read and cancel them, over the HTTP API' },
  {
    name: '@janus/cli',
    dir: 'tools/cli',
    description: 'The janus command line: jobs, dead letters, policy, tenants and keys, dependencies, JetStream streams',
    bin: { janus: { main: 'src/main.ts', file: 'dist/cli.js' } },
  },
];

const args = process.argv.slice(2);
const pack = args.includes('--pack');
const only = args.filter((a) => !a.startsWith('--'));
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** The npm package a bare import names (`@scope/name/sub` → `@scope/name`). */
const packageOf = (id) => (id.startsWith('@') ? id.split('/').slice(0, 2).join('/') : id.split('/')[0]);
/** Inlined: the workspace's own libraries and relative files. Everything else is a dependency. */
const inlined = (id) => id.startsWith('.') || id.startsWith('/') || id.startsWith('@janus/');

async function build(p) {
  const short = p.name.split('/')[1];
  const dir = join(out, short);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'dist'), { recursive: true });
  const entry = join(root, p.dir, 'src/index.ts');
  const used = new Set();
  const externals = {
    name: 'externals',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (a) => {
        if (builtins.has(a.path)) return { path: a.path, external: true };
        if (inlined(a.path)) return undefined;
        used.add(packageOf(a.path));
        return { path: a.path, external: true };
      });
    },
  };
  const common = { bundle: true, platform: 'node', target: 'node20', plugins: [externals], logLevel: 'warning', legalComments: 'none' };
  for (const format of ['esm', 'cjs']) {
    await esbuild.build({ ...common, entryPoints: [entry], outfile: join(dir, 'dist', format === 'esm' ? 'index.js' : 'index.cjs'), format });
  }
  for (const { main, file } of Object.values(p.bin ?? {})) {
    await esbuild.build({ ...common, entryPoints: [join(root, p.dir, main)], outfile: join(dir, file), format: 'esm', banner: { js: '#!/usr/bin/env node' } });
    chmodSync(join(dir, file), 0o755);
  }
  const bundle = await rollup({
    input: entry,
    external: (id) => !inlined(id) && !builtins.has(id),
    plugins: [dts({ respectExternal: true, tsconfig: join(root, p.dir, 'tsconfig.json'), compilerOptions: { composite: false, declarationMap: false, incremental: false } })],
    onwarn: (w, warn) => (w.code === 'UNRESOLVED_IMPORT' ? undefined : warn(w)),
  });
  await bundle.write({ file: join(dir, 'dist/index.d.ts'), format: 'es' });
  await bundle.close();

  const version = (name) => {
    const v = lock.packages[`node_modules/${name}`]?.version;
    if (!v) throw new Error(`${p.name} imports ${name}, which package-lock.json does not have`);
    return `^${v}`;
  };
  const pkg = {
    name: p.name,
    version: rootPackage.version,
    description: p.description,
    license: rootPackage.license,
    type: 'module',
    engines: { node: '>=20' },
    main: './dist/index.cjs',
    types: './dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js', require: './dist/index.cjs' } },
    ...(p.bin ? { bin: Object.fromEntries(Object.entries(p.bin).map(([command, { file }]) => [command, `./${file}`])) } : {}),
    files: ['dist', 'README.md'],
    dependencies: Object.fromEntries([...used].sort().map((d) => [d, version(d)])),
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  const readme = join(root, p.dir, 'README.md');
  if (existsSync(readme)) copyFileSync(readme, join(dir, 'README.md'));
  let tarball;
  if (pack) {
    const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
    tarball = join(out, name);
  }
  console.log(`${p.name}@${pkg.version}: ${dir}${tarball ? ` → ${tarball}` : ''} (dependencies: ${Object.keys(pkg.dependencies).join(', ') || 'none'})`);
  return { name: p.name, dir, tarball };
}

const selected = PACKAGES.filter((p) => (only.length === 0 || only.includes(p.name) || only.includes(p.name.split('/')[1])) && existsSync(join(root, p.dir, 'src/index.ts')));
const built = [];
for (const p of selected) built.push(await build(p));
// Only for --pack (it lists the tarballs): a build of one package (tools/cli's test builds the CLI)
// must not overwrite the list a concurrent `--pack` run is about to read.
if (pack) writeFileSync(join(out, 'built.json'), `${JSON.stringify(built, null, 2)}\n`);
