import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { loadSettings, type Settings } from '@janus/config';
import type { JobMessage, PolicyDocumentInput } from '@janus/contracts';
import { createDb, migrate, type DbHandle } from '@janus/db';
import { encodeRetryContext } from '@janus/execution';
import { AdmissionPipeline } from '@janus/admission';
import { connectNats, ensureStreams, natsNames, type NatsConnection, type NatsNames } from '@janus/messaging';
import { Limiter, compilePolicy } from '@janus/limiter';
import { PolicyStore } from '@janus/policy';
import { createRedis, type RedisClient } from '@janus/runtime';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, testEnv, testNamespace } from '@janus/testing';

/**
 * What the scheduler's tests share: a namespace of their own with a seeded policy, the connections,
 * a limiter on that policy, and `submit` — what ingress does (admit, then publish the attempt).
 * Each test file starts its own scheduler (and persister) against it.
 */
export interface TestBed {
  readonly ns: string;
  readonly settings: Settings;
  readonly names: NatsNames;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly db: DbHandle;
  readonly redis: RedisClient;
  readonly limiter: Limiter;
  /** The seeded policy version (announce it to make a started scheduler load it). */
  readonly version: number;
  /** Admits job `jobId` (attempt 1) through the limiter and publishes its message; returns it. */
  submit(jobId: string, jobType: string, payload?: JobMessage['payload']): Promise<JobMessage>;
  /** Every message on `stream`, read by a fresh ephemeral-like durable consumer named `name`. */
  readStream<T>(stream: string, schema: { parse(v: unknown): T }, name: string): Promise<T[]>;
  /** Drops the connections and the namespace. */
  close(): Promise<void>;
}

export async function openTestBed(label: string, policyDoc: PolicyDocumentInput): Promise<TestBed> {
  const ns = testNamespace(label);
  const settings = loadSettings(testEnv(ns));
  const names = natsNames(ns);
  await migrate(settings);
  const db = createDb(settings);
  const nc = await connectNats(settings, { name: `${label}-test` });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, names);
  const saved = await new PolicyStore(db.db).update(() => policyDoc as never, { actor: 'test', action: 'seed' });
  if (!saved.ok) throw new Error('seed failed');
  const redis = createRedis(settings, `${label}-test`);
  await redis.connect();
  const limiter = new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy: compilePolicy(saved.policy.document, saved.policy.version) });
  await limiter.init({ fresh: true });

  const pipeline = new AdmissionPipeline({ limiter, js: jetstream(nc), names });
  return {
    ns,
    settings,
    names,
    nc,
    jsm,
    db,
    redis,
    limiter,
    version: saved.policy.version,
    async submit(jobId, jobType, payload) {
      // Through the one admission pipeline, as ingress does (admit → publish → confirm); a producer
      // told to wait (a limit is full) waits and sends again.
      const run = () =>
        pipeline.run({
          request: {
            jobs: [
              {
                jobId,
                tenant: 'acme',
                jobType,
                priority: 'normal',
                context: encodeRetryContext({ tenant: 'acme', type: jobType, priority: 'normal', ...(payload !== undefined ? { payload } : {}) }),
              },
            ],
          },
          payloads: [payload === undefined ? undefined : JSON.stringify(payload)],
        });
      const deadline = Date.now() + 30_000;
      let result = await run();
      while (result.kind === 'rejected' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, Math.min(200, result.kind === 'rejected' ? result.retryAfterMs : 200)));
        result = await run();
      }
      const j = result.kind === 'admitted' ? result.admitted.jobs[0] : undefined;
      if (!j?.lease) throw new Error(`not admitted: ${JSON.stringify(result)}`);
      const message: JobMessage = {
        jobId,
        type: jobType,
        tenant: 'acme',
        attempt: 1,
        priority: 'normal',
        ...(payload !== undefined ? { payload } : {}),
        admittedAt: new Date(j.admittedAt).toISOString(),
        lease: { id: j.lease.id, token: j.lease.token, expiresAt: new Date(j.lease.expiresAt).toISOString() },
      };
      return message;
    },
    async readStream<T>(stream: string, schema: { parse(v: unknown): T }, name: string): Promise<T[]> {
      await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.None });
      const consumer = await jetstream(nc).consumers.get(stream, name);
      const info = await consumer.info();
      const out: T[] = [];
      if (info.num_pending === 0) return out;
      const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 2_000 });
      for await (const m of batch) out.push(schema.parse(m.json()));
      return out;
    },
    async close() {
      await nc.close();
      redis.disconnect();
      await db.close();
      await dropRedisNamespace(settings.redisUrl, ns);
      await dropNatsNamespace([...settings.natsServers], ns);
      await dropPgNamespace(settings.databaseUrl, ns);
    },
  };
}

/** Whether every readiness check of a scheduler passes (a failing check counts as not ready). */
export async function schedulerReady(scheduler: { readonly readiness: readonly { check(): boolean | Promise<boolean> }[] }): Promise<boolean> {
  return (await Promise.all(scheduler.readiness.map((c) => Promise.resolve(c.check()).catch(() => false)))).every(Boolean);
}

/** A stream of the bed refuses every message (none fits its size limit: a publish to it fails), or takes them again. */
export async function streamRefuses(bed: Pick<TestBed, 'jsm'>, stream: string, refuse: boolean): Promise<void> {
  const { config } = await bed.jsm.streams.info(stream);
  await bed.jsm.streams.update(stream, { ...config, max_msg_size: refuse ? 1 : -1 });
}
