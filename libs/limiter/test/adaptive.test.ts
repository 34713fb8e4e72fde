import { afterEach, describe, expect, it } from 'vitest';
import { T0, harness, job, type Harness } from './helpers.js';

/**
 * Dependency protection in the limiter (CONTRACT §2 `adaptive`, `retryBudget`, rate `kind`):
 * sliding windows, throttle cooldowns and the effective rate (feedback-n.lua → admit-n.lua's guard),
 * the outage circuit, and retry budgets — each at the limit, one over, after refill, and from many
 * instances at once. The clock is pinned (harness), so every expectation is exact.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Admits `n` jobs one request each and counts the admitted. */
async function admitMany(x: Harness, type: string, n: number, extra: Parameters<typeof job>[1] = {}): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < n; i++) if ((await x.admit({ jobs: [job(type, extra)] })).kind === 'admitted') admitted += 1;
  return admitted;
}

describe('rate kind "window": at most limit in ANY periodMs', () => {
  const doc = { dependencies: { api: { rate: { limit: 5, periodMs: 1000, kind: 'window' as const }, adaptive: { enabled: false } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } };

  it('admits the limit, refuses one over with the exact wait, and slides (no 2× at a boundary)', async () => {
    h = await harness('window', doc);
    expect(await admitMany(h, 'call', 3)).toBe(3); // t = 0
    h.advance(600);
    expect(await admitMany(h, 'call', 2)).toBe(2); // t = 600: 5 in the window
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_rate', retryAfterMs: 400 });
    h.advance(399);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('rejected'); // one ms short
    h.advance(1); // t = 1000: the 3 of t = 0 have left; the 2 of t = 600 remain
    expect(await admitMany(h, 'call', 4)).toBe(3);
    // A bucket of limit 5 would now admit again; the window waits for t = 1600.
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 600 });
    h.advance(600);
    expect(await admitMany(h, 'call', 3)).toBe(2);
  });

  it('a batch is all or nothing and waits until the window holds all of it; a batch over the limit is exceeds_capacity', async () => {
    h = await harness('window-batch', doc);
    expect(await admitMany(h, 'call', 3)).toBe(3);
    h.advance(100);
    const three = { jobs: [job('call'), job('call'), job('call')] };
    expect(await h.limiter.admit(three)).toMatchObject({ kind: 'rejected', retryAfterMs: 900 });
    h.advance(900);
    expect((await h.admit(three)).kind).toBe('admitted');
    expect((await h.limiter.admit({ jobs: Array.from({ length: 6 }, () => job('call')) })).kind).toBe('exceeds_capacity');
  });

  it('is exact from many instances at once', async () => {
    h = await harness('window-par', doc);
    const limiters = Array.from({ length: 8 }, () => h!.makeLimiter());
    const results = await Promise.all(limiters.flatMap((l) => Array.from({ length: 10 }, () => l.admit({ jobs: [job('call')] }))));
    expect(results.filter((r) => r.kind === 'admitted')).toHaveLength(5);
    h.advance(1000);
    const again = await Promise.all(limiters.flatMap((l) => Array.from({ length: 10 }, () => l.admit({ jobs: [job('call')] }))));
    expect(again.filter((r) => r.kind === 'admitted')).toHaveLength(5);
  });
});

describe('throttled feedback: cooldown and effective rate', () => {
  const doc = {
    dependencies: { api: { rate: { limit: 10, periodMs: 1000 } }, other: { rate: { limit: 10, periodMs: 1000 } }, fixed: { rate: { limit: 10, periodMs: 1000 }, adaptive: { enabled: false } } },
    jobTypes: { call: { dependencies: [{ name: 'api' }] }, elsewhere: { dependencies: [{ name: 'other' }] }, steady: { dependencies: [{ name: 'fixed' }] } },
  };

  it('closes the dependency for the asked ms for every instance; then admits at 0.7 × the declared rate', async () => {
    h = await harness('throttle', doc);
    const feedback = await h.makeLimiter().feedback('call', 'throttled', { retryAfterMs: 2_000 });
    expect(feedback).toEqual({ uncharged: false, transitions: [{ dependency: 'api', transition: 'decreased' }] });
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_rate', retryAfterMs: 2_000 });
    expect((await h.admit({ jobs: [job('elsewhere')] })).kind).toBe('admitted'); // another dependency: open
    h.advance(1_999);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('rejected');
    h.advance(1);
    // Ratio 0.7 at the throttle, climbing 2 % of the declared rate per second since: 0.74 now. The
    // bucket restarts empty at the end of a cooldown (no burst into a dependency that just said it
    // is overloaded): a job takes 1/0.74 of a token, 1351 of the 1000-per-token units refilled at
    // 10 per ms, so the first waits 136 ms.
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_rate', retryAfterMs: 136 });
    expect(await h.limiter.dependencyState('api')).toMatchObject({ effective: { ratio: 0.74, rate: { limit: 7.4, periodMs: 1000 } }, cooldownUntil: null });
    // One second later (ratio 0.76): 7 fit, never the declared 10.
    h.advance(1_000);
    expect(await admitMany(h, 'call', 9)).toBe(7);
    h.advance(1_000);
    expect(await admitMany(h, 'call', 9)).toBe(7);
  });

  it('decreases at most once per cooldown (+1 s), never below minRatio, and climbs back to the declared rate', async () => {
    h = await harness('throttle-aimd', { ...doc, dependencies: { ...doc.dependencies, api: { rate: { limit: 10, periodMs: 1000 }, adaptive: { minRatio: 0.3 } } } });
    const ratio = async () => (await h!.limiter.dependencyState('api'))!.effective.ratio;
    await h.limiter.feedback('call', 'throttled', { retryAfterMs: 500 });
    // 429s of jobs admitted before the decrease carry no news: no second decrease until 500 + 1000 ms.
    h.advance(1_400);
    expect((await h.limiter.feedback('call', 'throttled', { retryAfterMs: 500 })).transitions).toEqual([]);
    expect(await ratio()).toBeCloseTo(0.7 + 0.028, 4);
    h.advance(100);
    expect((await h.limiter.feedback('call', 'throttled')).transitions).toEqual([{ dependency: 'api', transition: 'decreased' }]);
    for (let i = 0; i < 5; i++) {
      h.advance(2_000);
      await h.limiter.feedback('call', 'throttled');
    }
    expect(await ratio()).toBeCloseTo(0.3, 4); // minRatio
    h.advance(10_000);
    expect(await ratio()).toBeCloseTo(0.5, 4); // + 0.02 per second
    h.advance(60_000);
    expect(await ratio()).toBe(1); // the declared rate is the ceiling
    expect(await admitMany(h, 'call', 11)).toBe(10);
  });

  it('concurrent cooldowns from many instances keep the longest; a shorter one never reopens it', async () => {
    h = await harness('throttle-par', doc);
    const limiters = Array.from({ length: 8 }, () => h!.makeLimiter());
    await Promise.all(limiters.map((l, i) => l.feedback('call', 'throttled', { retryAfterMs: 500 + i * 100 })));
    await h.limiter.feedback('call', 'throttled', { retryAfterMs: 100 });
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 1_200 });
    // One decrease however many instances reported at once.
    expect((await h.limiter.dependencyState('api'))!.effective.ratio).toBe(0.7);
  });

  it('names the dependency; leaves alone one with adaptive disabled and one without a rate (closed, but no rate to scale)', async () => {
    h = await harness('throttle-named', { dependencies: { pool: { concurrency: 2 }, api: { rate: { limit: 10, periodMs: 1000 } }, fixed: { rate: { limit: 10, periodMs: 1000 }, adaptive: { enabled: false } } }, jobTypes: { use: { dependencies: [{ name: 'pool' }, { name: 'api' }] }, steady: { dependencies: [{ name: 'fixed' }] } } });
    expect((await h.limiter.feedback('steady', 'throttled', { retryAfterMs: 1_000 })).transitions).toEqual([]);
    expect((await h.admit({ jobs: [job('steady')] })).kind).toBe('admitted');
    await h.limiter.feedback('use', 'throttled', { retryAfterMs: 1_000, dependency: 'api' });
    expect(await h.limiter.admit({ jobs: [job('use')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_rate', retryAfterMs: 1_000 });
    expect((await h.limiter.dependencyState('pool'))!.cooldownUntil).toBeNull();
    h.advance(1_000);
    await h.limiter.feedback('use', 'throttled', { retryAfterMs: 300 }); // default: the first dependency
    expect(await h.limiter.admit({ jobs: [job('use')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 300 });
  });
});

describe('outage circuit', () => {
  const doc = { dependencies: { api: { rate: { limit: 100, periodMs: 1000 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } };

  it('opens when at least 10 outcomes over 10 s are half failures; probes one at a time; reopens twice as long; a success closes it', async () => {
    h = await harness('circuit', doc);
    for (let i = 0; i < 5; i++) await h.limiter.feedback('call', 'succeeded');
    for (let i = 0; i < 4; i++) expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([]);
    expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([{ dependency: 'api', transition: 'opened' }]); // 5 of 10
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_unavailable', retryAfterMs: 1_000 });
    // A failure of a job admitted before the opening changes nothing, and is not charged to its job.
    expect(await h.limiter.feedback('call', 'failed')).toEqual({ uncharged: true, transitions: [] });
    h.advance(1_000); // half-open: one probe
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_unavailable', retryAfterMs: 1_000 });
    // The probe's failure reopens it, and is charged to its job: a job that fails for its own
    // reasons must not be the free probe again and again.
    expect(await h.limiter.feedback('call', 'failed')).toEqual({ uncharged: false, transitions: [{ dependency: 'api', transition: 'reopened' }] });
    // what comes in after that, from before the reopening, is free again
    expect(await h.limiter.feedback('call', 'failed')).toEqual({ uncharged: true, transitions: [] });
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', retryAfterMs: 2_000 });
    expect((await h.limiter.dependencyState('api'))!.circuit).toEqual({ state: 'open', probeAt: expect.any(Number) as number });
    h.advance(2_000);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect((await h.limiter.feedback('call', 'succeeded')).transitions).toEqual([{ dependency: 'api', transition: 'closed' }]);
    expect(await admitMany(h, 'call', 20)).toBe(20);
    // Counting starts afresh: 9 failures are not enough.
    for (let i = 0; i < 9; i++) await h.limiter.feedback('call', 'failed');
    expect((await h.limiter.dependencyState('api'))!.circuit.state).toBe('closed');
  });

  it('opens at the 10th failure in a row, however many successes came before (a sudden outage)', async () => {
    h = await harness('circuit-row', doc);
    for (let i = 0; i < 30; i++) await h.limiter.feedback('call', 'succeeded');
    for (let i = 0; i < 9; i++) expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([]);
    expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([{ dependency: 'api', transition: 'opened' }]); // 10 of 40: by the row
  });

  it('only counts the last 10 s; a success ends a row of failures; throttling is not an outage', async () => {
    h = await harness('circuit-window', doc);
    for (let i = 0; i < 9; i++) await h.limiter.feedback('call', 'failed');
    await h.limiter.feedback('call', 'succeeded');
    h.advance(10_000);
    expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([]);
    for (let i = 0; i < 20; i++) await h.limiter.feedback('call', 'throttled');
    expect((await h.limiter.dependencyState('api'))!.circuit.state).toBe('closed');
  });

  it('n successes told at once count as n in a row: the first closes an open circuit, the rest are counted', async () => {
    h = await harness('circuit-count', doc);
    // 5 successes at once, then 5 failures: half of 10 opens it, as with one call per success.
    await h.limiter.feedback('call', 'succeeded', { count: 5 });
    for (let i = 0; i < 4; i++) expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([]);
    expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([{ dependency: 'api', transition: 'opened' }]);
    h.advance(1_000);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted'); // the probe
    expect((await h.limiter.feedback('call', 'succeeded', { count: 6 })).transitions).toEqual([{ dependency: 'api', transition: 'closed' }]);
    // The 5 after the closing one are counted: 5 failures make half of 10 and open it again.
    for (let i = 0; i < 4; i++) expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([]);
    expect((await h.limiter.feedback('call', 'failed')).transitions).toEqual([{ dependency: 'api', transition: 'opened' }]);
    // A count means nothing for a failure: one failure is one.
    h = await harness('circuit-count-failed', doc);
    await h.limiter.feedback('call', 'failed', { count: 10 });
    expect((await h.limiter.dependencyState('api'))!.circuit.state).toBe('closed');
  });

  it("an attempt's feedback counts once: told again (its outcome redelivered) it changes nothing and answers as the first time, also from many instances at once", async () => {
    h = await harness('circuit-once', doc);
    for (let i = 0; i < 8; i++) await h.limiter.feedback('call', 'failed');
    const once = { jobId: 'j-1', attempt: 2 };
    expect(await h.limiter.feedback('call', 'failed', { once })).toEqual({ uncharged: false, transitions: [] }); // the 9th in a row
    // Told again, in parallel from 8 instances: not the 10th failure in a row (the circuit stays closed).
    const again = await Promise.all(Array.from({ length: 8 }, () => h!.makeLimiter().feedback('call', 'failed', { once })));
    expect(again).toEqual(Array.from({ length: 8 }, () => ({ uncharged: false, transitions: [] })));
    expect((await h.limiter.dependencyState('api'))!.circuit.state).toBe('closed');
    // One more failure of another attempt is the 10th: open. The first attempt, told again, still
    // answers "charged", as it was decided while the circuit was closed.
    expect((await h.limiter.feedback('call', 'failed', { once: { jobId: 'j-2', attempt: 1 } })).transitions).toEqual([{ dependency: 'api', transition: 'opened' }]);
    expect(await h.limiter.feedback('call', 'failed', { once })).toEqual({ uncharged: false, transitions: [] });
    // A fresh attempt now is not charged (the circuit is open), and is answered so again when told again.
    const during = { jobId: 'j-3', attempt: 1 };
    expect((await h.limiter.feedback('call', 'failed', { once: during })).uncharged).toBe(true);
    h.advance(60_000); // a minute later, whatever the circuit is now
    expect(await h.limiter.feedback('call', 'failed', { once: during })).toEqual({ uncharged: true, transitions: [] });
  });

  it('lets exactly one probe through from many instances at once', async () => {
    h = await harness('circuit-par', doc);
    for (let i = 0; i < 10; i++) await h.limiter.feedback('call', 'failed');
    h.advance(1_000);
    const limiters = Array.from({ length: 8 }, () => h!.makeLimiter());
    const results = await Promise.all(limiters.flatMap((l) => Array.from({ length: 5 }, () => l.admit({ jobs: [job('call')] }))));
    expect(results.filter((r) => r.kind === 'admitted')).toHaveLength(1);
  });
});

describe('retry budget', () => {
  const doc = { dependencies: { api: { retryBudget: { ratio: 0.2, minPerSec: 0.5 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } };

  it('admits retries up to ratio × first attempts + minPerSec × 10 over the last 10 s; one over waits', async () => {
    h = await harness('retry-budget', doc);
    expect(await admitMany(h, 'call', 10)).toBe(10); // first attempts: allowance 5 + 0.2 × 10 = 7 retries
    expect(await admitMany(h, 'call', 7, { attempt: 2 })).toBe(7);
    expect(await h.limiter.admit({ jobs: [job('call', { attempt: 3 })] })).toMatchObject({ kind: 'rejected', reason: 'retry_budget' });
    expect((await h.limiter.dependencyState('api'))!.retryBudget).toEqual({ windowMs: 10_000, firstAttempts: 10, retries: 7, allowed: 7 });
    expect(await admitMany(h, 'call', 5)).toBe(5); // first attempts are never held back: one more retry
    expect(await admitMany(h, 'call', 2, { attempt: 2 })).toBe(1);
    // One-second slots: a retry counts until the 11th second after its own (a little longer than
    // 10 s, never shorter: ring.lua), so the window has slid past all of them 11 s later.
    h.advance(10_000);
    expect((await h.limiter.admit({ jobs: [job('call', { attempt: 2 })] })).kind).toBe('rejected');
    h.advance(1_000);
    expect(await admitMany(h, 'call', 6, { attempt: 2 })).toBe(5);
  });

  it('over ANY sliding 10 s: retries at the end of one second and 9.06 s later, at the start of the tenth after it, do not get the budget twice', async () => {
    h = await harness('retry-budget-slide', { dependencies: { api: { retryBudget: { ratio: 0, minPerSec: 0.3 } } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });
    h.advance(950); // late in second s0
    expect(await admitMany(h, 'call', 4, { attempt: 2 })).toBe(3); // the allowance: 0.3 × 10
    h.advance(9_060); // t = s0 + 10.01 s: only 9.06 s after those 3
    expect((await h.limiter.admit({ jobs: [job('call', { attempt: 2 })] })).kind).toBe('rejected');
    h.advance(990); // s0 + 11 s: 10.05 s after them
    expect(await admitMany(h, 'call', 4, { attempt: 2 })).toBe(3);
  });

  it('a retry whose earlier attempts were all uncharged (budgetExempt) neither counts against nor waits for the budget', async () => {
    h = await harness('retry-budget-exempt', doc);
    expect(await admitMany(h, 'call', 5, { attempt: 2 })).toBe(5); // the allowance: 5
    expect((await h.limiter.admit({ jobs: [job('call', { attempt: 2 })] })).kind).toBe('rejected');
    expect(await admitMany(h, 'call', 3, { attempt: 3, budgetExempt: true })).toBe(3);
    expect((await h.limiter.dependencyState('api'))!.retryBudget).toMatchObject({ retries: 5, allowed: 5 });
  });

  it('is exact from many instances at once', async () => {
    h = await harness('retry-budget-par', doc);
    const limiters = Array.from({ length: 8 }, () => h!.makeLimiter());
    const results = await Promise.all(limiters.flatMap((l) => Array.from({ length: 5 }, () => l.admit({ jobs: [job('call', { attempt: 2 })] }))));
    expect(results.filter((r) => r.kind === 'admitted')).toHaveLength(5);
  });
});

describe('pause (an admin holds a dependency or a job type)', () => {
  const doc = {
    dependencies: { api: { rate: { limit: 100, periodMs: 1000 } }, fixed: { adaptive: { enabled: false } } },
    jobTypes: { call: { dependencies: [{ name: 'api' }] }, other: { dependencies: [{ name: 'fixed' }] }, bare: {} },
  };

  it('refuses with `paused` until resumed (asking again every 5 s), for every instance; other work goes on', async () => {
    h = await harness('pause', doc);
    expect(await h.makeLimiter().pause({ dependency: 'api' })).toEqual({ paused: true, until: Infinity });
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'paused', retryAfterMs: 5_000 });
    expect((await h.admit({ jobs: [job('other')] })).kind).toBe('admitted');
    expect((await h.limiter.dependencyState('api'))!.pausedUntil).toBe(Infinity);
    // Throttling and outcomes meanwhile do not end the pause (its guard does not expire).
    await h.limiter.feedback('call', 'throttled', { retryAfterMs: 100 });
    expect(await h.limiter.pauseState({ dependency: 'api' })).toEqual({ paused: true, until: Infinity });
    expect(await h.limiter.resume({ dependency: 'api' })).toEqual({ paused: false });
    h.advance(200); // the 100 ms cooldown, then 100 ms of refill (its bucket restarted empty)
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
  });

  it('with until: refuses with the exact wait, then admits at until; a dependency without adaptive and a job type pause too', async () => {
    h = await harness('pause-until', doc);
    expect(await h.limiter.pause({ dependency: 'fixed' }, T0 + 2_000)).toEqual({ paused: true, until: T0 + 2_000 });
    expect(await h.limiter.admit({ jobs: [job('other')] })).toMatchObject({ kind: 'rejected', reason: 'paused', retryAfterMs: 2_000 });
    h.advance(1_999);
    expect((await h.limiter.admit({ jobs: [job('other')] })).kind).toBe('rejected');
    h.advance(1);
    expect((await h.admit({ jobs: [job('other')] })).kind).toBe('admitted');
    expect(await h.limiter.pauseState({ dependency: 'fixed' })).toEqual({ paused: false });
    // A job type without dependencies is paused by its own guard; a batch with it is refused whole.
    await h.limiter.pause({ jobType: 'bare' });
    expect(await h.limiter.admit({ jobs: [job('call'), job('bare')] })).toMatchObject({ kind: 'rejected', index: 1, reason: 'paused' });
    expect(await h.limiter.pause({ jobType: 'missing' })).toBeUndefined();
    expect(await h.limiter.pause({ dependency: 'missing' })).toBeUndefined();
  });
});

