import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { AdmissionHistory } from './admission-history.js';

// record() only: the counters' reading is readLiveStats (@janus/observability), tested there.
const history = (windowMs = 60_000) => new AdmissionHistory({ redis: {} as Redis, keys: { liveStats: (s) => `stats:${s}` } }, { bucketSeconds: 10, windowMs });

describe('AdmissionHistory', () => {
  it('folds seconds into buckets per dependency, by reason; a quiet bucket is zeros', () => {
    const h = history();
    h.record([
      { second: 1_000, fields: { 'admitted:stripe': 3, 'rejected:stripe:dependency_rate': 2, 'admitted:*': 1 } },
      { second: 1_009, fields: { 'admitted:stripe': 1, 'rejected:stripe:paused': 4, 'rejected:stripe:dependency_rate': 1 } },
      { second: 1_010, fields: { 'admitted:db': 5, 'bogus:field': 7, 'throttled:stripe': 2 } },
    ]);
    expect(h.series('stripe')).toEqual([
      [1_000_000, 4, { dependency_rate: 3, paused: 4 }, 0],
      [1_010_000, 0, {}, 2],
    ]);
    expect(h.series('db')).toEqual([
      [1_000_000, 0, {}, 0],
      [1_010_000, 5, {}, 0],
    ]);
  });

  it('counts a second once however often it is read, and drops buckets older than the window', () => {
    const h = history(30_000);
    const second = (s: number) => ({ second: s, fields: { 'admitted:a': 1 } });
    h.record([second(100), second(101)]);
    h.record([second(100), second(101), second(102)]);
    expect(h.series('a')).toEqual([[100_000, 3, {}, 0]]);
    h.record([second(125), second(140)]);
    expect(h.series('a').map((b) => b[0])).toEqual([120_000, 140_000]);
  });
});
