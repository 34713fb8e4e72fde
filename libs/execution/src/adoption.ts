import type { Database } from '@janus/db';
import type { AdoptResult, Limiter } from '@janus/limiter';
import { readFailOpenLeases } from './durable-state.js';

export interface AdoptionDeps {
  readonly limiter: Pick<Limiter, 'adoptLeases' | 'now' | 'policy'>;
  readonly db: Database;
  /** Fail-open attempts whose lease ended longer ago than this are left alone (default a day: Redis keeps a finished lease record that long). */
  readonly horizonMs?: number;
}

const DAY_MS = 86_400_000;

/**
 * A job admitted while Redis could not be reached (every dependency `failMode: open`) has a lease
 * Redis never recorded: the worker SDK's claim of it waits (NotAdopted) and nothing counts it in
 * its concurrency pools. Once Redis answers, this writes the lease record of every such attempt the
 * persister stored without an outcome (Limiter.adoptLeases: idempotent, pools only, expiry at least
 * the job type's timeout from now), so that the job runs, settles, is reaped and retried as any
 * other, and admissions from now on count it. Cheap when there is nothing to adopt (a partial
 * index); the retry-scheduler runs it every second. Throws when Redis or PostgreSQL cannot be
 * reached (try again later).
 */
export async function adoptFailOpenLeases(deps: AdoptionDeps): Promise<AdoptResult> {
  const now = await deps.limiter.now();
  const policy = deps.limiter.policy;
  const leases = await readFailOpenLeases(deps.db, policy, { now, expiredHorizonMs: deps.horizonMs ?? DAY_MS, clockSkewMs: 0 });
  if (leases.length === 0) return { ok: true, adopted: 0, existing: 0, skipped: 0 };
  return deps.limiter.adoptLeases(leases);
}
