/**
 * Pending admissions (admit-n writes leases 'pending'; confirm-n makes them 'active' once JetStream
 * acknowledged the job messages). What this protects:
 * - a replay of a request whose job message is not yet confirmed is not answered "duplicate" (the
 *   admission may still be revoked: a 200 for it would be a lie);
 * - a lease that expires pending (its admitting instance died, or answered 503) is no attempt: the
 *   reaper says so, frees its idempotency keys and its slots;
 * - a worker's settle or extend of a pending lease proves its message reached the stream.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, type Harness } from './helpers.js';
import { StateLost, type AdmissionRequest, type AdmissionResult, type Admitted } from '../src/index.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const policy = {
  dependencies: { api: { concurrency: 2 } },
  jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 1000 } },
};

function admitted(r: AdmissionResult): Admitted {
  if (r.kind !== 'admitted') throw new Error(`expected an admission, got ${JSON.stringify(r)}`);
  return r;
}

const keyed = (key: string, jobId = `j-${key}`): AdmissionRequest => ({ jobs: [job('call', { jobId, idempotency: { key, record: `rec-${key}` } })] });
const batchKeyed = (key: string): AdmissionRequest => ({ jobs: [job('call'), job('call')], idempotency: { key, tenant: 'acme', record: `batch-${key}`, windowMs: 60_000 } });

describe('pending admissions', () => {
  it('a replay is in progress until the admission is confirmed, then a duplicate; it takes nothing either way', async () => {
    h = await harness('pending', { ...policy, dependencies: { api: { concurrency: 10 } } });
    const first = admitted(await h.limiter.admit(keyed('k1')));
    expect(await h.limiter.admit(keyed('k1', 'other'))).toEqual({ kind: 'in_progress', index: 0, record: 'rec-k1' });
    const batch = admitted(await h.limiter.admit(batchKeyed('b1')));
    expect(batch.jobs).toHaveLength(2);
    expect(await h.limiter.admit(batchKeyed('b1'))).toEqual({ kind: 'in_progress', index: -1, record: 'batch-b1' });
    expect(await h.limiter.confirm(keyed('k1'), first)).toEqual({ confirmed: 1, notHeld: [] });
    expect(await h.limiter.admit(keyed('k1', 'other'))).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: 'rec-k1' } }] });
    expect(await h.limiter.confirm(batchKeyed('b1'), batch)).toEqual({ confirmed: 2, notHeld: [] });
    expect(await h.limiter.admit(batchKeyed('b1'))).toEqual({ kind: 'duplicate', record: 'batch-b1' });
    expect((await h.limiter.usage('acme')).inFlight).toEqual({ api: 3 });
  });

  it("a keyed batch whose every job replays a confirmed admission leaves no record of its own (never 'in progress' for its whole window)", async () => {
    h = await harness('pending', { ...policy, dependencies: { api: { concurrency: 10 } } });
    const first = keyed('p1');
    await h.limiter.confirm(first, admitted(await h.limiter.admit(first)));
    const replays: AdmissionRequest = { jobs: [job('call', { jobId: 'x1', idempotency: { key: 'p1', record: 'rec-p1' } })], idempotency: { key: 'all-replays', tenant: 'acme', record: 'batch-all', windowMs: 60_000 } };
    expect(await h.limiter.admit(replays)).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: 'rec-p1' } }] });
    expect(await h.limiter.admit(replays)).toMatchObject({ kind: 'admitted', jobs: [{ duplicate: { record: 'rec-p1' } }] });
    expect(await h.redis.exists(h.limiter.keys.idempotency('acme', 'all-replays'))).toBe(0);
    expect((await h.limiter.usage('acme')).inFlight).toEqual({ api: 1 });
  });

  it('a lease that expires pending is no attempt: unconfirmed, its key freed, its slot freed; a confirmed one is an attempt', async () => {
    h = await harness('pending', policy);
    const lost = admitted(await h.limiter.admit(keyed('lost')));
    const kept = keyed('kept');
    const sent = admitted(await h.limiter.admit(kept));
    await h.limiter.confirm(kept, sent);
    expect((await h.limiter.admit({ jobs: [job('call')] })).kind).toBe('rejected'); // both slots held
    h.advance(1000);
    const reaped = await h.limiter.reapExpired(10);
    expect(reaped.map((l) => [l.jobId, l.confirmed]).sort()).toEqual([
      ['j-kept', true],
      ['j-lost', false],
    ]);
    expect(await h.limiter.leaseState(lost.jobs[0]!.lease!.token)).toMatchObject({ ok: true, lease: { state: 'revoked' } });
    // the lost admission's key can be used again (a fresh admission); the kept one's is a duplicate
    expect(admitted(await h.limiter.admit(keyed('lost', 'again'))).jobs[0]).toMatchObject({ jobId: 'again', lease: { id: expect.any(String) } });
    expect(admitted(await h.limiter.admit(keyed('kept', 'again2'))).jobs[0]).toMatchObject({ duplicate: { record: 'rec-kept' } });
    expect((await h.limiter.usage('acme')).inFlight).toEqual({ api: 1 });
  });

  it('a worker settling or extending a pending lease confirms it', async () => {
    h = await harness('pending', policy);
    const a = admitted(await h.limiter.admit(keyed('settled')));
    const b = admitted(await h.limiter.admit(keyed('extended')));
    expect((await h.limiter.settle(a.jobs[0]!.lease!.token, 'succeeded')).ok).toBe(true);
    expect((await h.limiter.extend(b.jobs[0]!.lease!.token, 5000)).ok).toBe(true);
    expect(admitted(await h.limiter.admit(keyed('settled', 'x'))).jobs[0]).toMatchObject({ duplicate: { record: 'rec-settled' } });
    expect(admitted(await h.limiter.admit(keyed('extended', 'y'))).jobs[0]).toMatchObject({ duplicate: { record: 'rec-extended' } });
    expect(await h.limiter.leaseState(b.jobs[0]!.lease!.token)).toMatchObject({ ok: true, lease: { state: 'running' } });
    h.advance(5000);
    expect((await h.limiter.reapExpired(10)).map((l) => l.confirmed)).toEqual([true]);
  });

  it('a revoked admission cannot be confirmed: the caller learns its lease is not held', async () => {
    h = await harness('pending', policy);
    const request = keyed('rev');
    const a = admitted(await h.limiter.admit(request));
    await h.limiter.revoke(a);
    expect(await h.limiter.confirm(request, a)).toEqual({ confirmed: 0, notHeld: [a.jobs[0]!.lease!.id] });
    expect((await h.limiter.usage('acme')).inFlight).toEqual({ api: 0 });
  });

  it('under parallel replays of one key exactly one admission is made; the others are in progress or duplicates', async () => {
    h = await harness('pending', { ...policy, dependencies: { api: { concurrency: 100 } } });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => h!.limiter.admit(keyed('same', `p-${i}`))));
    const fresh = results.filter((r) => r.kind === 'admitted' && r.jobs[0]?.lease !== undefined);
    expect(fresh).toHaveLength(1);
    expect(results.filter((r) => r.kind === 'in_progress')).toHaveLength(49);
    await h.limiter.confirm(keyed('same'), admitted(fresh[0]!));
    const later = await Promise.all(Array.from({ length: 20 }, (_, i) => h!.limiter.admit(keyed('same', `q-${i}`))));
    expect(later.every((r) => r.kind === 'admitted' && r.jobs[0]?.duplicate !== undefined)).toBe(true);
    expect((await h.limiter.usage('acme')).inFlight).toEqual({ api: 1 });
  });

  it('unclaimed confirmed leases about to expire are listed with their stream sequence; waitAgain extends only those', async () => {
    h = await harness('pending', { ...policy, dependencies: { api: { concurrency: 10 } } });
    const req = { jobs: [job('call'), job('call')] };
    const a = admitted(await h.limiter.admit(req));
    expect(await h.limiter.findUnclaimed(2000, 10)).toEqual([]); // pending: not confirmed yet
    await h.limiter.confirm(req, a, [41, 42]);
    const [first, second] = a.jobs.map((j) => j.lease!);
    expect(await h.limiter.findUnclaimed(500, 10)).toEqual([]); // not within 500 ms of expiry
    h.advance(600);
    const listed = await h.limiter.findUnclaimed(500, 10);
    expect(listed.map((l) => [l.id, l.seq]).sort()).toEqual([
      [first!.id, 41],
      [second!.id, 42],
    ]);
    expect((await h.limiter.extend(second!.token, 1)).ok).toBe(true); // a worker claims it: running
    // A claim that keeps the expiry adds nothing to the expiry index: the call's entry covers it.
    expect(await h.redis.zscore(h.limiter.keys.leaseExpiry, second!.id)).toBeNull();
    expect((await h.limiter.findUnclaimed(500, 10)).map((l) => l.id)).toEqual([first!.id]);
    expect(await h.limiter.waitAgain(second!.token, 1000)).toEqual({ ok: false, reason: 'already_settled' });
    expect(await h.limiter.waitAgain(first!.token, 1000)).toMatchObject({ ok: true, lease: { expiresAt: h.clock.now + 1000 } });
    expect(await h.limiter.leaseState(first!.token)).toMatchObject({ ok: true, lease: { state: 'active' } });
    h.advance(500); // second expired (a timed_out attempt); first waits on, holding its slot
    expect((await h.limiter.reapExpired(10)).map((l) => [l.id, l.confirmed])).toEqual([[second!.id, true]]);
    expect((await h.limiter.usage('acme')).inFlight).toEqual({ api: 1 });
  });

  it('after a state loss a confirmation is a fault, not "not held": the lease may come back with the rebuild', async () => {
    h = await harness('pending', policy);
    const req = keyed('lost-state');
    const a = admitted(await h.limiter.admit(req));
    await h.redis.del(h.limiter.keys.epoch);
    await expect(h.limiter.confirm(req, a, [5])).rejects.toBeInstanceOf(StateLost);
  });

  it("a worker's claim (1 ms) answers as an extension would, in every state of the lease; a lost state is a fault", async () => {
    h = await harness('pending', { ...policy, dependencies: { api: { concurrency: 10 } } });
    const t0 = h.clock.now;
    const keyedPending = admitted(await h.limiter.admit(keyed('claim-k'))).jobs[0]!.lease!;
    const [pending, settled] = admitted(await h.limiter.admit({ jobs: [job('call'), job('call')] })).jobs.map((j) => j.lease!);
    const confirmed = { jobs: [job('call')] };
    const confirmedAdmission = admitted(await h.limiter.admit(confirmed));
    await h.limiter.confirm(confirmed, confirmedAdmission, [7]);
    const active = confirmedAdmission.jobs[0]!.lease!;
    expect((await h.limiter.settle(settled!.token, 'succeeded')).ok).toBe(true);
    h.advance(10);

    // pending with idempotency records: the claim confirms them (a replay is a duplicate from now on)
    expect(await h.limiter.extend(keyedPending.token, 1)).toMatchObject({ ok: true, lease: { expiresAt: keyedPending.expiresAt, admittedAt: t0, started: true } });
    expect(admitted(await h.limiter.admit(keyed('claim-k', 'replay'))).jobs[0]).toMatchObject({ duplicate: { record: 'rec-claim-k' } });
    for (const lease of [pending!, active!]) {
      expect(await h.limiter.extend(lease.token, 1)).toMatchObject({ ok: true, lease: { id: lease.id, expiresAt: lease.expiresAt, admittedAt: t0, started: true } });
      expect(await h.limiter.leaseState(lease.token)).toMatchObject({ ok: true, lease: { state: 'running' } });
      expect(await h.limiter.extend(lease.token, 1)).toMatchObject({ ok: true, lease: { started: false } });
    }
    expect(await h.limiter.extend(settled!.token, 1)).toEqual({ ok: false, reason: 'already_settled' });
    expect(await h.limiter.extend(`x${pending!.token}`, 1)).toEqual({ ok: false, reason: 'invalid_token' });
    h.advance(1000);
    expect(await h.limiter.extend(active!.token, 1)).toEqual({ ok: false, reason: 'expired' });
    await h.redis.del(h.limiter.keys.epoch, h.limiter.keys.leaseLocation(active!.id)!.key);
    await expect(h.limiter.extend(active!.token, 1)).rejects.toBeInstanceOf(StateLost);
  });
});

