import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { RetryMessage, type JobMessage } from '@janus/contracts';
import { messageIds, parseMessage, publishJson, type NatsNames } from '@janus/messaging';
import { StateLost, StoreUnavailable, type Limiter } from '@janus/limiter';
import { publishDeadLetter, publishLedger, type Publishing } from './publishing.js';
import { encodeRetryContext } from './retry-context.js';

/** What happened to one delivery of a waiting retry; the app counts these in metrics. */
export type RetryDisposition =
  | 'retry_waiting'
  | 'retry_admitted'
  | 'retry_rejected'
  | 'dead'
  | 'malformed'
  | 'store_unavailable'
  | 'publish_failed';

export interface RetryProcessorDeps {
  readonly limiter: Limiter;
  readonly js: JetStreamClient;
  readonly names: NatsNames;
  /** Current time in ms (tests may pin it). */
  readonly now?: () => number;
}

const RETRY_STORE_DOWN_MS = 1_000;
const MIN_RETRY_WAIT_MS = 50;

/**
 * Admits waiting retries (`RetryMessage`s on `<ns>.retries.<type>`, CONTRACT §4 as built) when they
 * are due.
 *
 * - Not due yet: `nak(remaining)`. The message stays in RETRIES (work-queue retention, no age limit)
 *   however long it waits; it depends on no other state.
 * - Due: the attempt goes through the same admission as any job, at the job type's retry priority,
 *   idempotent per attempt (`retry:<jobId>.<n>`, the limiter's `kind: 'retry'`), so a redelivery
 *   never admits it twice. Then its job message is published (and a budget `reserve`), then the retry
 *   is acked — and leaves the stream.
 * - Rejected: `nak(retryAfterMs)`: no retry storm can get past the limits.
 * - No wait can admit it (`exceeds_capacity`: a limit lowered below what it takes), or its job type
 *   is gone: a dead letter naming why.
 * - The job message cannot be published: the admission is revoked and the retry comes back shortly.
 */
export class RetryProcessor {
  readonly #now: () => number;
  readonly #publishing: Publishing;

  constructor(private readonly deps: RetryProcessorDeps) {
    this.#now = deps.now ?? Date.now;
    this.#publishing = { js: deps.js, names: deps.names, now: this.#now };
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
      msg.nak(Math.max(wait, MIN_RETRY_WAIT_MS));
      return 'retry_waiting';
    }
    const { limiter } = this.deps;
    const jobType = limiter.policy.jobType(retry.type);
    const result = await limiter.admit({
      jobs: [
        {
          jobId: retry.jobId,
          tenant: retry.tenant,
          jobType: retry.type,
          priority: jobType?.retryPriority ?? 'low',
          attempt: retry.attempt,
          ...(retry.cost !== undefined ? { cost: retry.cost } : {}),
          idempotency: { key: `retry:${retry.jobId}.${retry.attempt}`, record: 'retry', kind: 'retry' },
          context: encodeRetryContext({
            tenant: retry.tenant,
            type: retry.type,
            priority: retry.priority,
            ...(retry.payload !== undefined ? { payload: retry.payload } : {}),
            ...(retry.cost !== undefined ? { cost: retry.cost } : {}),
            ...(retry.createdAt !== undefined ? { createdAt: retry.createdAt } : {}),
          }),
        },
      ],
    });
    if (result.kind === 'rejected') {
      msg.nak(Math.max(result.retryAfterMs, MIN_RETRY_WAIT_MS));
      return 'retry_rejected';
    }
    if (result.kind === 'unknown_job_type') {
      await this.#dead(retry, 'job type no longer exists');
      msg.ack();
      return 'dead';
    }
    if (result.kind === 'exceeds_capacity') {
      // No wait can admit this retry (a limit was lowered below what it takes): a dead letter, not a wait forever.
      const { limit } = result;
      const name = [limit.scope, limit.dependency, limit.scope === 'dependency' ? limit.tenant : undefined, limit.kind].filter((x) => x !== undefined).join(' ');
      await this.#dead(retry, `exceeds capacity: the retry takes ${limit.requested} of the ${name} limit, whose capacity is ${limit.capacity}`);
      msg.ack();
      return 'dead';
    }
    if (result.kind === 'duplicate') {
      msg.ack();
      return 'retry_admitted';
    }
    const admitted = result.jobs[0];
    if (admitted === undefined || admitted.duplicate !== undefined) {
      // An earlier delivery of this retry admitted it already.
      msg.ack();
      return 'retry_admitted';
    }
    const message: JobMessage = {
      jobId: retry.jobId,
      type: retry.type,
      tenant: retry.tenant,
      attempt: admitted.attempt,
      priority: admitted.priority,
      ...(retry.payload !== undefined ? { payload: retry.payload } : {}),
      admittedAt: new Date(admitted.admittedAt).toISOString(),
      // kept with the job (jobs.cost) for a state rebuild: the override applies to every attempt
      ...(retry.cost !== undefined ? { cost: retry.cost } : {}),
      lease: { id: admitted.lease.id, token: admitted.lease.token, expiresAt: new Date(admitted.lease.expiresAt).toISOString() },
    };
    try {
      await publishJson(this.deps.js, this.deps.names.subjects.job(retry.type), message, messageIds.attempt(retry.jobId, admitted.attempt));
      if (admitted.budgetReserved > 0) {
        await publishLedger(this.#publishing, { jobId: retry.jobId, tenant: retry.tenant, attempt: admitted.attempt }, 'reserve', admitted.budgetReserved);
      }
    } catch {
      // Nothing admitted may be lost: undo the admission and try again shortly.
      await limiter.revoke(result);
      msg.nak(RETRY_STORE_DOWN_MS);
      return 'publish_failed';
    }
    msg.ack();
    return 'retry_admitted';
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
