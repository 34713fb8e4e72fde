import { and, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import { apiKeys, auditLog, policyVersions, type Database } from '@janus/db';
import { EMPTY_POLICY, PolicyDocument, type VersionedPolicy } from '@janus/contracts';
import { generateApiKey } from './api-keys.js';
import { diffPolicies, samePolicy, type PolicyChange } from './diff.js';

export interface AuditInput {
  /** Who: a fingerprint of the admin token, never the token. */
  readonly actor: string;
  readonly action: string;
  readonly target?: string;
  /** Defaults to the resource-level diff between the old and the new document. */
  readonly diff?: unknown;
}

export type SaveResult =
  | { readonly ok: true; readonly policy: VersionedPolicy; readonly previousVersion: number; readonly changed: boolean; readonly diff: PolicyChange[] }
  | { readonly ok: false; readonly reason: 'version_conflict'; readonly currentVersion: number };

/** What a plan decided: the next document (with its audit entry), or a typed refusal passed back untouched. */
export type Plan<R> = { readonly ok: true; readonly document: PolicyDocument; readonly audit: AuditInput } | { readonly ok: false; readonly refusal: R };

export type ApplyResult<R> = SaveResult | { readonly ok: false; readonly reason: 'refused'; readonly refusal: R; readonly currentVersion: number };

export type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

export interface ApiKeyRow {
  readonly keyId: string;
  readonly tenant: string;
  readonly label: string | null;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

export interface AuditRow {
  readonly id: number;
  readonly at: Date;
  readonly actor: string;
  readonly action: string;
  readonly target: string | null;
  readonly fromVersion: number | null;
  readonly toVersion: number | null;
  readonly diff: unknown;
}

/** Policy versions in PostgreSQL. The highest version is the live policy; version 0 means none stored. */
export class PolicyStore {
  constructor(private readonly db: Database) {}

  async current(): Promise<VersionedPolicy> {
    return readCurrent(this.db);
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

  /** Stored versions, newest first (without their documents). */
  async versions(limit = 20): Promise<{ version: number; createdAt: Date; createdBy: string }[]> {
    return this.db
      .select({ version: policyVersions.version, createdAt: policyVersions.createdAt, createdBy: policyVersions.createdBy })
      .from(policyVersions)
      .orderBy(desc(policyVersions.version))
      .limit(limit);
  }

  /**
   * Stores `build(current)` as the next version, with its audit entry, in one transaction.
   * `build` may throw to abort; nothing is written then. See `apply` for typed refusals.
   */
  async update(
    build: (current: VersionedPolicy) => PolicyDocument,
    audit: AuditInput,
    opts: { expectedVersion?: number; within?: (tx: Tx, version: number) => Promise<void> } = {},
  ): Promise<SaveResult> {
    const result = await this.apply<never>((current) => ({ ok: true, document: build(current), audit }), opts);
    if (result.ok || result.reason === 'version_conflict') return result;
    throw new Error('unreachable: update() plans never refuse');
  }

  /**
   * The one write path. Under a transaction-scoped advisory lock (per namespace) it reads the live
   * version, checks `expectedVersion` (If-Match), asks `plan` for the next document and stores it
   * as version + 1 with its audit entry, so versions strictly increase and no update is lost.
   * A plan that changes nothing stores nothing (`changed: false`). `within` runs in the same
   * transaction after the write (e.g. revoking a deleted tenant's keys).
   */
  async apply<R>(
    plan: (current: VersionedPolicy) => Plan<R>,
    opts: { expectedVersion?: number; within?: (tx: Tx, version: number) => Promise<void> } = {},
  ): Promise<ApplyResult<R>> {
    return this.db.transaction(async (tx) => {
      await lockPolicy(tx);
      const current = await readCurrent(tx);
      if (opts.expectedVersion !== undefined && opts.expectedVersion !== current.version) {
        return { ok: false as const, reason: 'version_conflict' as const, currentVersion: current.version };
      }
      const planned = plan(current);
      if (!planned.ok) return { ok: false as const, reason: 'refused' as const, refusal: planned.refusal, currentVersion: current.version };
      const document = PolicyDocument.parse(planned.document);
      if (samePolicy(current.document, document)) {
        return { ok: true as const, policy: current, previousVersion: current.version, changed: false, diff: [] };
      }
      const diff = diffPolicies(current.document, document);
      const version = current.version + 1;
      await tx.insert(policyVersions).values({ version, document, createdBy: planned.audit.actor });
      await tx.insert(auditLog).values({
        actor: planned.audit.actor,
        action: planned.audit.action,
        target: planned.audit.target ?? null,
        fromVersion: current.version,
        toVersion: version,
        diff: planned.audit.diff ?? diff,
      });
      await opts.within?.(tx, version);
      return { ok: true as const, policy: { version, document }, previousVersion: current.version, changed: true, diff };
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

  /**
   * Creates an API key for a tenant of the live policy; the key is returned once and only its hash
   * is stored. Serialised with policy writes, so a key is never created for a tenant being deleted.
   */
  async createKey(
    tenant: string,
    opts: { actor: string; label?: string },
  ): Promise<{ ok: true; keyId: string; key: string; createdAt: Date; version: number } | { ok: false; reason: 'unknown_tenant' }> {
    return this.db.transaction(async (tx) => {
      await lockPolicy(tx);
      const current = await readCurrent(tx);
      if (!Object.hasOwn(current.document.tenants, tenant)) return { ok: false as const, reason: 'unknown_tenant' as const };
      const { keyId, key, keyHash } = generateApiKey();
      const [row] = await tx
        .insert(apiKeys)
        .values({ keyId, tenant, keyHash, label: opts.label ?? null })
        .returning({ createdAt: apiKeys.createdAt });
      await tx.insert(auditLog).values({
        actor: opts.actor,
        action: 'key.create',
        target: `tenants/${tenant}/keys/${keyId}`,
        fromVersion: current.version,
        toVersion: current.version,
        diff: [{ op: 'add', path: `tenants.${tenant}.keys.${keyId}`, after: { label: opts.label ?? null } }],
      });
      return { ok: true as const, keyId, key, createdAt: row?.createdAt ?? new Date(), version: current.version };
    });
  }

  /** Revokes a key (idempotent: revoking a revoked key says `already_revoked`). */
  async revokeKey(tenant: string, keyId: string, opts: { actor: string }): Promise<'revoked' | 'already_revoked' | 'not_found'> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .select({ revokedAt: apiKeys.revokedAt })
        .from(apiKeys)
        .where(and(eq(apiKeys.keyId, keyId), eq(apiKeys.tenant, tenant)))
        .for('update');
      if (!row) return 'not_found' as const;
      if (row.revokedAt) return 'already_revoked' as const;
      await tx.update(apiKeys).set({ revokedAt: sql`now()` }).where(eq(apiKeys.keyId, keyId));
      const version = await versionIn(tx);
      await tx.insert(auditLog).values({
        actor: opts.actor,
        action: 'key.revoke',
        target: `tenants/${tenant}/keys/${keyId}`,
        fromVersion: version,
        toVersion: version,
        diff: [{ op: 'remove', path: `tenants.${tenant}.keys.${keyId}` }],
      });
      return 'revoked' as const;
    });
  }

  /** Revokes every active key of a tenant (inside a policy write that deletes the tenant). */
  static async revokeTenantKeys(tx: Tx, tenant: string): Promise<number> {
    const rows = await tx
      .update(apiKeys)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(apiKeys.tenant, tenant), isNull(apiKeys.revokedAt)))
      .returning({ keyId: apiKeys.keyId });
    return rows.length;
  }

  async listKeys(tenant: string): Promise<ApiKeyRow[]> {
    return this.db
      .select({ keyId: apiKeys.keyId, tenant: apiKeys.tenant, label: apiKeys.label, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt })
      .from(apiKeys)
      .where(eq(apiKeys.tenant, tenant))
      .orderBy(apiKeys.createdAt, apiKeys.keyId);
  }

  /** Audit entries, newest first; `before` pages by id. */
  async audit(opts: { limit?: number; before?: number } = {}): Promise<AuditRow[]> {
    const q = this.db.select().from(auditLog);
    const filtered = opts.before !== undefined ? q.where(lt(auditLog.id, opts.before)) : q;
    return filtered.orderBy(desc(auditLog.id)).limit(opts.limit ?? 50);
  }
}

/** One writer at a time per namespace (the schema on the search_path names it). */
async function lockPolicy(tx: Tx): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('janus-policy-write:' || current_schema()))`);
}

async function readCurrent(db: Database | Tx): Promise<VersionedPolicy> {
  const [row] = await db.select().from(policyVersions).orderBy(desc(policyVersions.version)).limit(1);
  if (!row) return { version: 0, document: EMPTY_POLICY };
  return { version: row.version, document: PolicyDocument.parse(row.document) };
}

async function versionIn(tx: Tx): Promise<number> {
  const [row] = await tx.select({ version: sql<number>`coalesce(max(${policyVersions.version}), 0)::int` }).from(policyVersions);
  return row?.version ?? 0;
}
