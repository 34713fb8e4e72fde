import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsNames } from './names.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Stream settings. Limits retention (not work-queue) because several consumers read each stream:
 * workers and the persister both read JOBS; RETRIES, read by the scheduler only, is a work queue. The duplicate window bounds how long a msgID dedupes
 * a re-published attempt.
 */
export interface StreamOptions {
  /**
   * Replicas of every stream (JANUS_STREAM_REPLICAS; default 1). 3 on a NATS cluster: a stream
   * then survives the loss of one node with every acknowledged message (a publish is acknowledged
   * once a majority of its replicas stored it). Consumers inherit their stream's replicas.
   */
  readonly replicas?: number;
}

/** JetStream's smallest duplicate window (it refuses less): the OUTCOMES stream's (streamConfigs). */
export const OUTCOME_DUPLICATE_WINDOW_MS = 100;

export function streamConfigs(names: NatsNames, opts: StreamOptions = {}): (Partial<StreamConfig> & { name: string })[] {
  const base = {
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas ?? 1,
    duplicate_window: nanos(2 * 60 * 1000),
  };
  return [
    { ...base, name: names.streams.jobs, subjects: [names.subjects.allJobs], max_age: nanos(7 * DAY_MS) },
    // Outcomes dedupe for JetStream's minimum window only. Every worker's report of an attempt
    // carries the same msgID (`<jobId>.<attempt>`, CONTRACT §4), so with a long window a forged or
    // mistaken report would keep the genuine one out of the stream (JetStream drops it as a
    // duplicate) and cost the job its attempt. Repeated reports are harmless: the scheduler applies
    // an attempt's outcome once (the lease settles once) and the persister keeps each distinct report once.
    { ...base, name: names.streams.outcomes, subjects: [names.subjects.allOutcomes], max_age: nanos(7 * DAY_MS), duplicate_window: nanos(OUTCOME_DUPLICATE_WINDOW_MS) },
    { ...base, name: names.streams.dead, subjects: [names.subjects.allDead], max_age: nanos(30 * DAY_MS) },
    { ...base, name: names.streams.ledger, subjects: [names.subjects.allLedger], max_age: nanos(30 * DAY_MS) },
    { ...base, name: names.streams.applied, subjects: [names.subjects.allApplied], max_age: nanos(7 * DAY_MS) },
    // Lease extensions: read by the persister only; a lease is at most a day past its last extension.
    { ...base, name: names.streams.extensions, subjects: [names.subjects.allExtensions], max_age: nanos(7 * DAY_MS) },
    // Waiting retries: no age limit (a retry may wait longer than any horizon) and work-queue
    // retention, so a retry leaves the stream when the scheduler acks it (admitted or dead) and the
    // stream holds exactly the retries still waiting. Only the scheduler's consumer reads it.
    { ...base, name: names.streams.retries, subjects: [names.subjects.allRetries], retention: RetentionPolicy.Workqueue, max_age: 0 },
  ];
}

/** JetStream answered that the stream or consumer does not exist (HTTP-like status 404; `code` is JetStream's own err_code, 10059 / 10014). */
function isNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && (error.status === 404 || error.message.includes('not found'));
}

function isAlreadyExists(error: unknown): boolean {
  return error instanceof JetStreamApiError && /already (in use|exists)/i.test(error.message);
}

/**
 * Creates or updates every stream. Idempotent and safe from many instances at once: a racing
 * create that loses ("already in use") falls back to update. An update may raise the replicas of
 * an existing stream (JetStream adds them), so raising JANUS_STREAM_REPLICAS needs no migration;
 * it never lowers them.
 */
export async function ensureStreams(jsm: JetStreamManager, names: NatsNames, opts: StreamOptions = {}): Promise<void> {
  for (const config of streamConfigs(names, opts)) {
    const name = config.name;
    try {
      const current = await jsm.streams.info(name);
      // Replicas only ever go up here: one instance started without JANUS_STREAM_REPLICAS must not
      // take a cluster's R3 streams down to R1 (lower them by hand: `nats stream edit`).
      const replicas = Math.max(config.num_replicas ?? 1, current.config.num_replicas ?? 1);
      await jsm.streams.update(name, { ...config, num_replicas: replicas });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await jsm.streams.add(config);
      } catch (addError) {
        if (!isAlreadyExists(addError)) throw addError;
        await jsm.streams.update(name, config);
      }
    }
  }
}

/**
 * Whether JetStream serves this namespace right now: enabled, answering, and every stream of the
 * namespace there (one listing request). A stream deleted by hand is created again (as at start;
 * `recreated` is told its names) and the answer is true once that worked. Readiness (the `jetstream`
 * check): a connection to NATS that is up says nothing about whether a job can be stored.
 */
export async function streamsReady(jsm: JetStreamManager, names: NatsNames, opts: StreamOptions & { recreated?: (streams: string[]) => void } = {}): Promise<boolean> {
  const expected = streamConfigs(names, opts).map((c) => c.name);
  const present = new Set<string>();
  for await (const name of jsm.streams.names(`${names.namespace}.>`)) present.add(name);
  const missing = expected.filter((name) => !present.has(name));
  if (missing.length === 0) return true;
  await ensureStreams(jsm, names, opts);
  opts.recreated?.(missing);
  return true;
}

/**
 * Creates or updates a durable pull consumer on a stream. `onCreate` holds settings only a new
 * consumer takes (where it starts: JetStream cannot change that later, so an update leaves it).
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
  onCreate: Partial<ConsumerConfig> = {},
): Promise<void> {
  try {
    await jsm.consumers.info(stream, config.durable_name);
    await jsm.consumers.update(stream, config.durable_name, config);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    try {
      await jsm.consumers.add(stream, { ...config, ...onCreate });
    } catch (addError) {
      if (!isAlreadyExists(addError)) throw addError;
      await jsm.consumers.update(stream, config.durable_name, config);
    }
  }
}

/** Unacknowledged jobs of one job type that workers may hold at once (JetStream's default: 1,000). */
export const WORKERS_MAX_ACK_PENDING = 1_000_000;

/**
 * The consumer workers of one job type bind to (`workers-<jobType>`). `max_deliver: 1`: JetStream
 * never redelivers a job to a second worker behind Janus's back; a lost worker is handled by lease
 * expiry, which produces a `timed_out` outcome. `ack_wait` is the job type's timeout.
 *
 * A new consumer starts at the stream's first message of the job type, or at `fromSeq` when the
 * caller knows that every message before it was delivered once (a consumer recreated after it was
 * deleted: see sweepWorkerConsumers). Starting earlier hands a worker a job whose lease is no longer
 * held (its claim is refused and it is acked unrun) or, worse, one another worker still holds.
 */
export async function ensureWorkerConsumer(
  jsm: JetStreamManager,
  names: NatsNames,
  jobType: string,
  timeoutMs: number,
  fromSeq?: number,
): Promise<void> {
  await ensureConsumer(
    jsm,
    names.streams.jobs,
    {
      durable_name: names.consumers.workers(jobType),
      filter_subject: names.subjects.job(jobType),
      ack_policy: AckPolicy.Explicit,
      max_deliver: 1,
      ack_wait: nanos(Math.max(timeoutMs, 1_000)),
      // How many of its jobs workers may hold at once is for Janus's limits to say, not for
      // JetStream's default of 1,000 unacknowledged messages (which capped every job type there).
      max_ack_pending: WORKERS_MAX_ACK_PENDING,
    },
    fromSeq === undefined ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq },
  );
}

/** What one sweep of the workers consumers did (sweepWorkerConsumers). */
export interface WorkerConsumerSweep {
  /** Consumers of job types no longer in the policy, deleted once drained. */
  readonly removed: string[];
  /** Consumers of the policy's job types that an earlier sweep saw and that were gone (deleted by hand, say): created again. */
  readonly recreated: string[];
  /** Consumers of the policy's job types that no sweep had seen yet and that were missing (a new job type, or NATS down when it was added): created. */
  readonly created: string[];
}

/**
 * Keeps the JOBS stream's `workers-<jobType>` consumers in line with the policy:
 * - a job type no longer in the policy loses its consumer once it is drained: nothing pending (no
 *   job message a worker has not taken) and nothing unacknowledged (no worker still holds one). A
 *   consumer with work left stays, so that its jobs still reach workers (their outcomes are
 *   recorded, though the job type is gone). Its finished messages are purged (purgeFinishedJobs);
 * - a job type of the policy whose consumer is gone gets it back, so its workers (waiting for it,
 *   see consumeConcurrently) carry on. It starts after the last message an earlier sweep saw
 *   delivered (`floors`, updated here: consumer name → the stream sequence up to which every
 *   message was delivered), so neither a week of finished jobs nor the jobs workers hold are
 *   delivered again; without one it starts at the stream's first message of the job type.
 */
export async function sweepWorkerConsumers(
  jsm: JetStreamManager,
  names: NatsNames,
  jobTypes: ReadonlyMap<string, { readonly timeoutMs: number }>,
  floors: Map<string, number>,
): Promise<WorkerConsumerSweep> {
  const prefix = names.consumers.workers('');
  const removed: string[] = [];
  const recreated: string[] = [];
  const created: string[] = [];
  const seen = new Set<string>();
  for await (const info of jsm.consumers.list(names.streams.jobs)) {
    const name = info.name;
    if (!name.startsWith(prefix)) continue;
    seen.add(name);
    // Up to here every message was delivered once: with max_deliver 1 this consumer would never
    // deliver one of them again, so neither may the one that replaces it (a job a worker holds
    // unacknowledged must not reach a second worker, whose claim would succeed).
    floors.set(name, info.delivered.stream_seq);
    if (jobTypes.has(name.slice(prefix.length))) continue;
    if (info.num_pending > 0 || info.num_ack_pending > 0) continue;
    if (await jsm.consumers.delete(names.streams.jobs, name).catch(() => false)) {
      removed.push(name);
      floors.delete(name);
      await purgeFinishedJobs(jsm, names, name.slice(prefix.length), info.ack_floor.stream_seq).catch(() => undefined);
    }
  }
  for (const [jobType, { timeoutMs }] of jobTypes) {
    const name = names.consumers.workers(jobType);
    if (seen.has(name)) continue;
    const floor = floors.get(name);
    await ensureWorkerConsumer(jsm, names, jobType, timeoutMs, floor === undefined ? undefined : floor + 1);
    (floor === undefined ? created : recreated).push(name);
  }
  return { removed, recreated, created };
}

/**
 * The messages of a job type whose workers consumer was removed drained (every one acknowledged up
 * to `ackedUpTo`) leave the stream, up to what the persister has stored as well: a job type of the
 * same name created later starts its consumer at the stream's first message of the type, and would
 * otherwise hand its workers those finished jobs again (the worker SDK's claim refuses them, but a
 * worker that does not claim would run them twice). Without a persister consumer, nothing is purged.
 */
async function purgeFinishedJobs(jsm: JetStreamManager, names: NatsNames, jobType: string, ackedUpTo: number): Promise<void> {
  const persister = await jsm.consumers.info(names.streams.jobs, names.consumers.persisterJobs);
  const upTo = Math.min(ackedUpTo, persister.ack_floor.stream_seq);
  if (upTo > 0) await jsm.streams.purge(names.streams.jobs, { filter: names.subjects.job(jobType), seq: upTo + 1 });
}

/** A durable pull consumer of Janus's own (persister, scheduler) over a whole stream. */
export async function ensureServiceConsumer(
  jsm: JetStreamManager,
  stream: string,
  durableName: string,
  opts: { ackWaitMs?: number; maxDeliver?: number; maxAckPending?: number } = {},
): Promise<void> {
  await ensureConsumer(jsm, stream, {
    durable_name: durableName,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(opts.ackWaitMs ?? 30_000),
    max_deliver: opts.maxDeliver ?? -1,
    // Also the consumer's backpressure: the server never has more than this many unacked
    // messages out, so a pull consumer's buffer stays bounded.
    max_ack_pending: opts.maxAckPending ?? 10_000,
  });
}
