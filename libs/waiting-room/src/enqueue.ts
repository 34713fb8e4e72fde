import type { Priority, RejectReason } from '@janus/contracts';
import type { CompiledPolicy } from '@janus/limiter';
import { jobBoundOf, notBefore, type JobBound } from './estimate.js';
import type { EnqueueResult, WaitingStore } from './store.js';

/** CONTRACT §2: a tenant's jobs waiting in mode `queue`, unless its policy says otherwise. */
export const DEFAULT_MAX_QUEUED = 10_000;

export const PRIORITY_RANK: Readonly<Record<Priority, number>> = { high: 0, normal: 1, low: 2 };

export interface ProducerJob {
  readonly jobId: string;
  readonly tenant: string;
  readonly type: string;
  readonly priority: Priority;
  readonly cost?: number | undefined;
  readonly payloadJson?: string | undefined;
  readonly idempotencyKey?: string | undefined;
  readonly fingerprint?: string | undefined;
}

/**
 * A producer's job in mode `queue` that is not admitted now: stored in the room (bounded by the
 * tenant's `maxQueued`) with its `notBefore`. `refused`: the admission's answer, when one was tried.
 */
export async function enqueueProducerJob(
  store: WaitingStore,
  policy: CompiledPolicy,
  job: ProducerJob,
  refused?: { reason: RejectReason; retryAfterMs: number },
  now = Date.now(),
  /** Reads how full the job's token buckets are (Limiter.bucketLevels); without it, or when it fails, the estimate assumes full buckets. */
  readLevels?: (buckets: JobBound['buckets']) => Promise<ReadonlyMap<string, number>>,
): Promise<EnqueueResult> {
  const bound = jobBoundOf(policy, job.tenant, job.type);
  const levels = readLevels && bound.buckets.length > 0 ? await readLevels(bound.buckets).catch(() => undefined) : undefined;
  const maxQueued = policy.document.tenants[job.tenant]?.maxQueued ?? DEFAULT_MAX_QUEUED;
  return store.enqueue(
    {
      jobId: job.jobId,
      attempt: 1,
      tenant: job.tenant,
      type: job.type,
      priority: PRIORITY_RANK[job.priority],
      jobPriority: job.priority,
      cost: job.cost,
      payload: job.payloadJson,
      idempotencyKey: job.idempotencyKey,
      fingerprint: job.fingerprint,
      createdAt: new Date(now),
      dueAt: new Date(now),
    },
    maxQueued,
    (jobs) => notBefore(now, bound, jobs, refused, levels),
  );
}
