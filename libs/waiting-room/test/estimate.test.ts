import { describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { compilePolicy } from '@janus/limiter';
import { jobBoundOf, notBefore } from '../src/estimate.js';

// One job per second, a bucket of 5: n jobs (this one and those ahead) need (n − held) seconds at least.
const policy = compilePolicy(PolicyDocument.parse({ dependencies: { api: { rate: { limit: 1, periodMs: 1000, burst: 5 } } }, tenants: { acme: {} }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } }), 1);
const bound = jobBoundOf(policy, 'acme', 'call');
const id = bound.buckets[0]!.id;
const after = (n: number, levels?: ReadonlyMap<string, number>) => notBefore(0, bound, n, undefined, levels).getTime();

describe('notBefore', () => {
  it('starts from what the bucket holds when its level was read, else from a full bucket', () => {
    expect(bound.buckets).toHaveLength(1);
    // unread: a full bucket of 5 lets 5 through at once
    expect(after(5)).toBe(0);
    expect(after(8)).toBe(3_000);
    // read empty: every job waits its refill; read with 2.5: two and a half fewer
    expect(after(1, new Map([[id, 0]]))).toBe(1_000);
    expect(after(8, new Map([[id, 0]]))).toBe(8_000);
    expect(after(8, new Map([[id, 2.5]]))).toBe(5_500);
    // never more than the bucket's size (a level is read as at most full), never before now
    expect(after(8, new Map([[id, 50]]))).toBe(3_000);
    expect(after(1, new Map([[id, 5]]))).toBe(0);
  });
});
