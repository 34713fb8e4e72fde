import { afterEach, describe, expect, it } from 'vitest';
import { harness, job, type Harness } from './helpers.js';
import { StateLost, type AdmissionRequest, type Lease } from '../src/index.js';
import { dropRedisNamespace } from '@janus/testing';
import { REDIS_URL } from './helpers.js';

/**
 * takeover-n: a fresh admission of an attempt whose job message JetStream already holds, from an
 * earlier admission whose lease lapsed unconfirmed (released as no attempt), takes over that
 * earlier lease — the one the stored message names. Through the real script on a real Redis with a
 * pinned clock: at the limit (the slot is counted once), one over, after settle (the slot comes
 * back), reaped like any lease, the cases it must refuse, and from several instances at once.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const TIMEOUT_MS = 5_000;
const policy = {
  dependencies: { api: { concurrency: 1, rate: { limit: 100, periodMs: 1000 } } },
  tenants: { acme: {}, payer: { budget: { limit: 1000, periodMs: 3_600_000 } } },
  jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: TIMEOUT_MS, idempotencyWindowMs: 600_000 } },
};

const inFlight = async (x: Harness) => (await x.limiter.inspect()).dependencies.api?.inFlight;

function leaseOf(result: Awaited<ReturnType<Harness['limiter']['admit']>>): Lease {
  if (result.kind !== 'admitted' || result.jobs[0]?.lease === undefined) throw new Error(`not admitted: ${result.kind}`);
  return result.jobs[0].lease;
}

/**
 * Admissions published and never confirmed whose leases lapsed and were reaped as no attempt; then
 * the same attempts admitted afresh (pending).
 */
interface Lapsed {
  readonly req: AdmissionRequest;
  readonly earlier: Lease;
  readonly fresh: Lease;
}

async function lapsedThenAgain(x: Harness, tenant = 'acme', count = 1): Promise<Lapsed[]> {
  const reqs: AdmissionRequest[] = Array.from({ length: count }, () => ({ jobs: [job('call', { tenant, idempotency: { key: `k-${Math.random()}`, record: 'r' } })] }));
  const earlier: Lease[] = [];
  for (const req of reqs) earlier.push(leaseOf(await x.limiter.admit(req)));
  x.advance(TIMEOUT_MS + 1);
  expect((await x.limiter.reapExpired(10)).map((l) => l.confirmed)).toEqual(Array(count).fill(false));
  const out: Lapsed[] = [];
  for (const [i, req] of reqs.entries()) out.push({ req, earlier: earlier[i]!, fresh: leaseOf(await x.limiter.admit(req)) });
  return out;
}

async function lapsedOnce(x: Harness, tenant = 'acme'): Promise<Lapsed> {
  return (await lapsedThenAgain(x, tenant))[0]!;
}

describe('takeover-n', () => {
  it('at the limit the taken-over lease holds the one slot (one over is refused); it runs, settles and gives the slot back', async () => {
    h = await harness('takeover', policy);
    const { earlier, fresh } = await lapsedOnce(h);
    expect(await inFlight(h)).toBe(1);
    expect(await h.limiter.takeOver([{ fresh: fresh.id, earlier: earlier.id, tenant: 'acme' }])).toBe(true);
    expect(await inFlight(h)).toBe(1); // counted once: the slot moved with the record
    expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
    // the stored message's lease runs; the fresh one is gone (it never had a message)
    expect(await h.limiter.extend(fresh.token, 1)).toEqual({ ok: false, reason: 'already_settled' });
    expect(await h.limiter.extend(earlier.token, 1)).toMatchObject({ ok: true, lease: { id: earlier.id, started: true, expiresAt: fresh.expiresAt } });
    expect(await h.limiter.settle(earlier.token, 'succeeded')).toMatchObject({ ok: true });
    expect(await inFlight(h)).toBe(0);
    expect((await h.admit({ jobs: [job('call')] })).kind).toBe('admitted');
  });

  it('is reaped like any lease at the fresh admission\'s expiry: a claimed one as an attempt, once', async () => {
    h = await harness('takeover', policy);
    const { earlier, fresh } = await lapsedOnce(h);
    expect(await h.limiter.takeOver([{ fresh: fresh.id, earlier: earlier.id, tenant: 'acme' }])).toBe(true);
    expect((await h.limiter.extend(earlier.token, 1)).ok).toBe(true); // a worker claimed it
    h.advance(TIMEOUT_MS + 1);
    const reaped = await h.limiter.reapExpired(10);
    expect(reaped.map((l) => [l.id, l.token, l.confirmed])).toEqual([[earlier.id, earlier.token, true]]);
    expect(await h.limiter.reapExpired(10)).toEqual([]);
    expect(await inFlight(h)).toBe(0);
  });

  it('refuses, changing nothing, when the earlier lease is still held, belongs to another job, or the fresh one reserved budget or credits', async () => {
    h = await harness('takeover', { ...policy, dependencies: { api: { concurrency: 10 } } });
    // the earlier admission still holds (not lapsed): two leases of one attempt must not merge
    const held = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'same', attempt: 1 })] }));
    const other = leaseOf(await h.limiter.admit({ jobs: [job('call', { jobId: 'same', attempt: 1 })] }));
    expect(await h.limiter.takeOver([{ fresh: other.id, earlier: held.id, tenant: 'acme' }])).toBe(false);
    expect((await h.limiter.extend(held.token, 1)).ok).toBe(true);
    expect((await h.limiter.extend(other.token, 1)).ok).toBe(true);
    await h.limiter.settle(held.token, 'succeeded');
    await h.limiter.settle(other.token, 'succeeded');

    // another job's lease
    const two = await lapsedThenAgain(h, 'acme', 2);
    const a = two[0]!;
    const b = two[1]!;
    expect(await h.limiter.takeOver([{ fresh: a.fresh.id, earlier: b.earlier.id, tenant: 'acme' }])).toBe(false);
    // all or nothing: one good pair with one bad pair changes nothing
    expect(await h.limiter.takeOver([{ fresh: b.fresh.id, earlier: b.earlier.id, tenant: 'acme' }, { fresh: a.fresh.id, earlier: b.earlier.id, tenant: 'acme' }])).toBe(false);
    expect(await h.limiter.extend(b.earlier.token, 1)).toEqual({ ok: false, reason: 'already_settled' });
    expect((await h.limiter.takeOver([{ fresh: b.fresh.id, earlier: b.earlier.id, tenant: 'acme' }]))).toBe(true);

    // budget: the ledger keeps one reservation per attempt
    await h.limiter.settle(a.fresh.token, 'succeeded');
    await h.limiter.settle(b.earlier.token, 'succeeded');
    const paid = await lapsedOnce(h, 'payer');
    expect(await h.limiter.takeOver([{ fresh: paid.fresh.id, earlier: paid.earlier.id, tenant: 'payer' }])).toBe(false);

    // credits: the reservation is the fresh lease's
    expect((await h.limiter.topUpCredits('acme', 'top-1', 50)).applied).toBe(true);
    await h.limiter.settle(paid.fresh.token, 'succeeded');
    const credited = await lapsedOnce(h);
    expect(await h.limiter.takeOver([{ fresh: credited.fresh.id, earlier: credited.earlier.id, tenant: 'acme' }])).toBe(false);
    expect((await h.limiter.extend(credited.fresh.token, 1)).ok).toBe(true);
  });

  it('refuses a fresh lease that has expired meanwhile, and throws while the state is lost', async () => {
    h = await harness('takeover', policy);
    const late = await lapsedOnce(h);
    h.advance(TIMEOUT_MS + 1);
    expect(await h.limiter.takeOver([{ fresh: late.fresh.id, earlier: late.earlier.id, tenant: 'acme' }])).toBe(false);
    await h.limiter.reapExpired(10);
    const lost = await lapsedOnce(h);
    await dropRedisNamespace(REDIS_URL, h.ns);
    await expect(h.limiter.takeOver([{ fresh: lost.fresh.id, earlier: lost.earlier.id, tenant: 'acme' }])).rejects.toBeInstanceOf(StateLost);
  });

  it('from 8 instances at once for the same pair: taken over exactly once, the slot counted once', async () => {
    h = await harness('takeover', policy);
    const x = h;
    const { earlier, fresh } = await lapsedOnce(x);
    const instances = Array.from({ length: 8 }, () => x.makeLimiter());
    const answers = await Promise.all(instances.map((l) => l.takeOver([{ fresh: fresh.id, earlier: earlier.id, tenant: 'acme' }])));
    expect(answers.filter(Boolean)).toHaveLength(1);
    expect(await inFlight(x)).toBe(1);
    expect(await x.limiter.settle(earlier.token, 'succeeded')).toMatchObject({ ok: true });
    expect(await inFlight(x)).toBe(0);
  });
});
