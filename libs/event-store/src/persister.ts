import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Registry } from 'prom-client';
import type { Database } from '@janus/db';
import { consumerGone, ensureServiceConsumer, type NatsNames } from '@janus/messaging';
import type { Logger, ReadinessCheck } from '@janus/observability';
import { decodeMessage, rejectionOf, STREAM_KINDS, type PersistEvent, type RawMessage, type StreamKind } from './decode.js';
import { describeDbError, isPermanentDbError } from './errors.js';
import { createPersisterMetrics, type PersisterMetrics } from './metrics.js';
import { reconcileJobStatus, storeBatch } from './store.js';

export interface PersisterOptions {
  readonly db: Database;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: NatsNames;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Messages per transaction (default 1000). */
  readonly batchSize?: number;
  /** How long a partial batch waits for more messages before it is written (default 20 ms). */
  readonly lingerMs?: number;
  /** JetStream redelivers a message not acked within this (default 10 s). */
  readonly ackWaitMs?: number;
  /** Backoff after a transient database error: base, doubled per failure, capped (default 250 ms → 5 s). */
  readonly backoffMs?: { readonly base: number; readonly max: number };
  readonly streams?: readonly StreamKind[];
}

interface Item {
  readonly msg: JsMsg;
  readonly raw: RawMessage;
  readonly event: PersistEvent;
}

function sleep(ms: number, signal: { cancelled: boolean; wake?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.wake = undefined;
      resolve();
    }
    signal.wake = done;
    if (signal.cancelled) done();
  });
}

/**
 * One stream's durable consumer and write loop: takes up to `batchSize` buffered messages, writes
 * them in one transaction, reconciles the touched jobs' status, and only then acks. One batch is in
 * flight per stream, so a stream's events are written in the order JetStream delivers them.
 */
class StreamLane {
  private readonly buffer: JsMsg[] = [];
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  /** Woken by arriving messages (and by stop). */
  private readonly dataSignal: { cancelled: boolean; wake?: (() => void) | undefined } = { cancelled: false };
  /** Woken only by stop: a backoff is not cut short by more messages arriving. */
  private readonly stopSignal: { cancelled: boolean; wake?: (() => void) | undefined } = { cancelled: false };
  private stopping = false;
  private consuming = false;
  /** Consecutive transient failures: non-zero means the database is not taking writes. */
  failures = 0;
  stored = 0;
  rejected = 0;

  constructor(
    private readonly kind: StreamKind,
    private readonly stream: string,
    private readonly durable: string,
    private readonly opts: Required<Omit<PersisterOptions, 'streams' | 'registry'>>,
    private readonly metrics: PersisterMetrics,
  ) {}

  get healthy(): boolean {
    return this.failures === 0;
  }

  get running(): boolean {
    return this.consuming && !this.gone && !this.stopping;
  }

  /** JetStream said the consumer is gone (deleted by hand, say) and it has not delivered since. */
  private gone = false;

  async start(): Promise<void> {
    await this.ensureConsumer();
    await this.subscribe();
    this.loop = this.run();
  }

  private ensureConsumer(): Promise<void> {
    const { jsm, batchSize, ackWaitMs } = this.opts;
    // Unacked messages out at once, across all instances: the batch being written and the next
    // ones being prefetched. Bounds memory and keeps a flood of deliveries from starving writes.
    return ensureServiceConsumer(jsm, this.stream, this.durable, { ackWaitMs, maxAckPending: batchSize * 4 });
  }

  private async subscribe(): Promise<void> {
    const consumer = await this.opts.js.consumers.get(this.stream, this.durable);
    const messages = await consumer.consume({
      max_messages: this.opts.batchSize * 2,
      callback: (m) => {
        this.gone = false;
        this.buffer.push(m);
        if (this.buffer.length >= this.opts.batchSize || this.buffer.length === 1) this.dataSignal.wake?.();
      },
    });
    this.messages = messages;
    this.consuming = true;
    void messages.closed().then(() => {
      if (this.messages === messages) this.consuming = false;
    });
    void this.watch(messages);
  }

  /**
   * A consumer JetStream says is gone would stall this lane silently (nats.js keeps pulling from
   * it): readiness says so, and the consumer is created again (delivering the stream from its
   * start: storing an event twice changes nothing) and pulled from afresh, at most every 5 s.
   */
  private async watch(messages: ConsumerMessages): Promise<void> {
    for await (const status of messages.status()) {
      if (status.type === 'heartbeat') this.gone = false;
      if (!consumerGone(status) || this.stopping) continue;
      this.opts.logger.error({ stream: this.stream, consumer: this.durable, status: status.type }, 'the persister consumer is gone; creating it again');
      this.gone = true;
      while (!this.stopping) {
        try {
          await this.ensureConsumer();
          messages.stop();
          await this.subscribe();
          return;
        } catch (error) {
          this.opts.logger.warn({ err: error, stream: this.stream }, 'could not create the persister consumer again; retrying in 5 s');
          await new Promise((r) => setTimeout(r, 5_000).unref());
        }
      }
      return;
    }
  }

  /** Stops fetching, lets the batch in hand commit and ack, and hands back what was buffered. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const signal of [this.dataSignal, this.stopSignal]) {
      signal.cancelled = true;
      signal.wake?.();
    }
    const messages = this.messages;
    if (messages) {
      messages.stop();
      await Promise.race([messages.closed().catch(() => undefined), new Promise((r) => setTimeout(r, 2_000).unref())]);
    }
    await this.loop;
    // Not in hand yet: give them back for immediate redelivery (to another instance).
    for (const m of this.buffer.splice(0)) m.nak();
  }

  private async run(): Promise<void> {
    const { batchSize, lingerMs } = this.opts;
    while (!this.stopping) {
      if (this.buffer.length === 0) await sleep(1_000, this.dataSignal);
      if (this.stopping) break;
      if (this.buffer.length === 0) continue;
      if (this.buffer.length < batchSize && lingerMs > 0) await sleep(lingerMs, this.dataSignal);
      const batch = this.buffer.splice(0, batchSize);
      const ok = await this.process(batch);
      if (!ok && !this.stopping) await sleep(this.backoff(), this.stopSignal);
    }
  }

  private backoff(): number {
    const { base, max } = this.opts.backoffMs;
    const ms = Math.min(max, base * 2 ** Math.min(this.failures - 1, 16));
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }

  /** Writes one batch; true when committed and acked, false after a transient failure (nak-ed). */
  private async process(batch: JsMsg[]): Promise<boolean> {
    const { names, logger } = this.opts;
    const items: Item[] = batch.map((msg) => {
      const raw: RawMessage = { subject: msg.subject, seq: msg.seq, data: msg.data, timestampMs: msg.time.getTime() };
      return { msg, raw, event: decodeMessage(names, this.kind, this.stream, raw) };
    });
    const endTimer = this.metrics.batchSeconds.startTimer({ stream: this.stream });
    try {
      const rejected = await this.write(items);
      const seconds = endTimer();
      logger.debug({ stream: this.stream, size: items.length, ms: Math.round(seconds * 1000), buffered: this.buffer.length }, 'batch stored');
      for (const item of items) item.msg.ack();
      const stored = items.length - rejected;
      this.stored += stored;
      this.rejected += rejected;
      this.metrics.stored.inc({ stream: this.stream }, stored);
      if (rejected > 0) this.metrics.rejected.inc({ stream: this.stream }, rejected);
      this.metrics.batchSize.observe({ stream: this.stream }, items.length);
      if (this.failures > 0) logger.info({ stream: this.stream, failures: this.failures }, 'database writes recovered');
      this.failures = 0;
      return true;
    } catch (error) {
      this.failures += 1;
      this.metrics.dbErrors.inc({ stream: this.stream, kind: 'transient' });
      const delay = this.backoff();
      for (const item of items) item.msg.nak(delay);
      if (this.failures === 1 || this.failures % 10 === 0) {
        logger.warn({ stream: this.stream, failures: this.failures, retryInMs: delay, err: describeDbError(error) }, 'batch not stored; nak-ed for redelivery');
      }
      return false;
    }
  }

  /**
   * Stores the items; a permanent database error (the data itself is refused) splits the batch
   * until the one message that cannot be stored is found and kept in `rejected_messages` instead,
   * so it never blocks the stream. Returns how many were rejected. Throws on transient errors.
   */
  private async write(items: readonly Item[]): Promise<number> {
    const events = items.map((i) => i.event);
    try {
      const result = await storeBatch(this.opts.db, events);
      await reconcileJobStatus(this.opts.db, result.followUp);
      return result.rejected;
    } catch (error) {
      if (!isPermanentDbError(error)) throw error;
      this.metrics.dbErrors.inc({ stream: this.stream, kind: 'permanent' });
      const [only] = items;
      if (items.length === 1 && only) {
        const reason = `database refused: ${describeDbError(error)}`;
        this.opts.logger.warn({ stream: this.stream, seq: only.raw.seq, reason }, 'message cannot be stored; rejected');
        const rejection = rejectionOf(this.stream, only.raw, reason);
        try {
          await storeBatch(this.opts.db, [rejection]);
        } catch (again) {
          if (!isPermanentDbError(again)) throw again;
          await storeBatch(this.opts.db, [{ ...rejection, raw: '(body not storable)' }]);
        }
        return 1;
      }
      const mid = Math.ceil(items.length / 2);
      return (await this.write(items.slice(0, mid))) + (await this.write(items.slice(mid)));
    }
  }
}

/**
 * The persister: its own durable consumers on JANUS_JOBS, JANUS_OUTCOMES, JANUS_DEAD, JANUS_LEDGER,
 * JANUS_APPLIED and JANUS_EXTENSIONS (never the workers'), each writing batches into PostgreSQL.
 */
export class Persister {
  private readonly lanes: StreamLane[];
  readonly metrics: PersisterMetrics;

  constructor(opts: PersisterOptions) {
    this.metrics = createPersisterMetrics(opts.registry);
    const resolved = {
      db: opts.db,
      js: opts.js,
      jsm: opts.jsm,
      names: opts.names,
      logger: opts.logger,
      batchSize: opts.batchSize ?? 1_000,
      lingerMs: opts.lingerMs ?? 20,
      ackWaitMs: opts.ackWaitMs ?? 10_000,
      backoffMs: opts.backoffMs ?? { base: 250, max: 5_000 },
    };
    const { streams, consumers } = opts.names;
    const durable: Record<StreamKind, string> = {
      jobs: consumers.persisterJobs,
      outcomes: consumers.persisterOutcomes,
      dead: consumers.persisterDead,
      ledger: consumers.persisterLedger,
      applied: consumers.persisterApplied,
      extensions: consumers.persisterExtensions,
    };
    this.lanes = (opts.streams ?? STREAM_KINDS).map((kind) => new StreamLane(kind, streams[kind], durable[kind], resolved, this.metrics));
  }

  async start(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.stop()));
  }

  /** `consumers`: every stream is being consumed; `store`: the last write of every stream succeeded. */
  get readiness(): ReadinessCheck[] {
    return [
      { name: 'consumers', check: () => this.lanes.every((l) => l.running) },
      { name: 'store', check: () => this.lanes.every((l) => l.healthy) },
    ];
  }

  stats(): { stored: number; rejected: number; failing: boolean } {
    return {
      stored: this.lanes.reduce((n, l) => n + l.stored, 0),
      rejected: this.lanes.reduce((n, l) => n + l.rejected, 0),
      failing: this.lanes.some((l) => !l.healthy),
    };
  }
}
