// The storm bench: a naive pipeline and Janus, driven by the same producers and the same worker
// code, against the same strict mock API (src/mock-api.ts), scenario by scenario (scenarios/*.json).
// Usage: npm run storm -- [scenario…] [--only naive|janus] [--readme] [--trace]
//   scenario: a name in tools/storm/scenarios (default: default) or a path to a .json file
//   --trace: print Janus's view once a second (the dependency's state, the room, jobs by status)
//   --readme: also write the tables and the first scenario's chart into README.md ("Why Janus") and docs/storm.svg
// Writes bench-results/storm-<scenario>.json and .svg. Exit 1 when Janus broke a promise of the
// scenario's `expect` (a lost job, a 429 too many, …); the naive pipeline's figures are only reported.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadSettings } from '@janus/config';
import { connectNats } from '@janus/messaging';
import { runJanus } from './janus.js';
import { MockApi } from './mock-api.js';
import { runNaive } from './naive.js';
import { report, violations, type PipelineReport } from './report.js';
import { chart, table } from './render.js';
import { loadScenario, type Scenario } from './scenario.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const { values: flags, positionals } = parseArgs({ allowPositionals: true, options: { only: { type: 'string' }, readme: { type: 'boolean', default: false }, trace: { type: 'boolean', default: false } } });
const names = positionals.length > 0 ? positionals : ['default'];
const pipelines = flags.only === 'naive' || flags.only === 'janus' ? [flags.only] : ['naive', 'janus'];
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

async function runPipeline(sc: Scenario, pipeline: string): Promise<PipelineReport> {
  const api = new MockApi(sc.api);
  const url = await api.listen();
  try {
    if (pipeline === 'naive') {
      const nc = await connectNats(loadSettings({ ...process.env, NODE_ENV: 'development' }), { name: 'storm-naive' });
      try {
        return report(sc, await runNaive(sc, nc, api, url, log));
      } finally {
        await nc.drain().catch(() => undefined);
      }
    }
    return report(sc, await runJanus(sc, api, url, log, flags.trace));
  } finally {
    await api.close();
  }
}

const results: { sc: Scenario; reports: PipelineReport[] }[] = [];
let broken = 0;
for (const name of names) {
  const sc = loadScenario(name);
  log(`scenario ${sc.name}: ${sc.description}`);
  const reports: PipelineReport[] = [];
  for (const p of pipelines) reports.push(await runPipeline(sc, p));
  results.push({ sc, reports });
  const out = path.join(root, 'bench-results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, `storm-${sc.name}.json`), JSON.stringify({ scenario: sc, at: new Date().toISOString(), reports }, null, 2));
  writeFileSync(path.join(out, `storm-${sc.name}.svg`), chart(sc, reports));
  process.stdout.write(`\n${table(sc, reports)}\n\n`);
  const janus = reports.find((r) => r.pipeline === 'janus');
  const problems = janus ? violations(sc, janus) : [];
  for (const p of problems) process.stdout.write(`VIOLATION (${sc.name}, janus): ${p}\n`);
  broken += problems.length;
  log(`wrote bench-results/storm-${sc.name}.json and .svg`);
}

if (flags.readme && results.length > 0) {
  const first = results[0]!;
  writeFileSync(path.join(root, 'docs', 'storm.svg'), chart(first.sc, first.reports));
  const readmePath = path.join(root, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const begin = '<!-- storm:begin -->';
  const end = '<!-- storm:end -->';
  const i = readme.indexOf(begin);
  const j = readme.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md has no ${begin} … ${end} section`);
  const body = [
    `Measured ${new Date().toISOString().slice(0, 10)} on the project's 2-core machine with \`npm run storm -- ${names.join(' ')} --readme\`:`,
    '',
    ...results.flatMap((r) => [r.sc.description, '', table(r.sc, r.reports), '']),
    '![API calls per tenant per second and 429s per second, naive pipeline above, Janus below](docs/storm.svg)',
  ].join('\n');
  writeFileSync(readmePath, `${readme.slice(0, i + begin.length)}\n${body}\n${readme.slice(j)}`);
  log('updated README.md (Why Janus) and docs/storm.svg');
}
process.exit(broken > 0 ? 1 : 0);
