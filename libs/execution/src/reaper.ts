import type { LedgerEntry, OutcomeEvent } from '@janus/contracts';
import { messageIds, publishJson, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import type { ExpiredEntry, ExpiredLease, Limiter } from '@janus/limiter';
import type { OutcomeHorizon } from './outcome-horizon.js';

export interface ReaperDeps {
  readonly limiter: Pick<Limiter, 'findExpired' | 'markExpired'>;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  /**
   * The time before which every reported outcome has been processed (`outcomeHorizon`): only
   * leases that expired by then are reaped, so that an outcome reported in time but not processed
   * yet still settles its lease.
   */
  readonly horizon: OutcomeHorizon;
  /** On each tick that found expired leases: how many ms the horizon lagged now (0: none held back). */
  readonly onHorizon?: (lagMs: number) => void;
  /** How long one publish waits for JetStream's ack (default 5 s). */
  readonly publishTimeoutMs?: number;
  readonly onReaped?: (lease: ExpiredLease) => void;
  readonly onPublishFailure?: (lease: ExpiredLease, error: unknown) => void;
}

/**
 * Turns expired leases into `timed_out` outcomes, in two phases so that no expired attempt is ever
 * left without an outcome (CONTRACT §6.2):
 *
 * 1. list the leases that are active and past their expiry, changing nothing (`findExpired`); if
 *    there are any, keep only those that expired before the outcome horizon: every outcome
 *    reported before that time has been processed (a success reported before its lease's expiry
 *    counts, however late the scheduler reads it, so such a lease must wait for it);
 * 2. publish each one's `timed_out` outcome (and its budget `settle`), msgID-deduped;
 * 3. only then mark the published ones expired and drop them from the expiry index (`markExpired`).
 *
 * A lease that expires still pending (its job message was never confirmed in JetStream: the
 * admitting instance died, or JetStream's answer never came and the producer was answered 503) is
 * no attempt: no `timed_out` outcome, so no retry and no dead letter; marking revokes it and frees
 * its idempotency keys. Its budget reservation stays spent (a `settle` ledger entry), as for any
 * lease whose actual cost is unknown.
 *
 * A lease whose publish failed, or that a crash left between 2 and 3, stays in the index and is
 * listed again on the next tick of any instance; its re-publish is a dropped duplicate within the
 * duplicate window (and is idempotent for the scheduler and the persister beyond it). Nothing can
 * extend a lease past its expiry, and only an outcome reported before the expiry can settle it:
 * for a listed lease every such outcome has been processed, so listing before marking loses no race.
 *
 * The horizon costs one consumer-info request, and only on ticks that find an expired lease.
 *
 * The `timed_out` msgID is `<jobId>.<attempt>.timed_out`, not the worker's `<jobId>.<attempt>`: a
 * zombie worker's own report may reach JetStream first, and must not make the timed_out a
 * "duplicate" that is dropped. The zombie's report is ignored anyway — its lease has expired.
 */
export async function reapOnce(deps: ReaperDeps, max = 200): Promise<number> {
  let batch = await deps.limiter.findExpired(max);
  if (batch.entries.length === 0) return 0;
  // `batch.now` was read from Redis before the horizon asks NATS (outcome-horizon.ts relies on it).
  const listedAt = Number(batch.now);
  const upTo = await deps.horizon(listedAt);
  deps.onHorizon?.(Math.max(0, listedAt - upTo));
  if (upTo < listedAt) {
    batch = await deps.limiter.findExpired(max, { upTo });
    if (batch.entries.length === 0) return 0;
  }
  const published = await Promise.all(
    batch.entries.map(async (entry): Promise<ExpiredEntry | undefined> => {
      const ok = await Promise.all(entry.leases.map((lease) => publishTimedOut(deps, lease)));
      return ok.every(Boolean) ? entry : undefined;
    }),
  );
  const done = published.filter((e): e is ExpiredEntry => e !== undefined);
  await deps.limiter.markExpired(batch, done);
  for (const entry of done) for (const lease of entry.leases) deps.onReaped?.(lease);
  return done.reduce((n, e) => n + e.leases.length, 0);
}

async function publishTimedOut(deps: ReaperDeps, lease: ExpiredLease): Promise<boolean> {
  const timeoutMs = deps.publishTimeoutMs ?? 5_000;
  const event: OutcomeEvent = { jobId: lease.jobId, attempt: lease.attempt, leaseToken: lease.token, outcome: 'timed_out' };
  try {
    if (lease.confirmed) {
      await publishJson(deps.js, deps.names.subjects.outcome(lease.jobType), event, messageIds.timedOut(lease.jobId, lease.attempt), { timeoutMs });
    }
    if (lease.reserved > 0) {
      // No actual cost will ever be reported: the reservation stands as spent.
      const entry: LedgerEntry = {
        tenant: lease.tenant,
        kind: 'settle',
        amount: lease.reserved,
        jobId: lease.jobId,
        attempt: lease.attempt,
        at: new Date(lease.expiresAt).toISOString(),
      };
      await publishJson(deps.js, deps.names.subjects.ledger(lease.tenant), entry, messageIds.ledger(lease.jobId, lease.attempt, 'settle'), { timeoutMs });
    }
    return true;
  } catch (error) {
    deps.onPublishFailure?.(lease, error);
    return false;
  }
}
