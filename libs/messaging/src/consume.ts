import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';

export interface ConsumeOptions {
  /** Messages handled at once (and pulled ahead): at least 1. */
  readonly concurrency: number;
  /** Handles one message, acking or naking it; a rejection goes to `onError`. */
  readonly handle: (msg: JsMsg) => Promise<void>;
  readonly onError?: (error: unknown, msg: JsMsg) => void;
  /** The pull loop broke (server restart, consumer gone): it resumes after `resumeDelayMs`. */
  readonly onInterrupted?: (error: unknown) => void;
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
  const start = (msg: JsMsg) => {
    const task = opts
      .handle(msg)
      .catch((error: unknown) => opts.onError?.(error, msg))
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
  };
  const prefetch = opts.prefetch !== false;
  let messages: ConsumerMessages | undefined = prefetch ? await consumer.consume({ max_messages: concurrency }) : undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        if (prefetch) {
          messages ??= await consumer.consume({ max_messages: concurrency });
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
        await new Promise((r) => setTimeout(r, opts.resumeDelayMs ?? 1_000));
      }
      messages = undefined;
    }
  })();
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      await messages?.close();
      await loop;
      await Promise.allSettled([...inFlight]);
    },
  };
}
