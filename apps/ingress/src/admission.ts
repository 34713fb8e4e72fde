import type { JobMessage, LedgerEntry, Priority, RejectReason } from '@janus/contracts';
import { JsonText, messageIds, jsonWithRaw, publishAll, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import { StateLost, StoreUnavailable, type Admitted, type AdmittedJob, type CompiledPolicy, type ExceedsCapacity, type Limiter } from '@janus/limiter';
import type { Logger } from '@janus/observability';
import { batchIdempotencyRecord, encodeRetryContext, jobIdempotencyRecord, parseIdempotencyRecord, type AdmittedBody } from '@janus/execution';
import type { DecisionRecorder } from './decisions.js';
import type { IngressMetrics } from './metrics.js';

/** One job of a request, validated, with its id assigned. */
export interface PreparedJob {
  readonly jobId: string;
  readonly type: string;
  /** The payload as JSON text, serialized once (size check, retry context and job message use it). */
  readonly payloadJson?: string;
  readonly priority: Priority;
  readonly cost?: number;
  readonly idempotencyKey?: string;
  /** With an idempotency key: the request's content fingerprint, kept in its idempotency record. */
  readonly fingerprint?: string;
}

export type { AdmittedBody };

export type AdmitAnswer =
  | { readonly kind: 'admitted'; readonly status: 200 | 202; readonly body: object }
  | { readonly kind: 'rejected'; readonly index: number; readonly reason: RejectReason; readonly retryAfterMs: number }
  | { readonly kind: 'unknown_job_type'; readonly index: number }
  | ExceedsCapacity
  /** An idempotency key already names a different request: the job's (`index`) or the batch's (-1). Nothing was admitted. */
  | { readonly kind: 'idempotency_key_reused'; readonly index: number }
  | { readonly kind: 'unavailable'; readonly detail: string; readonly retryAfterMs: number };

export interface AdmissionServiceDeps {
  readonly limiter: Pick<Limiter, 'admit' | 'revoke'>;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  /** False while the NATS connection is down: answer 503 at once instead of admitting and revoking. */
  readonly natsUp: () => boolean;
  readonly metrics: IngressMetrics;
  readonly decisions: DecisionRecorder;
  readonly logger?: Pick<Logger, 'warn' | 'error'>;
  /** Ack timeout of one publish try (there are at most two tries). */
  readonly publishTimeoutMs?: number;
}

type Message = { subject: string; body: unknown; msgID: string };

/**
 * Admission → publish → answer. A job is answered `admitted` only after JetStream acknowledged its
 * message; if a publish fails (after one retry with the same msgID, which JetStream dedupes), the
 * whole admission is revoked and the caller gets 503.
 */
export class AdmissionService {
  // Two clocks, so that each keeps hitting its cache: ~20 admissions share a millisecond at full load.
  readonly #admittedAt = new IsoTime();
  readonly #expiresAt = new IsoTime();

  constructor(private readonly deps: AdmissionServiceDeps) {}

  async admit(
    tenant: string,
    policy: CompiledPolicy,
    jobs: readonly PreparedJob[],
    shape: 'single' | 'batch',
    batchIdempotency?: { key: string; windowMs: number; fingerprint: string },
  ): Promise<AdmitAnswer> {
    const { deps } = this;
    if (!deps.natsUp()) {
      this.countAll(jobs, 'unavailable', 'nats_down');
      return { kind: 'unavailable', detail: 'JetStream is unreachable; nothing was admitted', retryAfterMs: 1000 };
    }
    const admittedAt = this.#admittedAt.of(Date.now());
    const records = jobs.map((j): AdmittedBody => ({ jobId: j.jobId, status: 'admitted', attempt: 1, admittedAt }));
    let result;
    try {
      result = await deps.limiter.admit({
        jobs: jobs.map((j, i) => ({
          jobId: j.jobId,
          tenant,
          jobType: j.type,
          priority: j.priority,
          ...(j.cost !== undefined ? { cost: j.cost } : {}),
          ...(j.idempotencyKey !== undefined ? { idempotency: { key: j.idempotencyKey, record: jobIdempotencyRecord(records[i]!, j.fingerprint) } } : {}),
          // What a retry of this job will need; kept with the lease in Redis.
          context: encodeRetryContext(
            { tenant, type: j.type, priority: j.priority, ...(j.cost !== undefined ? { cost: j.cost } : {}), createdAt: admittedAt },
            j.payloadJson,
          ),
        })),
        ...(batchIdempotency
          ? {
              idempotency: {
                key: batchIdempotency.key,
                tenant,
                windowMs: batchIdempotency.windowMs,
                record: batchIdempotencyRecord(records, batchIdempotency.fingerprint),
              },
            }
          : {}),
      });
    } catch (error) {
      if (error instanceof StoreUnavailable && jobs.every((j) => policy.jobType(j.type)?.failOpen === true)) {
        return this.admitFailOpen(tenant, policy, jobs, records, shape);
      }
      if (error instanceof StoreUnavailable || error instanceof StateLost) {
        this.countAll(jobs, 'unavailable', error instanceof StateLost ? 'state_lost' : 'redis_down');
        // A lost state is rebuilt within seconds (and at the latest reopens at recoveringUntil): ask to come back soon.
        const retryAfterMs = error instanceof StateLost ? Math.min(5000, Math.max(1000, error.recoveringUntil - Date.now())) : 1000;
        return { kind: 'unavailable', detail: `${error.message}; nothing was admitted`, retryAfterMs };
      }
      throw error;
    }

    switch (result.kind) {
      case 'duplicate': {
        // Decided in the same atomic step as admission (the record holds the first request's
        // fingerprint); nothing was consumed either way.
        const { fp, body } = parseIdempotencyRecord(result.record);
        if (!sameRequest(fp, batchIdempotency?.fingerprint)) {
          this.countAll(jobs, 'rejected', 'idempotency_key_reused');
          return { kind: 'idempotency_key_reused', index: -1 };
        }
        this.countAll(jobs, 'duplicate', 'idempotency');
        return { kind: 'admitted', status: 200, body: { ...body, duplicate: true } };
      }
      case 'unknown_job_type':
        this.countAll(jobs, 'rejected', 'unknown_job_type');
        return { kind: 'unknown_job_type', index: result.index };
      case 'rejected':
        this.countAll(jobs, 'rejected', result.reason);
        return { kind: 'rejected', index: result.index, reason: result.reason, retryAfterMs: result.retryAfterMs };
      case 'exceeds_capacity':
        this.countAll(jobs, 'rejected', 'exceeds_capacity');
        return result;
      case 'admitted':
        return this.publishAdmitted(tenant, policy, jobs, records, result, shape, batchIdempotency);
    }
  }

  private async publishAdmitted(
    tenant: string,
    policy: CompiledPolicy,
    jobs: readonly PreparedJob[],
    records: readonly AdmittedBody[],
    admitted: Admitted,
    shape: 'single' | 'batch',
    batchIdempotency: { key: string; windowMs: number; fingerprint: string } | undefined,
  ): Promise<AdmitAnswer> {
    const { names } = this.deps;
    const fresh: { job: PreparedJob; index: number; admitted: AdmittedJob & { lease: NonNullable<AdmittedJob['lease']> }; record: AdmittedBody }[] = [];
    admitted.jobs.forEach((a, i) => {
      const job = jobs[i];
      const record = records[i];
      if (a.lease !== undefined && job !== undefined && record !== undefined) fresh.push({ job, index: i, admitted: a, record });
    });

    // The keys a job was admitted under travel with it (expiring as the limiter's records do, at the
    // admission time plus the window), so that the persister keeps them for a state rebuild.
    const batchKey = batchIdempotency && { key: batchIdempotency.key, fingerprint: batchIdempotency.fingerprint, expiresAt: new Date(admitted.at + batchIdempotency.windowMs).toISOString(), size: jobs.length };
    const jobMessages: Message[] = fresh.map(({ job, index, admitted: a, record }) => {
      const windowMs = policy.jobType(job.type)?.idempotencyWindowMs;
      const body: Omit<JobMessage, 'payload'> = {
        jobId: a.jobId,
        type: a.jobType,
        tenant,
        attempt: a.attempt,
        priority: a.priority,
        admittedAt: record.admittedAt,
        lease: { id: a.lease.id, token: a.lease.token, expiresAt: this.#expiresAt.of(a.lease.expiresAt) },
        ...(job.cost !== undefined ? { cost: job.cost } : {}),
        ...(job.idempotencyKey !== undefined && job.fingerprint !== undefined && windowMs !== undefined
          ? { idempotency: { key: job.idempotencyKey, fingerprint: job.fingerprint, expiresAt: new Date(a.admittedAt + windowMs).toISOString() } }
          : {}),
        ...(batchKey ? { batchIdempotency: { ...batchKey, index } } : {}),
      };
      return { subject: names.subjects.job(a.jobType), body: jobMessage(body, job.payloadJson), msgID: messageIds.attempt(a.jobId, a.attempt) };
    });
    const reserves = fresh.filter((f) => f.admitted.budgetReserved > 0);

    // A job whose key names a different request: the whole request is refused (all or nothing), so
    // what was admitted with it is revoked before anything is published.
    const reused = admitted.jobs.findIndex((a, i) => a.duplicate !== undefined && !sameRequest(parseIdempotencyRecord(a.duplicate.record).fp, jobs[i]?.fingerprint));
    if (reused >= 0) {
      if (fresh.length > 0) await this.revoke(admitted, 'idempotency_key_reused');
      this.countAll(jobs, 'rejected', 'idempotency_key_reused');
      return { kind: 'idempotency_key_reused', index: reused };
    }

    if (!(await this.publish(jobMessages, 'jobs'))) {
      await this.revoke(admitted, 'job_publish_failed');
      this.countAll(jobs, 'unavailable', 'publish_failed');
      return { kind: 'unavailable', detail: 'JetStream did not acknowledge the job; the admission was revoked', retryAfterMs: 1000 };
    }
    // The reserve follows the job, so the ledger never holds a reservation for a job that was never published.
    if (reserves.length > 0 && !(await this.publish(this.ledger('reserve', tenant, reserves), 'ledger'))) {
      await this.revoke(admitted, 'ledger_publish_failed');
      // The reserve may have been stored despite the failed ack: cancel it (msgIDs keep this idempotent).
      await this.publish(this.ledger('release', tenant, reserves), 'ledger');
      this.countAll(jobs, 'unavailable', 'publish_failed');
      return { kind: 'unavailable', detail: 'JetStream did not acknowledge the budget reservation; the admission was revoked', retryAfterMs: 1000 };
    }

    // Per-job duplicates (their own idempotency key was seen before) were not admitted again.
    const entries = admitted.jobs.map((a, i) => {
      if (a.duplicate !== undefined) return { ...parseIdempotencyRecord(a.duplicate.record).body, duplicate: true };
      const r = records[i] as AdmittedBody;
      return shape === 'single' ? r : { jobId: r.jobId, status: r.status, attempt: r.attempt };
    });
    for (const [i, a] of admitted.jobs.entries()) {
      const type = jobs[i]?.type ?? 'unknown';
      if (a.duplicate !== undefined) this.deps.decisions.record('duplicate', 'idempotency', type, 1);
      else this.deps.decisions.record('admitted', 'admitted', type, 1);
    }
    const allDuplicates = fresh.length === 0;
    if (shape === 'single') return { kind: 'admitted', status: allDuplicates ? 200 : 202, body: entries[0] ?? {} };
    return { kind: 'admitted', status: allDuplicates ? 200 : 202, body: { jobs: entries } };
  }

  /**
   * Redis is down and every dependency of every job says `failMode: open`: admit without the limiter.
   * There is no lease in Redis, so the message carries a lease that settles nothing (its outcome is
   * recorded and ignored), and idempotency cannot be honoured.
   */
  private async admitFailOpen(
    tenant: string,
    policy: CompiledPolicy,
    jobs: readonly PreparedJob[],
    records: readonly AdmittedBody[],
    shape: 'single' | 'batch',
  ): Promise<AdmitAnswer> {
    const { names } = this.deps;
    const messages: Message[] = jobs.map((job, i) => {
      const record = records[i] as AdmittedBody;
      const timeoutMs = policy.jobType(job.type)?.timeoutMs ?? 30_000;
      const body: Omit<JobMessage, 'payload'> = {
        jobId: job.jobId,
        type: job.type,
        tenant,
        attempt: 1,
        priority: job.priority,
        admittedAt: record.admittedAt,
        lease: { id: `fail-open-${job.jobId}`, token: 'fail-open', expiresAt: new Date(Date.now() + timeoutMs).toISOString() },
      };
      return { subject: names.subjects.job(job.type), body: jobMessage(body, job.payloadJson), msgID: messageIds.attempt(job.jobId, 1) };
    });
    if (!(await this.publish(messages, 'jobs'))) {
      this.countAll(jobs, 'unavailable', 'publish_failed');
      return { kind: 'unavailable', detail: 'Redis and JetStream are unreachable; nothing was admitted', retryAfterMs: 1000 };
    }
    for (const job of jobs) {
      this.deps.metrics.failOpen.inc({ job_type: job.type });
      this.deps.decisions.record('fail_open', 'store_unavailable', job.type, 1);
    }
    if (shape === 'single') return { kind: 'admitted', status: 202, body: records[0] ?? {} };
    return { kind: 'admitted', status: 202, body: { jobs: records.map((r) => ({ jobId: r.jobId, status: r.status, attempt: r.attempt })) } };
  }

  /** The budget ledger entries of the admitted jobs that reserved budget. */
  private ledger(kind: LedgerEntry['kind'], tenant: string, reserves: readonly { admitted: AdmittedJob; record: AdmittedBody }[]): Message[] {
    const { names } = this.deps;
    return reserves.map(({ admitted: a, record }) => {
      const body: LedgerEntry = { tenant, kind, amount: a.budgetReserved, jobId: a.jobId, attempt: a.attempt, at: kind === 'reserve' ? record.admittedAt : new Date().toISOString() };
      return { subject: names.subjects.ledger(tenant), body, msgID: messageIds.ledger(a.jobId, a.attempt, kind) };
    });
  }

  /** Publishes concurrently; retries the failed ones once (same msgIDs: JetStream dedupes). */
  private async publish(messages: Message[], stream: 'jobs' | 'ledger'): Promise<boolean> {
    if (messages.length === 0) return true;
    const timeoutMs = this.deps.publishTimeoutMs ?? 1_500;
    let first;
    try {
      first = await publishAll(this.deps.js, messages, { timeoutMs });
    } catch (error) {
      this.deps.logger?.warn({ err: error }, 'publish threw');
      this.deps.metrics.publishFailures.inc({ stream }, messages.length);
      return false;
    }
    if (first.ok) return true;
    this.deps.metrics.publishFailures.inc({ stream }, first.failed.length);
    if (!this.deps.natsUp()) return false;
    const again = await publishAll(
      this.deps.js,
      first.failed.map((i) => messages[i] as Message),
      { timeoutMs },
    ).catch(() => undefined);
    if (again?.ok) return true;
    this.deps.metrics.publishFailures.inc({ stream }, again?.failed.length ?? first.failed.length);
    return false;
  }

  private async revoke(admitted: Admitted, cause: string): Promise<void> {
    this.deps.metrics.revocations.inc({ cause });
    try {
      await this.deps.limiter.revoke(admitted);
    } catch (error) {
      // Redis went away too: the leases expire on their own (the scheduler reaps them).
      this.deps.logger?.error({ err: error }, 'could not revoke an admission after a failed publish; its leases will expire');
    }
  }

  private countAll(jobs: readonly PreparedJob[], decision: 'rejected' | 'duplicate' | 'unavailable', reason: string): void {
    const byType = new Map<string, number>();
    for (const j of jobs) byType.set(j.type, (byType.get(j.type) ?? 0) + 1);
    for (const [type, n] of byType) this.deps.decisions.record(decision, reason, type, n);
  }
}

/** The job message's JSON, with the payload text spliced in as it was serialized once. */
function jobMessage(body: Omit<JobMessage, 'payload'>, payloadJson: string | undefined): JsonText {
  return new JsonText(jsonWithRaw(body, 'payload', payloadJson));
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

/** A record without a fingerprint (written before fingerprints were kept) matches any request. */
function sameRequest(recorded: string | undefined, now: string | undefined): boolean {
  return recorded === undefined || recorded === now;
}
