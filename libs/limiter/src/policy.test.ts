import { describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { compilePolicy, shareCapacity } from './policy.js';

const doc = PolicyDocument.parse({
  dependencies: {
    api: { rate: { limit: 10, periodMs: 1000, burst: 20 }, costRate: { limit: 100, periodMs: 60_000 }, concurrency: 5, perTenant: { concurrency: 2 } },
    cache: { failMode: 'open', adaptive: { enabled: false } },
    strict: { rate: { limit: 5, periodMs: 1000, burst: 9, kind: 'window' }, adaptive: { minRatio: 0.25 }, retryBudget: { ratio: 0.5, minPerSec: 1 } },
  },
  tenants: { acme: { rate: { limit: 3, periodMs: 1000 }, concurrency: 4, budget: { limit: 50, periodMs: 3_600_000 } } },
  global: { rate: { limit: 1000, periodMs: 1000 }, concurrency: 100, shedding: { low: 0.7 } },
  jobTypes: {
    call: { dependencies: [{ name: 'api', cost: 4 }, { name: 'cache' }], timeoutMs: 9000 },
    warm: { dependencies: [{ name: 'cache' }] },
    plain: {},
    windowed: { dependencies: [{ name: 'strict' }] },
  },
});

describe('compilePolicy', () => {
  const p = compilePolicy(doc, 7);

  it('lists every limit a job touches in admission order', () => {
    // The job type's guard (pause) first; each dependency starts with its guard (pause; cooldown and
    // circuit when adaptive) and has attempt counters (retry budget).
    expect(p.limitsFor('acme', 'call')?.map((l) => [l.id, l.kind, l.reason])).toEqual([
      ['type:call:guard', 'guard', 'dependency_unavailable'],
      ['dep:api:guard', 'guard', 'dependency_unavailable'],
      ['dep:api:rate', 'rate', 'dependency_rate'],
      ['dep:api:cost', 'rate', 'dependency_cost_rate'],
      ['dep:api:conc', 'concurrency', 'dependency_concurrency'],
      ['dep:api:tenant:acme:conc', 'concurrency', 'dependency_concurrency'],
      ['dep:api:attempts', 'attempts', 'retry_budget'],
      ['dep:cache:guard', 'guard', 'dependency_unavailable'],
      ['dep:cache:conc', 'concurrency', 'dependency_concurrency'],
      ['dep:cache:tenant:acme:conc', 'concurrency', 'dependency_concurrency'],
      ['dep:cache:attempts', 'attempts', 'retry_budget'],
      ['tenant:acme:rate', 'rate', 'tenant_rate'],
      ['tenant:acme:conc', 'concurrency', 'tenant_concurrency'],
      ['global:rate', 'rate', 'global_rate'],
      ['global:conc', 'concurrency', 'global_concurrency'],
      ['tenant:acme:budget', 'budget', 'budget_exhausted'],
      ['tenant:acme:credits', 'credits', 'credits_exhausted'],
    ]);
    expect(p.limitsFor('acme', 'call')?.[2]).toMatchObject({ capacity: 20, limit: 10, periodMs: 1000, guard: 'dep:api:guard' });
    expect(p.limitsFor('acme', 'call')?.[6]).toMatchObject({ kind: 'attempts', ratio: 0.2, allowance: 100 });
    expect(p.limitsFor('acme', 'call')?.[7]).toMatchObject({ kind: 'guard', adaptive: false }); // cache: adaptive off, pausable
    // A window rate: its own key, capacity = limit (burst does not apply); the guard carries minRatio.
    expect(p.limitsFor('acme', 'windowed')?.slice(1, 3)).toMatchObject([
      { id: 'dep:strict:guard', kind: 'guard', adaptive: true, minRatio: 0.25 },
      { id: 'dep:strict:rate:win', kind: 'window', capacity: 5, periodMs: 1000, guard: 'dep:strict:guard' },
    ]);
    expect(p.limitsFor('acme', 'windowed')?.find((l) => l.kind === 'attempts')).toMatchObject({ ratio: 0.5, allowance: 10 });
    // A tenant without an entry has no limits of its own, but its pool is tracked (a limit added later counts its jobs),
    // and its credits are checked (they limit only once it has a credit account).
    expect(p.limitsFor('nobody', 'plain')?.map((l) => [l.id, l.kind === 'concurrency' ? l.capacity : l.kind])).toEqual([
      ['type:plain:guard', 'guard'],
      ['tenant:nobody:conc', null],
      ['global:rate', 'rate'],
      ['global:conc', 100],
      ['tenant:nobody:credits', 'credits'],
    ]);
    expect(p.limitsFor('acme', 'missing')).toBeUndefined();
  });

  it('derives estimates, fail-open, timeouts and shares', () => {
    expect(p.jobType('call')).toMatchObject({ estimate: 5, failOpen: false, timeoutMs: 9000 });
    expect(p.jobType('warm')).toMatchObject({ estimate: 1, failOpen: true });
    expect(p.jobType('plain')).toMatchObject({ estimate: 1, failOpen: false });
    expect(p.maxTimeoutMs).toBe(30_000);
    expect(p.shareOf('low', 100)).toBe(70);
    expect(p.shareOf('normal', 3)).toBe(3);
    expect(p.shareOf('high', 3)).toBe(3);
    expect(shareCapacity(0.8, 3)).toBe(3);
    expect(shareCapacity(0.5, 3)).toBe(2);
    expect(shareCapacity(0, 3)).toBe(0);
  });

  it('is immutable', () => {
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.document.dependencies['api'])).toBe(true);
    expect(Object.isFrozen(p.limitsFor('acme', 'call'))).toBe(true);
    expect(p.version).toBe(7);
  });
});
