import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, type Harness } from './helpers.js';

/**
 * cooldown-n.lua: a throttled dependency is closed for the ms it asked, for every instance (its rate
 * buckets go into debt): at the end of the cooldown it admits again, one over is refused with the
 * exact wait, and concurrent cooldowns keep the longest.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const doc = {
  dependencies: { api: { rate: { limit: 10, periodMs: 1000, burst: 5 } }, other: { rate: { limit: 10, periodMs: 1000 } } },
  jobTypes: { call: { dependencies: [{ name: 'api' }] }, elsewhere: { dependencies: [{ name: 'other' }] } },
};

describe('cooldown (a throttled dependency)', () => {
  it('closes the dependency for the asked ms, from a full bucket; then it admits again at its rate', async () => {
    h = await harness('cooldown', doc);
    expect(await h.limiter.cooldown('acme', 'call', 'api', 2_000)).toBe(1);
    const refused = await h.limiter.admit({ jobs: [job('call')] });
    // Debt of 2 s, then one token at 10/s: 100 ms more.
    expect(refused).toMatchObject({ kind: 'rejected', reason: 'dependency_rate', retryAfterMs: 2_100 });
    // Another dependency is not affected.
    expect((await h.admit({ jobs: [job('elsewhere')] })).kind).toBe('admitted');
    h.advance(2_099);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('rejected'); // one ms short
    h.advance(1);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted'); // exactly at the end
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('rejected'); // one over
    h.advance(100);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted'); // after refill
  });

  it('concurrent cooldowns from many instances keep the longest; a shorter one never reopens it', async () => {
    h = await harness('cooldown-par', doc);
    const limiters = Array.from({ length: 8 }, () => h!.makeLimiter());
    await Promise.all(limiters.map((l, i) => l.cooldown('acme', 'call', 'api', 500 + i * 100)));
    await h.limiter.cooldown('acme', 'call', 'api', 100);
    const refused = await h.limiter.admit({ jobs: [job('call')] });
    expect(refused).toMatchObject({ kind: 'rejected', retryAfterMs: 1_200 + 100 });
  });

  it('a dependency without a rate limit is not closed (no bucket); no cooldown for 0 ms', async () => {
    h = await harness('cooldown-none', { dependencies: { pool: { concurrency: 2 } }, jobTypes: { use: { dependencies: [{ name: 'pool' }] } } });
    expect(await h.limiter.cooldown('acme', 'use', 'pool', 1_000)).toBe(0);
    expect(await h.limiter.cooldown('acme', 'use', 'missing', 1_000)).toBe(0);
    expect((await h.admit({ jobs: [job('use')] })).kind).toBe('admitted');
  });
});
