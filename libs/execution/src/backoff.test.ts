import { describe, expect, it } from 'vitest';
import { decideAfterFailure, retryDelayMs } from './backoff.js';

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
});
