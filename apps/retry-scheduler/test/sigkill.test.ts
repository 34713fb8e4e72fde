import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyDocumentInput } from '@janus/contracts';
import { startAppProcess, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { startWorker } from '@janus/worker-sdk';
import { openTestBed, type TestBed } from './harness.js';

/**
 * The retry-scheduler (a real child process) killed with SIGKILL while outcomes, retries and
 * reaping are in flight, then a new instance started: every job still ends succeeded, no attempt
 * runs twice, and every slot is freed (CONTRACT §6.2).
 */
const JOBS = 150;
const policyDoc: PolicyDocumentInput = {
  // Every first attempt fails on purpose, which would open api's outage circuit (CONTRACT §2
  // `adaptive`) and hold the retries back: this test is about a crash, not the circuit.
  dependencies: { api: { concurrency: 40, adaptive: { enabled: false } } },
  tenants: { acme: {} },
  // Leases (5 s) much shorter than the outage: the outcomes the dead instance held come back only
  // after the 30 s ack wait, when their leases have long expired. Reported in time, they still count
  // (the reaper waits for them), so no attempt runs twice.
  jobTypes: { work: { dependencies: [{ name: 'api' }], timeoutMs: 5_000, retry: { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 400 } } },
};

let bed: TestBed;
const children: AppProcess[] = [];

async function startChildScheduler(): Promise<AppProcess> {
  const child = await startAppProcess('retry-scheduler', testEnv(bed.ns, { LOG_LEVEL: 'warn', JANUS_LOG_FORMAT: 'json' }), { readyTimeoutMs: 30_000 });
  children.push(child);
  return child;
}

beforeAll(async () => {
  bed = await openTestBed('sched_kill', policyDoc);
});

afterAll(async () => {
  await Promise.all(children.map((child) => child.kill('SIGKILL')));
  await bed.close();
});

describe('retry-scheduler killed with SIGKILL mid-flight', () => {
  it('every job ends succeeded, no attempt runs twice, every slot is freed', async () => {
    const first = await startChildScheduler();
    await waitFor(() => bed.jsm.consumers.info(bed.names.streams.jobs, 'workers-work').catch(() => undefined), 10_000);

    // Attempt 1 of every job fails, attempt 2 succeeds: each job needs the scheduler twice (the
    // failure becomes a retry, the success settles).
    const runs = new Map<string, number>();
    const succeeded = new Set<string>();
    const worker = await startWorker({
      nc: bed.nc,
      namespace: bed.ns,
      jobType: 'work',
      concurrency: 16,
      handler: async (job) => {
        const key = `${job.jobId}.${job.attempt}`;
        runs.set(key, (runs.get(key) ?? 0) + 1);
        if (job.attempt === 1) throw new Error('first attempt fails');
        succeeded.add(job.jobId);
      },
    });

    const ids = Array.from({ length: JOBS }, (_, i) => `j-kill-${String(i).padStart(3, '0')}`);
    for (const id of ids) await bed.submit(id, 'work');
    // Kill it while it is busy: some retries admitted, others still waiting or not yet decided. Not
    // before every first attempt ran: one delivered while no scheduler answers its claim is given up
    // by the worker once its 5 s lease runs out (docs/guarantees.md §3), and it then times out and is
    // retried instead — CI once restarted the scheduler more slowly than that (j-kill-146: attempt 1
    // never ran, attempt 2 succeeded).
    await waitFor(() => succeeded.size >= JOBS / 5 && ids.every((id) => runs.has(`${id}.1`)), 30_000);
    await first.kill('SIGKILL');
    const atKill = succeeded.size;

    await startChildScheduler();
    // Outcomes the dead instance held come back after the consumers' ack wait (30 s).
    await waitFor(() => succeeded.size === JOBS, 150_000);
    await waitFor(async () => ((await bed.limiter.inspect()).dependencies.api?.inFlight ?? -1) === 0, 30_000);
    await worker.stop();

    expect(atKill).toBeLessThan(JOBS); // the kill happened mid-flight
    const twice = [...runs].filter(([, n]) => n > 1);
    expect(twice).toEqual([]);
    for (const id of ids) {
      expect(runs.get(`${id}.1`), id).toBe(1);
      // One successful run per job. Usually attempt 2; attempt 3 when the dead instance had admitted
      // attempt 2 but not yet published it: the new instance finds the admission done (idempotent)
      // and does not publish it again, so attempt 2 holds its slot unrun until its lease expires and
      // is reaped (a known gap, docs/guarantees.md "Nothing lost"; the job is late, not lost).
      const later = [2, 3].filter((n) => runs.has(`${id}.${n}`));
      expect(later.length, id).toBe(1);
    }
  }, 240_000);
});
