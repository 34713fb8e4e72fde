import type { JsMsg } from '@nats-io/jetstream';
import { RetryMessage } from '@janus/contracts';
import { AdmissionPipeline, type AdmissionPipelineDeps } from '@janus/admission';
import { parseMessage, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import { StateLost, StoreUnavailable, type Limiter } from '@janus/limiter';
import { publishDeadLetter, type Publishing } from './publishing.js';
import { encodeRetryContext } from './retry-context.js';

/** What happened to one delivery of a waiting retry; the app counts these in metrics. */
export type RetryDisposition =
  | 'retry_waiting'
  | 'retry_to_room'
  | 'retry_cancelled'
  | 'retry_admitted'
  | 'retry_rejected'
  | 'retry_in_progress'
  | 'dead'
  | 'malformed'
  | 'store_unavailable'
  | 'publish_failed';

export interface RetryProcessorDeps {
  readonly limiter: Limiter;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  /** Current time in ms (tests may pin it). */
  readonly now?: () => number;
  /** False while the NATS connection is down (then a due retry waits instead of being admitted). */
  readonly natsUp?: () => boolean;
  /** Reads a stored job message (AdmissionPipelineDeps.storedJob): a retry re-admitted after its admission lapsed takes over its lease. */
  readonly storedJob?: AdmissionPipelineDeps['storedJob'];
  /**
   * The waiting room: a due retry joins it (at its job type's retry priority) and its dispatcher
   * admits it fairly with every other waiting job; the message is acked once the room holds it.
   * Returns the row's state (`cancelled` when the producer cancelled the retry meanwhile).
   * Without a room, a due retry is admitted here and a refused one waits in the stream.
   */
  readonly room?: (retry: RetryMessage, priority: 'high' | 'normal' | 'low') => Promise<'queued' | 'dispatching' | 'admitted' | 'cancelled' | 'dead'>;
  /**
   * Records a retry's due time when it is read before it is due (the waiting room's `retry_due`),
   * so that GET shows the `retrying` job's `notBefore` while it waits here. Best effort: a failure
   * is ignored (the retry still waits and is admitted on time).
   */
  readonly recordDue?: (retry: RetryMessage) => Promise<void>;
}

const RETRY_STORE_DOWN_MS = 1_000;
const MIN_RETRY_WAIT_MS = 50;

/**
 * Admits waiting retries (`RetryMessage`s on `<ns>.retries.<type>`, CONTRACT §4 as built) when they
 * are due.
 *
 * - Not due yet: `nak(remaining)`. The message stays in RETRIES (work-queue retention, no age limit)
 *   however long it waits; it depends on no other state.
 * - Due: the attempt goes through the one admission pipeline (@janus/admission: admit → ledger →
 *   publish → confirm) like any job, at the job type's retry priority, idempotent per attempt
 *   (`retry:<jobId>.<n>`, the limiter's `kind: 'retry'`), so a redelivery never admits it twice.
 *   Once the admission is confirmed the retry is acked — and leaves the stream.
 * - Rejected: `nak(retryAfterMs)`: no retry storm can get past the limits.
 * - No wait can admit it (`exceeds_capacity`: a limit lowered below what it takes), or its job type
 *   is gone: a dead letter naming why.
 * - An earlier delivery admitted it but did not confirm it (`in_progress`), or the pipeline could
 *   not publish (`unavailable`): `nak` and try again; the retry never leaves the stream unadmitted.
 */
export class RetryProcessor {
  readonly #now: () => number;
  readonly #publishing: Publishing;
  readonly #pipeline: AdmissionPipeline;

  constructor(private readonly deps: RetryProcessorDeps) {
    this.#now = deps.now ?? Date.now;
    this.#publishing = { js: deps.js, names: deps.names, now: this.#now };
    this.#pipeline = new AdmissionPipeline({ limiter: deps.limiter, js: deps.js, names: deps.names, ...(deps.natsUp ? { natsUp: deps.natsUp } : {}), ...(deps.storedJob ? { storedJob: deps.storedJob } : {}) });
  }

  async process(msg: JsMsg): Promise<RetryDisposition> {
    const parsed = parseMessage(msg, RetryMessage);
    if (!parsed.success) {
      msg.ack();
      return 'malformed';
    }
    try {
      return await this.#handle(parsed.data, msg);
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) {
        msg.nak(RETRY_STORE_DOWN_MS);
        return 'store_unavailable';
      }
      throw error;
    }
  }

  async #handle(retry: RetryMessage, msg: JsMsg): Promise<RetryDisposition> {
    const wait = Date.parse(retry.dueAt) - this.#now();
    if (wait > 0) {
      // Once per delivery before the due time (the nak below brings it back when due): usually once.
      if (this.deps.recordDue !== undefined) await this.deps.recordDue(retry).catch(() => undefined);
      msg.nak(Math.max(wait, MIN_RETRY_WAIT_MS));
      return 'retry_waiting';
    }
    const { limiter } = this.deps;
    const jobType = limiter.policy.jobType(retry.type);
    if (this.deps.room !== undefined) {
      let state;
      try {
        state = await this.deps.room(retry, jobType?.retryPriority ?? 'low');
      } catch {
        // PostgreSQL is unreachable: the retry stays in its stream and comes back.
        msg.nak(RETRY_STORE_DOWN_MS);
        return 'store_unavailable';
      }
      msg.ack();
      return state === 'cancelled' ? 'retry_cancelled' : 'retry_to_room';
    }
    const payloadJson = retry.payload === undefined ? undefined : JSON.stringify(retry.payload);
    const result = await this.#pipeline.run({
      request: {
        jobs: [
          {
            jobId: retry.jobId,
            tenant: retry.tenant,
            jobType: retry.type,
            priority: jobType?.retryPriority ?? 'low',
            attempt: retry.attempt,
            // every earlier attempt uncharged (throttled, or under an open circuit): not a failure retry
            ...((retry.uncharged ?? 0) >= retry.attempt - 1 ? { budgetExempt: true } : {}),
            ...(retry.cost !== undefined ? { cost: retry.cost } : {}),
            idempotency: { key: `retry:${retry.jobId}.${retry.attempt}`, record: 'retry', kind: 'retry' },
            context: encodeRetryContext({
              tenant: retry.tenant,
              type: retry.type,
              priority: retry.priority,
              ...(retry.payload !== undefined ? { payload: retry.payload } : {}),
              ...(retry.cost !== undefined ? { cost: retry.cost } : {}),
              ...(retry.createdAt !== undefined ? { createdAt: retry.createdAt } : {}),
              // The next outcome adds to it (outcomes.ts).
              ...(retry.uncharged !== undefined ? { uncharged: retry.uncharged } : {}),
            }),
          },
        ],
      },
      payloads: [payloadJson],
      // kept with the job (jobs.cost) for a state rebuild: the override applies to every attempt
      // ... and the job message says the job's own priority (it was admitted at the retry priority)
      extras: () => ({ priority: retry.priority, ...(retry.cost !== undefined ? { cost: retry.cost } : {}) }),
    });
    switch (result.kind) {
      case 'rejected':
        msg.nak(Math.max(result.retryAfterMs, MIN_RETRY_WAIT_MS));
        return 'retry_rejected';
      case 'unknown_job_type':
        await this.#dead(retry, 'job type no longer exists');
        msg.ack();
        return 'dead';
      case 'exceeds_capacity': {
        // No wait can admit this retry (a limit was lowered below what it takes): a dead letter, not a wait forever.
        const { limit } = result;
        const name = [limit.scope, limit.dependency, limit.scope === 'dependency' ? limit.tenant : undefined, limit.kind].filter((x) => x !== undefined).join(' ');
        await this.#dead(retry, `exceeds capacity: the retry takes ${limit.requested} of the ${name} limit, whose capacity is ${limit.capacity}`);
        msg.ack();
        return 'dead';
      }
      case 'in_progress':
        // An earlier delivery admitted this attempt and has not confirmed it (it died, or JetStream
        // did not answer it): it is confirmed soon, or it expires as no attempt and this retry admits it afresh.
        msg.nak(RETRY_STORE_DOWN_MS);
        return 'retry_in_progress';
      case 'unavailable':
        // Nothing admitted may be lost: the retry stays in its stream and comes back.
        msg.nak(result.retryAfterMs);
        return 'publish_failed';
      case 'duplicate':
      case 'vetoed':
      case 'admitted':
        // Admitted now and confirmed, or an earlier delivery's admission was (a duplicate).
        msg.ack();
        return 'retry_admitted';
    }
  }

  async #dead(retry: RetryMessage, reason: string): Promise<void> {
    await publishDeadLetter(this.#publishing, {
      jobId: retry.jobId,
      jobType: retry.type,
      tenant: retry.tenant,
      attempts: retry.attempt - 1,
      lastOutcome: retry.lastOutcome,
      error: reason,
      payload: retry.payload,
    });
  }
}
