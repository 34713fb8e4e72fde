/**
 * A policy change applied while Redis cannot be reached (CONTRACT §6.1 under a fault): the change's
 * first pass (running jobs counted in the limits the change gave them, src/attach.ts) cannot run,
 * so no job the change concerns is admitted until it has — not on the old state, and not once Redis
 * is back before the pass is done. Through a TCP proxy cut between the limiter and Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { dropRedisNamespace, TcpProxy, testNamespace } from '@janus/testing';
import { compilePolicy, Limiter } from '../src/index.js';
import { job, leasesOf, REDIS_URL, SIGNING_KEY } from './helpers.js';

const base: PolicyDocumentInput = {
  dependencies: { api: {} },
  tenants: { acme: {} },
  jobTypes: { bare: { timeoutMs: 3_600_000 }, other: { timeoutMs: 3_600_000 } },
};
// `bare` now calls `api`, 6 at once; `acme` gets a budget of 8 (each job estimated at 1).
const limited: PolicyDocumentInput = {
  dependencies: { api: { concurrency: 6 } },
  tenants: { acme: { budget: { limit: 8, periodMs: 3_600_000 } } },
  jobTypes: { bare: { dependencies: [{ name: 'api' }], timeoutMs: 3_600_000 }, other: { timeoutMs: 3_600_000 } },
};
const ns = testNamespace('transition_fault');
let proxy: TcpProxy;
let viaProxy: Redis;
let limiter: Limiter;

beforeAll(async () => {
  const url = new URL(REDIS_URL);
  proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 6379) });
  viaProxy = new Redis(proxy.url(REDIS_URL), { maxRetriesPerRequest: 1, commandTimeout: 5_000 });
  viaProxy.on('error', () => undefined); // refused while cut: expected
  limiter = new Limiter({ redis: viaProxy, namespace: ns, signingKey: SIGNING_KEY, policy: compilePolicy(PolicyDocument.parse(base), 1), attachAgainMs: 60_000 });
  await limiter.init({ fresh: true });
});

afterAll(async () => {
  viaProxy?.disconnect();
  await proxy?.close();
  await dropRedisNamespace(REDIS_URL, ns);
});

describe('a policy change while Redis is cut off', () => {
  it('admits nothing it concerns until its first pass has counted the running jobs; then exactly the limits', async () => {
    leasesOf(await limiter.admit({ jobs: Array.from({ length: 5 }, () => job('bare')) }));

    await proxy.cut();
    limiter.setPolicy(compilePolicy(PolicyDocument.parse(limited), 2));
    await expect(limiter.admit({ jobs: [job('bare')] })).rejects.toThrow();
    // the first pass keeps trying (every second); Redis answers again before it is done
    await new Promise((r) => setTimeout(r, 1_500));
    await proxy.restore();
    // asked at once, before the pass has run again: they wait for it instead of deciding on the old state
    const [first, second] = await Promise.all([limiter.admit({ jobs: [job('bare')] }), limiter.admit({ jobs: [job('bare')] })]);
    expect([first.kind, second.kind].sort()).toEqual(['admitted', 'rejected']);
    expect([first, second].find((r) => r.kind === 'rejected')).toMatchObject({ reason: 'dependency_concurrency' });
    expect(await limiter.applied()).toEqual({ attach: { ok: true, leases: 5, pools: 10, budgets: 5 } });
    // the budget holds the 5 running and the 1 admitted: 2 more of any job type, then none
    expect((await limiter.admit({ jobs: [job('other'), job('other')] })).kind).toBe('admitted');
    expect(await limiter.admit({ jobs: [job('other')] })).toMatchObject({ kind: 'rejected', reason: 'budget_exhausted' });
  });
});
