import { desc, sql } from 'drizzle-orm';
import { policyVersions, type Database } from '@janus/db';
import { EMPTY_POLICY, PolicyDocument, type VersionedPolicy } from '@janus/contracts';

/** A transaction of the policy database. */
export type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

/**
 * One writer at a time per namespace (the schema on the search_path names it): policy versions and
 * API key creation take this lock, so a key is never created for a tenant being deleted.
 */
export async function lockPolicy(tx: Tx): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('janus-policy-write:' || current_schema()))`);
}

/** The live policy: the highest stored version, or the empty version 0. */
export async function readCurrentPolicy(db: Database | Tx): Promise<VersionedPolicy> {
  const [row] = await db.select().from(policyVersions).orderBy(desc(policyVersions.version)).limit(1);
  if (!row) return { version: 0, document: EMPTY_POLICY };
  return { version: row.version, document: PolicyDocument.parse(row.document) };
}

/** The live version number (0 when none is stored). */
export async function readCurrentVersion(db: Database | Tx): Promise<number> {
  const [row] = await db.select({ version: sql<number>`coalesce(max(${policyVersions.version}), 0)::int` }).from(policyVersions);
  return row?.version ?? 0;
}
