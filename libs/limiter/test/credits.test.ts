import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyDocumentInput } from '@janus/contracts';
import { CREDITS, parseOutboxFields, type AdmissionResult, type Admitted, type CreditEntry, type Limiter } from '../src/index.js';
import { harness, job, REDIS_URL, type Harness } from './helpers.js';

const POLICY: PolicyDocumentInput = {
  global: { shedding: { low: 1, normal: 1 } },
  dependencies: { api: {} },
  jobTypes: {
    work: { dependencies: [{ name: 'api', cost: 7 }], timeoutMs: 60_000, idempotencyWindowMs: 60_000, retry: { maxAttempts: 1 } },
  },
  tenants: {
    acme: {},
    capped: { budget: { limit: 20, periodMs: 3_600_000 } },
    roomy: { budget: { limit: 100, periodMs: 3_600_000 } },
  },
};

let x: Harness;
let n = 0;
const tenant = () => `t${++n}`;

beforeAll(async () => {
  x = await harness('credits', POLICY);
});
afterAll(async () => {
  await x.close();
});

async function state(t: string) {
  return x.limiter.creditsOf(t);
}

/** Every outbox entry of a tenant so far. */
async function outbox(t: string): Promise<CreditEntry[]> {
  const rows = await x.redis.xrange(x.limiter.keys.creditsOutbox, '-', '+');
  return rows.map(([, f]) => parseOutboxFields(f)!).filter((e) => e.tenant === t);
}

/** balance = Σtopup − Σsettle + Σoverrun; reserved = Σ reserve of leases neither settled nor released. */
function ledgerOf(entries: readonly CreditEntry[]): { balance: number; reserved: number } {
  let balance = 0;
  const open = new Map<string, number>();
  for (const e of entries) {
    if (e.kind === 'topup') balance += e.amount;
    else if (e.kind === 'settle') balance -= e.amount;
    else if (e.kind === 'overrun') balance += e.amount;
    if (e.kind === 'reserve') open.set(e.leaseId!, e.amount);
    else if (e.kind === 'settle' || e.kind === 'release') open.delete(e.leaseId!);
  }
  return { balance, reserved: [...open.values()].reduce((a, b) => a + b, 0) };
}

async function expectLedgerMatches(t: string) {
  const s = await state(t);
  expect(ledgerOf(await outbox(t))).toEqual({ balance: s.balance, reserved: s.reserved });
}

const admit = (t: string, extra: Parameters<typeof job>[1] = {}) => x.admit({ jobs: [job('work', { tenant: t, ...extra })] });
const tokenOf = (r: AdmissionResult) => (r as Admitted).jobs[0]!.lease!.token;

describe('credits: admission', () => {
  it('a tenant without an account is not limited and nothing is written', async () => {
    const t = tenant();
    for (let i = 0; i < 5; i++) expect((await admit(t, { cost: 1000 })).kind).toBe('admitted');
    expect(await state(t)).toEqual({ account: false, balance: 0, reserved: 0 });
    expect(await x.redis.exists(x.limiter.keys.credits(t))).toBe(0);
    expect(await outbox(t)).toEqual([]);
  });

  it('at the limit, one over, after a top-up', async () => {
    const t = tenant();
    expect((await x.limiter.topUpCredits(t, 'k1', 21)).applied).toBe(true);
    // 21 covers exactly 3 jobs of 7
    for (let i = 0; i < 3; i++) expect((await admit(t)).kind).toBe('admitted');
    expect(await state(t)).toEqual({ account: true, balance: 21, reserved: 21 });
    const over = await admit(t);
    expect(over).toMatchObject({ kind: 'rejected', reason: 'credits_exhausted', retryAfterMs: CREDITS.retryAfterMs });
    // an estimate larger than the whole balance is still 429 (a top-up can fix it), not exceeds_capacity
    expect(await admit(t, { cost: 1000 })).toMatchObject({ kind: 'rejected', reason: 'credits_exhausted' });
    expect((await x.limiter.topUpCredits(t, 'k2', 6)).balance).toBe(27);
    expect(await admit(t)).toMatchObject({ kind: 'rejected', reason: 'credits_exhausted' });
    await x.limiter.topUpCredits(t, 'k3', 1);
    expect((await admit(t)).kind).toBe('admitted');
    expect(await state(t)).toEqual({ account: true, balance: 28, reserved: 28 });
    await expectLedgerMatches(t);
  });

  it('the same top-up key twice tops up once', async () => {
    const t = tenant();
    const a = await x.limiter.topUpCredits(t, 'same', 100);
    const b = await x.limiter.topUpCredits(t, 'same', 100);
    expect(a).toMatchObject({ applied: true, balance: 100 });
    expect(b).toMatchObject({ applied: false, balance: 100 });
    expect(b.entry).toEqual(a.entry);
    expect((await outbox(t)).filter((e) => e.kind === 'topup')).toHaveLength(1);
  });

  it('a group is all or nothing against credits', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 20);
    const r = await x.admit({ jobs: [job('work', { tenant: t }), job('work', { tenant: t }), job('work', { tenant: t })] });
    expect(r).toMatchObject({ kind: 'rejected', index: 2, reason: 'credits_exhausted' });
    expect(await state(t)).toEqual({ account: true, balance: 20, reserved: 0 });
    expect((await x.admit({ jobs: [job('work', { tenant: t }), job('work', { tenant: t })] })).kind).toBe('admitted');
    expect(await state(t)).toEqual({ account: true, balance: 20, reserved: 14 });
  });

  it('under parallel load: 64 concurrent admissions of cost 7 against 100 admit exactly 14, reserved 98', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 100);
    // several limiters on separate connections, as several instances would be
    const limiters: Limiter[] = [];
    const conns: Redis[] = [];
    for (let i = 0; i < 4; i++) {
      const redis = new Redis(REDIS_URL);
      conns.push(redis);
      limiters.push(x.makeLimiter({ redis }));
    }
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => limiters[i % 4]!.admit({ jobs: [job('work', { tenant: t })] })));
    for (const c of conns) c.disconnect();
    expect(results.filter((r) => r.kind === 'admitted')).toHaveLength(14);
    expect(results.filter((r) => r.kind === 'rejected' && r.reason === 'credits_exhausted')).toHaveLength(50);
    expect(await state(t)).toEqual({ account: true, balance: 100, reserved: 98 });
    await expectLedgerMatches(t);
  });

  it('budget and credits together: either rejects', async () => {
    // budget 20 per hour, credits 100: the budget rejects the third job
    await x.limiter.topUpCredits('capped', 'k', 100);
    expect((await admit('capped')).kind).toBe('admitted');
    expect((await admit('capped')).kind).toBe('admitted');
    expect(await admit('capped')).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });
    expect((await admit('capped', { cost: 1 })).kind).toBe('admitted');
    expect(await state('capped')).toEqual({ account: true, balance: 100, reserved: 15 });
    // budget 100 per hour, credits 10: credits reject the second job
    await x.limiter.topUpCredits('roomy', 'k', 10);
    expect((await admit('roomy')).kind).toBe('admitted');
    expect(await admit('roomy')).toMatchObject({ kind: 'rejected', reason: 'credits_exhausted' });
    expect(await state('roomy')).toEqual({ account: true, balance: 10, reserved: 7 });
  });
});

describe('credits: settle, revoke, expiry', () => {
  it('settle charges the actual cost (below and above the estimate) and frees the reservation', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 30);
    const a = await admit(t);
    const b = await admit(t);
    const c = await admit(t);
    const s1 = await x.limiter.settle(tokenOf(a), 'succeeded', 3);
    expect(s1.ok && s1.lease.credits).toEqual({ reserved: 7, charged: 3, overrun: 0, balance: 27 });
    const s2 = await x.limiter.settle(tokenOf(b), 'succeeded', 10);
    expect(s2.ok && s2.lease.credits).toEqual({ reserved: 7, charged: 10, overrun: 0, balance: 17 });
    // unknown actual cost: the estimate is charged
    const s3 = await x.limiter.settle(tokenOf(c), 'failed');
    expect(s3.ok && s3.lease.credits).toEqual({ reserved: 7, charged: 7, overrun: 0, balance: 10 });
    expect(await state(t)).toEqual({ account: true, balance: 10, reserved: 0 });
    // settling twice changes nothing
    expect((await x.limiter.settle(tokenOf(c), 'failed', 5)).ok).toBe(false);
    expect(await state(t)).toEqual({ account: true, balance: 10, reserved: 0 });
    await expectLedgerMatches(t);
  });

  it('an overrun keeps the balance at 0 and is reported', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 7);
    const a = await admit(t);
    const s = await x.limiter.settle(tokenOf(a), 'succeeded', 12);
    expect(s.ok && s.lease.credits).toEqual({ reserved: 7, charged: 12, overrun: 5, balance: 0 });
    expect(await state(t)).toEqual({ account: true, balance: 0, reserved: 0 });
    expect((await outbox(t)).map((e) => [e.kind, e.amount])).toEqual([
      ['topup', 7],
      ['reserve', 7],
      ['settle', 12],
      ['overrun', 5],
    ]);
    await expectLedgerMatches(t);
    expect(await admit(t)).toMatchObject({ kind: 'rejected', reason: 'credits_exhausted' });
  });

  it('revoke releases the reservation; nothing is charged', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 14);
    const a = await x.limiter.admit({ jobs: [job('work', { tenant: t }), job('work', { tenant: t })] });
    expect(await state(t)).toEqual({ account: true, balance: 14, reserved: 14 });
    await x.limiter.revoke(a as Admitted);
    expect(await state(t)).toEqual({ account: true, balance: 14, reserved: 0 });
    expect((await outbox(t)).filter((e) => e.kind === 'release')).toHaveLength(2);
    await expectLedgerMatches(t);
    // and the balance covers two jobs again
    expect((await admit(t)).kind).toBe('admitted');
  });

  it('expiry (the reaper) releases the reservation, confirmed or withdrawn', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 21);
    await admit(t); // confirmed: expires as timed_out
    const w = await x.limiter.admit({ jobs: [job('work', { tenant: t })] });
    await x.limiter.withdraw(w as Admitted); // withdrawn: keeps its reservation until it expires
    expect(await state(t)).toEqual({ account: true, balance: 21, reserved: 14 });
    x.advance(60_001);
    const reaped = await x.limiter.reapExpired(100);
    expect(reaped.filter((l) => l.tenant === t)).toHaveLength(2);
    expect(await state(t)).toEqual({ account: true, balance: 21, reserved: 0 });
    await expectLedgerMatches(t);
  });

  it('under parallel load with settles: the balance never goes below 0 and the ledger equals it', async () => {
    const t = tenant();
    await x.limiter.topUpCredits(t, 'k', 100);
    const conns = Array.from({ length: 4 }, () => new Redis(REDIS_URL));
    const limiters = conns.map((redis) => x.makeLimiter({ redis }));
    let charged = 0;
    let overrun = 0;
    let admitted = 0;
    await Promise.all(
      Array.from({ length: 32 }, async (_, c) => {
        const l = limiters[c % 4]!;
        for (let i = 0; i < 10; i++) {
          const r = await l.admit({ jobs: [job('work', { tenant: t })] });
          if (r.kind !== 'admitted') continue;
          admitted += 1;
          await l.confirm({ jobs: [job('work', { tenant: t })] }, r);
          const s = await l.settle(tokenOf(r), 'succeeded', (c * 7 + i) % 12);
          if (s.ok && s.lease.credits) {
            charged += s.lease.credits.charged;
            overrun += s.lease.credits.overrun;
            expect(s.lease.credits.balance).toBeGreaterThanOrEqual(0);
          }
        }
      }),
    );
    for (const c of conns) c.disconnect();
    const s = await state(t);
    expect(admitted).toBeGreaterThan(0);
    expect(s.reserved).toBe(0);
    expect(s.balance).toBe(100 - charged + overrun);
    expect(s.balance).toBeGreaterThanOrEqual(0);
    await expectLedgerMatches(t);
  });
});

describe('credits: the relay group', () => {
  it("removes the consumers of relays that are gone and hold nothing, never one holding entries", async () => {
    const h = await harness('credits_consumers', POLICY);
    try {
      const c = h.limiter.credits;
      await c.ensureGroup('g');
      // a consumer exists once it was delivered an entry: one that acked everything, one holding one
      await h.limiter.topUpCredits('acme', 'k1', 5);
      const first = await c.read('g', 'gone-empty', 10, false);
      await c.ack('g', first.map((i) => i.streamId));
      await h.limiter.topUpCredits('acme', 'k2', 5);
      expect(await c.read('g', 'gone-holding', 10, false)).toHaveLength(1);
      const names = async () => ((await h.redis.xinfo('CONSUMERS', h.limiter.keys.creditsOutbox, 'g')) as unknown[][]).map((r) => String(r[1])).sort();
      expect(await names()).toEqual(['gone-empty', 'gone-holding']);
      expect(await c.removeIdleConsumers('g', 'me', 3_600_000)).toEqual([]);
      expect(await c.removeIdleConsumers('g', 'me', 0)).toEqual(['gone-empty']);
      expect(await names()).toEqual(['gone-holding']);
    } finally {
      await h.close();
    }
  });
});

describe('credits: rebuild after a Redis loss', () => {
  it('restores a tenant with thousands of reservations and orphans (the items are chunked to fit a call)', async () => {
    const h = await harness('credits_restore_big', POLICY);
    try {
      // Redis restarts empty
      const keys = await h.redis.keys(`${h.ns}:*`);
      if (keys.length > 0) await h.redis.del(...keys);
      await h.limiter.init();
      expect(await h.limiter.acquireRebuildLock('big', 30_000)).toBe(true);
      const reservations = Array.from({ length: 5000 }, (_, i) => ({ leaseId: `big${i}_1`, amount: 2, jobId: `r${i}`, attempt: 1, unrecorded: i < 10 }));
      const orphans = Array.from({ length: 1200 }, (_, i) => ({ leaseId: `orph${i}_1`, amount: 1, jobId: `o${i}`, attempt: 1 }));
      const state = { leases: [], budgets: [], idempotency: [], bucketTenants: [], credits: [{ tenant: 'acme', balance: 10_000, reservations, orphans }] };
      expect(await h.limiter.restoreState('big', state)).toMatchObject({ ok: true });
      expect(await h.limiter.openState('big', 'rebuilt')).toEqual({ kind: 'opened' });
      expect(await h.limiter.creditsOf('acme')).toEqual({ account: true, balance: 10_000 - 1200, reserved: 10_000 });
      expect(await h.redis.hlen(h.limiter.keys.credits('acme'))).toBe(2 + 5000);
      // the outbox: 10 re-recorded reserves and 1200 settles of the orphans
      expect(await h.redis.xlen(h.limiter.keys.creditsOutbox)).toBe(10 + 1200);
    } finally {
      await h.close();
    }
  });

  it('restores the ledger balance and the restored leases\' reservations; orphans are charged, lost reserves re-recorded', async () => {
    const h = await harness('credits_restore', POLICY);
    try {
      await h.limiter.topUpCredits('acme', 'k', 100);
      const a = (await h.admit({ jobs: [job('work', { tenant: 'acme' })] })) as Admitted;
      const b = (await h.admit({ jobs: [job('work', { tenant: 'acme' })] })) as Admitted;
      const c = (await h.admit({ jobs: [job('work', { tenant: 'acme' })] })) as Admitted;
      const lease = (r: Admitted) => ({ ...r.jobs[0]!.lease!, jobId: r.jobs[0]!.jobId, admittedAt: r.jobs[0]!.admittedAt });
      const [la, lb, lc] = [lease(a), lease(b), lease(c)];
      // Redis restarts empty (no persistence); the ledger (PostgreSQL) had: topup 100, reserves of a and b.
      // c's reserve entry was lost with the outbox; a is not restored (its settle was lost): an orphan.
      const keys = await h.redis.keys(`${h.ns}:*`);
      await h.redis.del(...keys);
      await h.limiter.init();
      expect(await h.limiter.acquireRebuildLock('r', 30_000)).toBe(true);
      const restoredLease = (l: typeof lb) => ({ leaseId: l.id, jobId: l.jobId, attempt: 1, tenant: 'acme', jobType: 'work', priority: 'high' as const, admittedAt: l.admittedAt, expiresAt: l.expiresAt, reserved: 0 });
      const state = {
        leases: [restoredLease(lb), restoredLease(lc)],
        budgets: [],
        idempotency: [],
        bucketTenants: [],
        credits: [
          {
            tenant: 'acme',
            balance: 100,
            reservations: [
              { leaseId: lb.id, amount: 7, jobId: lb.jobId, attempt: 1, unrecorded: false },
              { leaseId: lc.id, amount: 7, jobId: lc.jobId, attempt: 1, unrecorded: true },
            ],
            orphans: [{ leaseId: la.id, amount: 7, jobId: la.jobId, attempt: 1 }],
          },
        ],
      };
      expect(await h.limiter.restoreState('r', state)).toMatchObject({ ok: true });
      // a rebuild taken over writes again: nothing counted twice
      expect(await h.limiter.restoreState('r', state)).toMatchObject({ ok: true });
      expect(await h.limiter.openState('r', 'rebuilt')).toEqual({ kind: 'opened' });
      expect(await h.limiter.creditsOf('acme')).toEqual({ account: true, balance: 93, reserved: 14 });
      const rows = (await h.redis.xrange(h.limiter.keys.creditsOutbox, '-', '+')).map(([, f]) => parseOutboxFields(f)!);
      expect(new Set(rows.map((e) => `${e.kind} ${e.leaseId} ${e.amount}`))).toEqual(new Set([`settle ${la.id} 7`, `reserve ${lc.id} 7`]));
      // a restored lease settles against its restored reservation
      const s = await h.limiter.settle(lb.token, 'succeeded', 3);
      expect(s.ok && s.lease.credits).toEqual({ reserved: 7, charged: 3, overrun: 0, balance: 90 });
      expect(await h.limiter.creditsOf('acme')).toEqual({ account: true, balance: 90, reserved: 7 });
    } finally {
      await h.close();
    }
  });
});
