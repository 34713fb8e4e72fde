import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, type Harness } from './helpers.js';
import { NotAdopted, StateLost, isFailOpenLeaseId, parseOutboxFields, type RestoredLease } from '../src/index.js';
import { parseLeaseRecord } from '../src/lease-record.js';
import { ADOPTED_LEASE_GRACE_MS } from '../src/restore.js';

/**
 * Fail-open admissions (Redis unreachable, every dependency `failMode: open`) get leases Redis never
 * recorded; adopt-n writes them once Redis answers. Through the real script on a real Redis with a
 * pinned clock: at the limit (adopted leases fill the pool), one over, after they settle (the slot
 * comes back), adopted twice (counted once), adopted concurrently from several instances, and
 * while the state is lost (nothing written). A job of a tenant with a budget reserves its estimate
 * as it is adopted, once, and settles its actual cost as any lease; so does one with prepaid credits.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const policy = {
  dependencies: { api: { concurrency: 2, rate: { limit: 100, periodMs: 1000 }, failMode: 'open' as const } },
  tenants: { acme: { budget: { limit: 1000, periodMs: 3_600_000 } } },
  jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 5_000 } },
};

/** What the persister's record says of fail-open attempts (as readFailOpenLeases hands them over). */
function failOpen(x: Harness, n: number, extra: Partial<RestoredLease> = {}): { lease: RestoredLease; token: string }[] {
  return x.limiter.failOpenLeases(n).map(({ id, token }, i) => ({
    token,
    lease: { leaseId: id, jobId: `open-${id}`, attempt: 1, tenant: 'acme', jobType: 'call', priority: 'normal', admittedAt: x.clock.now, expiresAt: x.clock.now + 5_000, reserved: 0, seq: 10 + i, ...extra },
  }));
}

const inFlight = async (x: Harness) => (await x.limiter.inspect()).dependencies.api?.inFlight;

describe('fail-open leases', () => {
  it('are marked, genuinely signed, and asked to wait (not refused) until adopted', async () => {
    h = await harness('adopt', policy);
    const [a] = failOpen(h, 1);
    expect(isFailOpenLeaseId(a!.lease.leaseId)).toBe(true);
    const admitted = await h.admit({ jobs: [job('call')] });
    expect(admitted.kind === 'admitted' && isFailOpenLeaseId(admitted.jobs[0]!.lease!.id)).toBe(false);
    await expect(h.limiter.extend(a!.token, 1)).rejects.toBeInstanceOf(NotAdopted);
    await expect(h.limiter.settle(a!.token, 'succeeded')).rejects.toBeInstanceOf(NotAdopted);
    // a forged token is still refused at once
    expect(await h.limiter.extend(`${a!.lease.leaseId}.forged`, 1)).toEqual({ ok: false, reason: 'invalid_token' });
  });

  it('adopted, fill the pool at the limit (one over is refused), run, settle and give the slot back; adopting again counts nothing twice', async () => {
    h = await harness('adopt', policy);
    const open = failOpen(h, 3); // three admitted without the limiter against a limit of 2: that is what `open` means
    expect(await h.limiter.adoptLeases(open.map((o) => o.lease))).toEqual({ ok: true, adopted: 3, existing: 0, skipped: 0 });
    expect(await h.limiter.adoptLeases(open.map((o) => o.lease))).toEqual({ ok: true, adopted: 0, existing: 3, skipped: 0 });
    expect(await inFlight(h)).toBe(3);
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });

    // a worker claims and runs it, and settles it with an actual cost: no rate bucket or budget moves
    expect(await h.limiter.extend(open[0]!.token, 1)).toMatchObject({ ok: true, lease: { id: open[0]!.lease.leaseId, jobId: open[0]!.lease.jobId, started: true } });
    const budgetBefore = (await h.limiter.usage('acme')).budget;
    expect(await h.limiter.settle(open[0]!.token, 'succeeded', 7)).toMatchObject({ ok: true });
    expect(await h.limiter.settle(open[0]!.token, 'succeeded', 7)).toEqual({ ok: false, reason: 'already_settled' });
    expect((await h.limiter.usage('acme')).budget).toEqual(budgetBefore);
    await h.limiter.settle(open[1]!.token, 'failed');
    expect(await inFlight(h)).toBe(1);
    // one slot free again: one admitted, the next one over
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    // a settled lease adopted again (the persister had not stored its outcome yet) stays settled
    expect(await h.limiter.adoptLeases([open[0]!.lease])).toEqual({ ok: true, adopted: 0, existing: 1, skipped: 0 });
    expect(await h.limiter.settle(open[0]!.token, 'succeeded')).toEqual({ ok: false, reason: 'already_settled' });
  });

  it('get a whole lease from their adoption, are reaped like any lease, and their message sequence lets an undelivered one wait', async () => {
    h = await harness('adopt', policy);
    const [late] = failOpen(h, 1);
    h.advance(60_000); // Redis answered again a minute after the admission: the lease in the message has long run out
    await h.limiter.adoptLeases([late!.lease]);
    expect(await h.limiter.leaseState(late!.token)).toMatchObject({ ok: true, lease: { state: 'active', expiresAt: h.clock.now + 5_000 + ADOPTED_LEASE_GRACE_MS } });
    expect(await h.limiter.findUnclaimed(10_000, 10)).toMatchObject([{ jobId: late!.lease.jobId, seq: 10 }]);
    h.advance(5_001 + ADOPTED_LEASE_GRACE_MS);
    expect(await inFlight(h)).toBe(0);
    expect((await h.limiter.reapExpired(10)).map((r) => r.jobId)).toEqual([late!.lease.jobId]);
    const raw = await h.redis.hgetBuffer(h.limiter.keys.leaseLocation(late!.lease.leaseId)!.key, h.limiter.keys.leaseLocation(late!.lease.leaseId)!.field);
    expect(parseLeaseRecord(raw)).toMatchObject({ st: 'expired', rateKeys: [], bk: '', res: 0 });
  });

  it('adopted from many instances at once, are counted once', async () => {
    h = await harness('adopt', policy);
    const open = failOpen(h, 40);
    const instances = Array.from({ length: 8 }, () => h!.makeLimiter());
    const results = await Promise.all(instances.map((l) => l.adoptLeases(open.map((o) => o.lease))));
    expect(results.reduce((n, r) => n + (r.ok ? r.adopted : 0), 0)).toBe(40);
    expect(results.reduce((n, r) => n + (r.ok ? r.existing : 0), 0)).toBe(7 * 40);
    expect(await inFlight(h)).toBe(40);
    expect((await h.limiter.inspect()).global.inFlight).toBe(40);
  });

  it('are not written while the state is lost (a rebuild writes every live lease then)', async () => {
    h = await harness('adopt', policy);
    const open = failOpen(h, 2);
    const keys = await h.redis.keys(`${h.ns}:*`);
    if (keys.length > 0) await h.redis.del(...keys);
    expect(await h.limiter.adoptLeases(open.map((o) => o.lease))).toEqual({ ok: false, reason: 'state_lost' });
    expect(await h.redis.keys(`${h.ns}:*leases*`)).toEqual([]);
    await expect(h.limiter.extend(open[0]!.token, 1)).rejects.toBeInstanceOf(StateLost);
  });

  it('of a tenant with a budget reserve their estimate once as they are adopted, and settle their actual cost', async () => {
    h = await harness('adopt', policy);
    const window = h.clock.now - (h.clock.now % 3_600_000);
    const open = failOpen(h, 3, { reserved: 1, budgetWindow: window });
    const used = async () => (await h!.limiter.usage('acme')).budget?.used;
    expect(await used()).toBe(0);
    expect(await h.limiter.adoptLeases(open.map((o) => o.lease))).toEqual({ ok: true, adopted: 3, existing: 0, skipped: 0 });
    expect(await used()).toBe(3);
    // adopted again (by this or another instance): nothing reserved twice
    const again = await Promise.all([h.limiter.adoptLeases(open.map((o) => o.lease)), h.makeLimiter().adoptLeases(open.map((o) => o.lease))]);
    expect(again.map((r) => r.ok && r.existing)).toEqual([3, 3]);
    expect(await used()).toBe(3);
    // settled with an actual cost: the reservation of 1 becomes 7
    expect(await h.limiter.extend(open[0]!.token, 1)).toMatchObject({ ok: true });
    expect(await h.limiter.settle(open[0]!.token, 'succeeded', 7)).toMatchObject({ ok: true, lease: { reserved: 1, actual: 7 } });
    expect(await used()).toBe(9);
    // revoked leases do not exist here; an expired one keeps its reservation as spent (reap)
    h.advance(5_001 + ADOPTED_LEASE_GRACE_MS);
    expect((await h.limiter.reapExpired(10)).map((r) => [r.jobId, r.reserved]).sort()).toEqual([[open[1]!.lease.jobId, 1], [open[2]!.lease.jobId, 1]].sort());
    expect(await used()).toBe(9);
    // a reservation whose window is over when it is adopted counts in no later window
    const late = failOpen(h, 1, { reserved: 1, budgetWindow: window - 3_600_000 });
    await h.limiter.adoptLeases(late.map((o) => o.lease));
    expect(await used()).toBe(9);
  });

  it('of a tenant with prepaid credits reserve their estimate once as they are adopted (in the outbox too), and settle their actual cost', async () => {
    h = await harness('adopt', policy);
    await h.limiter.topUpCredits('acme', 'k', 10);
    const open = failOpen(h, 2);
    await h.limiter.adoptLeases(open.map((o) => o.lease));
    await h.limiter.adoptLeases(open.map((o) => o.lease));
    expect(await h.limiter.creditsOf('acme')).toMatchObject({ account: true, balance: 10, reserved: 2 });
    expect(await h.limiter.extend(open[0]!.token, 1)).toMatchObject({ ok: true });
    expect(await h.limiter.settle(open[0]!.token, 'succeeded', 3)).toMatchObject({ ok: true, lease: { credits: { reserved: 1, charged: 3 } } });
    expect(await h.limiter.creditsOf('acme')).toMatchObject({ balance: 7, reserved: 1 });
    const entries = (await h.redis.xrange(h.limiter.keys.creditsOutbox, '-', '+')).map(([, f]) => parseOutboxFields(f)!);
    expect(entries.map((e) => [e.kind, e.amount, e.leaseId])).toEqual([
      ['topup', 10, undefined],
      ['reserve', 1, open[0]!.lease.leaseId],
      ['reserve', 1, open[1]!.lease.leaseId],
      ['settle', 3, open[0]!.lease.leaseId],
    ]);
    // a tenant without a credit account reserves nothing
    const other = failOpen(h, 1, { tenant: 'beta' });
    await h.limiter.adoptLeases(other.map((o) => o.lease));
    expect(await h.limiter.creditsOf('beta')).toMatchObject({ account: false, reserved: 0 });
  });
});
