import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsNames } from '@janus/messaging';
import type { Limiter, UnclaimedLease } from '@janus/limiter';

export interface WaitingDeps {
  readonly limiter: Pick<Limiter, 'findUnclaimed' | 'waitAgain' | 'policy'>;
  readonly jsm: JetStreamManager;
  readonly names: NatsNames;
  /** Look this far ahead of expiry (default 2,000 ms: several reaper ticks). */
  readonly aheadMs?: number;
  readonly onWaiting?: (lease: UnclaimedLease) => void;
}

/**
 * CONTRACT §4: "A lease that expires before any worker took the job (the job never started) is not
 * a failed attempt: the job waits again and keeps its attempts."
 *
 * Shortly before a confirmed lease expires unclaimed (no worker claimed or extended it), ask
 * JetStream whether its message was ever delivered: the `workers-<type>` consumer delivers in
 * stream order, so a message whose sequence is above the consumer's last delivered sequence never
 * reached a worker. Such a job waits again: its lease is extended by the job type's timeout and it
 * keeps its slot and its attempt, and the message stays in the stream for the next worker. A
 * message that was delivered (a worker that does not claim leases took it, or one that crashed)
 * expires as a `timed_out` attempt as before. If JetStream cannot say, nothing changes (the lease
 * expires normally: conservative).
 */
export async function letUndeliveredWait(deps: WaitingDeps, max = 500): Promise<number> {
  const leases = await deps.limiter.findUnclaimed(deps.aheadMs ?? 2_000, max);
  if (leases.length === 0) return 0;
  const byType = new Map<string, UnclaimedLease[]>();
  for (const lease of leases) byType.set(lease.jobType, [...(byType.get(lease.jobType) ?? []), lease]);
  let waiting = 0;
  for (const [jobType, list] of byType) {
    const timeoutMs = deps.limiter.policy.jobType(jobType)?.timeoutMs;
    if (timeoutMs === undefined) continue;
    let delivered: number;
    try {
      delivered = (await deps.jsm.consumers.info(deps.names.streams.jobs, deps.names.consumers.workers(jobType))).delivered.stream_seq;
    } catch {
      continue;
    }
    for (const lease of list) {
      if (lease.seq <= delivered) continue;
      const result = await deps.limiter.waitAgain(lease.token, timeoutMs);
      if (result.ok) {
        waiting += 1;
        deps.onWaiting?.(lease);
      }
    }
  }
  return waiting;
}
