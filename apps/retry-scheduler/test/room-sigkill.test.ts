import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobMessage } from '@janus/contracts';
import { startAppProcess, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { startWorker, type Worker } from '@janus/worker-sdk';
import { openTestBed, type TestBed } from './harness.js';

/**
 * `kill -9` of the dispatcher (the retry-scheduler process) while it empties a full waiting room,
 * workers running: after a restart every waiting job runs exactly once — none lost, none twice. An
 * admission the killed leader had not confirmed is claimed by a worker (its message is stored) or
 * expires as no attempt and is admitted afresh.
 */
const N = 10_000;
let bed: TestBed;
const processes: AppProcess[] = [];
let worker: Worker | undefined;
const runs = new Map<string, number>();

beforeAll(async () => {
  bed = await openTestBed('room_kill', {
    // Generous but finite: emptying the room takes a few seconds, so the kill lands mid-way.
    dependencies: { fast: { rate: { limit: 2_000, periodMs: 1000 } } },
    tenants: { a: {}, b: { weight: 2 }, c: {} },
    // Leases outlast a slow restart: while no scheduler runs, workers cannot claim, and an admission
    // the killed leader published but had not confirmed must still be held when claims are answered
    // again (with 5 s leases a restart slower than that under CI load let them lapse, and those jobs
    // then waited out JetStream's 2-minute duplicate window: docs/guarantees.md).
    jobTypes: { quick: { dependencies: [{ name: 'fast' }], timeoutMs: 60_000 } },
  });
  // N jobs waiting, as ingress would have stored them (mode "queue"), spread over three tenants.
  await bed.db.pool.query(
    `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, payload, created_at, queued_at, due_at, not_before, state, updated_at)
     SELECT 'job-' || i, 1, (ARRAY['a','b','c'])[1 + i % 3], 'quick', 1, 'normal', '{"i":' || i || '}', now(), now(), now(), now(), 'queued', now()
       FROM generate_series(1, $1::int) AS i`,
    [N],
  );
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  for (const p of processes) await p.kill('SIGKILL').catch(() => undefined);
  await bed?.close();
});

async function stored(): Promise<number> {
  return (await bed.jsm.streams.info(bed.names.streams.jobs)).state.messages;
}

describe('kill -9 of the dispatcher with a full waiting room', () => {
  it('after a restart each waiting job is admitted exactly once', async () => {
    const env = testEnv(bed.ns, { LOG_LEVEL: 'warn' });
    const first = await startAppProcess('retry-scheduler', env);
    processes.push(first);
    await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-quick').catch(() => undefined), 20_000);
    worker = await startWorker({ nc: bed.nc, namespace: bed.ns, jobType: 'quick', concurrency: 64, handler: async (job) => void runs.set(job.jobId, (runs.get(job.jobId) ?? 0) + 1) });
    await waitFor(async () => (await stored()) >= N / 5, 30_000, 20);
    await first.kill('SIGKILL');
    const atKill = await stored();
    expect(atKill).toBeLessThan(N);

    // A restart as slow as CI's worst (the first start of an app under load takes seconds).
    await new Promise((r) => setTimeout(r, 6_000));
    const second = await startAppProcess('retry-scheduler', env, { port: first.port });
    processes.push(second);
    await waitFor(async () => runs.size === N, 90_000, 100).catch(async (error: unknown) => {
      // What a stall looks like, for whoever reads the failure: how far it got, where the room's
      // rows are, and what the restarted dispatcher said.
      const states = await bed.db.pool.query<{ state: string; n: number }>(`SELECT state, count(*)::int AS n FROM waiting_jobs GROUP BY state ORDER BY state`);
      console.error(`[room-kill] stalled: ${runs.size} of ${N} ran; ${await stored()} job messages stored; room ${JSON.stringify(states.rows)}\n${second.output().slice(-4_000)}`);
      throw error;
    });
    await new Promise((r) => setTimeout(r, 1_000)); // nothing runs twice later
    expect(runs.size).toBe(N);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    const rows = await bed.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM waiting_jobs WHERE state = 'admitted'`);
    expect(rows.rows[0]!.n).toBe(N);
    const messages = await bed.readStream(bed.names.streams.jobs, JobMessage, 'room-kill-check');
    // One attempt each (a lost admission re-admitted is the same attempt 1, deduped by its msgID).
    expect(messages.every((m) => m.attempt === 1)).toBe(true);
    console.log(`[room-kill] ${atKill} of ${N} admitted when the dispatcher was killed; all ${N} ran exactly once after the restart`);
  }, 150_000);
});
