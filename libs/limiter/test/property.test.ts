import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testNamespace } from '@janus/testing';
import { harness } from './helpers.js';
import { MODEL_POLICY, ReferenceModel } from './reference-model.js';

type Admit = { op: 'admit'; tenant: 'a' | 'b'; priority: 'high' | 'normal' | 'low'; cost: number | undefined };
type Op =
  | Admit
  /** Single-job requests issued at once: coalesced into one call, where runs of one profile are decided together. */
  | { op: 'burst'; jobs: Admit[] }
  | { op: 'settle'; pick: number; actual: number | undefined }
  | { op: 'advance'; ms: number }
  | { op: 'reap' };

const admitArb: fc.Arbitrary<Admit> = fc.record({ op: fc.constant('admit' as const), tenant: fc.constantFrom('a' as const, 'b' as const), priority: fc.constantFrom('high' as const, 'normal' as const, 'low' as const), cost: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }) });
// Bursts repeat a few shapes, so that runs of the same profile form and break.
const burstArb: fc.Arbitrary<Op> = fc
  .tuple(fc.array(admitArb, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { minLength: 2, maxLength: 24 }))
  .map(([shapes, picks]) => ({ op: 'burst' as const, jobs: picks.map((i) => shapes[i % shapes.length]!) }));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: admitArb },
  { weight: 2, arbitrary: burstArb },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('settle' as const), pick: fc.nat(), actual: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 160 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reap' as const }) },
);

describe('the Lua engine agrees with a TypeScript reference model', () => {
  it('random admit / settle / expire / reap sequences give the same decisions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
        const h = await harness('prop', MODEL_POLICY, { namespace: testNamespace('prop') });
        try {
          const model = new ReferenceModel();
          const tokens = new Map<number, string>();
          const idByLease = new Map<string, number>();
          let next = 0;
          for (const o of ops) {
            const now = h.clock.now;
            if (o.op === 'advance') {
              h.advance(o.ms);
            } else if (o.op === 'admit' || o.op === 'burst') {
              // The model decides one job after the other, in the order the requests were made.
              const jobs = o.op === 'admit' ? [o] : o.jobs;
              const ids = jobs.map(() => ++next);
              const expected = jobs.map((j, i) => model.admit(ids[i]!, j.tenant, j.priority, j.cost, now));
              const actual = await Promise.all(
                jobs.map((j, i) => h.admit({ jobs: [{ jobId: `j${ids[i]}`, tenant: j.tenant, jobType: 'call', priority: j.priority, ...(j.cost === undefined ? {} : { cost: j.cost }) }] })),
              );
              actual.forEach((a, i) => {
                const id = ids[i]!;
                const e = expected[i]!;
                if (a.kind === 'admitted') {
                  const lease = a.jobs[0]!.lease!;
                  tokens.set(id, lease.token);
                  idByLease.set(lease.id, id);
                  expect(e).toEqual({ kind: 'admitted', id });
                } else {
                  expect(a).toEqual({ kind: 'rejected', index: 0, reason: e.kind === 'rejected' ? e.reason : 'admitted', retryAfterMs: e.kind === 'rejected' ? e.retryAfterMs : -1 });
                }
              });
            } else if (o.op === 'settle') {
              const ids = [...tokens.keys()];
              if (ids.length === 0) continue;
              const id = ids[o.pick % ids.length]!;
              const expected = model.settle(id, o.actual, now);
              const actual = await h.limiter.settle(tokens.get(id)!, 'succeeded', o.actual);
              expect(actual.ok ? 'ok' : actual.reason).toBe(expected);
            } else {
              const expected = model.reap(now);
              const actual = await h.limiter.reapExpired(1000);
              expect(actual.map((l) => idByLease.get(l.id)!).sort((x, y) => x - y)).toEqual(expected);
            }
          }
          const usage = await h.limiter.usage('a');
          const ws = h.clock.now - (h.clock.now % 1000);
          expect(usage.budget?.used).toBe(model.budgetA.w === ws ? model.budgetA.u : 0);
        } finally {
          await h.close();
        }
      }),
      { numRuns: 40 },
    );
  }, 90_000);
});
