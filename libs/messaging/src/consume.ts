import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';

export interface ConsumeOptions {
  /** Messages handled at once (and pulled ahead): at least 1. */
  readonly concurrency: number;
  /** Handles one message, acking or naking it; a rejection goes to `onError`. */
  readonly handle: (msg: JsMsg) => Promise<void>;
  readonly onError?: (error: unknown, msg: JsMsg) => void;
  /** The pull loop broke (server restart, consumer gone): it resumes after `resumeDelayMs`. */
  readonly onInterrupted?: (error: unknown) => void;
  /**
   * JetStream says the consumer (or its stream) no longer exists — deleted by hand, say. Without
   * this the loop would wait for it silently; the owner recreates it here (ensureServiceConsumer),
   * and the loop pulls afresh as soon as it exists. Asked again every `resumeDelayMs` × 5 until then.
   */
  readonly onConsumerGone?: () => Promise<void>;
  readonly resumeDelayMs?: number;
  /**
   * false: pull only as many messages as there are free slots (one `fetch` at a time), never ahead.
   * For a consumer that never redelivers (the workers'): there a message pulled is a message
   * delivered, and one that waited in this process's buffer — its lease running — would count as
   * taken by a worker. Default true: `consume` keeps up to `concurrency` more pulled ahead.
   */
  readonly prefetch?: boolean;
}

/** How long one pull of the no-prefetch mode waits for messages before it is asked again. */
const FETCH_EXPIRES_MS = 5_000;

export interface ConsumeLoop {
  /** Stops pulling, then waits for the messages in hand to be handled. */
  stop(): Promise<void>;
  /** False from JetStream saying the consumer is gone until it delivers again (a message or a heartbeat): for readiness. */
  readonly healthy: boolean;
}

const GONE = new Set(['consumer_deleted', 'consumer_not_found', 'stream_not_found']);

/** Whether a pull's status (`ConsumerMessages.status()`) says its consumer cannot deliver until it exists again. */
export function consumerGone(status: { readonly type: string }): boolean {
  return GONE.has(status.type);
}

/**
 * Pulls from a durable consumer and handles up to `concurrency` messages at once, pulling the next
 * only when a slot frees, so a slow message never holds back the others (CONTRACT §6.6). A broken
 * pull loop resumes. Used by the retry-scheduler (outcomes) and the worker SDK (jobs).
 */
export async function consumeConcurrently(consumer: Consumer, opts: ConsumeOptions): Promise<ConsumeLoop> {
  const concurrency = Math.max(1, opts.concurrency);
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let healthy = true;
  let recovering = false;
  const resumeDelayMs = opts.resumeDelayMs ?? 1_000;
  // Until the consumer exists again: its owner is asked to create it (every 5 × resumeDelayMs),
  // then the pull in hand is ended so that the loop pulls afresh.
  const recover = async (pull: ConsumerMessages) => {
    while (!stopped) {
      try {
        await opts.onConsumerGone?.();
      } catch (error) {
        opts.onInterrupted?.(error);
      }
      if (await consumer.info(false).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, resumeDelayMs * 5));
    }
    recovering = false;
    pull.stop();
  };
  // Watches a pull's statuses: a consumer that is gone makes the loop unhealthy (nats.js would
  // otherwise wait silently, for missed heartbeats, then pull from a consumer that may not exist).
  const watch = (pull: ConsumerMessages) => {
    void (async () => {
      for await (const status of pull.status()) {
        if (status.type === 'heartbeat') healthy = true;
        if (!consumerGone(status) || stopped) continue;
        if (healthy) opts.onInterrupted?.(new Error(`JetStream: ${status.type.replace(/_/g, ' ')}`));
        healthy = false;
        if (recovering) continue;
        recovering = true;
        void recover(pull);
      }
    })().catch(() => undefined);
  };
  const pullAhead = async () => {
    const pull = await consumer.consume({ max_messages: concurrency });
    watch(pull);
    return pull;
  };
  const start = (msg: JsMsg) => {
    healthy = true;
    const task = opts
      .handle(msg)
      .catch((error: unknown) => opts.onError?.(error, msg))
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
  };
  const prefetch = opts.prefetch !== false;
  let messages: ConsumerMessages | undefined = prefetch ? await pullAhead() : undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        if (prefetch) {
          messages ??= await pullAhead();
          for await (const msg of messages) {
            start(msg);
            while (inFlight.size >= concurrency) await Promise.race(inFlight);
          }
        } else {
          while (inFlight.size >= concurrency) await Promise.race(inFlight);
          // Handlers finish in bursts (their outcomes are published together): let the others of
          // this burst finish too, so that one pull asks for all the slots they free.
          await new Promise((resolve) => setImmediate(resolve));
          if (stopped) break;
          messages = await consumer.fetch({ max_messages: concurrency - inFlight.size, expires: FETCH_EXPIRES_MS });
          for await (const msg of messages) start(msg); // at most the free slots: never more in hand
        }
      } catch (error) {
        if (stopped) break;
        opts.onInterrupted?.(error);
        await new Promise((r) => setTimeout(r, resumeDelayMs));
      }
      messages = undefined;
    }
  })();
  return {
    get healthy() {
      return healthy;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await messages?.close();
      await loop;
      await Promise.allSettled([...inFlight]);
    },
  };
}
