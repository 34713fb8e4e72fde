import type { JetStreamClient } from '@nats-io/jetstream';
import type { LedgerEntry, OutcomeEvent } from '@janus/contracts';
import { messageIds, publishJson, type NatsNames } from '@janus/messaging';
import type { ExpiredLease, Limiter } from '@janus/limiter';

export interface ReaperDeps {
  readonly limiter: Limiter;
  readonly js: JetStreamClient;
  readonly names: NatsNames;
  readonly onReaped?: (lease: ExpiredLease) => void;
  readonly onPublishFailure?: (lease: ExpiredLease, error: unknown) => void;
}

const PUBLISH_TRIES = 5;

/**
 * Frees expired leases (atomically, so any number of scheduler instances can reap side by side)
 * and writes a `timed_out` outcome for each. Its msgID is `<jobId>.<attempt>.timed_out`, not the
 * worker's `<jobId>.<attempt>`: a zombie worker's own report may reach JetStream first, and must
 * not make the timed_out a "duplicate" that is dropped. The zombie's report is ignored anyway —
 * its lease has expired.
 */
export async function reapOnce(deps: ReaperDeps, max = 200): Promise<number> {
  const expired = await deps.limiter.reapExpired(max);
  await Promise.all(
    expired.map(async (lease) => {
      const event: OutcomeEvent = { jobId: lease.jobId, attempt: lease.attempt, leaseToken: lease.token, outcome: 'timed_out' };
      for (let attempt = 1; ; attempt++) {
        try {
          await publishJson(deps.js, deps.names.subjects.outcome(lease.jobType), event, messageIds.timedOut(lease.jobId, lease.attempt));
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
            await publishJson(deps.js, deps.names.subjects.ledger(lease.tenant), entry, `${lease.jobId}.${lease.attempt}.settle`);
          }
          deps.onReaped?.(lease);
          return;
        } catch (error) {
          if (attempt >= PUBLISH_TRIES) {
            deps.onPublishFailure?.(lease, error);
            return;
          }
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
    }),
  );
  return expired.length;
}
