import { sql } from 'drizzle-orm';
import type { Database } from '@janus/db';

/** A tenant's credits as PostgreSQL's ledger has them (CONTRACT §2 Tenant "Credits", docs/credits.md). */
export interface LedgerCredits {
  /** Σ topup − Σ settle + Σ overrun. */
  readonly balance: number;
  /** Σ reserve of leases with neither a settle nor a release entry. */
  readonly reserved: number;
  /** Entries stored for the tenant. */
  readonly entries: number;
}

/** One tenant's credits sums from `credit_ledger`. */
export async function ledgerCredits(db: Database, tenant: string): Promise<LedgerCredits> {
  const result = await db.execute<{ balance: string | null; reserved: string | null; entries: number }>(sql`
    SELECT
      (SELECT COALESCE(sum(CASE kind WHEN 'topup' THEN amount WHEN 'settle' THEN -amount WHEN 'overrun' THEN amount ELSE 0 END), 0)
         FROM credit_ledger WHERE tenant = ${tenant})::text AS "balance",
      (SELECT COALESCE(sum(r.amount), 0) FROM credit_ledger r
         WHERE r.tenant = ${tenant} AND r.kind = 'reserve'
           AND NOT EXISTS (SELECT 1 FROM credit_ledger x WHERE x.lease_id = r.lease_id AND x.kind IN ('settle', 'release')))::text AS "reserved",
      (SELECT count(*) FROM credit_ledger WHERE tenant = ${tenant})::int AS "entries"`);
  const row = result.rows[0];
  return { balance: Number(row?.balance ?? 0), reserved: Number(row?.reserved ?? 0), entries: Number(row?.entries ?? 0) };
}

/** What Redis holds for a tenant's credits, read in one step with the outbox length. */
export interface LiveCredits {
  readonly account: boolean;
  readonly balance: number;
  readonly reserved: number;
  /** Outbox entries not yet published (of every tenant). */
  readonly outbox: number;
}

export interface CreditsReconciliation {
  /** Redis and PostgreSQL agree (balance and reserved), with the outbox empty. */
  readonly ok: boolean;
  readonly tenant: string;
  readonly redis: { readonly account: boolean; readonly balance: number; readonly reserved: number };
  readonly ledger: LedgerCredits;
  /** Outbox entries still waiting at the last look. */
  readonly outbox: number;
  /** How long it waited for the relay and the persister to catch up (ms). */
  readonly waitedMs: number;
}

/**
 * Compares a tenant's credits in Redis with PostgreSQL's ledger sums. Movements reach PostgreSQL
 * through the outbox, the relay and the persister, so it waits (up to `waitMs`, polling) until the
 * outbox is empty and the sums agree; after that it reports the difference. Meaningful when the
 * tenant is quiet: an admission or settle between the two reads shows as a transient difference
 * that the next poll resolves.
 */
export async function reconcileCredits(opts: {
  readonly db: Database;
  readonly tenant: string;
  readonly live: () => Promise<LiveCredits>;
  readonly waitMs?: number;
  readonly pollMs?: number;
}): Promise<CreditsReconciliation> {
  const started = Date.now();
  const deadline = started + (opts.waitMs ?? 10_000);
  for (;;) {
    const live = await opts.live();
    const ledger = await ledgerCredits(opts.db, opts.tenant);
    const ok = live.outbox === 0 && live.balance === ledger.balance && live.reserved === ledger.reserved;
    if (ok || Date.now() >= deadline) {
      return {
        ok,
        tenant: opts.tenant,
        redis: { account: live.account, balance: live.balance, reserved: live.reserved },
        ledger,
        outbox: live.outbox,
        waitedMs: Date.now() - started,
      };
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}
