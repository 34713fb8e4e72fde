/**
 * A rate's `kind` changed while it is in use (CONTRACT §2 `kind`, §6.1 "across policy changes"): the
 * new kind starts from what the old one holds, not empty (rekind-n.lua). Found by a black-box audit:
 * a bucket of burst 5 used up, changed to a window of 5 per minute, admitted 5 more at once. Real
 * Redis; the clock is pinned (harness).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { compilePolicy } from '../src/index.js';
import { harness, job, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const swap = (x: Harness, doc: PolicyDocumentInput, version: number) => x.limiter.setPolicy(compilePolicy(PolicyDocument.parse(doc), version));
const BUCKET = { limit: 1, periodMs: 60_000, burst: 5 };
const WINDOW = { limit: 5, periodMs: 60_000, kind: 'window' as const };
const callOn = (rates: Record<string, unknown>) => ({ dependencies: { api: rates }, jobTypes: { call: { dependencies: [{ name: 'api' }] } } });

async function admitted(x: Harness, n: number, tenant = 'acme'): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i += 1) if ((await x.admit({ jobs: [job('call', { tenant })] })).kind === 'admitted') ok += 1;
  return ok;
}

describe("a rate's kind changed while in use", () => {
  const cases: { name: string; before: PolicyDocumentInput; after: PolicyDocumentInput; reason: string }[] = [
    { name: 'dependency rate', before: callOn({ rate: BUCKET }), after: callOn({ rate: WINDOW }), reason: 'dependency_rate' },
    { name: 'tenant rate', before: { ...callOn({}), tenants: { acme: { rate: BUCKET } } }, after: { ...callOn({}), tenants: { acme: { rate: WINDOW } } }, reason: 'tenant_rate' },
    { name: 'global rate', before: { ...callOn({}), global: { rate: BUCKET } }, after: { ...callOn({}), global: { rate: WINDOW } }, reason: 'global_rate' },
  ];
  for (const c of cases) {
    it(`${c.name}, bucket → window: what the bucket gave within its period counts in the window; after the period, the limit, one over`, async () => {
      h = await harness('rekind-w', c.before);
      expect(await admitted(h, 6)).toBe(5);
      swap(h, c.after, 2);
      // asked at once (admission waits for the state to be carried)
      const now = await Promise.all([0, 1, 2].map(() => h!.admit({ jobs: [job('call')] })));
      expect(now.map((r) => (r.kind === 'rejected' ? r.reason : r.kind))).toEqual([c.reason, c.reason, c.reason]);
      h.advance(59_999);
      expect(await admitted(h, 1)).toBe(0);
      h.advance(1);
      expect(await admitted(h, 6)).toBe(5);
    });
  }

  it('dependency rate, window → bucket: the bucket holds its capacity less what the window held, then refills at its rate', async () => {
    h = await harness('rekind-b', callOn({ rate: WINDOW }));
    expect(await admitted(h, 3)).toBe(3);
    swap(h, callOn({ rate: { limit: 5, periodMs: 60_000 } }), 2);
    expect(await admitted(h, 3)).toBe(2); // 5 − 3
    h.advance(12_000); // one token refilled (5 per minute)
    expect(await admitted(h, 2)).toBe(1);
  });

  it("per-tenant rates: every tenant's state is carried (found in Redis), a costRate's too", async () => {
    const per = (kind: 'bucket' | 'window') => ({
      perTenant: { rate: kind === 'bucket' ? BUCKET : WINDOW, costRate: kind === 'bucket' ? { limit: 10, periodMs: 60_000, burst: 50 } : { limit: 50, periodMs: 60_000, kind: 'window' as const } },
    });
    h = await harness('rekind-tenants', callOn(per('bucket')));
    expect(await admitted(h, 5, 'acme')).toBe(5);
    expect(await admitted(h, 2, 'beta')).toBe(2);
    swap(h, callOn(per('window')), 2);
    expect(await h.limiter.applied()).toEqual({ rekind: { ok: true, written: 4 } });
    expect(await admitted(h, 1, 'acme')).toBe(0);
    expect(await admitted(h, 4, 'beta')).toBe(3);
    expect(await admitted(h, 6, 'gamma')).toBe(5);
  });

  it('8 instances applying the change at once carry the state once', async () => {
    h = await harness('rekind-many', callOn({ rate: { limit: 1, periodMs: 60_000, burst: 10 } }));
    expect(await admitted(h, 4)).toBe(4);
    const instances = Array.from({ length: 8 }, () => h!.makeLimiter());
    for (const l of instances) l.setPolicy(compilePolicy(PolicyDocument.parse(callOn({ rate: { limit: 10, periodMs: 60_000, kind: 'window' } })), 2));
    const results = await Promise.all(instances.map((l) => l.applied()));
    expect(results.reduce((n, r) => n + (r?.rekind?.ok === true ? r.rekind.written : 0), 0)).toBe(1);
    h.limiter.setPolicy(compilePolicy(PolicyDocument.parse(callOn({ rate: { limit: 10, periodMs: 60_000, kind: 'window' } })), 2));
    expect(await admitted(h, 7)).toBe(6);
  });

  it("a window's periodMs made longer: what it holds leaves the new period after its admission; shorter: sooner", async () => {
    const win = (periodMs: number) => callOn({ rate: { limit: 10, periodMs, kind: 'window' } });
    h = await harness('reperiod', win(1_000));
    expect(await admitted(h, 11)).toBe(10);
    h.advance(200);
    swap(h, win(5_000), 2);
    // before: 10 more once the old second had passed
    h.advance(4_799);
    expect(await admitted(h, 1)).toBe(0);
    h.advance(1); // 5 s after their admission
    expect(await admitted(h, 11)).toBe(10);
    h.advance(2_000);
    swap(h, win(1_000), 3); // those of 2 s ago have left a 1 s window
    expect(await admitted(h, 11)).toBe(10);
  });

  it('a period change applied by 8 instances, and by one more after jobs came under the new period, moves the window once', async () => {
    const win = (periodMs: number) => callOn({ rate: { limit: 10, periodMs, kind: 'window' } });
    h = await harness('reperiod-many', win(1_000));
    expect(await admitted(h, 4)).toBe(4);
    const instances = Array.from({ length: 8 }, () => h!.makeLimiter());
    for (const l of instances) l.setPolicy(compilePolicy(PolicyDocument.parse(win(5_000)), 2));
    await Promise.all(instances.map((l) => l.applied()));
    swap(h, win(5_000), 2);
    await h.limiter.applied();
    expect(await admitted(h, 7)).toBe(6); // 4 + 6 under the new period
    // a late instance applying the same change moves nothing again
    const late = h.makeLimiter();
    late.setPolicy(compilePolicy(PolicyDocument.parse(win(5_000)), 2));
    expect(await late.applied()).toEqual({ rekind: { ok: true, written: 0 } });
    h.advance(5_000);
    expect(await admitted(h, 11)).toBe(10);
  });

  it('writes nothing while the state is lost', async () => {
    h = await harness('rekind-lost', callOn({ rate: BUCKET }));
    expect(await admitted(h, 5)).toBe(5);
    await h.redis.del(h.limiter.keys.epoch);
    swap(h, callOn({ rate: WINDOW }), 2);
    expect(await h.limiter.applied()).toEqual({ rekind: { ok: false, reason: 'state_lost' } });
  });
});
