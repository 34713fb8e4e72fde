import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { pino } from 'pino';
import type { Settings } from '@janus/config';
import { createDb, migrate } from '@janus/db';
import { connectNats, ensureStreams, natsNames, publishAll } from '@janus/messaging';
import { createMetricsRegistry } from '@janus/observability';
import { dropNatsNamespace, dropPgNamespace, prng, shuffle, syntheticWorkload, type SyntheticMessage } from '@janus/testing';
import { countRows, ledgerEntryId, outcomeEventId, Persister } from '@janus/event-store';
import { cpuUsOf, pidsOf } from './proc-cpu.js';
import type { AppliedBatch, AppliedOutcome, DeadLetter, JobMessage, LedgerEntry, OutcomeEvent } from '@janus/contracts';

/**
 * The persister benchmark (`npm run bench:persister`): events/s from JetStream into PostgreSQL
 * through the real consumer loop, against a ceiling measured in the same run — the same rows
 * written straight to PostgreSQL from one client with multi-row INSERT ... VALUES (and, as a
 * second, stronger ceiling, with INSERT ... SELECT FROM unnest(arrays): one array parameter per column).
 */
export interface BenchOptions {
  readonly jobs: number;
  readonly runs: number;
  readonly batchSize: number;
  /** Applied outcomes per message, as the retry-scheduler publishes them (1: one message each, its form before batching). */
  readonly appliedPerMessage: number;
  readonly log?: (line: string) => void;
}

export interface BenchRun {
  readonly run: number;
  readonly events: number;
  readonly publishPerSec: number;
  readonly persisterPerSec: number;
  readonly ceilingValuesPerSec: number;
  readonly ceilingUnnestPerSec: number;
  /** CPU time of this (persister) process per event while draining: independent of other load on the machine. */
  readonly persisterCpuUsPerEvent: number;
  /** Wall-clock time the machine's run queue made us wait, roughly: 1 - cpu / wall (with one thread). */
  readonly persisterCpuShare: number;
  /** CPU time of every PostgreSQL process per event while draining (Linux; 0 where /proc is missing). */
  readonly postgresCpuUsPerEvent: number;
}

export interface BenchReport {
  readonly events: number;
  readonly rows: number;
  readonly runs: BenchRun[];
  readonly median: { persisterPerSec: number; ceilingValuesPerSec: number; ceilingUnnestPerSec: number; publishPerSec: number; persisterCpuUsPerEvent: number; postgresCpuUsPerEvent: number };
  /** Median over runs of persister/ceiling measured back to back in the same run. */
  readonly medianRunRatio: number;
  readonly ratioToValuesCeiling: number;
  readonly ratioToBestCeiling: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

type Row = (string | number | boolean | null)[];

/**
 * With BENCH_CPU_PROF=<dir>: a V8 CPU profile of this process while the persister drains (the
 * publishing and the ceilings are left out), written as <dir>/<name>.cpuprofile for bench:profile.
 */
async function startProfile(): Promise<{ stop: (name: string) => Promise<void> } | undefined> {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    stop: async (name) => {
      const { profile } = await session.post('Profiler.stop');
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** Every row the workload must end as, table by table, as a straight writer would produce them. */
function rowsOf(messages: readonly SyntheticMessage[]): { table: string; columns: string[]; rows: Row[] }[] {
  const jobs = new Map<string, Row>();
  const attempts = new Map<string, Row>();
  const outcomes: Row[] = [];
  const dead: Row[] = [];
  const ledger: Row[] = [];
  const now = new Date().toISOString();
  for (const m of messages) {
    if (m.stream === 'jobs') {
      const b = m.body as JobMessage;
      if (b.attempt === 1) jobs.set(b.jobId, [b.jobId, b.tenant, b.type, b.priority, 'admitted', JSON.stringify(b.payload ?? null), b.admittedAt, now]);
      const key = `${b.jobId}.${b.attempt}`;
      const row = attempts.get(key) ?? [b.jobId, b.attempt, null, null, null, null, null, null, null, null];
      row[2] = b.admittedAt;
      row[3] = b.lease.id;
      row[4] = b.lease.expiresAt;
      attempts.set(key, row);
    } else if (m.stream === 'applied') {
      // The attempt's outcome comes from what the scheduler applied, as in the persister.
      const body = m.body as AppliedOutcome | AppliedBatch;
      for (const b of 'applied' in body ? body.applied : [body]) {
        const key = `${b.jobId}.${b.attempt}`;
        const row = attempts.get(key) ?? [b.jobId, b.attempt, null, null, null, null, null, null, null, null];
        row[5] = b.outcome;
        row[6] = now;
        row[7] = b.error ?? null;
        row[8] = b.actualCost ?? null;
        row[9] = b.reportId;
        attempts.set(key, row);
      }
    } else if (m.stream === 'outcomes') {
      const b = m.body as OutcomeEvent;
      outcomes.push([outcomeEventId(b), b.jobId, b.attempt, b.outcome, b.error ?? null, b.actualCost ?? null, 'hash', true, 1, now]);
    } else if (m.stream === 'dead') {
      const b = m.body as DeadLetter;
      dead.push([b.jobId, b.tenant, b.type, b.attempts, b.lastOutcome, b.error ?? null, JSON.stringify(b.payload ?? null), b.deadAt]);
    } else if (m.stream === 'ledger') {
      const b = m.body as LedgerEntry;
      ledger.push([ledgerEntryId(b), b.tenant, b.kind, b.amount, b.jobId, b.attempt, b.at]);
    }
  }
  return [
    { table: 'jobs', columns: ['job_id', 'tenant', 'type', 'priority', 'status', 'payload', 'created_at', 'updated_at'], rows: [...jobs.values()] },
    {
      table: 'attempts',
      columns: ['job_id', 'attempt', 'admitted_at', 'lease_id', 'lease_expires_at', 'outcome', 'finished_at', 'error', 'actual_cost', 'applied_report_id'],
      rows: [...attempts.values()],
    },
    {
      table: 'outcome_events',
      columns: ['event_id', 'job_id', 'attempt', 'outcome', 'error', 'actual_cost', 'lease_token_hash', 'applied', 'stream_seq', 'reported_at'],
      rows: outcomes,
    },
    { table: 'dead_letters', columns: ['job_id', 'tenant', 'type', 'attempts', 'last_outcome', 'error', 'payload', 'dead_at'], rows: dead },
    { table: 'budget_ledger', columns: ['entry_id', 'tenant', 'kind', 'amount', 'job_id', 'attempt', 'at'], rows: ledger },
  ];
}

const PG_TYPES: Record<string, string[]> = {
  jobs: ['text', 'text', 'text', 'text', 'text', 'jsonb', 'timestamptz', 'timestamptz'],
  attempts: ['text', 'int', 'timestamptz', 'text', 'timestamptz', 'text', 'timestamptz', 'text', 'int', 'text'],
  outcome_events: ['text', 'text', 'int', 'text', 'text', 'int', 'text', 'boolean', 'bigint', 'timestamptz'],
  dead_letters: ['text', 'text', 'text', 'int', 'text', 'text', 'jsonb', 'timestamptz'],
  budget_ledger: ['text', 'text', 'text', 'bigint', 'text', 'int', 'timestamptz'],
};

/** One client, sequential, 500-row statements, one transaction per statement group of a batch. */
async function writeStraight(client: pg.Client, tables: ReturnType<typeof rowsOf>, style: 'values' | 'unnest', chunk: number): Promise<number> {
  const t0 = performance.now();
  for (const { table, columns, rows } of tables) {
    const types = PG_TYPES[table] ?? [];
    for (let i = 0; i < rows.length; i += chunk) {
      const part = rows.slice(i, i + chunk);
      if (style === 'values') {
        const params: unknown[] = [];
        const tuples = part.map((row) => `(${row.map((v) => (params.push(v), `$${params.length}`)).join(',')})`);
        await client.query(`INSERT INTO ${table} (${columns.join(',')}) VALUES ${tuples.join(',')} ON CONFLICT DO NOTHING`, params);
      } else {
        const arrays = columns.map((_, c) => part.map((row) => row[c] ?? null));
        const cast = types.map((t, c) => `$${c + 1}::${t === 'jsonb' ? 'text' : t}[]`);
        const select = types.map((t, c) => (t === 'jsonb' ? `c${c}::jsonb` : `c${c}`));
        await client.query(
          `INSERT INTO ${table} (${columns.join(',')}) SELECT ${select.join(',')} FROM unnest(${cast.join(',')}) AS u(${columns.map((_, c) => `c${c}`).join(',')}) ON CONFLICT DO NOTHING`,
          arrays,
        );
      }
    }
  }
  return performance.now() - t0;
}

export async function runPersisterBenchmark(settings: Settings, opts: BenchOptions): Promise<BenchReport> {
  const log = opts.log ?? (() => {});
  const ns = settings.namespace;
  const names = natsNames(ns);
  const workload = syntheticWorkload(names, opts.jobs, { appliedPerMessage: opts.appliedPerMessage });
  const messages = shuffle([...workload.messages], prng(1));
  const tables = rowsOf(messages);
  const rowCount = tables.reduce((n, t) => n + t.rows.length, 0);
  const runs: BenchRun[] = [];
  await migrate(settings);
  const handle = createDb(settings, { max: 8, applicationName: 'janus-bench' });
  const client = new pg.Client({ connectionString: settings.databaseUrl, options: `-c search_path="${ns}"` });
  await client.connect();
  const nc = await connectNats(settings, { name: 'janus-bench' });
  const truncate = () => handle.pool.query('TRUNCATE jobs, attempts, outcome_events, dead_letters, budget_ledger, rejected_messages');
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    for (let run = 1; run <= opts.runs; run++) {
      // Ceiling 1 and 2: the same rows straight into PostgreSQL from one client.
      await truncate();
      const valuesMs = await writeStraight(client, tables, 'values', 500);
      await truncate();
      const unnestMs = await writeStraight(client, tables, 'unnest', 500);
      await truncate();

      // JetStream → persister → PostgreSQL: publish everything first (fresh streams), then time the drain.
      await dropNatsNamespace([...settings.natsServers], ns, settings.natsAuth);
      await ensureStreams(jsm, names);
      const p0 = performance.now();
      const inFlight = 4;
      let next = 0;
      const batches: SyntheticMessage[][] = [];
      for (let i = 0; i < messages.length; i += 250) batches.push(messages.slice(i, i + 250));
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          for (let b = batches[next++]; b; b = batches[next++]) {
            const r = await publishAll(js, b, { timeoutMs: 10_000 });
            if (!r.ok) throw new Error(`publish failed for ${r.failed.length} messages`);
          }
        }),
      );
      const publishMs = performance.now() - p0;

      const persister = new Persister({
        db: handle.db,
        js,
        jsm,
        names,
        logger: pino({ level: 'warn' }),
        registry: createMetricsRegistry('bench'),
        batchSize: opts.batchSize,
      });
      const s0 = performance.now();
      const cpu0 = process.cpuUsage();
      const pgCpu0 = new Map(pidsOf('postgres').map((pid) => [pid, cpuUsOf([pid])]));
      const profile = await startProfile();
      await persister.start();
      while (persister.stats().stored < messages.length) {
        if (performance.now() - s0 > 300_000) throw new Error('persister did not drain within 5 minutes');
        await new Promise((r) => setTimeout(r, 5));
      }
      const persistMs = performance.now() - s0;
      await profile?.stop(`persister-drain-run${run}`);
      const cpu = process.cpuUsage(cpu0);
      // Backends the pool opened meanwhile count from 0; those that exited meanwhile are lost (rare).
      const pgCpuUs = pidsOf('postgres').reduce((sum, pid) => sum + cpuUsOf([pid]) - (pgCpu0.get(pid) ?? 0), 0);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      await persister.stop();
      const counts = await countRows(handle.db);
      const e = workload.expected;
      if (counts.jobs !== e.jobs || counts.completeAttempts !== e.attempts || counts.ledger !== e.ledger || counts.outcomeEvents !== e.outcomeEvents || counts.deadLetters !== e.deadLetters) {
        throw new Error(`persister rows differ from the workload: ${JSON.stringify(counts)} vs ${JSON.stringify(e)}`);
      }
      const perSec = (ms: number) => Math.round((messages.length / ms) * 1000);
      const result: BenchRun = {
        run,
        events: messages.length,
        publishPerSec: perSec(publishMs),
        persisterPerSec: perSec(persistMs),
        ceilingValuesPerSec: perSec(valuesMs),
        ceilingUnnestPerSec: perSec(unnestMs),
        persisterCpuUsPerEvent: Math.round(((cpuMs * 1000) / messages.length) * 10) / 10,
        persisterCpuShare: Math.round((cpuMs / persistMs) * 100) / 100,
        postgresCpuUsPerEvent: Math.round((pgCpuUs / messages.length) * 10) / 10,
      };
      runs.push(result);
      log(`run ${run}: ${JSON.stringify(result)}`);
    }
  } finally {
    await client.end();
    await nc.drain().catch(() => undefined);
    await handle.close();
    await dropNatsNamespace([...settings.natsServers], ns, settings.natsAuth).catch(() => undefined);
    await dropPgNamespace(settings.databaseUrl, ns).catch(() => undefined);
  }
  const med = {
    persisterPerSec: median(runs.map((r) => r.persisterPerSec)),
    ceilingValuesPerSec: median(runs.map((r) => r.ceilingValuesPerSec)),
    ceilingUnnestPerSec: median(runs.map((r) => r.ceilingUnnestPerSec)),
    publishPerSec: median(runs.map((r) => r.publishPerSec)),
    persisterCpuUsPerEvent: median(runs.map((r) => r.persisterCpuUsPerEvent)),
    postgresCpuUsPerEvent: median(runs.map((r) => r.postgresCpuUsPerEvent)),
  };
  return {
    events: messages.length,
    rows: rowCount,
    runs,
    median: med,
    medianRunRatio: median(runs.map((r) => r.persisterPerSec / r.ceilingValuesPerSec)),
    ratioToValuesCeiling: med.persisterPerSec / med.ceilingValuesPerSec,
    ratioToBestCeiling: med.persisterPerSec / Math.max(med.ceilingValuesPerSec, med.ceilingUnnestPerSec),
  };
}
