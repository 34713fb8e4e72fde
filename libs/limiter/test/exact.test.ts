/**
 * "Exact under faults": limits that must hold across policy changes and worker-reported costs,
 * through the real Redis.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { harness, job, type Harness } from './helpers.js';
import { compilePolicy, type AdmissionResult, type Lease } from '../src/index.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function leasesOf(r: AdmissionResult): Lease[] {
  if (r.kind !== 'admitted') throw new Error(`expected an admission, got ${JSON.stringify(r)}`);
  return r.jobs.map((j) => {
    if (j.lease === undefined) throw new Error('expected a lease');
    return j.lease;
  });
}

const swap = (x: Harness, doc: PolicyDocumentInput, version: number) => x.limiter.setPolicy(compilePolicy(PolicyDocument.parse(doc), version));

describe('a concurrency limit added while jobs run counts those jobs (CONTRACT §6.1)', () => {
  const base = { dependencies: { api: {} }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 10_000 }, bare: { timeoutMs: 10_000 } } };
  const cases: { name: string; limited: PolicyDocumentInput; reason: string }[] = [
    { name: 'tenant concurrency', limited: { ...base, tenants: { acme: { concurrency: 32 } } }, reason: 'tenant_concurrency' },
    { name: 'global concurrency', limited: { ...base, global: { concurrency: 32 } }, reason: 'global_concurrency' },
    { name: 'dependency concurrency', limited: { ...base, dependencies: { api: { concurrency: 32 } } }, reason: 'dependency_concurrency' },
    { name: 'per-tenant dependency concurrency', limited: { ...base, dependencies: { api: { perTenant: { concurrency: 32 } } } }, reason: 'dependency_concurrency' },
  ];
  for (const c of cases) {
    it(`${c.name}: 30 running, limit 32 added → 2 more, then settle/revoke/expiry keep the pool exact`, async () => {
      h = await harness('exact-pools', base);
      const running = leasesOf(await h.limiter.admit({ jobs: Array.from({ length: 30 }, () => job('call')) }));
      swap(h, c.limited, 2);
      expect((await h.limiter.admit({ jobs: [job('call'), job('call')] })).kind).toBe('admitted');
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });

      // settle frees exactly one slot each
      for (const l of running.slice(0, 3)) expect((await h.limiter.settle(l.token, 'succeeded')).ok).toBe(true);
      const three = await h.limiter.admit({ jobs: [job('call'), job('call'), job('call')] });
      expect(three.kind).toBe('admitted');
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });
      // revoke gives the slots back
      await h.limiter.revoke(three as Extract<AdmissionResult, { kind: 'admitted' }>);
      expect((await h.limiter.admit({ jobs: [job('call'), job('call'), job('call')] })).kind).toBe('admitted');
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });
      // an extended lease keeps counting after the others expire, and stops at its new expiry
      expect((await h.limiter.extend(running[3]!.token, 20_000)).ok).toBe(true);
      h.advance(10_000);
      expect(await h.limiter.reapExpired(1000)).toHaveLength(31);
      expect((await h.limiter.admit({ jobs: Array.from({ length: 31 }, () => job('call')) })).kind).toBe('admitted');
      expect(await h.limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: c.reason });
    });
  }

  it('a job type without dependencies counts in the tenant and global pools too', async () => {
    h = await harness('exact-pools', base);
    leasesOf(await h.limiter.admit({ jobs: Array.from({ length: 5 }, () => job('bare')) }));
    swap(h, { ...base, tenants: { acme: { concurrency: 6 } }, global: { concurrency: 7 } }, 2);
    expect((await h.limiter.admit({ jobs: [job('bare')] })).kind).toBe('admitted');
    expect(await h.limiter.admit({ jobs: [job('bare')] })).toMatchObject({ kind: 'rejected', reason: 'tenant_concurrency' });
    expect((await h.limiter.admit({ jobs: [job('bare', { tenant: 'other' })] })).kind).toBe('admitted');
    expect(await h.limiter.admit({ jobs: [job('bare', { tenant: 'other' })] })).toMatchObject({ kind: 'rejected', reason: 'global_concurrency' });
    expect(await h.limiter.inspect()).toMatchObject({ global: { inFlight: 7, concurrency: 7 } });
  });
});
