import type { JetStreamManager } from '@nats-io/jetstream';
import { sql } from 'drizzle-orm';
import type { Database } from '@janus/db';
import type { NatsNames } from '@janus/messaging';
import type { Limiter } from '@janus/limiter';

export type LimiterOpening =
  | { readonly open: true; readonly how: 'trusted' | 'no_live_leases' }
  | { readonly open: false; readonly recoveringUntil: number; readonly why: string };

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Opens admission at start. Redis keeps nothing on disk here: if it restarted, every lease and
 * concurrency slot is gone, and reopening at once would let new jobs run beside leased jobs that
 * are still running. The limiter then closes admission for the longest job timeout. That wait is
 * skipped only on evidence that no lease can be live:
 *
 * 1. the persister has stored every admitted attempt (its consumer on the jobs stream has nothing
 *    pending or unacknowledged — or the stream has never held a message), and
 * 2. PostgreSQL shows no attempt without an outcome whose lease has not yet expired.
 *
 * A first deployment passes both, so `npm start` on a fresh machine admits at once; a Redis restart
 * under load does not, and admission stays closed until the old leases have run out.
 */
export async function openLimiter(deps: {
  limiter: Limiter;
  db: Database;
  jsm: JetStreamManager;
  names: NatsNames;
  logger?: Log;
}): Promise<LimiterOpening> {
  const first = await deps.limiter.init();
  if (first.open) return { open: true, how: 'trusted' };

  const caughtUp = await persisterCaughtUp(deps.jsm, deps.names);
  if (!caughtUp.ok) {
    deps.logger?.warn({ why: caughtUp.why, until: new Date(first.recoveringUntil).toISOString() }, 'limiter state lost: admission closed while old leases expire');
    return { open: false, recoveringUntil: first.recoveringUntil, why: caughtUp.why };
  }
  const live = await deps.db.execute<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM attempts WHERE outcome IS NULL AND lease_expires_at > now()`,
  );
  const n = live.rows[0]?.n ?? 0;
  if (n > 0) {
    const why = `${n} attempt(s) in PostgreSQL still hold unexpired leases`;
    deps.logger?.warn({ why, until: new Date(first.recoveringUntil).toISOString() }, 'limiter state lost: admission closed while old leases expire');
    return { open: false, recoveringUntil: first.recoveringUntil, why };
  }
  const fresh = await deps.limiter.init({ fresh: true });
  if (!fresh.open) return { open: false, recoveringUntil: fresh.recoveringUntil, why: 'limiter refused a fresh start' };
  deps.logger?.info({}, 'limiter state initialised: no live leases recorded anywhere');
  return { open: true, how: 'no_live_leases' };
}

async function persisterCaughtUp(jsm: JetStreamManager, names: NatsNames): Promise<{ ok: true } | { ok: false; why: string }> {
  const stream = await jsm.streams.info(names.streams.jobs);
  if (stream.state.messages === 0 && stream.state.last_seq === 0) return { ok: true };
  try {
    const consumer = await jsm.consumers.info(names.streams.jobs, names.consumers.persisterJobs);
    if (consumer.num_pending === 0 && consumer.num_ack_pending === 0) return { ok: true };
    return { ok: false, why: `the persister has ${consumer.num_pending + consumer.num_ack_pending} admitted attempt(s) not yet stored` };
  } catch {
    return { ok: false, why: 'jobs were admitted but no persister has stored them' };
  }
}
