import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { LeaseExtended } from '@janus/contracts';
import { messageIds, parseMessage, publishJson, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import type { Limiter } from '@janus/limiter';

const Ms = z.number().int().min(1).max(24 * 60 * 60 * 1000);
const ExtendRequest = z.object({ leaseToken: z.string().min(1), ms: Ms });
/** Most claims in one request (the worker SDK sends the claims of the jobs it was delivered at once). */
export const MAX_CLAIMS_PER_REQUEST = 1000;
/** Several leases at once, each answered as if asked alone (the worker SDK batches its claims: `ms` 1). */
const ExtendBatchRequest = z.object({ leaseTokens: z.array(z.string().min(1)).min(1).max(MAX_CLAIMS_PER_REQUEST), ms: Ms });
const Request = z.union([ExtendRequest, ExtendBatchRequest]);

/** The answer to one lease (alone, or as an element of a batch's `results`). */
export type ExtendAnswer = { readonly ok: true; readonly expiresAt: string } | { readonly ok: false; readonly reason: string };

/** How long the extension's JetStream publish may take: the worker waits 2 s for the whole answer. */
const PUBLISH_TIMEOUT_MS = 1_500;

/**
 * Answers workers' lease extensions on `<ns>.leases.extend` (core NATS request/reply, one queue
 * group across scheduler instances): `{ leaseToken, ms }` → `{ ok: true, expiresAt }` or
 * `{ ok: false, reason }`; `{ leaseTokens: [...], ms }` (up to 1,000: the worker SDK claims the jobs
 * it was delivered together in one request) → `{ results: [...] }`, one such answer per token, in order.
 *
 * A job's first claim after it waited unclaimed (CONTRACT §4: it waited again) gives it a whole
 * `timeoutMs` from the claim (an extension, recorded as below).
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
  async function answer(token: string, ms: number): Promise<ExtendAnswer> {
    let result;
    try {
      result = await limiter.extend(token, ms);
    } catch {
      return { ok: false, reason: 'store_unavailable' };
    }
    if (!result.ok) return { ok: false, reason: result.reason };
    const { lease } = result;
    if (lease.started) {
      onStarted?.(lease.jobType, Math.max(0, Date.now() - lease.admittedAt));
      // A job that waited for a worker (its lease was extended while no worker had its message,
      // src/waiting.ts: it now expires later than admission + timeoutMs) starts with a whole
      // timeoutMs from this claim, not with what is left of its last wait (as little as 2 s).
      const timeoutMs = limiter.policy.jobType(lease.jobType)?.timeoutMs;
      if (timeoutMs !== undefined && ms < timeoutMs && lease.expiresAt > lease.admittedAt + timeoutMs) return answer(token, timeoutMs);
    }
    const expiresAt = new Date(lease.expiresAt).toISOString();
    // A claim (the worker SDK's check before it runs a job): max(expiry, now + 1 ms) is the expiry
    // the lease already had (a lease at its last ms is refused), so nothing new to record.
    if (ms <= 1) return { ok: true, expiresAt };
    const event: LeaseExtended = { jobId: lease.jobId, type: lease.jobType, tenant: lease.tenant, attempt: lease.attempt, leaseId: lease.id, expiresAt };
    try {
      await publishJson(js, names.subjects.extension(lease.jobType), event, messageIds.extended(lease.jobId, lease.attempt, lease.expiresAt), { timeoutMs: PUBLISH_TIMEOUT_MS });
    } catch {
      return { ok: false, reason: 'not_recorded' };
    }
    return { ok: true, expiresAt };
  }

  return nc.subscribe(names.subjects.leaseExtend, {
    queue: 'scheduler',
    callback: (err, msg) => {
      if (err) return;
      void (async () => {
        const parsed = parseMessage(msg, Request);
        if (!parsed.success) {
          msg.respond(JSON.stringify({ ok: false, reason: 'malformed' }));
          return;
        }
        const request = parsed.data;
        if ('leaseToken' in request) {
          msg.respond(JSON.stringify(await answer(request.leaseToken, request.ms)));
          return;
        }
        // A batch: one answer per token, in order; the limiter pipelines their Redis calls.
        const results = await Promise.all(request.leaseTokens.map((token) => answer(token, request.ms)));
        msg.respond(JSON.stringify({ results }));
      })();
    },
  });
}
