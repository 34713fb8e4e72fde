import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { OutcomeEvent, outcomeReportId, type AppliedOutcome, type DeadLetter, type JobMessage, type LedgerEntry } from '@janus/contracts';
import { messageIds, parseMessage, publishJson, type NatsNames } from '@janus/messaging';
import { StateLost, StoreUnavailable, type Limiter } from '@janus/limiter';
import { decideAfterFailure } from './backoff.js';
import { decodeRetryContext, encodeRetryContext, type RetryContext } from './retry-context.js';
import { seededRandom } from './seeded-random.js';

/** What happened to one outcome message; the app counts these in metrics. */
export type OutcomeDisposition =
  | 'succeeded'
  | 'retry_scheduled'
  | 'retry_waiting'
  | 'retry_admitted'
  | 'retry_rejected'
  | 'dead'
  | 'ignored_invalid_token'
  | 'ignored_unknown'
  | 'ignored_expired'
  | 'ignored_already_settled'
  | 'ignored_not_expired'
  | 'malformed'
  | 'store_unavailable'
  | 'publish_failed';

export interface OutcomeProcessorDeps {
  readonly limiter: Limiter;
  readonly js: JetStreamClient;
  readonly names: NatsNames;
  /** Current time in ms (tests may pin it). */
  readonly now?: () => number;
}

interface SettledAttempt {
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly jobType: string;
  readonly context: RetryContext | undefined;
}

const RETRY_STORE_DOWN_MS = 1_000;
const MIN_RETRY_WAIT_MS = 50;

/**
 * Turns worker outcomes into settled leases, retries and dead letters (CONTRACT §4).
 *
 * - `succeeded`/`failed`: settle the lease (frees its slots exactly once, settles the budget). An
 *   outcome whose lease token is invalid, expired or settled differently is recorded by the
 *   persister and ignored here: a zombie's late report changes nothing.
 * - `timed_out` (written by the reaper): honoured only if the lease really expired.
 * - An accepted outcome is published as an `AppliedOutcome` on `<ns>.applied.<type>` (msgID
 *   `<jobId>.<attempt>.applied`) before the message is acked: job status derives from those only.
 * - `retryable: false` on a failure: no retry, a dead letter at once.
 * - A failure with attempts left becomes a retry: the outcome message itself is held in JetStream
 *   with `nak(delay)` until the backoff has passed (durable, no extra state), then the next attempt
 *   goes through the same admission as any job, at the job type's retry priority, idempotent per
 *   attempt so a redelivery never admits it twice. Rejected → `nak(retryAfterMs)`: no retry storm
 *   can get past the limits. A retry that no wait can admit (`exceeds_capacity`: a limit lowered below
 *   what it takes) becomes a dead letter naming the limit.
 * - No attempts left: a dead letter on `<ns>.dead.<type>`.
 */
export class OutcomeProcessor {
  readonly #now: () => number;

  constructor(private readonly deps: OutcomeProcessorDeps) {
    this.#now = deps.now ?? Date.now;
  }

  async process(msg: JsMsg): Promise<OutcomeDisposition> {
    const parsed = parseMessage(msg, OutcomeEvent);
    if (!parsed.success) {
      msg.ack();
      return 'malformed';
    }
    try {
      const disposition = await this.#handle(parsed.data, msg);
      return disposition;
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) {
        msg.nak(RETRY_STORE_DOWN_MS);
        return 'store_unavailable';
      }
      throw error;
    }
  }

  async #handle(event: OutcomeEvent, msg: JsMsg): Promise<OutcomeDisposition> {
    const { limiter } = this.deps;
    let settled: SettledAttempt;
    if (event.outcome === 'timed_out') {
      const lease = await limiter.leaseState(event.leaseToken);
      if (!lease.ok) return this.#ignore(msg, lease.reason);
      if (lease.lease.state !== 'expired') return this.#ignore(msg, 'not_expired');
      settled = { ...lease.lease, context: decodeRetryContext(lease.lease.context) };
    } else {
      const result = await limiter.settle(event.leaseToken, event.outcome, event.actualCost);
      if (result.ok) {
        settled = { ...result.lease, context: decodeRetryContext(result.lease.context) };
        if (result.lease.reserved > 0) await this.#ledger(result.lease, 'settle', result.lease.actual);
      } else if (result.reason === 'already_settled') {
        // Settled before: by ingress for an HTTP worker, or by an earlier delivery of this very
        // message (we are now past its retry delay). Go on only if it was settled with this outcome.
        const lease = await limiter.leaseState(event.leaseToken);
        if (!lease.ok || lease.lease.state !== 'settled' || lease.lease.outcome !== event.outcome) {
          return this.#ignore(msg, 'already_settled');
        }
        settled = { ...lease.lease, context: decodeRetryContext(lease.lease.context) };
        // Whoever settled it may have died before the ledger entry was published: publish it again
        // (deduped by its msgID).
        if (lease.lease.reserved > 0 && lease.lease.actual !== undefined) await this.#ledger(lease.lease, 'settle', lease.lease.actual);
      } else {
        return this.#ignore(msg, result.reason);
      }
    }
    // The outcome is accepted: make that durable before anything else follows from it (the
    // persister derives status from these only), and before the outcome message is acked.
    await this.#applied(event, settled);
    if (event.outcome === 'succeeded') {
      msg.ack();
      return 'succeeded';
    }
    return this.#afterFailure(event, settled, msg);
  }

  async #afterFailure(event: OutcomeEvent, job: SettledAttempt, msg: JsMsg): Promise<OutcomeDisposition> {
    const jobType = this.deps.limiter.policy.jobType(job.jobType);
    const retry = jobType?.retry ?? { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 };
    const decision = decideAfterFailure(retry, job.attempt, seededRandom(job.jobId, job.attempt));
    // `retryable: false`: the worker knows the failure is permanent (CONTRACT §4).
    if (decision.kind === 'dead' || job.context === undefined || event.retryable === false) {
      await this.#deadLetter(event, job, jobType ? undefined : 'job type no longer exists');
      msg.ack();
      return 'dead';
    }
    const publishedAt = Math.floor(msg.info.timestampNanos / 1e6);
    const due = publishedAt + decision.delayMs;
    const wait = due - this.#now();
    if (wait > 0) {
      msg.nak(Math.max(wait, MIN_RETRY_WAIT_MS));
      return msg.info.deliveryCount === 1 ? 'retry_scheduled' : 'retry_waiting';
    }

    const ctx = job.context;
    const result = await this.deps.limiter.admit({
      jobs: [
        {
          jobId: job.jobId,
          tenant: job.tenant,
          jobType: job.jobType,
          priority: jobType?.retryPriority ?? 'low',
          attempt: decision.nextAttempt,
          ...(ctx.cost !== undefined ? { cost: ctx.cost } : {}),
          idempotency: { key: `retry:${job.jobId}.${decision.nextAttempt}`, record: 'retry', kind: 'retry' },
          context: encodeRetryContext(ctx),
        },
      ],
    });
    if (result.kind === 'rejected') {
      msg.nak(Math.max(result.retryAfterMs, MIN_RETRY_WAIT_MS));
      return 'retry_rejected';
    }
    if (result.kind === 'unknown_job_type') {
      await this.#deadLetter(event, job, 'job type no longer exists');
      msg.ack();
      return 'dead';
    }
    if (result.kind === 'exceeds_capacity') {
      // No wait can admit this retry (a limit was lowered below what it takes): a dead letter, not a wait forever.
      const { limit } = result;
      const name = [limit.scope, limit.dependency, limit.scope === 'dependency' ? limit.tenant : undefined, limit.kind].filter((x) => x !== undefined).join(' ');
      await this.#deadLetter(event, job, `exceeds capacity: the retry takes ${limit.requested} of the ${name} limit, whose capacity is ${limit.capacity}`);
      msg.ack();
      return 'dead';
    }
    if (result.kind === 'duplicate') {
      msg.ack();
      return 'retry_admitted';
    }
    const admitted = result.jobs[0];
    if (admitted === undefined || admitted.duplicate !== undefined) {
      // An earlier delivery of this outcome admitted the retry already.
      msg.ack();
      return 'retry_admitted';
    }
    const message: JobMessage = {
      jobId: job.jobId,
      type: job.jobType,
      tenant: job.tenant,
      attempt: admitted.attempt,
      priority: admitted.priority,
      ...(ctx.payload !== undefined ? { payload: ctx.payload } : {}),
      admittedAt: new Date(admitted.admittedAt).toISOString(),
      lease: { id: admitted.lease.id, token: admitted.lease.token, expiresAt: new Date(admitted.lease.expiresAt).toISOString() },
    };
    try {
      await publishJson(this.deps.js, this.deps.names.subjects.job(job.jobType), message, messageIds.attempt(job.jobId, admitted.attempt));
      if (admitted.budgetReserved > 0) {
        await this.#ledger({ ...job, attempt: admitted.attempt }, 'reserve', admitted.budgetReserved);
      }
    } catch {
      // Nothing admitted may be lost: undo the admission and try again shortly.
      await this.deps.limiter.revoke(result);
      msg.nak(RETRY_STORE_DOWN_MS);
      return 'publish_failed';
    }
    msg.ack();
    return 'retry_admitted';
  }

  async #applied(event: OutcomeEvent, job: SettledAttempt): Promise<void> {
    const applied: AppliedOutcome = {
      jobId: job.jobId,
      type: job.jobType,
      tenant: job.tenant,
      attempt: job.attempt,
      outcome: event.outcome,
      ...(event.error !== undefined ? { error: event.error } : {}),
      ...(event.actualCost !== undefined ? { actualCost: event.actualCost } : {}),
      ...(event.retryable !== undefined ? { retryable: event.retryable } : {}),
      reportId: outcomeReportId(event),
      appliedAt: new Date(this.#now()).toISOString(),
    };
    await publishJson(this.deps.js, this.deps.names.subjects.applied(job.jobType), applied, messageIds.applied(job.jobId, job.attempt));
  }

  async #deadLetter(event: OutcomeEvent, job: SettledAttempt, reason?: string): Promise<void> {
    const dead: DeadLetter = {
      jobId: job.jobId,
      type: job.jobType,
      tenant: job.tenant,
      attempts: job.attempt,
      lastOutcome: event.outcome === 'timed_out' ? 'timed_out' : 'failed',
      ...(reason !== undefined || event.error !== undefined ? { error: (reason ?? event.error ?? '').slice(0, 2048) } : {}),
      ...(job.context?.payload !== undefined ? { payload: job.context.payload } : {}),
      deadAt: new Date(this.#now()).toISOString(),
    };
    await publishJson(this.deps.js, this.deps.names.subjects.dead(job.jobType), dead, messageIds.dead(job.jobId));
  }

  async #ledger(job: { jobId: string; attempt: number; tenant: string }, kind: LedgerEntry['kind'], amount: number): Promise<void> {
    const entry: LedgerEntry = { tenant: job.tenant, kind, amount, jobId: job.jobId, attempt: job.attempt, at: new Date(this.#now()).toISOString() };
    await publishJson(this.deps.js, this.deps.names.subjects.ledger(job.tenant), entry, messageIds.ledger(job.jobId, job.attempt, kind));
  }

  #ignore(msg: JsMsg, reason: 'invalid_token' | 'unknown' | 'expired' | 'already_settled' | 'not_expired'): OutcomeDisposition {
    msg.ack();
    return `ignored_${reason}`;
  }
}
