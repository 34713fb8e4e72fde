import { Redis } from 'ioredis';
import { PolicyDocument, type PolicyDocumentInput } from '@janus/contracts';
import { dropRedisNamespace, testNamespace } from '@janus/testing';
import { compilePolicy, Limiter, type AdmissionRequest, type AdmissionResult, type JobAdmission, type Lease, type LimiterOptions } from '../src/index.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const SIGNING_KEY = 'test-signing-key-0123456789abcdef0123456789';
/** A round start time (a multiple of one hour) so budget windows are easy to reason about. */
export const T0 = 1_800_000_000_000;

export interface Harness {
  readonly ns: string;
  readonly redis: Redis;
  readonly limiter: Limiter;
  readonly clock: { now: number };
  advance(ms: number): void;
  makeLimiter(opts?: Partial<LimiterOptions>): Limiter;
  /** Admits and, when admitted, confirms (as the pipeline does once JetStream acknowledged the job messages). */
  admit(request: AdmissionRequest): Promise<AdmissionResult>;
  close(): Promise<void>;
}

/** JANUS_TEST_TENANT_SHARDS=K runs every harness with K tenant shards (src/shards.ts): the suite's promises, sharded. */
const SHARDED: Partial<LimiterOptions> = process.env.JANUS_TEST_TENANT_SHARDS ? { tenantShards: Number(process.env.JANUS_TEST_TENANT_SHARDS) } : {};

/** One namespace per test file (or per property run), a manual clock, a fresh epoch. */
export async function harness(label: string, doc: PolicyDocumentInput, opts: Partial<LimiterOptions> = {}): Promise<Harness> {
  const ns = opts.namespace ?? testNamespace(label);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const clock = { now: T0 };
  const policy = compilePolicy(PolicyDocument.parse(doc), 1);
  const makeLimiter = (o: Partial<LimiterOptions> = {}) =>
    new Limiter({ redis, namespace: ns, signingKey: SIGNING_KEY, now: () => clock.now, policy, ...SHARDED, ...opts, ...o });
  const limiter = makeLimiter();
  await limiter.init({ fresh: true });
  return {
    ns,
    redis,
    limiter,
    clock,
    advance: (ms) => {
      clock.now += ms;
    },
    makeLimiter,
    admit: async (request) => {
      const result = await limiter.admit(request);
      if (result.kind === 'admitted') await limiter.confirm(request, result);
      return result;
    },
    close: async () => {
      redis.disconnect();
      await dropRedisNamespace(REDIS_URL, ns);
    },
  };
}

let seq = 0;
export function job(jobType: string, extra: Partial<JobAdmission> = {}): JobAdmission {
  seq += 1;
  return { jobId: `job-${seq}`, tenant: 'acme', jobType, priority: 'high', ...extra };
}

/** Every idempotency and limit key of the namespace with its contents (leases excluded unless asked). */
export async function snapshotKeys(x: Harness, withLeases: boolean): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const keys = (await x.redis.keys(`${x.ns}:*`)).sort();
  for (const key of keys) {
    if (!withLeases && (key.includes(':leases:'))) continue;
    const type = await x.redis.type(key);
    if (type === 'hash') {
      const v = await x.redis.hgetall(key);
      // A bucket touched then refilled to full is the same state as an untouched one.
      out[key] = v;
    } else if (type === 'zset') {
      const members = await x.redis.zrange(key, 0, -1, 'WITHSCORES');
      if (members.length > 0) out[key] = members;
    } else if (type === 'string') {
      out[key] = await x.redis.get(key);
    }
  }
  return out;
}

/** The leases of an admission (one per job); throws for any other answer, or a job without a lease. */
export function leasesOf(r: AdmissionResult): Lease[] {
  if (r.kind !== 'admitted') throw new Error(`expected an admission, got ${JSON.stringify(r)}`);
  return r.jobs.map((j) => {
    if (j.lease === undefined) throw new Error('expected a lease');
    return j.lease;
  });
}
