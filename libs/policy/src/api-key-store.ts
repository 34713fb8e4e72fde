import { and, eq, isNull, sql } from 'drizzle-orm';
import { apiKeys, auditLog, type Database } from '@janus/db';
import { generateApiKey } from './api-keys.js';
import { lockPolicy, readCurrentPolicy, readCurrentVersion, type Tx } from './versions.js';

export interface ApiKeyRow {
  readonly keyId: string;
  readonly tenant: string;
  readonly label: string | null;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

/**
 * Tenants' API keys in PostgreSQL (only their hashes). Keys are not policy versions: creating or
 * revoking one stores no new version, but is audited against the live one.
 */
export class ApiKeyStore {
  constructor(private readonly db: Database) {}

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
      const current = await readCurrentPolicy(tx);
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
      const version = await readCurrentVersion(tx);
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

  /** Revokes every active key of a tenant (inside a policy write that removes the tenant: DELETE, or PUT /v1/policy without it). */
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
}
