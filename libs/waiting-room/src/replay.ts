import type { JobStatus, JobView } from '@janus/contracts';
import type { CompiledPolicy } from '@janus/limiter';
import { PRIORITY_RANK } from './enqueue.js';
import type { WaitingStore } from './store.js';

/**
 * What a replay needs to know of a job: as GET shows it, with its tenant, last attempt number, cost
 * and payload. `JobRecord` of @janus/event-store has this shape (declared here, not imported, so
 * that the room does not depend on the event store).
 */
export interface ReplayableJob {
  readonly view: JobView;
  readonly tenant: string;
  /** The highest attempt number the job has used, admitted or not. */
  readonly lastAttempt: number;
  readonly cost: number | null;
  readonly payloadJson: string | null;
  readonly createdAt: Date;
}

export type ReplayAnswer =
  | { readonly kind: 'replayed'; readonly type: string; readonly tenant: string; readonly attempt: number; readonly notBefore: Date }
  | { readonly kind: 'not_found' }
  /** Not dead (`status` is what GET shows), or dead with a job type the running policy no longer has. */
  | { readonly kind: 'not_replayable'; readonly status: JobStatus; readonly why: string };

export interface ReplayDeps {
  /** The job (of `tenant`; of any tenant when undefined, as an admin replays) or undefined. */
  readonly record: (tenant: string | undefined, jobId: string) => Promise<ReplayableJob | undefined>;
  readonly store: Pick<WaitingStore, 'enqueueReplay'>;
  /** Tells the dispatcher a job joined the room. */
  readonly wake: () => void;
}

/**
 * Replays a dead job (docs/api.md `POST /v1/jobs/{jobId}/replay`, and the admins'
 * `POST /v1/admin/jobs/{jobId}/replay` with `tenant` undefined): its next attempt joins the waiting
 * room as a retry that is due now, and the room's dispatcher admits it through the one admission
 * pipeline like any retry — every limit applies, nothing skips the queue.
 *
 * The attempt is numbered after every attempt the job used (the persister's and the room's), and
 * every earlier attempt counts as uncharged: the replay gets the job type's `maxAttempts` afresh
 * (the retry context carries the count to the outcome processing, as for throttled attempts).
 *
 * Two replays of one death compute the same attempt number (a replay already stored makes the job
 * `retrying`, so a later one is refused before it gets there), and the room's key (job, attempt)
 * lets one of them in: never two attempts.
 */
export async function replayDeadJob(deps: ReplayDeps, policy: CompiledPolicy, tenant: string | undefined, jobId: string): Promise<ReplayAnswer> {
  const job = await deps.record(tenant, jobId);
  if (job === undefined) return { kind: 'not_found' };
  const { view } = job;
  if (view.status !== 'dead') return { kind: 'not_replayable', status: view.status, why: `its status is ${view.status}; only a dead job can be replayed` };
  const jobType = policy.jobType(view.type);
  // The dispatcher would only mark it dead again.
  if (jobType === undefined) return { kind: 'not_replayable', status: view.status, why: `its job type "${view.type}" is not in the running policy` };
  const attempt = job.lastAttempt + 1;
  const last = view.attempts[view.attempts.length - 1];
  const now = new Date();
  const stored = await deps.store.enqueueReplay({
    jobId,
    attempt,
    tenant: job.tenant,
    type: view.type,
    // A retry's place in the room, as the retry-scheduler gives due retries.
    priority: PRIORITY_RANK[jobType.retryPriority],
    jobPriority: view.priority,
    cost: job.cost ?? undefined,
    payload: job.payloadJson ?? undefined,
    // Named by a dead letter if this attempt can never be admitted.
    lastOutcome: last?.outcome === 'timed_out' ? 'timed_out' : 'failed',
    uncharged: attempt - 1,
    createdAt: job.createdAt,
    dueAt: now,
  });
  if (!stored) {
    // Another replay of this death got there first: the job is no longer dead.
    const current = await deps.record(job.tenant, jobId);
    const status = current?.view.status ?? 'retrying';
    return { kind: 'not_replayable', status, why: `its status is ${status}: it is being replayed already` };
  }
  deps.wake();
  return { kind: 'replayed', type: view.type, tenant: job.tenant, attempt, notBefore: now };
}
