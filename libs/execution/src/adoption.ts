import type { Database } from '@janus/db';
import type { AdoptResult, Limiter } from '@janus/limiter';
import { readFailOpenLeases } from './durable-state.js';
import { publishLedger, type Publishing } from './publishing.js';

export interface AdoptionDeps {
  readonly limiter: Pick<Limiter, 'adoptLeases' | 'now' | 'policy'>;
  readonly db: Database;
  /** Where the budget reservations adoption makes are recorded (the ledger stream). */
  readonly publishing: Publishing;
  /** A reservation that could not be recorded (it is published again next time, while the attempt lives). */
  readonly onLedgerFailure?: (error: unknown) => void;
  /** Fail-open attempts whose lease ended longer ago than this are left alone (default a day: Redis keeps a finished lease record that long). */
  readonly horizonMs?: number;
}

const DAY_MS = 86_400_000;

/**
 * A job admitted while Redis could not be reached (every dependency `failMode: open`) has a lease
 * Redis never recorded: the worker SDK's claim of it waits (NotAdopted) and nothing counts it in
 * its concurrency pools. Once Redis answers, this writes the lease record of every such attempt the
 * persister stored without an outcome (Limiter.adoptLeases: idempotent, expiry at least the job
 * type's timeout from now), so that the job runs, settles, is reaped and retried as any other, and
 * admissions from now on count it. A job of a tenant with a budget reserves its estimate as it is
 * adopted (its actual cost is charged when it settles): the `reserve` ledger entry is published
 * first, as admission does; one that fails is published again next time. Cheap when there is
 * nothing to adopt (a partial index); the retry-scheduler runs it every second. Throws when Redis
 * or PostgreSQL cannot be reached (try again later).
 */
export async function adoptFailOpenLeases(deps: AdoptionDeps): Promise<AdoptResult> {
  const now = await deps.limiter.now();
  const policy = deps.limiter.policy;
  const { leases, unrecorded } = await readFailOpenLeases(deps.db, policy, { now, expiredHorizonMs: deps.horizonMs ?? DAY_MS, clockSkewMs: 0 });
  if (leases.length === 0) return { ok: true, adopted: 0, existing: 0, skipped: 0 };
  for (const lease of leases) {
    if (lease.reserved <= 0 || !unrecorded.has(lease.leaseId)) continue;
    await publishLedger(deps.publishing, lease, 'reserve', lease.reserved).catch((error: unknown) => deps.onLedgerFailure?.(error));
  }
  return deps.limiter.adoptLeases(leases);
}
