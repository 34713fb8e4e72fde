import type { Priority, RejectReason } from '@janus/contracts';
import { AdmissionPipeline, type AdmissionPipelineDeps, type JobMessageExtras, type PipelineResult } from '@janus/admission';
import type { NatsNames, JetStreamTarget } from '@janus/messaging';
import { NotReplicated, StateLost, StoreUnavailable, type AdmissionRequest, type Admitted, type AdmittedJob, type CompiledPolicy, type ExceedsCapacity, type Limiter } from '@janus/limiter';
import type { Logger } from '@janus/observability';
import { ADMITTED_AT_ADMISSION, batchIdempotencyRecord, encodeRetryContext, jobIdempotencyRecord, parseIdempotencyRecord, type AdmittedBody } from '@janus/execution';
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
  /**
   * A job type with `dedupe` and no producer key on the job (a producer's key decides alone): the
   * payload's dedupe key (@janus/contracts payloadDedupeKey) and the job type's `dedupe.windowMs`.
   */
  readonly dedupe?: { readonly key: string; readonly windowMs: number };
}

/** A payload replay whose first job is still being published (waited for rather than answered 409). */
function payloadInProgress(r: PipelineResult, jobs: readonly PreparedJob[], byPayload: boolean): boolean {
  return r.kind === 'in_progress' && (r.index < 0 ? byPayload : jobs[r.index]?.dedupe !== undefined);
}

/** How long a payload replay waits for the first job's admission to be decided (then: 409, send again). */
const DEDUPE_IN_PROGRESS_GRACE_MS = 1_000;

export type AdmitAnswer =
  | { readonly kind: 'admitted'; readonly status: 200 | 202; readonly body: object }
  | { readonly kind: 'rejected'; readonly index: number; readonly reason: RejectReason; readonly retryAfterMs: number }
  | { readonly kind: 'unknown_job_type'; readonly index: number }
  | ExceedsCapacity
  /** An idempotency key already names a different request: the job's (`index`) or the batch's (-1). Nothing was admitted. */
  | { readonly kind: 'idempotency_key_reused'; readonly index: number }
  /** An idempotency key names an admission whose job message is not yet confirmed: answer it again shortly. Nothing was admitted. */
  | { readonly kind: 'in_progress'; readonly index: number }
  | { readonly kind: 'unavailable'; readonly detail: string; readonly retryAfterMs: number };

export interface AdmissionServiceDeps {
  readonly limiter: Pick<Limiter, 'admit' | 'confirm' | 'revoke' | 'withdraw' | 'takeOver' | 'failOpenLeases'>;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  /** False while the NATS connection is down: answer 503 at once instead of admitting and revoking. */
  readonly natsUp: () => boolean;
  /** Reads a stored job message (AdmissionPipelineDeps.storedJob). */
  readonly storedJob?: AdmissionPipelineDeps['storedJob'];
  readonly metrics: IngressMetrics;
  readonly decisions: DecisionRecorder;
  readonly logger?: Pick<Logger, 'warn' | 'error'>;
  /** Ack timeout of one publish try. */
  readonly publishTimeoutMs?: number;
  /** How long a publish whose answer did not come is repeated (same msgID) before answering 503. */
  readonly answerDeadlineMs?: number;
}

/**
 * A producer's request through the one admission pipeline (@janus/admission: admit → ledger →
 * publish → confirm), and its answer: 202 only once JetStream holds every fresh job message and the
 * admission is confirmed. What is the ingress's own: the idempotency records (the first answer and
 * the request's fingerprint), `idempotency-key-reused`, failing open, and decision metrics.
 */
export class AdmissionService {
  readonly #pipeline: AdmissionPipeline;

  constructor(private readonly deps: AdmissionServiceDeps) {
    const { metrics, logger } = deps;
    this.#pipeline = new AdmissionPipeline({
      limiter: deps.limiter,
      js: deps.js,
      names: deps.names,
      natsUp: deps.natsUp,
      ...(deps.storedJob ? { storedJob: deps.storedJob } : {}),
      ...(deps.publishTimeoutMs !== undefined ? { publishTimeoutMs: deps.publishTimeoutMs } : {}),
      ...(deps.answerDeadlineMs !== undefined ? { answerDeadlineMs: deps.answerDeadlineMs } : {}),
      events: {
        publishFailed: (stream, n) => metrics.publishFailures.inc({ stream }, n),
        revoked: (cause) => metrics.revocations.inc({ cause }),
        takenOver: (n) => metrics.takeovers.inc(n),
        fault: (what, err) => logger?.error({ err }, `${what} failed after the job was published (the admission stays pending until a worker claims it, or a state rebuild restores it)`),
      },
    });
  }

  async admit(
    tenant: string,
    policy: CompiledPolicy,
    jobs: readonly PreparedJob[],
    shape: 'single' | 'batch',
    batchIdempotency?: { key: string; windowMs: number; fingerprint: string },
    /** Mode `queue`: a refusal by a limit is not counted as a rejection (the caller queues the job and counts that). */
    queueing = false,
    /**
     * One job with its own producer key, of a job type with `dedupe`: its payload's dedupe key,
     * checked and recorded as the request's key in the same atomic step (the job's own slot holds the
     * producer key), so that the payload is a replay of an earlier job's whatever the keys.
     */
    payloadKey?: { key: string; windowMs: number },
  ): Promise<AdmitAnswer> {
    const createdAt = new Date().toISOString();
    // `admittedAt` is the admission's Redis time (one clock for every instance; a window rate counts
    // by it): the limiter stamps it into the idempotency records, and the answer takes it from the result.
    const records = jobs.map((j): AdmittedBody => ({ jobId: j.jobId, status: 'admitted', attempt: 1, admittedAt: ADMITTED_AT_ADMISSION }));
    const request: AdmissionRequest = {
      jobs: jobs.map((j, i) => ({
        jobId: j.jobId,
        tenant,
        jobType: j.type,
        priority: j.priority,
        ...(j.cost !== undefined ? { cost: j.cost } : {}),
        ...(j.idempotencyKey !== undefined
          ? { idempotency: { key: j.idempotencyKey, record: jobIdempotencyRecord(records[i]!, j.fingerprint) } }
          : j.dedupe !== undefined
            ? { idempotency: { key: j.dedupe.key, kind: 'dedupe' as const, windowMs: j.dedupe.windowMs, record: jobIdempotencyRecord(records[i]!, undefined) } }
            : {}),
        // What a retry of this job will need; kept with the lease in Redis.
        context: encodeRetryContext(
          { tenant, type: j.type, priority: j.priority, ...(j.cost !== undefined ? { cost: j.cost } : {}), createdAt },
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
        : payloadKey !== undefined && jobs.length === 1
          ? { idempotency: { key: payloadKey.key, kind: 'dedupe' as const, tenant, windowMs: payloadKey.windowMs, record: jobIdempotencyRecord(records[0]!, undefined) } }
          : {}),
    };
    const byPayload = payloadKey !== undefined && jobs.length === 1 && batchIdempotency === undefined;
    // A job whose key names a different request: the whole request is refused (all or nothing), so
    // what was admitted with it is revoked before anything is published.
    let reused = -1;

    let result: PipelineResult;
    try {
      // (`vet` and `extras` are methods, not `const f = () => …`: under tsx every named closure costs
      // an Object.defineProperty of its name when it is created — ~0.8 µs each, per request.)
      const input = {
        request,
        payloads: jobs.map((j) => j.payloadJson),
        vet(admitted: Admitted): string | undefined {
          reused = admitted.jobs.findIndex((a, i) => a.duplicate !== undefined && !sameRequest(parseIdempotencyRecord(a.duplicate.record).fp, jobs[i]?.fingerprint));
          return reused >= 0 ? 'idempotency_key_reused' : undefined;
        },
        // The keys a job was admitted under travel with its message (expiring as the limiter's records
        // do, at admission + window), so that the persister keeps them for a state rebuild; and its cost.
        extras(a: AdmittedJob, index: number, admitted: Admitted): JobMessageExtras {
          const job = jobs[index];
          const windowMs = policy.jobType(a.jobType)?.idempotencyWindowMs;
          return {
            ...(job?.cost !== undefined ? { cost: job.cost } : {}),
            ...(job?.idempotencyKey !== undefined && job.fingerprint !== undefined && windowMs !== undefined
              ? { idempotency: { key: job.idempotencyKey, fingerprint: job.fingerprint, expiresAt: new Date(a.admittedAt + windowMs).toISOString() } }
              : {}),
            ...(batchIdempotency
              ? { batchIdempotency: { key: batchIdempotency.key, fingerprint: batchIdempotency.fingerprint, expiresAt: new Date(admitted.at + batchIdempotency.windowMs).toISOString(), size: jobs.length, index } }
              : {}),
          };
        },
      };
      result = await this.#pipeline.run(input);
      // A payload replay while the first job with that payload is still being published: its answer
      // comes within moments (confirmed, or revoked and then this one may be admitted), so wait for
      // it rather than answer 409 — nothing was taken, asking again is safe.
      const deadline = Date.now() + (this.deps.answerDeadlineMs ?? 5_000) + DEDUPE_IN_PROGRESS_GRACE_MS;
      for (let pause = 5; payloadInProgress(result, jobs, byPayload) && Date.now() < deadline; pause = Math.min(pause * 2, 100)) {
        await new Promise((resolve) => setTimeout(resolve, pause));
        result = await this.#pipeline.run(input);
      }
    } catch (error) {
      // Fail open only when Redis cannot decide; a decision no replica acknowledged is refused (503).
      if (error instanceof StoreUnavailable && !(error instanceof NotReplicated) && jobs.every((j) => policy.jobType(j.type)?.failOpen === true)) {
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
        this.countAll(jobs, 'duplicate', byPayload ? 'dedupe' : 'idempotency');
        return { kind: 'admitted', status: 200, body: { ...body, duplicate: true } };
      }
      case 'in_progress': {
        // A different request under the key is wrong whatever became of the first: 422, not "ask again".
        // (a payload's record has no fingerprint: any request with that payload is its replay)
        const mine = result.index < 0 ? batchIdempotency?.fingerprint : jobs[result.index]?.fingerprint;
        if (!sameRequest(parseIdempotencyRecord(result.record).fp, mine)) {
          this.countAll(jobs, 'rejected', 'idempotency_key_reused');
          return { kind: 'idempotency_key_reused', index: result.index };
        }
        this.countAll(jobs, 'rejected', 'idempotency_in_progress');
        return { kind: 'in_progress', index: result.index };
      }
      case 'unknown_job_type':
        this.countRefusal(jobs, result.index, 'unknown_job_type');
        return { kind: 'unknown_job_type', index: result.index };
      case 'rejected':
        if (!queueing) this.countRefusal(jobs, result.index, result.reason);
        return { kind: 'rejected', index: result.index, reason: result.reason, retryAfterMs: result.retryAfterMs };
      case 'exceeds_capacity':
        this.countAll(jobs, 'rejected', 'exceeds_capacity');
        return result;
      case 'vetoed':
        this.countAll(jobs, 'rejected', 'idempotency_key_reused');
        return { kind: 'idempotency_key_reused', index: reused };
      case 'unavailable':
        this.countAll(jobs, 'unavailable', result.cause);
        return { kind: 'unavailable', detail: result.detail, retryAfterMs: result.retryAfterMs };
      case 'admitted':
        return this.answerAdmitted(jobs, records, result.admitted, shape);
    }
  }

  private answerAdmitted(jobs: readonly PreparedJob[], records: readonly AdmittedBody[], admitted: Admitted, shape: 'single' | 'batch'): AdmitAnswer {
    // Per-job duplicates (their own idempotency key was seen before) were not admitted again.
    const entries = admitted.jobs.map((a, i) => {
      if (a.duplicate !== undefined) return { ...parseIdempotencyRecord(a.duplicate.record).body, duplicate: true };
      const r = records[i] as AdmittedBody;
      return shape === 'single' ? { ...r, admittedAt: new Date(a.admittedAt).toISOString() } : { jobId: r.jobId, status: r.status, attempt: r.attempt };
    });
    let fresh = 0;
    for (const [i, a] of admitted.jobs.entries()) {
      const type = jobs[i]?.type ?? 'unknown';
      if (a.duplicate !== undefined) this.deps.decisions.record('duplicate', jobs[i]?.dedupe !== undefined ? 'dedupe' : 'idempotency', type, 1);
      else {
        fresh += 1;
        this.deps.decisions.record('admitted', 'admitted', type, 1);
      }
    }
    const status = fresh === 0 ? 200 : 202;
    if (shape === 'single') return { kind: 'admitted', status, body: entries[0] ?? {} };
    return { kind: 'admitted', status, body: { jobs: entries } };
  }

  /**
   * Redis is down and every dependency of every job says `failMode: open`: admit without the limiter.
   * Redis holds no record of these leases: their ids are marked fail-open and their tokens genuine,
   * and the retry-scheduler adopts them (writes their records, counted in their concurrency pools)
   * from the persister's record once Redis answers; a worker's claim waits for that. Idempotency
   * cannot be honoured.
   */
  private async admitFailOpen(
    tenant: string,
    policy: CompiledPolicy,
    jobs: readonly PreparedJob[],
    stamped: readonly AdmittedBody[],
    shape: 'single' | 'batch',
  ): Promise<AdmitAnswer> {
    const now = Date.now();
    const admittedAt = new Date(now).toISOString();
    const records = stamped.map((r) => ({ ...r, admittedAt }));
    const leases = this.deps.limiter.failOpenLeases(jobs.length);
    const messages = jobs.map((job, i) => {
      const timeoutMs = policy.jobType(job.type)?.timeoutMs ?? 30_000;
      const unheld = { jobId: job.jobId, attempt: 1, tenant, jobType: job.type, priority: job.priority, admittedAt: now, budgetReserved: 0 };
      const lease = leases[i] as { id: string; token: string };
      const extras = { failOpen: true as const, ...(job.cost !== undefined ? { cost: job.cost } : {}) };
      return this.#pipeline.jobMessage({ ...unheld, lease: { ...lease, expiresAt: now + timeoutMs } }, job.payloadJson, admittedAt, extras);
    });
    if ((await this.#pipeline.publish(messages, 'jobs', false)) !== 'stored') {
      this.countAll(jobs, 'unavailable', 'publish_failed');
      return { kind: 'unavailable', detail: 'Redis is unreachable and JetStream did not store the job; nothing was admitted', retryAfterMs: 1000 };
    }
    for (const job of jobs) {
      this.deps.metrics.failOpen.inc({ job_type: job.type });
      this.deps.decisions.record('fail_open', 'store_unavailable', job.type, 1);
    }
    if (shape === 'single') return { kind: 'admitted', status: 202, body: records[0] ?? {} };
    return { kind: 'admitted', status: 202, body: { jobs: records.map((r) => ({ jobId: r.jobId, status: r.status, attempt: r.attempt })) } };
  }

  /**
   * A refusal of the job at `index`: it counts the reason; the other jobs of its batch were refused
   * with it (all or nothing) and count `batch_refused`, not a reason that may not even apply to
   * their job type.
   */
  countRefusal(jobs: readonly PreparedJob[], index: number, reason: string): void {
    const refused = jobs[index];
    if (refused === undefined || jobs.length === 1) {
      this.countAll(jobs, 'rejected', reason);
      return;
    }
    this.deps.decisions.record('rejected', reason, refused.type, 1);
    this.countAll(jobs.filter((_, i) => i !== index), 'rejected', 'batch_refused');
  }

  countAll(jobs: readonly PreparedJob[], decision: 'rejected' | 'duplicate' | 'unavailable' | 'queued', reason: string): void {
    const byType = new Map<string, number>();
    for (const j of jobs) byType.set(j.type, (byType.get(j.type) ?? 0) + 1);
    for (const [type, n] of byType) this.deps.decisions.record(decision, reason, type, n);
  }
}

/** A record without a fingerprint (written before fingerprints were kept) matches any request. */
function sameRequest(recorded: string | undefined, now: string | undefined): boolean {
  return recorded === undefined || recorded === now;
}
