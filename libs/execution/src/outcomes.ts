import type { JsMsg } from '@nats-io/jetstream';
import { MAX_APPLIED_PER_MESSAGE, ReportedOutcome, outcomeReportId, type OutcomeEvent, type AppliedBatch, type AppliedOutcome, type RetryMessage } from '@janus/contracts';
import { messageIds, parseMessage, publishJson, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import { StateLost, StoreUnavailable, type FeedbackResult, type FeedbackSignal, type Limiter } from '@janus/limiter';
import { decideAfterFailure, MAX_UNCHARGED_ATTEMPTS } from './backoff.js';
import { publishDeadLetter, publishLedger, type Publishing } from './publishing.js';
import { decodeRetryContext, type RetryContext } from './retry-context.js';
import { seededRandom } from './seeded-random.js';

/** What happened to one outcome message; the app counts these in metrics. */
export type OutcomeDisposition =
  | 'succeeded'
  | 'retry_scheduled'
  | 'dead'
  | 'ignored_invalid_token'
  | 'ignored_unknown'
  | 'ignored_expired'
  | 'ignored_already_settled'
  | 'ignored_not_expired'
  | 'malformed'
  | 'store_unavailable';

export interface OutcomeProcessorDeps {
  readonly limiter: Limiter;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  /** Current time in ms (tests may pin it). */
  readonly now?: () => number;
  /**
   * Called with what accepted outcomes did to their dependencies (metrics: throttle signals, circuit
   * transitions): once per failure, once per job type for the successes of one moment.
   */
  readonly onFeedback?: (jobType: string, signal: FeedbackSignal, result: FeedbackResult, dependency: string | undefined) => void;
  /** A worker's outcome settled its lease (metrics: admission-to-outcome latency; both times Redis's). */
  readonly onSettled?: (jobType: string, outcome: 'succeeded' | 'failed', latencyMs: number) => void;
}

interface SettledAttempt {
  readonly jobId: string;
  readonly attempt: number;
  readonly tenant: string;
  readonly jobType: string;
  readonly context: RetryContext | undefined;
}

const RETRY_STORE_DOWN_MS = 1_000;
const NO_FEEDBACK: FeedbackResult = { uncharged: false, transitions: [] };

/**
 * The successes of one moment (one turn of the event loop), summed per job type: told to the
 * limiter in one feedback call each (`count`) instead of one per outcome — the same count in the
 * outage circuit, a Redis script per job saved. Failures are told one by one: each needs its own
 * answer (was the circuit open for this attempt?).
 */
class SuccessFeedback {
  readonly #moment = new PerMoment<(result: FeedbackResult) => void>((jobType, waiters) => {
    // Whatever happens to the feedback, every outcome waiting for it goes on (it is best effort).
    void this.send(jobType, waiters.length)
      .catch(() => NO_FEEDBACK)
      .then((result) => {
        for (const resolve of waiters) resolve(result);
      });
  });

  /** The attempts whose success this process counted lately (oldest first, at most RECENT_SUCCESSES). */
  readonly #counted = new Set<string>();

  constructor(private readonly send: (jobType: string, count: number) => Promise<FeedbackResult>) {}

  add(jobType: string): Promise<FeedbackResult> {
    return new Promise((resolve) => this.#moment.push(jobType, resolve));
  }

  /**
   * Whether this attempt's success is not yet counted here (and now it is). A report is stored again
   * when it is published again after JetStream's short duplicate window on outcomes (streams.ts):
   * it counts once. (Two scheduler instances may each see one copy: rare, and only a success more.)
   */
  firstOf(jobId: string, attempt: number): boolean {
    const key = `${jobId}.${attempt}`;
    if (this.#counted.has(key)) return false;
    this.#counted.add(key);
    if (this.#counted.size > RECENT_SUCCESSES) this.#counted.delete(this.#counted.values().next().value as string);
    return true;
  }
}

/** How many counted successes a process remembers (≈ 100 bytes each). */
const RECENT_SUCCESSES = 100_000;

/** Entries gathered per job type during one turn of the event loop, handed over together at the next. */
class PerMoment<E> {
  #pending = new Map<string, E[]>();
  #scheduled = false;

  constructor(private readonly flush: (jobType: string, entries: E[]) => void) {}

  push(jobType: string, entry: E): void {
    let entries = this.#pending.get(jobType);
    if (entries === undefined) {
      entries = [];
      this.#pending.set(jobType, entries);
    }
    entries.push(entry);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        const pending = this.#pending;
        this.#pending = new Map();
        for (const [type, gathered] of pending) this.flush(type, gathered);
      });
    }
  }
}

/** An applied outcome's JSON without its error, generously (ids, reportId, timestamps), and the most one message carries. */
const APPLIED_BYTES = 600;
const MAX_APPLIED_BYTES = 256 * 1024;

/** An accepted outcome waiting for its message, and how to tell it the message is stored (or not). */
interface PendingApplied {
  readonly applied: AppliedOutcome;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** What an attempt's follow-up is decided on: the report but its token and its error text. */
function reportDigest(e: OutcomeEvent): string {
  return JSON.stringify([e.outcome, e.retryable ?? null, e.throttled ?? null, e.retryAfterMs ?? null, e.started ?? null, e.dependency ?? null, e.actualCost ?? null]);
}

/**
 * The outcomes accepted at one moment (one turn of the event loop), per job type, published as ONE
 * AppliedBatch message each; every outcome waits for its batch's ack (or its failure) before it goes
 * on, as it waited for its own message before.
 */
export class AppliedPublisher {
  readonly #moment = new PerMoment<PendingApplied>((jobType, entries) => {
    let chunk: PendingApplied[] = [];
    let bytes = 0;
    for (const entry of entries) {
      // Well under NATS's 1 MB payload: an error may take 2,048 characters, up to 6 bytes each in JSON.
      const size = APPLIED_BYTES + 6 * (entry.applied.error?.length ?? 0);
      if (chunk.length > 0 && (chunk.length === MAX_APPLIED_PER_MESSAGE || bytes + size > MAX_APPLIED_BYTES)) {
        this.#send(jobType, chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(entry);
      bytes += size;
    }
    this.#send(jobType, chunk);
  });

  constructor(private readonly publish: (jobType: string, batch: AppliedBatch) => Promise<void>) {}

  add(applied: AppliedOutcome): Promise<void> {
    return new Promise((resolve, reject) => this.#moment.push(applied.type, { applied, resolve, reject }));
  }

  #send(jobType: string, chunk: PendingApplied[]): void {
    this.publish(jobType, { applied: chunk.map((e) => e.applied) }).then(
      () => chunk.forEach((e) => e.resolve()),
      (error: unknown) => chunk.forEach((e) => e.reject(error)),
    );
  }
}

/**
 * Turns worker outcomes into settled leases, retries and dead letters (CONTRACT §4).
 *
 * - `succeeded`/`failed`: settle the lease (frees its slots exactly once, settles the budget). An
 *   outcome whose lease token is invalid (or another job's or attempt's), expired or settled differently is recorded by the
 *   persister and ignored here: a zombie's late report changes nothing. Late means reported
 *   (stored by JetStream) at or after the lease's expiry, or after the reaper marked it expired;
 *   an outcome reported in time counts however late it is processed.
 * - `timed_out` (written by the reaper): honoured only if the lease really expired.
 * - An accepted outcome is published as an `AppliedOutcome` on `<ns>.applied.<type>` after its
 *   retry or dead letter (below) and before the message is acked — with the others of its job type accepted at the same moment, in one
 *   `AppliedBatch` (msgID `applied.<digest>`): job status derives from those only.
 * - `retryable: false` on a failure: no retry, a dead letter at once.
 * - A throttled failure (the dependency refused for load) is not charged to `maxAttempts` (at most
 *   MAX_UNCHARGED_ATTEMPTS of them per job): the count of uncharged attempts travels with the retry
 *   and the next lease (`RetryMessage.uncharged`, `RetryContext.uncharged`).
 * - A failure with attempts left becomes a retry: a `RetryMessage` on `<ns>.retries.<type>` (msgID
 *   `<jobId>.<next attempt>.retry`) carrying everything the next attempt needs and its due time
 *   (backoff with deterministic jitter), published before the outcome is acked. The outcome message
 *   is never held: the `RetryProcessor` waits for the due time and admits the attempt.
 * - No attempts left: a dead letter on `<ns>.dead.<type>`.
 */
export class OutcomeProcessor {
  readonly #now: () => number;
  readonly #publishing: Publishing;
  readonly #successes: SuccessFeedback;
  readonly #appliedOut: AppliedPublisher;

  constructor(private readonly deps: OutcomeProcessorDeps) {
    this.#now = deps.now ?? Date.now;
    this.#publishing = { js: deps.js, names: deps.names, now: this.#now };
    this.#appliedOut = new AppliedPublisher(async (jobType, batch) => {
      const [only, ...more] = batch.applied;
      // Alone, an outcome goes in the single form and msgID (an identical report applied again dedupes).
      if (only && more.length === 0) await publishJson(deps.js, deps.names.subjects.applied(jobType), only, messageIds.applied(only.jobId, only.attempt));
      else await publishJson(deps.js, deps.names.subjects.applied(jobType), batch, messageIds.appliedBatch(batch.applied));
    });
    this.#successes = new SuccessFeedback(async (jobType, count) => {
      const result = await deps.limiter.feedback(jobType, 'succeeded', { count }).catch(() => NO_FEEDBACK);
      deps.onFeedback?.(jobType, 'succeeded', result, undefined);
      return result;
    });
  }

  async process(msg: JsMsg): Promise<OutcomeDisposition> {
    const parsed = parseMessage(msg, ReportedOutcome);
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
      if (lease.lease.jobId !== event.jobId || lease.lease.attempt !== event.attempt) return this.#ignore(msg, 'invalid_token');
      if (lease.lease.state !== 'expired') return this.#ignore(msg, 'not_expired');
      settled = { ...lease.lease, context: decodeRetryContext(lease.lease.context) };
    } else {
      // In time is judged by when the worker reported (JetStream's timestamp), not when we read it:
      // a success published before the expiry counts even if this scheduler was down until after
      // it (the reaper leaves the lease alone until this message is processed: outcome-horizon.ts).
      const reportedAt = Math.floor(msg.info.timestampNanos / 1e6);
      // A genuine token of another job or attempt settles nothing: the outcome names the job it is for.
      const expect = { jobId: event.jobId, attempt: event.attempt };
      const result = await limiter.settle(event.leaseToken, event.outcome, event.actualCost, { reportedAt, expect });
      if (result.ok) {
        settled = { ...result.lease, context: decodeRetryContext(result.lease.context) };
        this.deps.onSettled?.(result.lease.jobType, event.outcome, Math.max(0, result.lease.settledAt - result.lease.admittedAt));
        if (result.lease.reserved > 0) await publishLedger(this.#publishing, result.lease, 'settle', result.lease.actual);
      } else if (result.reason === 'already_settled') {
        // Settled before: by ingress for an HTTP worker, or by an earlier delivery of this very
        // message (we are now past its retry delay). Go on only if it was settled with this outcome.
        const lease = await limiter.leaseState(event.leaseToken);
        if (!lease.ok || lease.lease.state !== 'settled' || lease.lease.outcome !== event.outcome || lease.lease.jobId !== event.jobId || lease.lease.attempt !== event.attempt) {
          return this.#ignore(msg, 'already_settled');
        }
        settled = { ...lease.lease, context: decodeRetryContext(lease.lease.context) };
        // Whoever settled it may have died before the ledger entry was published: publish it again
        // (deduped by its msgID).
        if (lease.lease.reserved > 0 && lease.lease.actual !== undefined) await publishLedger(this.#publishing, lease.lease, 'settle', lease.lease.actual);
      } else {
        return this.#ignore(msg, result.reason);
      }
      // One report decides what follows from an attempt (CONTRACT §6.4). Another report of it with
      // the same token — a retryable failure after a `retryable: false`, a throttle after a failure —
      // settles nothing (the lease is settled), and must not decide again either: before, it
      // scheduled a retry of a job already dead. A redelivery of the deciding report goes on, to
      // the same decision (its retry or dead letter deduped by msgID).
      if ((await limiter.rememberReport(event.jobId, event.attempt, reportDigest(event))) === 'different') return this.#ignore(msg, 'already_settled');
    }
    // The outcome is accepted. What follows from a failure (its retry or its dead letter) is made
    // durable first, then the applied outcome (the persister derives status from these only), then
    // the message is acked. In this order because a Redis that loses its state is rebuilt from
    // the attempts whose applied outcome is not stored (durable-state.ts): an attempt whose applied
    // outcome is stored must have nothing left to follow from it. (In the other order a scheduler
    // that died between the two, its outcome redelivered after the rebuild, found no lease and
    // dropped the retry: a job left `retrying` for ever.) The persister takes retry, dead letter
    // and applied outcome in any order.
    const feedback = await this.#feedback(event, settled, msg.info.deliveryCount <= 1);
    const disposition = event.outcome === 'succeeded' ? 'succeeded' : await this.#afterFailure(event, settled, msg, feedback.uncharged);
    await this.#applied(event, settled);
    msg.ack();
    return disposition;
  }

  /**
   * Tells the limiter what the outcome says about the job type's dependencies (CONTRACT §2
   * `adaptive`): a throttled failure closes its dependency for the `retryAfterMs` asked and lowers
   * its effective rate, for every instance; successes, errors and timeouts drive the outage circuit.
   * Best effort: a store fault here must not hold the outcome (it is applied already).
   *
   * Once per outcome: a failure carries its attempt's memo (below); a success is told on the
   * message's first delivery only (successes are summed per moment, without a memo). A delivery
   * that died before telling it leaves that success uncounted: the circuit then sees one success
   * fewer, never one more.
   */
  async #feedback(event: OutcomeEvent, job: SettledAttempt, firstDelivery: boolean): Promise<FeedbackResult> {
    // A permanent failure (`retryable: false`) is the job's own fault (bad input), not news about the
    // dependency's health: it does not count for the outage circuit. Nor does a job given up unstarted.
    if (event.outcome === 'failed' && event.retryable === false && event.throttled !== true) return NO_FEEDBACK;
    if (event.started === false) return NO_FEEDBACK;
    if (event.outcome === 'succeeded') return firstDelivery && this.#successes.firstOf(job.jobId, job.attempt) ? this.#successes.add(job.jobType) : NO_FEEDBACK;
    const signal = event.throttled === true ? 'throttled' : 'failed';
    // Once per attempt: a redelivery of this outcome (its retry or dead letter published, the ack
    // lost) counts nothing again and answers as the first delivery did, so that it decides the same.
    const options = {
      ...(event.dependency !== undefined ? { dependency: event.dependency } : {}),
      ...(event.retryAfterMs !== undefined ? { retryAfterMs: event.retryAfterMs } : {}),
      once: { jobId: job.jobId, attempt: job.attempt },
    };
    const result = await this.deps.limiter.feedback(job.jobType, signal, options).catch(() => NO_FEEDBACK);
    this.deps.onFeedback?.(job.jobType, signal, result, event.dependency);
    return result;
  }

  /** Publishes the retry or the dead letter of an accepted failure (the caller acks the outcome). */
  async #afterFailure(event: OutcomeEvent, job: SettledAttempt, msg: JsMsg, circuitOpen: boolean): Promise<'dead' | 'retry_scheduled'> {
    const jobType = this.deps.limiter.policy.jobType(job.jobType);
    const retry = jobType?.retry ?? { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 };
    // Is this attempt free (not charged to maxAttempts)? A throttled failure is: the dependency
    // refused for load, the job never really ran. So is a failure while the dependency's outage
    // circuit was open (news from before it opened: the outage failed it; a probe's failure, which
    // reopens a half-open circuit, is charged, so a job broken on its own cannot be the free probe for ever).
    // So is a job its worker gave up without starting it (`started: false`, the worker SDK: no
    // claim answered before its lease neared its end): CONTRACT §4, a job that never started keeps
    // its attempts. Decided from the report alone, so a redelivery decides the same; the cap on
    // uncharged attempts bounds a worker that says so falsely.
    const free = event.throttled === true || circuitOpen || event.started === false;
    // Uncharged attempts so far, this one included; past the cap every failure is charged, so no job
    // retries for ever.
    const uncharged = Math.min((job.context?.uncharged ?? 0) + (free ? 1 : 0), MAX_UNCHARGED_ATTEMPTS);
    const decision = decideAfterFailure(retry, job.attempt, seededRandom(job.jobId, job.attempt), uncharged);
    const lastOutcome = event.outcome === 'timed_out' ? 'timed_out' : 'failed';
    // `retryable: false`: the worker knows the failure is permanent (CONTRACT §4).
    if (decision.kind === 'dead' || job.context === undefined || event.retryable === false) {
      await publishDeadLetter(this.#publishing, {
        ...job,
        attempts: job.attempt,
        lastOutcome,
        error: jobType ? event.error : 'job type no longer exists',
        payload: job.context?.payload,
      });
      return 'dead';
    }
    // The retry waits in RETRIES, not here: the outcome is acked at once, so however many retries
    // wait, they hold nothing of the outcomes consumer (CONTRACT §6.6). The due time counts from
    // when the outcome was published, so a redelivery computes the same one.
    const ctx = job.context;
    const publishedAt = Math.floor(msg.info.timestampNanos / 1e6);
    const waiting: RetryMessage = {
      jobId: job.jobId,
      type: job.jobType,
      tenant: job.tenant,
      attempt: decision.nextAttempt,
      priority: ctx.priority,
      ...(ctx.payload !== undefined ? { payload: ctx.payload } : {}),
      ...(ctx.cost !== undefined ? { cost: ctx.cost } : {}),
      ...(ctx.createdAt !== undefined ? { createdAt: ctx.createdAt } : {}),
      // A throttled failure is retried no earlier than the dependency asked (CONTRACT §4 v1.1).
      dueAt: new Date(publishedAt + Math.max(decision.delayMs, event.throttled === true ? (event.retryAfterMs ?? 0) : 0)).toISOString(),
      lastOutcome,
      ...(event.error !== undefined ? { error: event.error.slice(0, 2048) } : {}),
      // Carried down to the next attempt's lease, so that its outcome adds to it.
      ...(uncharged > 0 ? { uncharged } : {}),
    };
    // Acknowledged by JetStream (and deduped by its msgID) before the outcome is acked.
    await publishJson(this.deps.js, this.deps.names.subjects.retry(job.jobType), waiting, messageIds.retry(job.jobId, decision.nextAttempt));
    return 'retry_scheduled';
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
    await this.#appliedOut.add(applied);
  }

  #ignore(msg: JsMsg, reason: 'invalid_token' | 'unknown' | 'expired' | 'already_settled' | 'not_expired'): OutcomeDisposition {
    msg.ack();
    return `ignored_${reason}`;
  }
}
