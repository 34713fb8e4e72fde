import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, SIGNING_KEY, snapshotKeys, type Harness } from './helpers.js';
import { compilePolicy, Limiter, StateLost, StoreUnavailable } from '../src/index.js';
import { PolicyDocument } from '@janus/contracts';
import { testNamespace } from '@janus/testing';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const batchPolicy = {
  dependencies: {
    api: { rate: { limit: 5000, periodMs: 1000 }, costRate: { limit: 100_000, periodMs: 1000 }, concurrency: 5000, perTenant: { concurrency: 4000, rate: { limit: 4000, periodMs: 1000 } } },
    db: { concurrency: 5000 },
  },
  tenants: { acme: { rate: { limit: 5000, periodMs: 1000 }, concurrency: 5000, budget: { limit: 100_000, periodMs: 3_600_000 } }, poor: { budget: { limit: 1, periodMs: 3_600_000 } } },
  global: { rate: { limit: 5000, periodMs: 1000 }, concurrency: 5000 },
  jobTypes: { call: { dependencies: [{ name: 'api', cost: 3 }, { name: 'db' }] }, plain: {} },
};

describe('batches are all or nothing', () => {
  it('a batch of 1000 whose last job fails consumes nothing anywhere', async () => {
    h = await harness('batch', batchPolicy);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    // poor's budget (1) is spent, so its job fails in the script (a cost over the budget's limit would
    // be exceeds_capacity, decided before Redis)
    expect((await h.limiter.admit({ jobs: [job('plain', { tenant: 'poor', cost: 1 })] })).kind).toBe('admitted');
    const before = await snapshotKeys(h, true);
    const jobs = Array.from({ length: 999 }, (_, i) => job('call', { idempotency: { key: `k${i}`, record: `r${i}` } }));
    jobs.push(job('plain', { tenant: 'poor', cost: 1 }));
    const r = await h.limiter.admit({ jobs, idempotency: { key: 'whole', tenant: 'acme', record: 'x', windowMs: 60_000 } });
    expect(r).toEqual({ kind: 'rejected', index: 999, reason: 'budget_exhausted', retryAfterMs: 3_600_000 });
    expect(await snapshotKeys(h, true)).toEqual(before);
    // The same batch without the failing job goes through, in one step.
    const ok = await h.limiter.admit({ jobs: jobs.slice(0, 999) });
    expect(ok.kind).toBe('admitted');
    expect((await h.limiter.inspect()).dependencies['api']).toMatchObject({ inFlight: 1000 });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 4000 }, inFlight: { api: 1000, db: 1000 } });
  });

  it('refuses batches over 1000 jobs', async () => {
    h = await harness('batch', batchPolicy);
    await expect(h.limiter.admit({ jobs: Array.from({ length: 1001 }, () => job('call')) })).rejects.toMatchObject({ code: 'invalid_admission', status: 400 });
  });
});

describe('policy swap', () => {
  it('setPolicy applies to the next admission', async () => {
    h = await harness('swap', { dependencies: { api: { concurrency: 1 } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('rejected');
    h.limiter.setPolicy(compilePolicy(PolicyDocument.parse({ dependencies: { api: { concurrency: 2 } }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } }), 2));
    expect(h.limiter.policy.version).toBe(2);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('admitted');
  });
});

describe('faults', () => {
  it('Redis unreachable is a StoreUnavailable fault', async () => {
    const redis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: true });
    redis.on('error', () => undefined);
    const limiter = new Limiter({
      redis,
      namespace: testNamespace('faults'),
      signingKey: SIGNING_KEY,
      timeoutMs: 500,
      policy: compilePolicy(PolicyDocument.parse({ jobTypes: { call: {} } }), 1),
    });
    const error = await limiter.admit({ jobs: [job('call')] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailable);
    expect(error).toMatchObject({ code: 'store_unavailable', status: 503, retryable: true });
    const token = 'x.y';
    expect(await limiter.settle(token, 'succeeded')).toEqual({ ok: false, reason: 'invalid_token' });
    redis.disconnect();
  });

  it('a lost state closes admission until it is reopened; the fail-closed fallback only after every earlier lease has expired', async () => {
    h = await harness('lost', { dependencies: { api: { concurrency: 1 } }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 5000 } } });
    const first = await h.limiter.admit({ jobs: [job('call')] });
    expect(first.kind).toBe('admitted');
    // Redis restarts without persistence: every key of the namespace is gone.
    const keys = await h.redis.keys(`${h.ns}:*`);
    await h.redis.del(...keys);
    const lost = await h.limiter.admit({ jobs: [job('call')] }).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(StateLost);
    expect(lost).toMatchObject({ code: 'state_lost', status: 503, recoveringUntil: h.clock.now + 5000 });
    expect(await h.limiter.stateStatus()).toEqual({ trusted: false, recoveringUntil: h.clock.now + 5000 });
    h.advance(4999);
    await expect(h.limiter.admit({ jobs: [job('call')] })).rejects.toMatchObject({ code: 'state_lost', recoveringUntil: h.clock.now + 1 });
    expect(await h.limiter.recover()).toEqual({ open: false, recoveringUntil: h.clock.now + 1 });
    // the fallback is the lock holder's, and not before its time
    expect(await h.limiter.openState('nobody', 'fallback')).toEqual({ kind: 'lock_lost' });
    expect(await h.limiter.acquireRebuildLock('me', 10_000)).toBe(true);
    expect(await h.limiter.openState('me', 'fallback')).toEqual({ kind: 'too_early', recoveringUntil: h.clock.now + 1 });
    h.advance(1);
    // past the window, nothing reopens by itself: a rebuild may be under way
    await expect(h.limiter.admit({ jobs: [job('call')] })).rejects.toBeInstanceOf(StateLost);
    expect(await h.limiter.recover()).toEqual({ open: false, recoveringUntil: h.clock.now });
    expect(await h.limiter.openState('me', 'fallback')).toEqual({ kind: 'opened' });
    expect(await h.redis.exists(h.limiter.keys.rebuildLock)).toBe(0);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect(await h.limiter.init()).toEqual({ open: true });
    expect(await h.limiter.stateStatus()).toEqual({ trusted: true });
  });

  it('init() without fresh starts recovery on an empty store', async () => {
    h = await harness('lost', { jobTypes: { call: { timeoutMs: 2000 } } });
    const other = h.makeLimiter({ namespace: `${h.ns}x` });
    expect(await other.init()).toEqual({ open: false, recoveringUntil: h.clock.now + 2000 });
    await h.redis.del(other.keys.recoveringUntil);
  });
});

describe('generated Lua', () => {
  it('scripts.generated.ts matches src/lua/*.lua', () => {
    const script = fileURLToPath(new URL('../scripts/generate-lua.mjs', import.meta.url));
    expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
