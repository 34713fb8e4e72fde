import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { LeaseExtended } from '@janus/contracts';
import { messageIds, parseMessage, publishJson, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import type { Limiter } from '@janus/limiter';

const ExtendRequest = z.object({ leaseToken: z.string().min(1), ms: z.number().int().min(1).max(24 * 60 * 60 * 1000) });

/** How long the extension's JetStream publish may take: the worker waits 2 s for the whole answer. */
const PUBLISH_TIMEOUT_MS = 1_500;

/**
 * Answers workers' lease extensions on `<ns>.leases.extend` (core NATS request/reply, one queue
 * group across scheduler instances): `{ ok: true, expiresAt }` or `{ ok: false, reason }`.
 *
 * The new expiry is published on `<ns>.extensions.<type>` (msgID `<jobId>.<attempt>.extended.<ms>`)
 * BEFORE the worker is told: the persister records it (`attempts.lease_extended_until`), and a
 * rebuild after a Redis state loss keeps the lease at least as long as any worker believes it holds
 * it. If that publish fails the worker hears `not_recorded` and keeps its old expiry; Redis holds
 * the lease longer than the worker believes, which only keeps its slots a little longer.
 */
export function serveLeaseExtensions(
  nc: NatsConnection,
  js: JetStreamTarget,
  names: NatsNames,
  limiter: Limiter,
  /** A job started: its lease's first claim (metrics: admission-to-start latency, by this host's clock). */
  onStarted?: (jobType: string, delayMs: number) => void,
): Subscription {
  return nc.subscribe(names.subjects.leaseExtend, {
    queue: 'scheduler',
    callback: (err, msg) => {
      if (err) return;
      void (async () => {
        const parsed = parseMessage(msg, ExtendRequest);
        if (!parsed.success) {
          msg.respond(JSON.stringify({ ok: false, reason: 'malformed' }));
          return;
        }
        let result;
        try {
          result = await limiter.extend(parsed.data.leaseToken, parsed.data.ms);
        } catch {
          msg.respond(JSON.stringify({ ok: false, reason: 'store_unavailable' }));
          return;
        }
        if (!result.ok) {
          msg.respond(JSON.stringify({ ok: false, reason: result.reason }));
          return;
        }
        const { lease } = result;
        if (lease.started) onStarted?.(lease.jobType, Math.max(0, Date.now() - lease.admittedAt));
        const expiresAt = new Date(lease.expiresAt).toISOString();
        if (parsed.data.ms <= 1) {
          // A claim (the worker SDK's check before it runs a job): max(expiry, now + 1 ms) is the
          // expiry the lease already had (a lease at its last ms is refused), so nothing new to record.
          msg.respond(JSON.stringify({ ok: true, expiresAt }));
          return;
        }
        const event: LeaseExtended = { jobId: lease.jobId, type: lease.jobType, tenant: lease.tenant, attempt: lease.attempt, leaseId: lease.id, expiresAt };
        try {
          await publishJson(js, names.subjects.extension(lease.jobType), event, messageIds.extended(lease.jobId, lease.attempt, lease.expiresAt), { timeoutMs: PUBLISH_TIMEOUT_MS });
        } catch {
          msg.respond(JSON.stringify({ ok: false, reason: 'not_recorded' }));
          return;
        }
        msg.respond(JSON.stringify({ ok: true, expiresAt }));
      })();
    },
  });
}
