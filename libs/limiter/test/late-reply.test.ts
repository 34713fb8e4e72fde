/**
 * An admission that Redis runs only after the limiter gave up on it (its callers were answered 503
 * and published nothing) is revoked when its late reply comes, instead of holding its slots and
 * tokens unused until its leases expire. Through a TCP proxy that holds the request back.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { dropRedisNamespace, TcpProxy, testNamespace, waitFor } from '@janus/testing';
import { compilePolicy, Limiter } from '../src/index.js';
import { job, REDIS_URL, SIGNING_KEY } from './helpers.js';

const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: { api: { concurrency: 5, rate: { limit: 5, periodMs: 3_600_000 } } },
    tenants: { acme: {} },
    jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 3_600_000 } },
  }),
  1,
);
const ns = testNamespace('late_reply');
let proxy: TcpProxy;
let viaProxy: Redis;
let direct: Redis;
let limiter: Limiter;

beforeAll(async () => {
  const url = new URL(REDIS_URL);
  proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 6379) });
  // As the apps' client (libs/runtime createRedis): ioredis's own timeout (5 s) longer than the
  // limiter's (2 s, its default), so that a late reply still reaches the limiter.
  viaProxy = new Redis(proxy.url(REDIS_URL), { maxRetriesPerRequest: 1, commandTimeout: 5_000 });
  direct = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  limiter = new Limiter({ redis: viaProxy, namespace: ns, signingKey: SIGNING_KEY, policy });
  await limiter.init({ fresh: true });
  // Scripts loaded before the stall, so the held request is the admission itself.
  expect((await limiter.admit({ jobs: [job('call')] })).kind).toBe('admitted');
});

afterAll(async () => {
  viaProxy?.disconnect();
  direct?.disconnect();
  await proxy?.close();
  await dropRedisNamespace(REDIS_URL, ns);
});

describe('a late admission', () => {
  it('is refused to its callers, and revoked once Redis has run it', async () => {
    const pool = `${ns}:{${ns}}:dep:api:conc`;
    expect(await direct.hget(pool, 'n')).toBe('1');
    proxy.stall();
    await expect(limiter.admit({ jobs: [job('call'), job('call')] })).rejects.toThrow(/did not answer within 2000 ms/);
    proxy.resume();
    // Redis runs it now (its lease hash appears; the pool holds 3 for a moment), and the late reply
    // revokes it: the pool is back to 1.
    // (the expiry index, `leases:expiry`, is not a call's lease hash: it existed before the stall)
    const callHashes = async () => (await direct.keys(`${ns}:{${ns}}:leases:*`)).filter((k) => !k.endsWith(':leases:expiry')).length;
    await waitFor(async () => (await callHashes()) === 2, 5_000, 20);
    await waitFor(async () => (await direct.hget(pool, 'n')) === '1', 5_000, 20);
    // All 4 remaining slots and rate tokens are there: 4 more are admitted, the 6th is not.
    expect((await limiter.admit({ jobs: [job('call'), job('call'), job('call'), job('call')] })).kind).toBe('admitted');
    expect(await limiter.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected' });
  });
});
