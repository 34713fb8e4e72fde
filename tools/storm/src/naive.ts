import { randomBytes } from 'node:crypto';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { callApi } from './api-call.js';
import { backoffMs, produce } from './producers.js';
import type { RunFacts } from './report.js';
import type { MockApi } from './mock-api.js';
import type { Scenario } from './scenario.js';

interface NaiveJob {
  jobId: string;
  tenant: string;
}

/**
 * What teams run today: producers publish to one JetStream work queue (a file-backed stream with
 * WorkQueue retention, msgID dedupe, one durable pull consumer shared by all workers); workers call
 * the API and, on any failure, retry in place with exponential backoff and jitter (honouring a
 * 429's Retry-After when it asks for longer), up to the job type's attempts; then the job is dead.
 * Nothing coordinates the workers: each decides alone when to call.
 */
export async function runNaive(sc: Scenario, nc: NatsConnection, api: MockApi, apiUrl: string, log: (line: string) => void): Promise<RunFacts> {
  const id = randomBytes(3).toString('hex');
  const stream = `STORM_NAIVE_${id.toUpperCase()}`;
  const subject = `storm_naive_${id}.jobs`;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [subject], retention: RetentionPolicy.Workqueue, storage: StorageType.File, duplicate_window: 120_000_000_000 });
  await jsm.consumers.add(stream, { durable_name: 'workers', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 60_000_000_000, max_ack_pending: 1_000_000 });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, 'workers');
  let succeeded = 0;
  let dead = 0;
  let stop = false;

  const handle = async (msg: JsMsg) => {
    const job = msg.json<NaiveJob>();
    for (let attempt = 1; ; attempt++) {
      const answer = await callApi(apiUrl, job.tenant, job.jobId);
      if (answer.ok) {
        succeeded += 1;
        break;
      }
      if (attempt >= sc.job.maxAttempts) {
        dead += 1;
        break;
      }
      const delay = Math.max(backoffMs(attempt, sc.job.baseDelayMs, sc.job.maxDelayMs), answer.retryAfterMs ?? 0);
      msg.working();
      await new Promise((r) => setTimeout(r, delay));
    }
    msg.ack();
  };

  const workers = Array.from({ length: sc.workers.concurrency }, async () => {
    while (!stop) {
      const msg = await consumer.next({ expires: 1_000 }).catch(() => null);
      if (msg) await handle(msg);
    }
  });

  api.reset();
  const produced = await produce(sc, async (tenant, seq) => {
    const jobId = `${tenant}-${seq}`;
    await js.publish(subject, JSON.stringify({ jobId, tenant } satisfies NaiveJob), { msgID: jobId });
    return 'accepted';
  });
  log(`naive: ${produced.accepted} jobs queued in ${sc.durationS} s; draining`);
  const drainUntil = Date.now() + sc.drainS * 1000;
  while (succeeded + dead < produced.accepted && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 250));
  stop = true;
  await Promise.race([Promise.all(workers), new Promise((r) => setTimeout(r, 5_000))]);
  await jsm.streams.delete(stream).catch(() => undefined);
  return { pipeline: 'naive', api: api.stats(), accepted: produced.accepted, refused: produced.refused, succeeded, dead, admissionLatencyMs: produced.latencyMs };
}
