import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { dropRedisNamespace, testNamespace } from '@janus/testing';
import { compilePolicy, Limiter } from '../src/index.js';
import { OVERSPEND_POLICY } from './fixtures/overspend-policy.js';
import { REDIS_URL, SIGNING_KEY } from './helpers.js';

const run = promisify(execFile);
const ns = testNamespace('overspend');
const redis = new Redis(REDIS_URL);
afterAll(async () => {
  redis.disconnect();
  await dropRedisNamespace(REDIS_URL, ns);
});

const PROCESSES = 4;
const CALLERS = 64;
const DURATION_MS = 5000;

describe('no overspend under contention', () => {
  it(`${PROCESSES} processes × ${CALLERS} callers on one dependency (1000/s, burst 100, concurrency 50) for 5 s`, async () => {
    const limiter = new Limiter({ redis, namespace: ns, signingKey: SIGNING_KEY, policy: compilePolicy(PolicyDocument.parse(OVERSPEND_POLICY), 1) });
    await limiter.init({ fresh: true });
    const fixture = fileURLToPath(new URL('./fixtures/overspend-worker.ts', import.meta.url));
    const startAt = Date.now() + 2500; // every process has loaded tsx by then
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const snap = await limiter.inspect();
        maxSeen = Math.max(maxSeen, snap.dependencies['api']?.inFlight ?? 0);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const outputs = await Promise.all(
      Array.from({ length: PROCESSES }, () =>
        run(process.execPath, ['--import', 'tsx', fixture, ns, String(startAt), String(DURATION_MS), String(CALLERS)], {
          env: { ...process.env, REDIS_URL },
          maxBuffer: 64 * 1024 * 1024,
        }),
      ),
    );
    sampling = false;
    await sampler;
    const results = outputs.map((o) => JSON.parse(o.stdout) as { admittedAt: number[]; held: [number, number][]; rejected: number });
    const times = results.flatMap((r) => r.admittedAt).sort((a, b) => a - b);
    const rejected = results.reduce((n, r) => n + r.rejected, 0);

    // Admissions in any interval [t_i, t_j] never exceed burst + rate × (t_j − t_i) (rate = 1 per ms).
    // max over i ≤ j of (j − i + 1) − (t_j − t_i) = max_j (j + 1 − t_j + max_{i ≤ j} (t_i − i)).
    let best = -Infinity;
    let worst = -Infinity;
    times.forEach((t, j) => {
      best = Math.max(best, t - j);
      worst = Math.max(worst, j + 1 - t + best);
    });
    expect(worst).toBeLessThanOrEqual(100);
    // The bound is approached, not merely respected. Not "> 90": on a loaded CI machine 256 callers
    // cannot always drain the 100-token burst within a millisecond or two (with other suites running
    // on 2 cores this peak was seen at 34–49, quiet runs reach 100); that the limits bind is proven
    // below by the rejections.
    expect(worst).toBeGreaterThan(25);
    const elapsed = (times.at(-1) ?? 0) - (times[0] ?? 0);
    expect(times.length).toBeLessThanOrEqual(100 + elapsed);
    // The limits bind: the test is not vacuous.
    expect(times.length).toBeGreaterThan(2000);
    expect(rejected).toBeGreaterThan(1000);

    // In flight never exceeds 50: sweep the [admittedAt, settledAt) intervals, frees first on ties.
    const events = results.flatMap((r) => r.held.flatMap(([a, s]) => [[a, 1] as const, [s, -1] as const]));
    events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let live = 0;
    let peak = 0;
    for (const [, d] of events) {
      live += d;
      peak = Math.max(peak, live);
    }
    expect(peak).toBeLessThanOrEqual(50);
    expect(peak).toBeGreaterThanOrEqual(45);
    expect(maxSeen).toBeLessThanOrEqual(50);
    console.log(`overspend: ${times.length} admitted, ${rejected} rejected over ${elapsed} ms; worst window excess ${worst}/100; peak in flight ${peak} (sampled ${maxSeen})`);
  }, 60_000);
});
