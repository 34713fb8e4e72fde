import { desc, eq, isNull, sql } from 'drizzle-orm';
import { apiKeys, auditLog, policyVersions, type Database } from '@janus/db';
import { EMPTY_POLICY, PolicyDocument, type VersionedPolicy } from '@janus/contracts';

export interface AuditInput {
  readonly actor: string;
  readonly action: string;
  readonly target?: string;
  readonly diff?: unknown;
}

export type SaveResult =
  | { readonly ok: true; readonly policy: VersionedPolicy; readonly previousVersion: number }
  | { readonly ok: false; readonly reason: 'version_conflict'; readonly currentVersion: number };

/** Policy versions in PostgreSQL. The highest version is the live policy; version 0 means none stored. */
export class PolicyStore {
  constructor(private readonly db: Database) {}

  async current(): Promise<VersionedPolicy> {
    const [row] = await this.db.select().from(policyVersions).orderBy(desc(policyVersions.version)).limit(1);
    if (!row) return { version: 0, document: EMPTY_POLICY };
    return { version: row.version, document: PolicyDocument.parse(row.document) };
  }

  async currentVersion(): Promise<number> {
    const [row] = await this.db
      .select({ version: sql<number>`coalesce(max(${policyVersions.version}), 0)::int` })
      .from(policyVersions);
    return row?.version ?? 0;
  }

  async get(version: number): Promise<VersionedPolicy | undefined> {
    const [row] = await this.db.select().from(policyVersions).where(eq(policyVersions.version, version));
    return row ? { version: row.version, document: PolicyDocument.parse(row.document) } : undefined;
  }

  /**
   * Stores `build(current)` as the next version, with its audit entry, in one transaction.
   * A transaction-scoped advisory lock serialises writers, so versions strictly increase and no
   * update is lost; `expectedVersion` (If-Match) turns a moved-on policy into `version_conflict`.
   * `build` may throw to abort (e.g. validation); nothing is written then.
   */
  async update(
    build: (current: VersionedPolicy) => PolicyDocument,
    audit: AuditInput,
    opts: { expectedVersion?: number } = {},
  ): Promise<SaveResult> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('janus-policy-write'))`);
      const [row] = await tx.select().from(policyVersions).orderBy(desc(policyVersions.version)).limit(1);
      const current: VersionedPolicy = row
        ? { version: row.version, document: PolicyDocument.parse(row.document) }
        : { version: 0, document: EMPTY_POLICY };
      if (opts.expectedVersion !== undefined && opts.expectedVersion !== current.version) {
        return { ok: false as const, reason: 'version_conflict' as const, currentVersion: current.version };
      }
      const document = PolicyDocument.parse(build(current));
      const version = current.version + 1;
      await tx.insert(policyVersions).values({ version, document, createdBy: audit.actor });
      await tx.insert(auditLog).values({
        actor: audit.actor,
        action: audit.action,
        target: audit.target ?? null,
        fromVersion: current.version,
        toVersion: version,
        diff: audit.diff ?? null,
      });
      return { ok: true as const, policy: { version, document }, previousVersion: current.version };
    });
  }

  /** Active (not revoked) API keys: hash → tenant. */
  async activeKeys(): Promise<Map<string, { keyId: string; tenant: string }>> {
    const rows = await this.db
      .select({ keyId: apiKeys.keyId, tenant: apiKeys.tenant, keyHash: apiKeys.keyHash })
      .from(apiKeys)
      .where(isNull(apiKeys.revokedAt));
    return new Map(rows.map((r) => [r.keyHash, { keyId: r.keyId, tenant: r.tenant }]));
  }
}
