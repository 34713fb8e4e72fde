import type { JobMessage, LedgerEntry } from '@janus/contracts';
import { JsonText, jsonWithRaw, messageIds, publishAll, publishFailure, type JetStreamTarget, type NatsNames, type StoredJob } from '@janus/messaging';
import type { AdmissionRequest, AdmissionResult, Admitted, AdmittedJob, Lease, Limiter } from '@janus/limiter';

/** One message to publish with its msgID (JetStream dedupes on it, so a re-publish is safe). */
export interface OutgoingMessage {
  readonly subject: string;
  readonly body: unknown;
  readonly msgID: string;
}

export interface PipelineInput {
  /** What the limiter decides. */
  readonly request: AdmissionRequest;
  /** Each job's payload as JSON text (serialized once by the caller), by the request's job index. */
  readonly payloads: readonly (string | undefined)[];
  /** The job messages' `admittedAt` (ISO); default: the admission's Redis time. */
  readonly admittedAt?: string;
  /**
   * Looks at a fresh admission before anything is published; a cause refuses it (the admission is
   * revoked — nothing was published, so that is safe).
   */
  readonly vet?: (admitted: Admitted) => string | undefined;
  /** Fields a fresh job's message carries besides the contract's (request job `index`). */
  readonly extras?: (job: AdmittedJob, index: number, admitted: Admitted) => JobMessageExtras;
}

/**
 * What a job message may carry beyond CONTRACT §4 (for the persister, and a state rebuild); and
 * `priority`, the job's own when it was admitted at another (a retry, at its job type's retryPriority).
 */
export type JobMessageExtras = Partial<Pick<JobMessage, 'cost' | 'idempotency' | 'batchIdempotency' | 'failOpen' | 'priority'>>;

/** Why nothing was admitted although the limits allowed it. Each is a 503 / a retry later. */
export type UnavailableCause =
  /** NATS is down: nothing was tried. */
  | 'nats_down'
  /** The budget reservation could not be recorded: revoked before the job was published. */
  | 'ledger_failed'
  /** JetStream refused the job message (it was not stored): revoked. */
  | 'job_refused'
  /**
   * JetStream's answer never came: the job message may be in the stream. The admission is NOT
   * revoked — it keeps its limits until its lease expires — but withdrawn: it can no longer be
   * confirmed, extended or settled, so a worker that claims its lease before running (the worker
   * SDK does) skips it; at expiry the reaper releases it as no attempt.
   */
  | 'job_unknown'
  /** JetStream already held this attempt's msgID from an earlier admission that was not confirmed: revoked; try again after the dedupe window. */
  | 'stale_duplicate'
  /** The job message is in the stream but its lease ran out while it was being published (a worker's claim is refused: it never runs). */
  | 'confirm_failed';

export type PipelineResult =
  /** Every fresh job's message (and budget reservation) is in JetStream and the admission is confirmed. */
  | { readonly kind: 'admitted'; readonly admitted: Admitted; readonly fresh: number }
  | Exclude<AdmissionResult, Admitted>
  /** `vet` refused it: revoked, nothing published. */
  | { readonly kind: 'vetoed'; readonly admitted: Admitted; readonly cause: string }
  | { readonly kind: 'unavailable'; readonly cause: UnavailableCause; readonly detail: string; readonly retryAfterMs: number };

export interface PipelineEvents {
  /** Publishes that failed (each try), per stream. */
  publishFailed?(stream: 'jobs' | 'ledger', count: number): void;
  /** An admission undone, and why. */
  revoked?(cause: string): void;
  /** Fresh leases that took over the earlier leases of their stored job messages (takeover-n.lua). */
  takenOver?(count: number): void;
  /** A fault that is handled here but worth a log line (a revoke or a confirm that failed). */
  fault?(what: string, error: unknown): void;
}

export interface AdmissionPipelineDeps {
  readonly limiter: Pick<Limiter, 'admit' | 'confirm' | 'revoke' | 'withdraw' | 'takeOver'>;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  /**
   * Reads the job message stored at a sequence of the jobs stream (`storedJobReader` of @janus/messaging). With it, a
   * fresh admission whose message JetStream already holds from an earlier admission of the same
   * attempt (whose lease lapsed unconfirmed) takes over that admission's lease instead of waiting
   * out the duplicate window.
   */
  readonly storedJob?: (seq: number) => Promise<StoredJob | undefined>;
  /** False while the NATS connection is down: answer at once instead of admitting and revoking. */
  readonly natsUp?: () => boolean;
  /** Ack timeout of one publish try. Default 1,500 ms. */
  readonly publishTimeoutMs?: number;
  /** How long to keep re-publishing (same msgIDs) a message whose answer did not come. Default 5,000 ms. */
  readonly answerDeadlineMs?: number;
  readonly events?: PipelineEvents;
}

const RETRY_SOON_MS = 1_000;
/** JetStream's duplicate window on the jobs stream (libs/messaging streams.ts). */
const DEDUPE_WINDOW_MS = 120_000;

/**
 * The one admission pipeline (ingress, retries, and next the waiting room): admit → ledger →
 * publish → confirm → answer.
 *
 * 1. The limiter admits atomically; fresh leases are `pending`.
 * 2. Budget reservations go to the ledger first, so that a job is never in the stream without its
 *    reservation on record; if that fails, the admission is revoked (nothing was published) and a
 *    `release` cancels a reservation that may have been stored anyway.
 * 3. The job messages are published; a try whose answer did not come is repeated with the same
 *    msgIDs (JetStream dedupes) until JetStream answers or the deadline passes.
 *    - refused (not stored): revoke, release, unavailable;
 *    - no answer by the deadline: unavailable, and the admission is withdrawn, not revoked: it
 *      keeps its limits while its message may be in the stream, and a worker claiming it is refused.
 * 4. The admission is confirmed (pending → active): only now is a replay a duplicate, and only now
 *    does an expiring lease count as an attempt.
 *
 * The limiter's own faults (Redis unreachable, state lost) are thrown: the caller decides (fail
 * closed, or open where a dependency says so).
 */
export class AdmissionPipeline {
  readonly #admittedAt = new IsoTime();
  readonly #expiresAt = new IsoTime();

  constructor(private readonly deps: AdmissionPipelineDeps) {}

  async run(input: PipelineInput): Promise<PipelineResult> {
    const { deps } = this;
    if (deps.natsUp?.() === false) return unavailable('nats_down', 'JetStream is unreachable; nothing was admitted');
    const admission = await deps.limiter.admit(input.request);
    if (admission.kind !== 'admitted') return admission;
    let result: Admitted = admission;

    const fresh: { index: number; job: AdmittedJob & { lease: NonNullable<AdmittedJob['lease']> } }[] = [];
    result.jobs.forEach((job, index) => {
      if (job.lease !== undefined) fresh.push({ index, job });
    });
    const veto = input.vet?.(result);
    if (veto !== undefined) {
      if (fresh.length > 0) await this.#revoke(result, veto);
      return { kind: 'vetoed', admitted: result, cause: veto };
    }
    if (fresh.length === 0) return { kind: 'admitted', admitted: result, fresh: 0 };

    const reserves = fresh.filter((f) => f.job.budgetReserved > 0).map((f) => f.job);
    if (reserves.length > 0) {
      const ledger = await this.publish(this.ledgerMessages('reserve', reserves), 'ledger', false);
      if (ledger !== 'stored') {
        await this.#revoke(result, 'ledger_publish_failed');
        await this.publish(this.ledgerMessages('release', reserves), 'ledger', true);
        return unavailable('ledger_failed', 'JetStream did not record the budget reservation; the admission was revoked');
      }
    }

    const messages = fresh.map((f) => this.jobMessage(f.job, input.payloads[f.index], input.admittedAt, input.extras?.(f.job, f.index, result)));
    const seqs: number[] = [];
    const duplicates: number[] = [];
    let published = await this.publish(messages, 'jobs', false, seqs, duplicates);
    if (published === 'stale' && reserves.length === 0) {
      const taken = await this.#takeOver(result, fresh, seqs, duplicates);
      if (taken !== undefined) {
        result = taken;
        published = 'stored';
      }
    }
    if (published === 'refused' || published === 'stale') {
      await this.#revoke(result, published === 'stale' ? 'stale_duplicate' : 'job_publish_refused');
      if (reserves.length > 0) await this.publish(this.ledgerMessages('release', reserves), 'ledger', true);
      return published === 'stale'
        ? unavailable('stale_duplicate', 'JetStream already holds this attempt from an admission that was not confirmed', DEDUPE_WINDOW_MS / 4)
        : unavailable('job_refused', 'JetStream refused the job message; the admission was revoked');
    }
    if (published === 'unknown') {
      // Answered 503, so the job must not run; its message may be in the stream, so it keeps its limits.
      try {
        await deps.limiter.withdraw(result);
      } catch (error) {
        deps.events?.fault?.('withdraw', error);
      }
      return unavailable('job_unknown', 'JetStream did not answer; nothing was admitted (a job message that reached the stream all the same is not run)');
    }

    // The job messages are in the stream now: from here on the job will run, so the answer is
    // "admitted" unless its lease is provably gone (then the worker SDK's claim is refused).
    const deadline = Date.now() + (deps.answerDeadlineMs ?? 5_000);
    for (;;) {
      try {
        const confirmed = await deps.limiter.confirm(input.request, result, seqs);
        if (confirmed.notHeld.length > 0) {
          return unavailable('confirm_failed', 'the lease ran out before JetStream acknowledged the job message');
        }
        return { kind: 'admitted', admitted: result, fresh: fresh.length };
      } catch (error) {
        deps.events?.fault?.('confirm', error);
        // Redis cannot be reached. The lease stays pending: a worker's claim confirms it, and if Redis
        // lost its state the rebuild restores it from the durable record (the message is stored).
        if (Date.now() >= deadline) return { kind: 'admitted', admitted: result, fresh: fresh.length };
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** The job message of an admitted attempt, built here only (CONTRACT §4); the payload text is spliced in as serialized. */
  jobMessage(job: AdmittedJob & { lease: NonNullable<AdmittedJob['lease']> }, payloadJson: string | undefined, admittedAt?: string, extras?: JobMessageExtras): OutgoingMessage {
    const body: Omit<JobMessage, 'payload'> = {
      ...extras,
      jobId: job.jobId,
      type: job.jobType,
      tenant: job.tenant,
      attempt: job.attempt,
      priority: extras?.priority ?? job.priority,
      admittedAt: admittedAt ?? this.#admittedAt.of(job.admittedAt),
      lease: { id: job.lease.id, token: job.lease.token, expiresAt: this.#expiresAt.of(job.lease.expiresAt) },
    };
    return {
      subject: this.deps.names.subjects.job(job.jobType),
      body: new JsonText(jsonWithRaw(body, 'payload', payloadJson)),
      msgID: messageIds.attempt(job.jobId, job.attempt),
    };
  }

  /**
   * Publishes until JetStream has answered every message, or the deadline passed. `stored`: every
   * message is in the stream; `refused`: JetStream answered that some were not stored and none is
   * in doubt; `unknown`: some answer never came; `stale`: a message's msgID was already stored by
   * an earlier admission (a duplicate on the first try). `bestEffort`: one try, no retries.
   * `seqs` receives each stored message's stream sequence, by message index (a duplicate's is the
   * stored message's), and `duplicates` the indexes of the messages that were duplicates on the first try.
   */
  async publish(messages: readonly OutgoingMessage[], stream: 'jobs' | 'ledger', bestEffort: boolean, seqs: number[] = [], duplicates: number[] = []): Promise<'stored' | 'refused' | 'unknown' | 'stale'> {
    if (messages.length === 0) return 'stored';
    const { deps } = this;
    const timeoutMs = deps.publishTimeoutMs ?? 1_500;
    const deadline = Date.now() + (deps.answerDeadlineMs ?? 5_000);
    let pending = messages.map((_, i) => i);
    let first = true;
    let refused = false;
    let storedSome = false;
    for (;;) {
      const sent = await publishAll(deps.js, pending.map((i) => messages[i]!), { timeoutMs });
      sent.results.forEach((r, k) => {
        if (r === undefined) return;
        storedSome = true;
        seqs[pending[k]!] = r.seq;
        if (first && r.duplicate === true) duplicates.push(pending[k]!);
      });
      if (first && stream === 'jobs' && duplicates.length > 0) return 'stale';
      first = false;
      // Some stored and some refused: revoking would leave the stored ones unheld, so keep them all.
      if (sent.ok) return refused ? 'unknown' : 'stored';
      deps.events?.publishFailed?.(stream, sent.failed.length);
      const unknown: number[] = [];
      sent.failed.forEach((f, k) => {
        if (publishFailure(sent.errors[k]) === 'unknown') unknown.push(pending[f]!);
        else refused = true;
      });
      if (unknown.length === 0) return storedSome ? 'unknown' : 'refused';
      if (bestEffort || Date.now() >= deadline || deps.natsUp?.() === false) return 'unknown';
      pending = unknown;
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (deps.natsUp?.() === false) return 'unknown';
    }
  }

  /** Budget ledger entries of admitted jobs that reserved budget. */
  ledgerMessages(kind: LedgerEntry['kind'], jobs: readonly AdmittedJob[]): OutgoingMessage[] {
    const at = new Date().toISOString();
    return jobs.map((job) => {
      const body: LedgerEntry = { tenant: job.tenant, kind, amount: job.budgetReserved, jobId: job.jobId, attempt: job.attempt, at: kind === 'reserve' ? this.#admittedAt.of(job.admittedAt) : at };
      return { subject: this.deps.names.subjects.ledger(job.tenant), body, msgID: messageIds.ledger(job.jobId, job.attempt, kind) };
    });
  }

  /**
   * Some of this admission's job messages were duplicates on the first try: JetStream holds each
   * under the attempt's msgID from an earlier admission (`seqs` names the stored messages). Each
   * stored message names the earlier admission's lease, which is the one a worker will claim. If
   * every earlier lease was released as no attempt (it lapsed unconfirmed), the fresh leases take
   * them over (takeover-n.lua) and the admission goes on with the earlier lease ids; otherwise, or
   * when the stored messages cannot be read, undefined (the caller revokes: a stale duplicate).
   * Only when every message is stored and no job reserved budget (the caller checks that).
   */
  async #takeOver(admitted: Admitted, fresh: readonly { index: number; job: AdmittedJob & { lease: Lease } }[], seqs: readonly number[], duplicates: readonly number[]): Promise<Admitted | undefined> {
    const read = this.deps.storedJob;
    if (read === undefined || fresh.some((_, i) => seqs[i] === undefined)) return undefined;
    const earlier = new Map<number, StoredJob>();
    try {
      for (const d of duplicates) {
        const stored = await read(seqs[d]!);
        const { job } = fresh[d]!;
        if (stored === undefined || stored.jobId !== job.jobId || stored.attempt !== job.attempt) return undefined;
        earlier.set(fresh[d]!.index, stored);
      }
    } catch (error) {
      this.deps.events?.fault?.('reading a stored job message', error);
      return undefined;
    }
    const relabelled: Admitted = {
      ...admitted,
      jobs: admitted.jobs.map((job, index) => {
        const stored = earlier.get(index);
        return stored === undefined || job.lease === undefined ? job : { ...job, lease: { ...job.lease, id: stored.lease.id, token: stored.lease.token } };
      }),
    };
    const pairs = duplicates.map((d) => ({ fresh: fresh[d]!.job.lease.id, earlier: earlier.get(fresh[d]!.index)!.lease.id, tenant: fresh[d]!.job.tenant }));
    try {
      if (!(await this.deps.limiter.takeOver(pairs))) return undefined;
    } catch (error) {
      // Redis failed meanwhile. If the takeover ran and only its reply was lost, the earlier leases
      // hold again (pending) with their messages stored: withdraw them, so that the 503 that follows
      // is true (a withdrawn lease's job does not run); the fresh ones are revoked already.
      this.deps.events?.fault?.('takeover', error);
      try {
        await this.deps.limiter.withdraw(relabelled);
      } catch (again) {
        this.deps.events?.fault?.('withdraw after a failed takeover', again);
      }
      return undefined;
    }
    this.deps.events?.takenOver?.(duplicates.length);
    return relabelled;
  }

  async #revoke(admitted: Admitted, cause: string): Promise<void> {
    this.deps.events?.revoked?.(cause);
    try {
      await this.deps.limiter.revoke(admitted);
    } catch (error) {
      // Redis went away too: the leases stay pending and the reaper releases them at expiry, as no attempt.
      this.deps.events?.fault?.('revoke', error);
    }
  }
}

function unavailable(cause: UnavailableCause, detail: string, retryAfterMs = RETRY_SOON_MS): PipelineResult {
  return { kind: 'unavailable', cause, detail, retryAfterMs };
}

/** `new Date(ms).toISOString()`, remembered for the last millisecond asked (Date formatting is not free). */
export class IsoTime {
  #ms = Number.NaN;
  #text = '';

  of(ms: number): string {
    if (ms !== this.#ms) {
      this.#ms = ms;
      this.#text = new Date(ms).toISOString();
    }
    return this.#text;
  }
}
