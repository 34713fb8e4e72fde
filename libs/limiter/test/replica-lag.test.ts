/**
 * Why JANUS_REDIS_WAIT_REPLICAS exists: a replica that lags (its link held back by a stalled proxy)
 * does not have the admissions its primary just answered. Without WAIT they are answered anyway,
 * and a failover now would forget them; with WAIT they are refused (503) and given back.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { startRedisServer, TcpProxy, testNamespace, waitFor, type RedisProcess } from '@janus/testing';
import { compilePolicy, Limiter, NotReplicated } from '../src/index.js';
import { job, SIGNING_KEY } from './helpers.js';

const policy = compilePolicy(
  PolicyDocument.parse({ dependencies: { api: { concurrency: 100 } }, tenants: { acme: {} }, jobTypes: { call: { dependencies: [{ name: 'api' }], timeoutMs: 60_000 } } }),
  1,
);
const ns = testNamespace('replica_lag');
const pool = `${ns}:{${ns}}:dep:api:conc`;
let primary: RedisProcess;
let replica: RedisProcess;
let link: TcpProxy;
let client: Redis;
let replicaClient: Redis;

beforeAll(async () => {
  [primary, replica] = await Promise.all([startRedisServer(), startRedisServer()]);
  link = await TcpProxy.start({ host: '127.0.0.1', port: primary.port });
  client = new Redis(primary.url, { maxRetriesPerRequest: 1 });
  replicaClient = new Redis(replica.url, { maxRetriesPerRequest: 1 });
  // The replica reaches its primary through the proxy: stalling it makes the replica lag.
  await replicaClient.replicaof('127.0.0.1', link.port);
  await waitFor(async () => /master_link_status:up/.test(await replicaClient.info('replication')), 30_000, 50);
  await new Limiter({ redis: client, namespace: ns, signingKey: SIGNING_KEY, policy }).init({ fresh: true });
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  replicaClient?.disconnect();
  await link?.close();
  await Promise.all([primary?.kill(), replica?.kill()]);
});

describe('a lagging replica', () => {
  it('without WAIT an admission is answered although the replica does not have it; with WAIT it is refused and given back', async () => {
    const noWait = new Limiter({ redis: client, namespace: ns, signingKey: SIGNING_KEY, policy });
    const withWait = new Limiter({ redis: client, namespace: ns, signingKey: SIGNING_KEY, policy, replicaAcks: 1, replicaAckTimeoutMs: 200 });
    // Replica in step: fine. (On a loaded machine a 200 ms WAIT may still miss: that attempt is
    // refused and given back, and the next goes through.)
    const first = await waitFor(() => withWait.admit({ jobs: [job('call')] }).catch((error: unknown) => (error instanceof NotReplicated ? undefined : Promise.reject(error))), 20_000, 200);
    expect(first.kind).toBe('admitted');
    await waitFor(async () => (await replicaClient.hget(pool, 'n')) === '1', 5_000, 20);

    link.stall();
    // No WAIT: admitted, on the primary only — a failover now would forget these 5 slots.
    expect((await noWait.admit({ jobs: Array.from({ length: 5 }, () => job('call')) })).kind).toBe('admitted');
    expect(await client.hget(pool, 'n')).toBe('6');
    expect(await replicaClient.hget(pool, 'n')).toBe('1');
    // WAIT 1: refused, and what it took given back on the primary.
    await expect(withWait.admit({ jobs: Array.from({ length: 5 }, () => job('call')) })).rejects.toThrow(NotReplicated);
    expect(await client.hget(pool, 'n')).toBe('6');

    link.resume();
    await waitFor(async () => (await replicaClient.hget(pool, 'n')) === '6', 10_000, 20);
  });
});
