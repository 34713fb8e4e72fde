import { describe, expect, it } from 'vitest';
import { decideAfterFailure, MAX_UNCHARGED_ATTEMPTS, retryDelayMs } from './backoff.js';

const retry = { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 3000 };

describe('retryDelayMs', () => {
  it('doubles from the base delay, caps at the maximum, and jitters within the upper half', () => {
    expect([2, 3, 4, 5].map((a) => retryDelayMs(retry, a, () => 0))).toEqual([500, 1000, 1500, 1500]);
    expect([2, 3, 4, 5].map((a) => retryDelayMs(retry, a, () => 1))).toEqual([1000, 2000, 3000, 3000]);
  });

  it('spreads retries of jobs that failed together', () => {
    const delays = new Set(Array.from({ length: 200 }, () => retryDelayMs(retry, 3)));
    expect(delays.size).toBeGreaterThan(100);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(1000);
  });
});

describe('decideAfterFailure', () => {
  it('retries until maxAttempts, then dead-letters', () => {
    expect(decideAfterFailure(retry, 1, () => 0)).toEqual({ kind: 'retry', nextAttempt: 2, delayMs: 500 });
    expect(decideAfterFailure(retry, 3, () => 0)).toEqual({ kind: 'retry', nextAttempt: 4, delayMs: 1500 });
    expect(decideAfterFailure(retry, 4)).toEqual({ kind: 'dead' });
    expect(decideAfterFailure({ ...retry, maxAttempts: 1 }, 1)).toEqual({ kind: 'dead' });
  });

  it('counts only charged attempts: uncharged (throttled) ones move the attempt number but not toward maxAttempts', () => {
    // Attempt 4 failed, 3 of the 4 uncharged: 1 charged of 4, and attempt 5 comes next, at the first step.
    expect(decideAfterFailure(retry, 4, () => 0, 3)).toEqual({ kind: 'retry', nextAttempt: 5, delayMs: 500 });
    // Every attempt uncharged: still the first step (no exponential growth), never dead.
    expect(decideAfterFailure(retry, 6, () => 0, 6)).toEqual({ kind: 'retry', nextAttempt: 7, delayMs: 500 });
    // 3 charged of 6: the backoff of a third failure; the 4th charged one is the last.
    expect(decideAfterFailure(retry, 6, () => 0, 3)).toEqual({ kind: 'retry', nextAttempt: 7, delayMs: 1500 });
    expect(decideAfterFailure(retry, 7, () => 0, 3)).toEqual({ kind: 'dead' });
    expect(decideAfterFailure({ ...retry, maxAttempts: 1 }, 2, () => 0, 1)).toEqual({ kind: 'dead' });
  });

  it(`charges at most ${MAX_UNCHARGED_ATTEMPTS} uncharged attempts: no job retries for ever`, () => {
    expect(MAX_UNCHARGED_ATTEMPTS).toBe(20);
    const last = retry.maxAttempts + MAX_UNCHARGED_ATTEMPTS;
    expect(decideAfterFailure(retry, last - 1, () => 0, MAX_UNCHARGED_ATTEMPTS)).toMatchObject({ kind: 'retry', nextAttempt: last });
    expect(decideAfterFailure(retry, last, () => 0, MAX_UNCHARGED_ATTEMPTS)).toEqual({ kind: 'dead' });
    // A count past the cap (every attempt throttled) is taken as the cap.
    expect(decideAfterFailure(retry, last, () => 0, last)).toEqual({ kind: 'dead' });
  });
});
