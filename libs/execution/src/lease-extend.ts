import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { parseMessage, type NatsNames } from '@janus/messaging';
import type { Limiter } from '@janus/limiter';

const ExtendRequest = z.object({ leaseToken: z.string().min(1), ms: z.number().int().min(1).max(24 * 60 * 60 * 1000) });

/**
 * Answers workers' lease extensions on `<ns>.leases.extend` (core NATS request/reply, one queue
 * group across scheduler instances): `{ ok: true, expiresAt }` or `{ ok: false, reason }`.
 */
export function serveLeaseExtensions(nc: NatsConnection, names: NatsNames, limiter: Limiter): Subscription {
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
        try {
          const result = await limiter.extend(parsed.data.leaseToken, parsed.data.ms);
          msg.respond(
            JSON.stringify(result.ok ? { ok: true, expiresAt: new Date(result.lease.expiresAt).toISOString() } : { ok: false, reason: result.reason }),
          );
        } catch {
          msg.respond(JSON.stringify({ ok: false, reason: 'store_unavailable' }));
        }
      })();
    },
  });
}
