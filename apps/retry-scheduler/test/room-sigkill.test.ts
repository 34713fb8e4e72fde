import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobMessage } from '@janus/contracts';
import { startAppProcess, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { openTestBed, type TestBed } from './harness.js';

/**
 * `kill -9` of the dispatcher (the retry-scheduler process) while it empties a full waiting room:
 * after a restart every waiting job is admitted exactly once — none lost, none twice.
 */
const N = 10_000;
let bed: TestBed;
const processes: AppProcess[] = [];

beforeAll(async () => {
  bed = await openTestBed('room_kill', {
    // Generous but finite: emptying the room takes a few seconds, so the kill lands mid-way.
    dependencies: { fast: { rate: { limit: 2_000, periodMs: 1000 } } },
    tenants: { a: {}, b: { weight: 2 }, c: {} },
    jobTypes: { quick: { dependencies: [{ name: 'fast' }], timeoutMs: 600_000 } },
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
    await waitFor(async () => (await stored()) >= N / 5, 30_000, 20);
    await first.kill('SIGKILL');
    const atKill = await stored();
    expect(atKill).toBeLessThan(N);

    const second = await startAppProcess('retry-scheduler', env, { port: first.port });
    processes.push(second);
    await waitFor(async () => {
      const rows = await bed.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM waiting_jobs WHERE state = 'admitted'`);
      return rows.rows[0]!.n === N;
    }, 60_000, 100);

    const messages = await bed.readStream(bed.names.streams.jobs, JobMessage, 'room-kill-check');
    const ids = messages.map((m) => m.jobId);
    expect(messages.length).toBe(N);
    expect(new Set(ids).size).toBe(N);
    expect(messages.every((m) => m.attempt === 1 && m.payload !== undefined)).toBe(true);
    // Each admission holds exactly one lease: none admitted twice behind the stream's dedupe.
    const usage = await Promise.all(['a', 'b', 'c'].map((t) => bed.limiter.usage(t)));
    expect(usage.reduce((s, u) => s + (u.inFlight.fast ?? 0), 0)).toBe(N);
    console.log(`[room-kill] ${atKill} of ${N} admitted when the dispatcher was killed; all ${N} admitted once after the restart`);
  }, 120_000);
});
