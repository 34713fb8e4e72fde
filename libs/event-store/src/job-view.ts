import { and, asc, eq } from 'drizzle-orm';
import { JobStatus, Priority, type JobView } from '@janus/contracts';
import { attempts, jobs, type Database } from '@janus/db';

/**
 * `GET /v1/jobs/{jobId}` (CONTRACT §3): the tenant's own job as the persister stored it, or
 * undefined when there is no such job for this tenant (another tenant's job looks exactly like a
 * missing one). Attempts whose admission has not been stored yet (an outcome overtook it) are left
 * out until it arrives.
 */
export async function getJobView(db: Database, tenant: string, jobId: string): Promise<JobView | undefined> {
  const [job] = await db
    .select({ jobId: jobs.jobId, type: jobs.type, status: jobs.status, priority: jobs.priority, createdAt: jobs.createdAt })
    .from(jobs)
    .where(and(eq(jobs.jobId, jobId), eq(jobs.tenant, tenant)))
    .limit(1);
  if (!job) return undefined;
  const rows = await db
    .select({
      attempt: attempts.attempt,
      admittedAt: attempts.admittedAt,
      outcome: attempts.outcome,
      finishedAt: attempts.finishedAt,
      error: attempts.error,
    })
    .from(attempts)
    .where(eq(attempts.jobId, jobId))
    .orderBy(asc(attempts.attempt));
  const view: JobView = {
    jobId: job.jobId,
    type: job.type,
    status: JobStatus.parse(job.status),
    priority: Priority.parse(job.priority),
    createdAt: job.createdAt.toISOString(),
    attempts: rows.flatMap((r) => {
      if (r.admittedAt === null) return [];
      return [
        {
          attempt: r.attempt,
          admittedAt: r.admittedAt.toISOString(),
          ...(r.outcome !== null ? { outcome: r.outcome as 'succeeded' | 'failed' | 'timed_out' } : {}),
          ...(r.finishedAt !== null ? { finishedAt: r.finishedAt.toISOString() } : {}),
          ...(r.error !== null ? { error: r.error } : {}),
        },
      ];
    }),
  };
  return view;
}
