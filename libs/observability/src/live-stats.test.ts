import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Keys } from '@janus/limiter';
import {
  LIVE_STATS_TTL_SECONDS,
  decisionFields,
  parseStatsField,
  readLiveStats,
  recordDecision,
} from './live-stats.js';

// Own namespace for this file (kept local: this lib does not depend on @janus/testing).
const ns = `t_livestats_${randomBytes(4).toString('hex')}`;
const keys = new Keys(ns);
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

afterAll(async () => {
  const stored = await redis.keys(`${ns}:*`);
  if (stored.length > 0) await redis.del(...stored);
  redis.disconnect();
});

describe('live stats names', () => {
  it('builds the agreed key and fields', () => {
    expect(new Keys('janus').liveStats(1_700_000_000)).toBe('janus:{janus}:stats:1700000000');
    expect(decisionFields({ outcome: 'admitted', dependencies: ['stripe', 'db'] })).toEqual(['admitted:stripe', 'admitted:db']);
    expect(decisionFields({ outcome: 'rejected', reason: 'tenant_rate', dependencies: ['stripe'] })).toEqual([
      'rejected:stripe:tenant_rate',
    ]);
    expect(decisionFields({ outcome: 'admitted', dependencies: [] })).toEqual(['admitted:*']);
    expect(decisionFields({ outcome: 'rejected', reason: 'global_rate', dependencies: [] })).toEqual(['rejected:*:global_rate']);
  });

  it('parses fields back and ignores foreign ones', () => {
    expect(parseStatsField('admitted:stripe')).toEqual({ outcome: 'admitted', dependency: 'stripe' });
    expect(parseStatsField('rejected:*:shed')).toEqual({ outcome: 'rejected', dependency: '*', reason: 'shed' });
    expect(parseStatsField('admitted')).toBeUndefined();
    expect(parseStatsField('other:x')).toBeUndefined();
  });
});

describe('recordDecision / readLiveStats against Redis', () => {
  it('counts per second with a 120 s expiry and sums a window of complete seconds', async () => {
    const base = 1_800_000_000_000; // a fixed second far from now, so the test controls time
    await recordDecision(redis, keys, { outcome: 'admitted', dependencies: ['stripe'] }, { atMs: base + 10 });
    await recordDecision(redis, keys, { outcome: 'admitted', dependencies: ['stripe', 'db'] }, { atMs: base + 999, count: 4 });
    await recordDecision(redis, keys, { outcome: 'rejected', reason: 'dependency_rate', dependencies: ['stripe'] }, { atMs: base + 1_500 });
    await recordDecision(redis, keys, { outcome: 'rejected', reason: 'shed', dependencies: [] }, { atMs: base + 2_100, count: 2 });
    await recordDecision(redis, keys, { outcome: 'throttled', dependencies: ['stripe'] }, { atMs: base + 2_200 });

    const key = keys.liveStats(base / 1000);
    expect(await redis.hgetall(key)).toEqual({ 'admitted:stripe': '5', 'admitted:db': '4' });
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(LIVE_STATS_TTL_SECONDS - 5);
    expect(ttl).toBeLessThanOrEqual(LIVE_STATS_TTL_SECONDS);

    // now = base + 3.2 s: the complete seconds are base, base+1, base+2.
    const stats = await readLiveStats(redis, keys, 3, { nowMs: base + 3_200 });
    expect(stats.fromSecond).toBe(base / 1000);
    expect(stats.toSecond).toBe(base / 1000 + 2);
    expect(stats.dependencies).toEqual({
      stripe: { admitted: 5, rejected: { dependency_rate: 1 }, throttled: 1 },
      db: { admitted: 4, rejected: {}, throttled: 0 },
      '*': { admitted: 0, rejected: { shed: 2 }, throttled: 0 },
    });
    expect(stats.perSecond.map((s) => s.fields)).toEqual([
      { 'admitted:stripe': 5, 'admitted:db': 4 },
      { 'rejected:stripe:dependency_rate': 1 },
      { 'rejected:*:shed': 2, 'throttled:stripe': 1 },
    ]);

    // The still-filling second is left out unless asked for.
    const partial = await readLiveStats(redis, keys, 1, { nowMs: base + 2_500 });
    expect(partial.totals).toEqual({ 'rejected:stripe:dependency_rate': 1 });
    const current = await readLiveStats(redis, keys, 1, { nowMs: base + 2_500, includeCurrent: true });
    expect(current.totals).toEqual({ 'rejected:*:shed': 2, 'throttled:stripe': 1 });
  });

  it("takes the time from the clock it is given (the limiter's, on the namespace's node)", async () => {
    const at = Date.UTC(2031, 5, 1, 0, 0, 10);
    await recordDecision(redis, keys, { outcome: 'admitted', dependencies: ['clocked'] }, { atMs: at });
    const stats = await readLiveStats(redis, keys, 1, { clock: () => Promise.resolve(at + 1_500) });
    expect(stats.toSecond).toBe(at / 1000);
    expect(stats.dependencies['clocked']?.admitted).toBe(1);
  });

  it('reads Redis time by default', async () => {
    await recordDecision(redis, keys, { outcome: 'admitted', dependencies: ['live'] }, { atMs: Date.now() - 1_000 });
    const stats = await readLiveStats(redis, keys, 5);
    expect(stats.dependencies['live']?.admitted).toBe(1);
  });
});
