/**
 * JANUS_REDIS_WAIT_REPLICAS (LimiterOptions.replicaAcks): a write counts only once a replica holds
 * it, so that a failover (the replica promoted) never loses a decision Janus acted on. Against a
 * redis-server of the test's own with a replica of its own.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { startRedisServer, testNamespace, waitFor, type RedisProcess } from '@janus/testing';
import { compilePolicy, Limiter, StoreUnavailable } from '../src/index.js';
import { job, SIGNING_KEY } from './helpers.js';

const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: { api: { concurrency: 3 }, db: { concurrency: 10 } },
    tenants: { acme: {} },
    jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 60_000 }, store: { dependencies: [{ name: 'db' }], timeoutMs: 60_000 } },
  }),
  1,
);
const ns = testNamespace('replica_acks');
let primary: RedisProcess;
let replica: RedisProcess;
let client: Redis;
let replicaClient: Redis;
let limiter: Limiter;

beforeAll(async () => {
  [primary, replica] = await Promise.all([startRedisServer(), startRedisServer()]);
  client = new Redis(primary.url, { maxRetriesPerRequest: 1 });
  replicaClient = new Redis(replica.url, { maxRetriesPerRequest: 1 });
  await replicaClient.replicaof('127.0.0.1', primary.port);
  await waitFor(async () => /master_link_status:up/.test(await replicaClient.info('replication')), 30_000, 50);
  // The primary counts the replica for WAIT once it is online there; on a busy machine its first
  // acknowledgement can still miss the 300 ms (a fault, as designed): set up until one arrives.
  await waitFor(async () => /slave0:.*state=online/.test(await client.info('replication')), 30_000, 50);
  limiter = new Limiter({ redis: client, namespace: ns, signingKey: SIGNING_KEY, policy, replicaAcks: 1, replicaAckTimeoutMs: 300 });
  await waitFor(() => limiter.init({ fresh: true }).then(() => true, () => undefined), 30_000, 250);
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  replicaClient?.disconnect();
  await Promise.all([primary?.kill(), replica?.kill()]);
});

describe('replica acknowledgements', () => {
  it('an admission answers only once the replica holds it: promoted, the replica knows every slot taken', async () => {
    const taken = [];
    // No script loaded (as on a freshly promoted replica): ioredis resends the first as EVAL, and
    // the WAIT still follows it.
    await client.script('FLUSH');
    for (let i = 0; i < 3; i++) {
      const request = { jobs: [job('call')] };
      // (a WAIT a loaded machine's replica misses is refused and given back: try again)
      const r = await waitFor(() => limiter.admit(request).catch((error: unknown) => (error instanceof StoreUnavailable ? undefined : Promise.reject(error))), 20_000, 200);
      expect(r.kind).toBe('admitted');
      if (r.kind === 'admitted') await limiter.confirm(request, r);
      taken.push(r);
    }
    // The replica, read directly (nothing written after WAIT): the pool holds 3, so a limiter on it
    // (as after a failover) refuses a fourth job.
    await replicaClient.replicaof('NO', 'ONE');
    const promoted = new Limiter({ redis: replicaClient, namespace: ns, signingKey: SIGNING_KEY, policy });
    expect(await promoted.admit({ jobs: [job('call')] })).toMatchObject({ kind: 'rejected', reason: 'dependency_concurrency' });
  });

  it('without a replica acknowledging, a write is a fault (the caller answers 503, publishes nothing); reads still answer', async () => {
    // The primary now has no replica at all (the old one was promoted above).
    const pool = `${ns}:{${ns}}:dep:db:conc`;
    const started = Date.now();
    await expect(limiter.admit({ jobs: [job('store'), job('store')] })).rejects.toThrow(/0 of 1 replicas acknowledged within 300 ms/);
    // Then, for a second, writes fail at once without running (no WAIT stalling the connection).
    const fast = Date.now();
    await expect(limiter.admit({ jobs: [job('store')] })).rejects.toThrow(StoreUnavailable);
    expect(Date.now() - fast).toBeLessThan(100);
    expect(Date.now() - started).toBeLessThan(2_000);
    // What the refused admissions took on the primary was given back at once (revoked), not held
    // until their leases expire.
    expect(Number((await client.hget(pool, 'n')) ?? 0)).toBe(0);
    expect((await limiter.dependencyState('api'))?.inFlight).toBeGreaterThanOrEqual(0);
    // Once a replica is back, writes answer again.
    const fresh = await startRedisServer();
    try {
      const r = new Redis(fresh.url, { maxRetriesPerRequest: 1 });
      await r.replicaof('127.0.0.1', primary.port);
      await waitFor(async () => /master_link_status:up/.test(await r.info('replication')), 30_000, 50);
      r.disconnect();
      // All 10 of db's slots free: nothing of the refused admissions is held. (A loaded machine's
      // fresh replica may miss the first 300 ms WAITs: such an attempt is refused and given back too.)
      const admitted = await waitFor(async () => {
        const r10 = await limiter.admit({ jobs: Array.from({ length: 10 }, () => job('store')) }).catch((error: unknown) => {
          if (error instanceof StoreUnavailable) return undefined;
          throw error;
        });
        return r10;
      }, 20_000, 200);
      expect(admitted).toMatchObject({ kind: 'admitted' });
    } finally {
      await fresh.kill();
    }
  });
});
