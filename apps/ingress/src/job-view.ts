import { and, asc, eq } from 'drizzle-orm';
import { attempts, jobs, type Database } from '@janus/db';
import type { JobView } from '@janus/contracts';

/**
 * The tenant's own job as the persister stored it. Stand-in until the persister exports
 * `getJobView(db, tenant, jobId)`; swap the import in app wiring when it lands.
 */
export async function getJobView(db: Database, tenant: string, jobId: string): Promise<JobView | undefined> {
  const [job] = await db.select().from(jobs).where(and(eq(jobs.jobId, jobId), eq(jobs.tenant, tenant))).limit(1);
  if (!job) return undefined;
  const rows = await db.select().from(attempts).where(eq(attempts.jobId, jobId)).orderBy(asc(attempts.attempt));
  return {
    jobId: job.jobId,
    type: job.type,
    status: job.status as JobView['status'],
    priority: job.priority as JobView['priority'],
    createdAt: job.createdAt.toISOString(),
    attempts: rows
      .filter((r) => r.admittedAt !== null)
      .map((r) => ({
        attempt: r.attempt,
        admittedAt: (r.admittedAt as Date).toISOString(),
        ...(r.outcome !== null ? { outcome: r.outcome as 'succeeded' | 'failed' | 'timed_out' } : {}),
        ...(r.finishedAt !== null ? { finishedAt: r.finishedAt.toISOString() } : {}),
        ...(r.error !== null ? { error: r.error } : {}),
      })),
  };
}
