/**
 * `npm run bench:persister [-- --smoke] [--applied N]`: events/s from JetStream into PostgreSQL through the
 * persister's consumer loop, against the ceiling measured in the same run (the same rows written
 * straight to PostgreSQL with multi-row inserts from one client). Not a timed test: prints a table
 * and writes bench-results/persister-<timestamp>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { loadSettings } from '@janus/config';
import { runPersisterBenchmark } from './persister-benchmark.js';

const smoke = process.argv.includes('--smoke');
const namespace = `bench_persister_${randomBytes(3).toString('hex')}`;
const settings = loadSettings({ ...process.env, JANUS_NAMESPACE: namespace, LOG_LEVEL: 'warn' });
const arg = (name: string): number | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isInteger(v) && v > 0 ? v : undefined;
};
const defaults = smoke ? { jobs: 600, runs: 1, batchSize: 1_000 } : { jobs: 10_000, runs: 3, batchSize: 1_000 };
// Applied outcomes per message: the retry-scheduler publishes those of one job type accepted at one
// moment together; APPLIED_PER_MESSAGE is what `npm run bench:e2e` reports for its loop (--applied 1:
// a message each, as before batching).
const APPLIED_PER_MESSAGE = 25;
const options = { jobs: arg('jobs') ?? defaults.jobs, runs: arg('runs') ?? defaults.runs, batchSize: arg('batch') ?? defaults.batchSize, appliedPerMessage: arg('applied') ?? APPLIED_PER_MESSAGE };
const TARGET_PER_SEC = 10_000;
const TARGET_RATIO = 0.5;

const report = await runPersisterBenchmark(settings, { ...options, log: (line) => process.stderr.write(`${line}\n`) });
const m = report.median;
const fmt = (n: number) => n.toLocaleString('en-US');
const rows: [string, string][] = [
  ['events (messages) per run', fmt(report.events)],
  ['rows they end as', fmt(report.rows)],
  ['runs', String(report.runs.length)],
  ['JetStream publish, 4×250 in flight (events/s)', fmt(m.publishPerSec)],
  ['persister: JetStream → PostgreSQL (events/s)', fmt(m.persisterPerSec)],
  ['ceiling: INSERT … VALUES, 500 rows, one client (events/s)', fmt(m.ceilingValuesPerSec)],
  ['ceiling: INSERT … SELECT unnest, 500 rows, one client (events/s)', fmt(m.ceilingUnnestPerSec)],
  ['persister: Node CPU per event (µs, load-independent)', String(m.persisterCpuUsPerEvent)],
  ['PostgreSQL: CPU of all its processes per event (µs)', String(m.postgresCpuUsPerEvent)],
  ['persister / VALUES ceiling (medians)', `${(report.ratioToValuesCeiling * 100).toFixed(0)}%`],
  ['persister / VALUES ceiling (median of per-run ratios)', `${(report.medianRunRatio * 100).toFixed(0)}%`],
  ['persister / best ceiling', `${(report.ratioToBestCeiling * 100).toFixed(0)}%`],
];
const width = Math.max(...rows.map(([k]) => k.length));
process.stdout.write(`\nPersister benchmark${smoke ? ' (smoke)' : ''} — medians; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores\n`);
for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v.padStart(10)}\n`);
const meetsRate = m.persisterPerSec >= TARGET_PER_SEC;
const meetsRatio = report.ratioToValuesCeiling >= TARGET_RATIO;
process.stdout.write(`  target ≥ ${fmt(TARGET_PER_SEC)} events/s: ${meetsRate ? 'met' : 'NOT met'}; ≥ ${TARGET_RATIO * 100}% of ceiling: ${meetsRatio ? 'met' : 'NOT met'}\n`);

mkdirSync('bench-results', { recursive: true });
const file = `bench-results/persister-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify({ bench: 'persister', smoke, at: new Date().toISOString(), node: process.version, loadavg: loadavg(), cores: cpus().length, options, targets: { eventsPerSec: TARGET_PER_SEC, ratio: TARGET_RATIO }, ...report }, null, 2),
);
process.stdout.write(`  written: ${file}\n`);
