import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobMessage } from '@janus/contracts';
import { openProtectionStack, sleep, type ProtectionStack } from './protection-stack.js';

/**
 * Rate `kind: "window"` (CONTRACT §2 v1.1): at most `limit` admissions in ANY `periodMs`, exact
 * across instances. Two ingress processes, 32 concurrent clients hammering POST /v1/jobs (mode
 * `now`) for 5 s against a dependency of 5 per 1,000 ms: half of the clients come back exactly when
 * the 429 says (`retryAfterMs`, so they all race for the moment the window opens), half after
 * 10–50 ms whatever it says. A worker (the worker SDK) runs the admitted jobs at once, so that no
 * lease expires and nothing is retried behind the test's back.
 *
 * Checked on every admission published to JANUS_JOBS (the limiter's Redis time of the admission is
 * its lease's `expiresAt` − the job type's `timeoutMs`) and on the 202 bodies' `admittedAt`: with
 * every admission as the start of a 1,000 ms interval, no interval holds more than 5; and at least
 * 90 % of the allowance (5 per second over the hammering, from the first admission on) was used.
 */
const LIMIT = 5;
const PERIOD_MS = 1_000;
const TIMEOUT_MS = 30_000;
const CLIENTS = 32;
const HAMMER_MS = 5_000;

let stack: ProtectionStack;

beforeAll(async () => {
  stack = await openProtectionStack(
    'dep_window',
    {
      dependencies: { api: { rate: { limit: LIMIT, periodMs: PERIOD_MS, kind: 'window' } } },
      tenants: { acme: {} },
      jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: TIMEOUT_MS } },
    },
    { ingresses: 2 },
  );
}, 90_000);

afterAll(async () => {
  await stack?.close();
}, 30_000);

/** The most admissions in any interval [t, t + PERIOD_MS) that starts at an admission, and where. */
function densest(times: readonly number[]): { most: number; at: number; window: number[] } {
  const sorted = [...times].sort((a, b) => a - b);
  let best = { most: 0, at: 0, window: [] as number[] };
  let j = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (j < i) j = i;
    while (j < sorted.length && sorted[j]! < sorted[i]! + PERIOD_MS) j++;
    if (j - i > best.most) best = { most: j - i, at: sorted[i]!, window: sorted.slice(i, j).map((t) => t - sorted[i]!) };
  }
  return best;
}

describe('a sliding-window rate across two ingress instances', () => {
  it('admits at most 5 in any 1,000 ms, and uses at least 90 % of that', async () => {
    const ran = new Set<string>();
    await stack.worker('call', async (job) => void ran.add(job.jobId), 8);

    const admitted: { jobId: string; admittedAt: number; answeredAt: number }[] = [];
    const statuses = new Map<string, number>();
    const reasons = new Map<string, number>();
    const started = Date.now();
    const endAt = started + HAMMER_MS;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const patient = c % 4 < 2; // clients 0,1 of every 4 honour retryAfterMs; 2,3 come back soon
        while (Date.now() < endAt) {
          const r = await stack.post({ type: 'call', payload: { c } }, c);
          statuses.set(String(r.status), (statuses.get(String(r.status)) ?? 0) + 1);
          if (r.status === 202) {
            admitted.push({ jobId: String(r.body.jobId), admittedAt: Date.parse(String(r.body.admittedAt)), answeredAt: Date.now() });
            continue;
          }
          expect(r.status).toBe(429);
          reasons.set(String(r.body.reason), (reasons.get(String(r.body.reason)) ?? 0) + 1);
          const wait = patient ? Number(r.body.retryAfterMs) : 10 + Math.random() * 40;
          await sleep(Math.max(0, Math.min(wait, endAt - Date.now())));
        }
      }),
    );
    const stoppedAt = Date.now();
    await sleep(1_000);

    // Every admission that reached the stream (ingress's, and any the scheduler made: none expected).
    const messages = await stack.bed.readStream(stack.bed.names.streams.jobs, JobMessage, 'window-check');
    const redisTimes = messages.map((m) => Date.parse(m.lease.expiresAt) - TIMEOUT_MS);
    const byLease = densest(redisTimes);
    const byBody = densest(admitted.map((a) => a.admittedAt));
    const first = Math.min(...redisTimes);
    const spanMs = stoppedAt - first;
    const allowance = (LIMIT * spanMs) / PERIOD_MS;
    const retries = messages.filter((m) => m.attempt > 1).length;
    console.log(
      `[window] ${CLIENTS} clients for ${stoppedAt - started} ms on 2 ingress: answers ${[...statuses].map(([k, v]) => `${k} ${v}`).join(', ')} (429 reasons: ${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')})\n` +
        `  ${admitted.length} answered 202, ${messages.length} job messages (${retries} retries), ${ran.size} ran\n` +
        `  densest 1,000 ms by the admission's Redis time (lease): ${byLease.most} (offsets ${byLease.window.join(', ')})\n` +
        `  densest 1,000 ms by the 202 body's admittedAt: ${byBody.most} (offsets ${byBody.window.join(', ')})\n` +
        `  used ${messages.length} of an allowance of ${allowance.toFixed(1)} over ${spanMs} ms from the first admission (${((messages.length / allowance) * 100).toFixed(1)} %)\n` +
        `  admission times (ms from the first, Redis): ${[...redisTimes].sort((a, b) => a - b).map((t) => t - first).join(' ')}`,
    );

    expect(messages.map((m) => m.jobId).sort()).toEqual(admitted.map((a) => a.jobId).sort());
    expect(byLease.most).toBeLessThanOrEqual(LIMIT);
    expect(byBody.most).toBeLessThanOrEqual(LIMIT);
    expect(messages.length).toBeGreaterThanOrEqual(0.9 * allowance);
  }, 60_000);
});
