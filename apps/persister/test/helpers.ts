import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Database } from '@janus/db';
import { countRows, type RowCounts } from '@janus/event-store';
import { publishAll } from '@janus/messaging';
import { freePort, testEnv, type SyntheticWorkload } from '@janus/testing';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Publishable {
  readonly subject: string;
  readonly body: unknown;
  readonly msgID: string;
}

/** Publishes in concurrent batches (never one at a time), retrying any that failed. */
export async function publishConcurrently(js: JetStreamClient, messages: readonly Publishable[], batch = 250, inFlight = 4): Promise<void> {
  const batches: Publishable[][] = [];
  for (let i = 0; i < messages.length; i += batch) batches.push(messages.slice(i, i + batch));
  let next = 0;
  const worker = async () => {
    for (let b = batches[next++]; b; b = batches[next++]) {
      let pending = b;
      for (let tries = 0; pending.length > 0; tries++) {
        if (tries > 5) throw new Error(`publishing failed for ${pending.length} messages`);
        const result = await publishAll(js, pending, { timeoutMs: 10_000 });
        pending = result.failed.map((i) => pending[i] as Publishable);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}


export interface ChildPersister {
  readonly process: ChildProcess;
  readonly port: number;
  readonly output: () => string;
  readyz(): Promise<{ status: number; body: { down?: string[] } }>;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string | null>;
}

/** Runs the real persister (`tsx apps/persister/src/main.ts`) as a child process. */
export async function startChildPersister(ns: string, extra: Record<string, string> = {}): Promise<ChildPersister> {
  const port = await freePort();
  const env = { ...process.env, ...testEnv(ns, { JANUS_PERSISTER_PORT: String(port), LOG_LEVEL: 'warn', JANUS_LOG_FORMAT: 'json', ...extra }) };
  const child = spawn(process.execPath, ['--import', 'tsx', 'apps/persister/src/main.ts'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { status: res.status, body: (await res.json()) as { down?: string[] } };
  };
  await waitFor(
    'the persister to become ready',
    async () => {
      if (child.exitCode !== null) throw new Error(`persister exited early:\n${output}`);
      return (await readyz()).status === 200;
    },
    30_000,
  ).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw new Error(`${String(error)}\n${output}`);
  });
  return { process: child, port, output: () => output, readyz, exited };
}

/**
 * Waits until every event of a synthetic workload is stored, then returns the row counts next to
 * what they must be: each event exactly once, nothing rejected, every attempt complete.
 */
export async function waitForEveryEvent(
  db: Database,
  expected: SyntheticWorkload['expected'],
  what: string,
  timeoutMs: number,
): Promise<{ counts: RowCounts; mustBe: RowCounts }> {
  const counts = await waitFor(
    what,
    async () => {
      const c = await countRows(db);
      // Every stream's events: attempt outcomes come from applied events, so raw reports
      // (outcome_events) are waited for on their own.
      const all = c.completeAttempts === expected.attempts && c.outcomeEvents === expected.outcomeEvents && c.deadLetters === expected.deadLetters;
      return all && c.ledger === expected.ledger && c.succeeded + c.dead === expected.jobs ? c : undefined;
    },
    timeoutMs,
    500,
  );
  const mustBe: RowCounts = {
    jobs: expected.jobs,
    attempts: expected.attempts,
    outcomeEvents: expected.outcomeEvents,
    deadLetters: expected.deadLetters,
    ledger: expected.ledger,
    rejected: 0,
    succeeded: expected.succeeded,
    dead: expected.dead,
    completeAttempts: expected.attempts,
  };
  return { counts, mustBe };
}
