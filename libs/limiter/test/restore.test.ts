import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { harness, job, REDIS_URL, type Harness } from './helpers.js';
import { StateLost, type AdmissionResult, type Lease, type RestoredLease, type RestoredState } from '../src/index.js';
import { parseLeaseRecord } from '../src/lease-record.js';

/**
 * Writing a lost state back (state-lock-1, state-restore-n, state-open-3): the guarantees a rebuild
 * relies on, through the real scripts on a real Redis with a pinned clock. What is restored comes
 * from the admissions themselves here (in Janus it comes from PostgreSQL, see @janus/execution).
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const policy = {
  dependencies: {
    api: { concurrency: 2 },
    fast: { rate: { limit: 10, periodMs: 1000 } },
    metered: { costRate: { limit: 100, periodMs: 1000 } },
    slid: { rate: { limit: 3, periodMs: 1000, kind: 'window' as const } },
    slidcost: { costRate: { limit: 20, periodMs: 1000, kind: 'window' as const } },
  },
  tenants: { acme: { budget: { limit: 10, periodMs: 3_600_000 } }, other: {} },
  jobTypes: {
    call: { dependencies: [{ name: 'api' }], timeoutMs: 5000 },
    ping: { dependencies: [{ name: 'fast' }], timeoutMs: 5000 },
    spend: { dependencies: [{ name: 'metered', cost: 10 }], timeoutMs: 5000 },
    free: { timeoutMs: 5000 },
    wping: { dependencies: [{ name: 'slid' }], timeoutMs: 5000 },
    wspend: { dependencies: [{ name: 'slidcost', cost: 10 }], timeoutMs: 5000 },
  },
};

function admittedLease(r: AdmissionResult): Lease & { jobId: string; attempt: number; admittedAt: number; reserved: number } {
  if (r.kind !== 'admitted' || r.jobs[0]?.lease === undefined) throw new Error(`expected an admission, got ${JSON.stringify(r)}`);
  const j = r.jobs[0];
  return { ...j.lease, jobId: j.jobId, attempt: j.attempt, admittedAt: j.admittedAt, reserved: j.budgetReserved };
}

/** What the durable record would say about an admitted lease. */
function restored(l: ReturnType<typeof admittedLease>, extra: Partial<RestoredLease> = {}): RestoredLease {
  return { leaseId: l.id, jobId: l.jobId, attempt: l.attempt, tenant: 'acme', jobType: 'call', priority: 'high', admittedAt: l.admittedAt, expiresAt: l.expiresAt, reserved: l.reserved, ...extra };
}

const EMPTY: RestoredState = { leases: [], budgets: [], idempotency: [], bucketTenants: [] };

/** Redis restarted without persistence: every key of the namespace is gone. */
async function loseState(x: Harness): Promise<void> {
  const keys = await x.redis.keys(`${x.ns}:*`);
  if (keys.length > 0) await x.redis.del(...keys);
  await expect(x.limiter.admit({ jobs: [job('call')] })).rejects.toBeInstanceOf(StateLost);
}

async function rebuild(x: Harness, state: Partial<RestoredState>, token = 'rebuilder'): Promise<void> {
  expect(await x.limiter.acquireRebuildLock(token, 30_000)).toBe(true);
  expect(await x.limiter.restoreState(token, { ...EMPTY, ...state })).toMatchObject({ ok: true });
  expect(await x.limiter.openState(token, 'rebuilt')).toEqual({ kind: 'opened' });
}

const inFlight = async (x: Harness, dep: string) => (await x.limiter.inspect()).dependencies[dep]?.inFlight;

describe('restored leases', () => {
  it('hold their slots at the limit; one over is refused; the original token settles and frees the slot', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    const b = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    await loseState(h);
    // while the state is lost a worker's report is a fault to retry, never "unknown" (which would drop it)
    await expect(h.limiter.settle(a.token, 'succeeded')).rejects.toBeInstanceOf(StateLost);
    await expect(h.limiter.leaseState(a.token)).rejects.toBeInstanceOf(StateLost);
    await rebuild(h, { leases: [restored(a), restored(b)] });

    expect(await inFlight(h, 'api')).toBe(2);
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    const state = await h.limiter.leaseState(b.token);
    expect(state).toMatchObject({ ok: true, lease: { id: b.id, jobId: b.jobId, state: 'active', expiresAt: b.expiresAt, tenant: 'acme', jobType: 'call' } });
    expect(await h.limiter.settle(a.token, 'succeeded')).toMatchObject({ ok: true, lease: { id: a.id, jobId: a.jobId } });
    expect(await h.limiter.settle(a.token, 'succeeded')).toEqual({ ok: false, reason: 'already_settled' });
    expect(await inFlight(h, 'api')).toBe(1);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('are extended and reaped like any lease, and count in every pool whether or not it is limited', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    const b = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    await loseState(h);
    // b was extended before the loss: the durable record keeps the later expiry
    await rebuild(h, { leases: [restored(a), restored(b, { expiresAt: b.expiresAt + 20_000 })] });
    expect((await h.limiter.inspect()).global.inFlight).toBe(2);

    expect(await h.limiter.extend(a.token, 10_000)).toMatchObject({ ok: true, lease: { expiresAt: h.clock.now + 10_000 } });
    h.advance(5_000); // past both original expiries
    expect(await inFlight(h, 'api')).toBe(2);
    expect((await h.limiter.findExpired(10)).entries).toEqual([]);
    h.advance(10_000); // a's extension has run out, b's has not
    expect(await inFlight(h, 'api')).toBe(1);
    const reaped = await h.limiter.reapExpired(10);
    expect(reaped.map((r) => [r.id, r.jobId])).toEqual([[a.id, a.jobId]]);
    expect(await h.limiter.settle(a.token, 'succeeded')).toEqual({ ok: false, reason: 'expired' });
    h.advance(10_000);
    expect((await h.limiter.reapExpired(10)).map((r) => r.id)).toEqual([b.id]);
    expect(await inFlight(h, 'api')).toBe(0);
  });

  it('one that expired without an outcome is restored for the reaper (a timed_out), counting in no pool', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    await loseState(h);
    h.advance(6_000);
    await rebuild(h, { leases: [restored(a)] });
    expect(await inFlight(h, 'api')).toBe(0);
    expect((await h.limiter.leaseState(a.token))).toMatchObject({ ok: true, lease: { state: 'expired' } });
    expect((await h.limiter.reapExpired(10)).map((r) => r.jobId)).toEqual([a.jobId]);
  });

  it('of a job type the policy no longer has: counted in its tenant and global pools', async () => {
    h = await harness('restore', { ...policy, global: { concurrency: 1 } });
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    await loseState(h);
    await rebuild(h, { leases: [restored(a, { jobType: 'gone' })] });
    expect(await h.limiter.admit({ jobs: [job('free')] })).toMatchObject({ kind: 'rejected', reason: 'global_concurrency' });
    expect(await h.limiter.settle(a.token, 'failed')).toMatchObject({ ok: true });
    expect((await h.limiter.admit({ jobs: [job('free')] })).kind).toBe('admitted');
  });

  it('keep the retry context and the record layout admission writes', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('spend', { cost: 4, context: '{"x":1}' })] }));
    const at = h.limiter.keys.leaseLocation(a.id)!;
    const original = parseLeaseRecord(await h.redis.hgetBuffer(at.key, at.field));
    await loseState(h);
    await rebuild(h, { leases: [restored(a, { jobType: 'spend', cost: 4, context: '{"x":1}' })] });
    const rebuilt = parseLeaseRecord(await h.redis.hgetBuffer(at.key, at.field));
    // everything but the idempotency keys the admission created (only revoke reads them), and the
    // state: admission writes 'pending' (its job message not yet confirmed), a rebuilt lease is 'active'
    expect(original?.st).toBe('pending');
    expect(rebuilt).toEqual({ ...original, st: 'active', idem: [] });
    expect(await h.limiter.settle(a.token, 'failed')).toMatchObject({ ok: true, lease: { context: '{"x":1}', reserved: 4 } });
  });
});

describe('restored budgets, idempotency records and buckets', () => {
  it('a budget used before the loss is still used: at the limit admitted, one over refused; a restored lease settles its reservation', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call', { cost: 6 })] }));
    const windowStart = h.clock.now - (h.clock.now % 3_600_000);
    await loseState(h);
    await rebuild(h, { leases: [restored(a, { cost: 6, budgetWindow: windowStart })], budgets: [{ tenant: 'acme', windowStart, used: 8 }] });
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ limit: 10, used: 8 });
    expect(await h.limiter.admit({ jobs: [job('free', { cost: 3 })] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });
    expect((await h.limiter.admit({ jobs: [job('free', { cost: 2 })] })).kind).toBe('admitted');
    // the restored lease reserved 6 and actually cost 1: 5 come back
    expect(await h.limiter.settle(a.token, 'succeeded', 1)).toMatchObject({ ok: true, lease: { reserved: 6, actual: 1 } });
    expect((await h.limiter.usage('acme')).budget).toMatchObject({ used: 5 });
  });

  it('an idempotency key used before the loss still answers with its record until its window ends', async () => {
    h = await harness('restore', policy);
    await loseState(h);
    await rebuild(h, {
      idempotency: [
        { tenant: 'other', key: 'k1', kind: 'producer', record: 'first answer', expiresAt: h.clock.now + 1000 },
        { tenant: 'other', key: 'retry:j.2', kind: 'retry', record: 'retry', expiresAt: h.clock.now + 1000 },
        { tenant: 'other', key: 'over', kind: 'producer', record: 'x', expiresAt: h.clock.now },
      ],
    });
    const again = (key: string, kind: 'producer' | 'retry' = 'producer') => h!.limiter.admit({ jobs: [job('free', { tenant: 'other', idempotency: { key, record: 'second', kind } })] });
    expect(await again('k1')).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: 'first answer' } }] });
    expect(await again('retry:j.2', 'retry')).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: 'retry' } }] });
    expect(await again('retry:j.2')).toMatchObject({ kind: 'admitted', jobs: [{ lease: expect.anything() }] });
    expect(await again('over')).toMatchObject({ kind: 'admitted', jobs: [{ lease: expect.anything() }] });
    h.advance(1000);
    expect(await again('k1')).toMatchObject({ kind: 'admitted', jobs: [{ lease: expect.anything() }] });
  });

  it('rate buckets restart empty: nothing until a token has refilled, then exactly the rate', async () => {
    h = await harness('restore', policy);
    for (let i = 0; i < 3; i++) expect((await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).kind).toBe('admitted');
    await loseState(h);
    await rebuild(h, { bucketTenants: ['newcomer'] });
    expect(await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_rate', retryAfterMs: 100 });
    // the costRate bucket too: 10 units at 100 per second
    expect(await h.limiter.admit({ jobs: [job('spend', { tenant: 'other' })] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_cost_rate', retryAfterMs: 100 });
    h.advance(99);
    expect((await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).kind).toBe('rejected');
    h.advance(1);
    expect((await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).kind).toBe('admitted');
    expect((await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).kind).toBe('rejected');
    h.advance(1000);
    for (let i = 0; i < 10; i++) expect((await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).kind).toBe('admitted');
    expect((await h.limiter.admit({ jobs: [job('ping', { tenant: 'other' })] })).kind).toBe('rejected');
  });
});

describe('restored sliding windows', () => {
  it('count what was admitted within their period: one over refused; exactly the limit again as entries leave; written twice, counted once', async () => {
    h = await harness('restore', policy);
    const admitted: number[] = [];
    const ping = async () => {
      const r = await h!.limiter.admit({ jobs: [job('wping', { tenant: 'other' })] });
      if (r.kind === 'admitted') admitted.push(r.jobs[0]!.admittedAt);
      return r.kind;
    };
    expect(await ping()).toBe('admitted');
    expect(await ping()).toBe('admitted');
    h.advance(400);
    expect(await ping()).toBe('admitted');
    const T = h.clock.now;
    await loseState(h);
    const admissions = admitted.map((admittedAt) => ({ tenant: 'other', jobType: 'wping', admittedAt }));
    // an admission older than the window counts nothing
    admissions.push({ tenant: 'other', jobType: 'wping', admittedAt: T - 1000 });
    expect(await h.limiter.acquireRebuildLock('r', 30_000)).toBe(true);
    expect(await h.limiter.restoreState('r', { ...EMPTY, admissions })).toMatchObject({ ok: true, windows: 2 });
    expect(await h.limiter.restoreState('r', { ...EMPTY, admissions })).toMatchObject({ ok: true, windows: 2 });
    expect(await h.limiter.openState('r', 'rebuilt')).toEqual({ kind: 'opened' });
    expect(await h.limiter.admit({ jobs: [job('wping', { tenant: 'other' })] })).toEqual({ kind: 'rejected', index: 0, reason: 'dependency_rate', retryAfterMs: 600 });
    h.advance(599);
    expect(await ping()).toBe('rejected');
    h.advance(1); // the first two leave the window
    expect(await ping()).toBe('admitted');
    expect(await ping()).toBe('admitted');
    expect(await ping()).toBe('rejected');
    h.advance(400); // the third leaves
    expect(await ping()).toBe('admitted');
    expect(await ping()).toBe('rejected');
  });

  it('a costRate window holds the settled share of a finished attempt and the estimate of a live one, which its settle replaces', async () => {
    h = await harness('restore', policy);
    const first = admittedLease(await h.limiter.admit({ jobs: [job('wspend', { tenant: 'other' })] }));
    const live = admittedLease(await h.limiter.admit({ jobs: [job('wspend', { tenant: 'other' })] }));
    expect(await h.limiter.settle(first.token, 'succeeded', 2)).toMatchObject({ ok: true });
    // the window holds 2 + 10 of 20
    await loseState(h);
    await rebuild(h, {
      leases: [restored(live, { tenant: 'other', jobType: 'wspend' })],
      admissions: [
        { tenant: 'other', jobType: 'wspend', admittedAt: first.admittedAt, actualCost: 2 },
        { tenant: 'other', jobType: 'wspend', admittedAt: live.admittedAt },
      ],
    });
    expect(await h.limiter.admit({ jobs: [job('wspend', { tenant: 'other' })] })).toMatchObject({ kind: 'rejected', reason: 'dependency_cost_rate' });
    expect((await h.limiter.admit({ jobs: [job('wspend', { tenant: 'other', cost: 8 })] })).kind).toBe('admitted');
    // 20 of 20; the live job's actual cost of 1 gives 9 back
    expect(await h.limiter.settle(live.token, 'succeeded', 1)).toMatchObject({ ok: true });
    expect((await h.limiter.admit({ jobs: [job('wspend', { tenant: 'other', cost: 9 })] })).kind).toBe('admitted');
    expect(await h.limiter.admit({ jobs: [job('wspend', { tenant: 'other', cost: 1 })] })).toMatchObject({ kind: 'rejected', reason: 'dependency_cost_rate' });
  });
});

describe('the rebuild lock', () => {
  it('one of many racing instances holds it; only the holder renews, writes and opens; a released or expired lock is free again', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    await loseState(h);
    const others = Array.from({ length: 8 }, () => h!.makeLimiter());
    const won = await Promise.all(others.map((l, i) => l.acquireRebuildLock(`t${i}`, 30_000)));
    expect(won.filter(Boolean)).toHaveLength(1);
    const holder = `t${won.indexOf(true)}`;
    const loser = holder === 't0' ? 't1' : 't0';
    expect(await h.limiter.renewRebuildLock(loser, 30_000)).toBe(false);
    expect(await h.limiter.restoreState(loser, { ...EMPTY, leases: [restored(a)] })).toEqual({ ok: false, reason: 'lock_lost' });
    expect(await h.limiter.openState(loser, 'rebuilt')).toEqual({ kind: 'lock_lost' });
    expect(await inFlight(h, 'api')).toBe(0);
    expect(await h.limiter.renewRebuildLock(holder, 30_000)).toBe(true);
    await h.limiter.releaseRebuildLock(loser); // not the holder's: nothing happens
    expect(await h.limiter.acquireRebuildLock(loser, 30_000)).toBe(false);
    await h.limiter.releaseRebuildLock(holder);
    expect(await h.limiter.acquireRebuildLock(loser, 50)).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    expect(await h.limiter.acquireRebuildLock(holder, 30_000)).toBe(true);
    // the lock was lost while restoring: what was written stays written once; the next holder completes it
    expect(await h.limiter.restoreState(holder, { ...EMPTY, leases: [restored(a)] })).toMatchObject({ ok: true, leases: 1, existing: 0 });
    await h.redis.set(h.limiter.keys.rebuildLock, 'taker');
    expect(await h.limiter.restoreState('taker', { ...EMPTY, leases: [restored(a)] })).toMatchObject({ ok: true, leases: 0, existing: 1 });
    expect(await h.limiter.openState('taker', 'rebuilt')).toEqual({ kind: 'opened' });
    expect(await inFlight(h, 'api')).toBe(1);
    // once open, a late writer changes nothing
    await h.redis.set(h.limiter.keys.rebuildLock, 'late');
    expect(await h.limiter.restoreState('late', { ...EMPTY, budgets: [{ tenant: 'acme', windowStart: 0, used: 0 }] })).toEqual({ ok: false, reason: 'state_open' });
    expect(await h.limiter.openState('late', 'rebuilt')).toEqual({ kind: 'already_open' });
    expect(await h.redis.exists(h.limiter.keys.rebuildLock)).toBe(0);
  });

  it('under parallel load: admissions during a rebuild are all refused, and afterwards the limit holds exactly', async () => {
    h = await harness('restore', policy);
    const a = admittedLease(await h.limiter.admit({ jobs: [job('call')] }));
    await loseState(h);
    const admissions = Array.from({ length: 50 }, () => h!.limiter.admit({ jobs: [job('call')] }).then((r) => r.kind, (e: unknown) => (e instanceof StateLost ? 'lost' : 'error')));
    expect(await h.limiter.acquireRebuildLock('r', 30_000)).toBe(true);
    const writes = Array.from({ length: 5 }, () => h!.limiter.restoreState('r', { ...EMPTY, leases: [restored(a)] }));
    expect((await Promise.all(admissions)).every((k) => k === 'lost')).toBe(true);
    const results = await Promise.all(writes);
    expect(results.reduce((n, r) => n + (r.ok ? r.leases : 0), 0)).toBe(1);
    expect(await h.limiter.openState('r', 'rebuilt')).toEqual({ kind: 'opened' });
    const raced = await Promise.all(Array.from({ length: 50 }, () => h!.limiter.admit({ jobs: [job('call')] })));
    expect(raced.filter((r) => r.kind === 'admitted')).toHaveLength(1);
    expect(await inFlight(h, 'api')).toBe(2);
  });
});

describe('stateStatus', () => {
  it('a namespace whose keys are gone reads as not trusted to every instance, before any admission set the fallback window', async () => {
    h = await harness('restore', policy);
    const other = new Redis(REDIS_URL);
    try {
      expect(await h.limiter.stateStatus()).toEqual({ trusted: true });
      const keys = await other.keys(`${h.ns}:*`);
      await other.del(...keys);
      expect(await h.makeLimiter().stateStatus()).toEqual({ trusted: false });
    } finally {
      other.disconnect();
    }
  });
});
