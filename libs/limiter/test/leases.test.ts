import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, snapshotKeys, type Harness } from './helpers.js';
import type { AdmissionResult } from '../src/index.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function leaseOf(r: AdmissionResult) {
  if (r.kind !== 'admitted' || r.jobs[0]?.lease === undefined) throw new Error(`expected an admission, got ${JSON.stringify(r)}`);
  return r.jobs[0].lease;
}

const leasePolicy = {
  dependencies: { api: { concurrency: 2, rate: { limit: 100, periodMs: 1000 } } },
  tenants: { acme: { budget: { limit: 100, periodMs: 3_600_000 } } },
  jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }], timeoutMs: 1000 } },
};

describe('priority shedding', () => {
  it('low and normal jobs only take their share; high takes everything', async () => {
    h = await harness('shed', {
      dependencies: { api: { concurrency: 10 } },
      global: { shedding: { low: 0.5, normal: 0.8 } },
      jobTypes: { call: { dependencies: [{ name: 'api' }] } },
    });
    const admitted = async (priority: 'low' | 'normal' | 'high') => (await h!.admit({ jobs: [job('call', { priority })] })).kind;
    for (let i = 0; i < 5; i++) expect(await admitted('low')).toBe('admitted');
    expect(await h.admit({ jobs: [job('call', { priority: 'low' })] })).toMatchObject({ kind: 'rejected', reason: 'shed' });
    for (let i = 0; i < 3; i++) expect(await admitted('normal')).toBe('admitted');
    expect(await h.admit({ jobs: [job('call', { priority: 'normal' })] })).toMatchObject({ kind: 'rejected', reason: 'shed' });
    expect(await admitted('high')).toBe('admitted');
    expect(await admitted('high')).toBe('admitted');
    expect(await h.admit({ jobs: [job('call', { priority: 'high' })] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('a rate share reserves part of the bucket; retryAfterMs is computed against the share', async () => {
    h = await harness('shed', {
      dependencies: { api: { rate: { limit: 10, periodMs: 1000 } } },
      jobTypes: { call: { dependencies: [{ name: 'api' }] } },
    });
    for (let i = 0; i < 8; i++) expect((await h.admit({ jobs: [job('call', { priority: 'low' })] })).kind).toBe('admitted');
    // ceil(0.8 × 10) = 8 used: a low job must wait until one token is back (100 ms).
    expect(await h.admit({ jobs: [job('call', { priority: 'low' })] })).toEqual({ kind: 'rejected', index: 0, reason: 'shed', retryAfterMs: 100 });
    expect((await h.admit({ jobs: [job('call', { priority: 'normal' })] })).kind).toBe('admitted');
    h.advance(199);
    expect((await h.admit({ jobs: [job('call', { priority: 'low' })] })).kind).toBe('rejected');
    h.advance(1);
    expect((await h.admit({ jobs: [job('call', { priority: 'low' })] })).kind).toBe('admitted');
  });

  it('a budget share', async () => {
    h = await harness('shed', { tenants: { acme: { budget: { limit: 10, periodMs: 60_000 } } }, jobTypes: { call: {} } });
    expect((await h.admit({ jobs: [job('call', { priority: 'low', cost: 8 })] })).kind).toBe('admitted');
    expect(await h.admit({ jobs: [job('call', { priority: 'low', cost: 1 })] })).toEqual({ kind: 'rejected', index: 0, reason: 'shed', retryAfterMs: 60_000 });
    expect((await h.admit({ jobs: [job('call', { priority: 'high', cost: 2 })] })).kind).toBe('admitted');
  });
});

describe('leases', () => {
  it('a zero reservation still opens the budget window, so the actual cost is charged at settle', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call', { cost: 0 })] }));
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 0 } });
    expect(await h.limiter.settle(a.token, 'succeeded', 7)).toMatchObject({ ok: true, lease: { reserved: 0, actual: 7 } });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 7 } });
  });

  it('settle frees every slot exactly once and settles the budget both ways', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'j-a', attempt: 2 })] }));
    const b = leaseOf(await h.admit({ jobs: [job('call')] }));
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 20 }, inFlight: { api: 2 } });

    const admittedAt = h.clock.now;
    h.advance(40);
    const settled = await h.limiter.settle(a.token, 'succeeded', 25);
    expect(settled).toEqual({
      ok: true,
      lease: { id: a.id, jobId: 'j-a', attempt: 2, tenant: 'acme', jobType: 'call', reserved: 10, actual: 25, settledAt: admittedAt + 40, admittedAt },
    });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 35 }, inFlight: { api: 1 } });
    expect(await h.limiter.settle(a.token, 'succeeded', 25)).toEqual({ ok: false, reason: 'already_settled' });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 35 }, inFlight: { api: 1 } });

    expect(await h.limiter.settle(b.token, 'failed', 4)).toMatchObject({ ok: true, lease: { reserved: 10, actual: 4 } });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 29 }, inFlight: { api: 0 } });
  });

  it('without an actual cost the estimate stands; a settle after the window ended leaves the new window alone', async () => {
    h = await harness('lease', { ...leasePolicy, jobTypes: { call: { dependencies: [{ name: 'api', cost: 10 }], timeoutMs: 7_200_000 } } });
    const a = leaseOf(await h.admit({ jobs: [job('call')] }));
    const b = leaseOf(await h.admit({ jobs: [job('call')] }));
    await h.limiter.settle(a.token, 'succeeded');
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 20 } });
    h.advance(3_600_000);
    leaseOf(await h.admit({ jobs: [job('call')] }));
    await h.limiter.settle(b.token, 'succeeded', 0);
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 10 } });
  });

  it('rejects forged and foreign tokens before touching Redis', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call')] }));
    const forged = `${a.id}.${'A'.repeat(43)}`;
    expect(await h.limiter.settle(forged, 'succeeded')).toEqual({ ok: false, reason: 'invalid_token' });
    expect(await h.limiter.extend('garbage', 10)).toEqual({ ok: false, reason: 'invalid_token' });
    const otherKey = h.makeLimiter({ signingKey: 'another-signing-key-0123456789abcdef0123' });
    expect(await otherKey.settle(a.token, 'succeeded')).toEqual({ ok: false, reason: 'invalid_token' });
    expect(await h.limiter.usage('acme')).toMatchObject({ inFlight: { api: 1 } });
  });

  it("a token is not valid for a sibling lease of the same call", async () => {
    h = await harness('lease', leasePolicy);
    const r = await h.admit({ jobs: [job('call'), job('call')] });
    if (r.kind !== 'admitted') throw new Error(r.kind);
    const [one, two] = r.jobs.map((j) => j.lease!);
    expect(two!.id).toBe(one!.id.replace(/_1$/, '_2'));
    const mac = one!.token.slice(one!.token.indexOf('.'));
    expect(await h.limiter.settle(`${two!.id}${mac}`, 'succeeded')).toEqual({ ok: false, reason: 'invalid_token' });
    expect(await h.limiter.settle(two!.token, 'succeeded')).toMatchObject({ ok: true, lease: { id: two!.id } });
  });

  it('expiry, extend, fencing and reaping', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'ja' })] }));
    const b = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'jb' })] }));
    expect(a.expiresAt).toBe(h.clock.now + 1000);
    h.advance(600);
    // The first claim is the job's start (admission-to-start metrics); a later extension is not.
    expect(await h.limiter.extend(a.token, 2000)).toMatchObject({ ok: true, lease: { jobId: 'ja', expiresAt: h.clock.now + 2000, started: true } });
    expect(await h.limiter.extend(a.token, 2000)).toMatchObject({ ok: true, lease: { started: false } });
    h.advance(400); // b expires now (expiresAt <= now)
    expect(await h.limiter.reapExpired(10)).toEqual([{ id: b.id, token: b.token, jobId: 'jb', attempt: 1, tenant: 'acme', jobType: 'call', reserved: 10, expiresAt: b.expiresAt, confirmed: true }]);
    expect(await h.limiter.reapExpired(10)).toEqual([]);
    expect(await h.limiter.settle(b.token, 'succeeded', 1)).toEqual({ ok: false, reason: 'expired' });
    expect(await h.limiter.extend(b.token, 1000)).toEqual({ ok: false, reason: 'expired' });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 20 }, inFlight: { api: 1 } });
    // a is still live thanks to the extension: its slot is held and it can settle.
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('rejected');
    expect((await h.limiter.settle(a.token, 'succeeded')).ok).toBe(true);
    expect(await h.limiter.extend(a.token, 1000)).toEqual({ ok: false, reason: 'already_settled' });
  });

  it("concurrent claims of one lease (a job delivered twice) report its start once, from the script's own state", async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'twice' })] }));
    // Both read the record before either script runs; only the script that found it unclaimed started it.
    const claims = await Promise.all([h.limiter.extend(a.token, 2000), h.limiter.extend(a.token, 2000), h.limiter.extend(a.token, 1), h.limiter.extend(a.token, 1)]);
    expect(claims.every((c) => c.ok)).toBe(true);
    expect(claims.filter((c) => c.ok && c.lease.started)).toHaveLength(1);
    expect(claims.every((c) => c.ok && c.lease.admittedAt === h!.clock.now)).toBe(true);
    // The scheduler's 'wait' never starts a job.
    const b = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'waits' })] }));
    expect(await h.limiter.waitAgain(b.token, 2000)).toMatchObject({ ok: true, lease: { started: false } });
    expect(await h.limiter.extend(b.token, 2000)).toMatchObject({ ok: true, lease: { started: true } });
  });

  it('an expired lease that was not reaped yet cannot settle, and the reaper still reports it', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call')] }));
    h.advance(1000);
    expect(await h.limiter.settle(a.token, 'succeeded')).toEqual({ ok: false, reason: 'expired' });
    const reaped = await h.limiter.reapExpired(5);
    expect(reaped.map((l) => l.id)).toEqual([a.id]);
  });

  it('an outcome reported before the expiry settles after it (reportedAt); one reported at or after it does not', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'ja' })] }));
    const b = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'jb' })] }));
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 20 } });
    h.advance(5_000); // both expired long ago, neither reaped yet
    // Reported 1 ms before a's expiry: it counts, with its actual cost, and is settled now.
    expect(await h.limiter.settle(a.token, 'succeeded', 3, { reportedAt: a.expiresAt - 1 })).toMatchObject({
      ok: true,
      lease: { jobId: 'ja', reserved: 10, actual: 3, settledAt: h.clock.now },
    });
    expect(await h.limiter.leaseState(a.token)).toMatchObject({ ok: true, lease: { state: 'settled', outcome: 'succeeded' } });
    expect(await h.limiter.settle(a.token, 'succeeded', 3, { reportedAt: a.expiresAt - 1 })).toEqual({ ok: false, reason: 'already_settled' });
    // Reported at the expiry ms: too late (a lease is live while expiresAt > t).
    expect(await h.limiter.settle(b.token, 'succeeded', 3, { reportedAt: b.expiresAt })).toEqual({ ok: false, reason: 'expired' });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 13 }, inFlight: { api: 0 } });
    // The settled lease is not reaped; the other one is.
    expect((await h.limiter.reapExpired(10)).map((l) => l.jobId)).toEqual(['jb']);
  });

  it('a reaped lease stays reaped, whenever the outcome was reported; a reportedAt later than now means now', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'ja' })] }));
    const b = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'jb' })] }));
    h.advance(500);
    // A clock ahead of Redis's cannot make a report later than now: b is live, it settles.
    expect((await h.limiter.settle(b.token, 'failed', undefined, { reportedAt: h.clock.now + 60_000 })).ok).toBe(true);
    h.advance(500);
    expect((await h.limiter.reapExpired(10)).map((l) => l.jobId)).toEqual(['ja']);
    expect(await h.limiter.settle(a.token, 'succeeded', 1, { reportedAt: a.expiresAt - 900 })).toEqual({ ok: false, reason: 'expired' });
    expect(await h.limiter.leaseState(a.token)).toMatchObject({ ok: true, lease: { state: 'expired' } });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 20 }, inFlight: { api: 0 } });
  });

  it('findExpired upTo lists only what expired by then, never what has not expired yet', async () => {
    h = await harness('lease', { ...leasePolicy, dependencies: { api: {} } });
    const early = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'early' })] }));
    h.advance(300);
    const late = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'late' })] }));
    h.advance(1_000); // both expired (early 300 ms before late)
    const ids = (b: { entries: readonly { leases: readonly { jobId: string }[] }[] }) => b.entries.flatMap((e) => e.leases.map((l) => l.jobId)).sort();
    expect(ids(await h.limiter.findExpired(10, { upTo: early.expiresAt - 1 }))).toEqual([]);
    const batch = await h.limiter.findExpired(10, { upTo: early.expiresAt });
    expect(ids(batch)).toEqual(['early']);
    expect(batch.now).toBe(String(early.expiresAt));
    expect(ids(await h.limiter.findExpired(10, { upTo: late.expiresAt + 10_000 }))).toEqual(['early', 'late']);
    // Marking with the batch's time marks only what it listed.
    expect((await h.limiter.markExpired(batch, batch.entries)).map((l) => l.jobId)).toEqual(['early']);
    expect(ids(await h.limiter.findExpired(10))).toEqual(['late']);
    // A bound past now is now: a live lease is never listed.
    const live = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'live' })] }));
    expect(ids(await h.limiter.findExpired(10, { upTo: live.expiresAt + 10_000 }))).toEqual(['late']);
  });

  it('two-phase reaping: findExpired changes nothing; markExpired marks only the entries given', async () => {
    h = await harness('lease', { ...leasePolicy, dependencies: { api: {} } });
    const batchOf3 = await h.admit({ jobs: Array.from({ length: 3 }, () => job('call')) });
    const single = leaseOf(await h.admit({ jobs: [job('call', { jobId: 'solo' })] }));
    expect(batchOf3.kind).toBe('admitted');
    h.advance(1000);
    const found = await h.limiter.findExpired(10);
    expect(found.entries.flatMap((e) => e.leases).length).toBe(4);
    // Listing twice lists the same: nothing was marked.
    expect((await h.limiter.findExpired(10)).entries.flatMap((e) => e.leases.map((l) => l.id)).sort()).toEqual(found.entries.flatMap((e) => e.leases.map((l) => l.id)).sort());
    expect(await h.limiter.leaseState(single.token)).toMatchObject({ ok: true, lease: { state: 'expired' } });
    // Mark only the entry that holds the single job's lease (its publish "succeeded").
    const soloEntry = found.entries.filter((e) => e.leases.some((l) => l.jobId === 'solo'));
    expect((await h.limiter.markExpired(found, soloEntry)).map((l) => l.jobId)).toEqual(['solo']);
    // The other entry is listed again on the next round; the marked one is gone.
    const again = await h.limiter.findExpired(10);
    expect(again.entries.flatMap((e) => e.leases).length).toBe(3);
    expect(again.entries.flatMap((e) => e.leases).some((l) => l.jobId === 'solo')).toBe(false);
    // Whole entries only: a budget smaller than an entry still lists the entry completely.
    expect((await h.limiter.findExpired(1)).entries.flatMap((e) => e.leases).length).toBe(3);
    expect((await h.limiter.markExpired(again, again.entries)).length).toBe(3);
    expect((await h.limiter.findExpired(10)).entries).toEqual([]);
    expect(await h.limiter.reapExpired(10)).toEqual([]);
  });

  it('reaps whole expiry entries, starting one only while fewer than max leases are listed', async () => {
    h = await harness('lease', { ...leasePolicy, dependencies: { api: {} } });
    const r = await h.admit({ jobs: Array.from({ length: 7 }, () => job('call')) });
    expect(r.kind).toBe('admitted');
    h.advance(100);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    h.advance(1000);
    expect((await h.limiter.reapExpired(3)).length).toBe(7);
    expect((await h.limiter.reapExpired(3)).length).toBe(1);
    expect((await h.limiter.reapExpired(3)).length).toBe(0);
    expect(await h.limiter.usage('acme')).toMatchObject({ inFlight: { api: 0 } });
  });

  it('an unknown lease id with a genuine MAC is unknown', async () => {
    h = await harness('lease', leasePolicy);
    const a = leaseOf(await h.admit({ jobs: [job('call')] }));
    const at = h.limiter.keys.leaseLocation(a.id);
    expect(at).toBeDefined();
    await h.redis.hdel(at!.key, at!.field);
    expect(await h.limiter.settle(a.token, 'succeeded')).toEqual({ ok: false, reason: 'unknown' });
  });
});

describe('revoke', () => {
  it('puts tokens, slots, budget and idempotency records back as they were', async () => {
    h = await harness('revoke', {
      dependencies: { api: { concurrency: 5, rate: { limit: 10, periodMs: 1000, burst: 3 }, costRate: { limit: 100, periodMs: 1000 } } },
      tenants: { acme: { budget: { limit: 100, periodMs: 3_600_000 }, rate: { limit: 5, periodMs: 1000 } } },
      global: { concurrency: 10 },
      jobTypes: { call: { dependencies: [{ name: 'api', cost: 7 }] } },
    });
    const before = await snapshotKeys(h, false);
    const r = await h.admit({
      jobs: [job('call', { idempotency: { key: 'k1', record: 'r1' } }), job('call')],
      idempotency: { key: 'req', tenant: 'acme', record: 'rr', windowMs: 60_000 },
    });
    if (r.kind !== 'admitted') throw new Error('expected an admission');
    expect(await h.limiter.inspect()).toMatchObject({ dependencies: { api: { inFlight: 2, rate: { available: 1 }, costRate: { available: 86 } } } });
    await h.limiter.revoke(r);
    expect(await h.limiter.inspect()).toMatchObject({ dependencies: { api: { inFlight: 0, rate: { available: 3 }, costRate: { available: 100 } } }, global: { inFlight: 0 } });
    expect(await h.limiter.usage('acme')).toMatchObject({ budget: { used: 0 } });
    const after = await snapshotKeys(h, false);
    // Buckets and the budget hash now exist (full, used 0: the same state as absent); nothing else does.
    expect(Object.keys(before)).toEqual([h.limiter.keys.epoch]);
    expect(Object.keys(after).filter((k) => k.includes(':idem:') || k.endsWith(':conc'))).toEqual([]);
    // (with the period, refill and cap the value is scaled by: includes/bucket.lua)
    expect(after[h.limiter.keys.limit('dep:api:rate')]).toEqual({ t: '3000', ts: String(h.clock.now), p: '1000', r: '10', c: '3000' });
    expect(after[h.limiter.keys.limit('tenant:acme:rate')]).toEqual({ t: '5000', ts: String(h.clock.now), p: '1000', r: '5', c: '5000' });
    // The same idempotency keys admit again; the leases are revoked (a late settle changes nothing).
    const again = await h.admit({ jobs: [job('call', { idempotency: { key: 'k1', record: 'r2' } })], idempotency: { key: 'req', tenant: 'acme', record: 'rr2', windowMs: 60_000 } });
    expect(again).toMatchObject({ kind: 'admitted', jobs: [{ lease: {} }] });
    expect(await h.limiter.settle(r.jobs[0]!.lease!.token, 'succeeded')).toEqual({ ok: false, reason: 'already_settled' });
  });
});


describe('lease context, state and reaped tokens (what the retry scheduler relies on)', () => {
  it('keeps the caller context with the lease and reports the state as it moves', async () => {
    h = await harness('lease_ctx', leasePolicy);
    const r = await h.admit({ jobs: [{ ...job('call'), context: '{"payload":1}' }] });
    const lease = leaseOf(r);
    expect(await h.limiter.leaseState(lease.token)).toMatchObject({ ok: true, lease: { state: 'active', context: '{"payload":1}', reserved: 10 } });

    const settled = await h.limiter.settle(lease.token, 'failed');
    expect(settled).toMatchObject({ ok: true, lease: { context: '{"payload":1}' } });
    expect(await h.limiter.leaseState(lease.token)).toMatchObject({ ok: true, lease: { state: 'settled', outcome: 'failed' } });

    expect(await h.limiter.leaseState(`${lease.id}.forged`)).toEqual({ ok: false, reason: 'invalid_token' });
  });

  it('returns each reaped lease with its token and context; an unreaped expired lease reads as expired', async () => {
    h = await harness('lease_ctx', leasePolicy);
    const lease = leaseOf(await h.admit({ jobs: [{ ...job('call'), context: 'ctx-1' }] }));
    h.advance(1_001);
    expect(await h.limiter.leaseState(lease.token)).toMatchObject({ ok: true, lease: { state: 'expired' } });
    const reaped = await h.limiter.reapExpired(10);
    expect(reaped).toHaveLength(1);
    expect(reaped[0]).toMatchObject({ id: lease.id, token: lease.token, context: 'ctx-1' });
    expect(await h.limiter.leaseState(lease.token)).toMatchObject({ ok: true, lease: { state: 'expired' } });
    expect(await h.limiter.settle(lease.token, 'succeeded')).toEqual({ ok: false, reason: 'expired' });
  });
});

describe('concurrency pools (counts per expiry ms, src/lua/includes/pool.lua)', () => {
  const poolPolicy = {
    dependencies: { api: { concurrency: 100 } },
    jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 1000 } },
  };

  it('count exactly what a set of leases scored by expiry would: settle, extend and expiry each move one lease', async () => {
    h = await harness('pool', poolPolicy);
    const batch = await h.admit({ jobs: [job('call'), job('call'), job('call')] });
    if (batch.kind !== 'admitted') throw new Error(batch.kind);
    h.advance(100);
    const late = leaseOf(await h.admit({ jobs: [job('call')] }));
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(4);

    const [a, b] = batch.jobs.map((j) => j.lease!);
    expect((await h.limiter.settle(a!.token, 'succeeded')).ok).toBe(true);
    expect((await h.limiter.extend(b!.token, 5000)).ok).toBe(true);
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(3);

    h.advance(900); // the batch's expiry ms: its one untouched lease stops counting, the extended one does not
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(2);
    h.advance(100); // the late lease's expiry
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(1);
    expect((await h.limiter.settle(late.token, 'succeeded'))).toEqual({ ok: false, reason: 'expired' });
    expect((await h.limiter.settle(b!.token, 'succeeded')).ok).toBe(true);
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(0);
    // the next admission drops every expired count; nothing is left of the pool but the new lease
    const again = leaseOf(await h.admit({ jobs: [job('call')] }));
    const pool = h.limiter.keys.limit('dep:api:conc');
    expect(await h.redis.hgetall(pool)).toEqual({ n: '1', [String(again.expiresAt)]: '1' });
    expect(await h.redis.zrange(h.limiter.keys.poolExpiries(pool), 0, -1)).toEqual([String(again.expiresAt)]);
  });

  it('an idle pool with thousands of expired ms is drained in chunks by the next admission', async () => {
    h = await harness('pool', { dependencies: { api: { concurrency: 5000 } }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 10_000 } } });
    for (let i = 0; i < 2500; i++) {
      expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
      h.advance(1); // every lease at its own expiry ms
    }
    const pool = h.limiter.keys.limit('dep:api:conc');
    expect(await h.redis.zcard(h.limiter.keys.poolExpiries(pool))).toBe(2500);
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(2500);
    h.advance(10_000);
    expect((await h.limiter.inspect()).dependencies['api']?.inFlight).toBe(0);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect(await h.redis.hget(pool, 'n')).toBe('1');
    expect(await h.redis.zcard(h.limiter.keys.poolExpiries(pool))).toBe(1);
  });
});

describe('expiry index (one entry per call and expiry; an extended lease gets its own)', () => {
  it('reaps a call through its one entry, and an extended lease of it later through its own', async () => {
    h = await harness('reapidx', leasePolicy);
    const r = await h.admit({ jobs: [{ ...job('call'), context: 'c1' }, { ...job('call'), context: 'c2' }] });
    if (r.kind !== 'admitted') throw new Error(r.kind);
    const [one, two] = r.jobs.map((j) => j.lease!);
    expect(await h.redis.zcard(h.limiter.keys.leaseExpiry)).toBe(1);
    expect((await h.limiter.extend(two!.token, 5000)).ok).toBe(true);
    expect(await h.redis.zcard(h.limiter.keys.leaseExpiry)).toBe(2);
    h.advance(1000);
    const first = await h.limiter.reapExpired(10);
    expect(first).toEqual([expect.objectContaining({ id: one!.id, token: one!.token, context: 'c1' })]);
    expect(await h.redis.zcard(h.limiter.keys.leaseExpiry)).toBe(1);
    h.advance(5000);
    expect(await h.limiter.reapExpired(10)).toEqual([expect.objectContaining({ id: two!.id, context: 'c2' })]);
    expect(await h.redis.zcard(h.limiter.keys.leaseExpiry)).toBe(0);
    expect(await h.limiter.reapExpired(10)).toEqual([]);
  });
});
