import { randomBytes } from 'node:crypto';
import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { adminTokens, auditLog, type Database } from '@janus/db';
import { hashApiKey } from './api-keys.js';
import { readCurrentVersion } from './versions.js';

/** Names of admin tokens: they appear in the audit log as `token:<name>`. */
export const ADMIN_TOKEN_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

/** The name of JANUS_ADMIN_TOKEN (the bootstrap token): reserved, never stored, not revocable over the API. */
export const ENV_ADMIN_TOKEN_NAME = 'env';

/** The audit log's actor for a request made with the admin token named `name`. */
export const adminActor = (name: string) => `token:${name}`;

/** Named admin tokens look like `jadm_<43 characters>` (256 random bits); only their SHA-256 is stored. */
export function generateAdminToken(): { tokenId: string; token: string; tokenHash: string } {
  const token = `jadm_${randomBytes(32).toString('base64url')}`;
  return { tokenId: randomBytes(8).toString('hex'), token, tokenHash: hashApiKey(token) };
}

export interface AdminTokenRow {
  readonly tokenId: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly revokedBy: string | null;
}

/** An active named token as the cache holds it (never the token). */
export interface AdminTokenOwner {
  readonly tokenId: string;
  readonly name: string;
}

/**
 * Named admin tokens in PostgreSQL (only their hashes). Like API keys they are not policy versions:
 * creating or revoking one stores no new version, but is audited against the live one.
 */
export class AdminTokenStore {
  constructor(private readonly db: Database) {}

  /** Active (not revoked) tokens: hash → owner. */
  async activeTokens(): Promise<Map<string, AdminTokenOwner>> {
    const rows = await this.db
      .select({ tokenId: adminTokens.tokenId, name: adminTokens.name, tokenHash: adminTokens.tokenHash })
      .from(adminTokens)
      .where(isNull(adminTokens.revokedAt));
    return new Map(rows.map((r) => [r.tokenHash, { tokenId: r.tokenId, name: r.name }]));
  }

  /**
   * Creates a token named `name` (which must match ADMIN_TOKEN_NAME and not be `env`); the token is
   * returned once and only its hash is stored. `exists` when an active token has that name.
   */
  async create(
    name: string,
    opts: { actor: string },
  ): Promise<{ ok: true; tokenId: string; token: string; createdAt: Date } | { ok: false; reason: 'exists' }> {
    if (!ADMIN_TOKEN_NAME.test(name) || name === ENV_ADMIN_TOKEN_NAME) throw new Error(`not a name for an admin token: ${JSON.stringify(name)}`);
    return this.db.transaction(async (tx) => {
      const { tokenId, token, tokenHash } = generateAdminToken();
      // The partial unique index on active names turns a duplicate into "nothing inserted".
      const [row] = await tx
        .insert(adminTokens)
        .values({ tokenId, name, tokenHash, createdBy: opts.actor })
        .onConflictDoNothing()
        .returning({ createdAt: adminTokens.createdAt });
      if (!row) return { ok: false as const, reason: 'exists' as const };
      const version = await readCurrentVersion(tx);
      await tx.insert(auditLog).values({
        actor: opts.actor,
        action: 'admin-token.create',
        target: `admin/tokens/${name}`,
        fromVersion: version,
        toVersion: version,
        diff: [{ op: 'add', path: `adminTokens.${name}`, after: { tokenId } }],
      });
      return { ok: true as const, tokenId, token, createdAt: row.createdAt };
    });
  }

  /** Revokes the active token named `name`: `not_found` when there is none (never created, or already revoked). */
  async revoke(name: string, opts: { actor: string }): Promise<'revoked' | 'not_found'> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .update(adminTokens)
        .set({ revokedAt: sql`now()`, revokedBy: opts.actor })
        .where(and(eq(adminTokens.name, name), isNull(adminTokens.revokedAt)))
        .returning({ tokenId: adminTokens.tokenId });
      if (!row) return 'not_found' as const;
      const version = await readCurrentVersion(tx);
      await tx.insert(auditLog).values({
        actor: opts.actor,
        action: 'admin-token.revoke',
        target: `admin/tokens/${name}`,
        fromVersion: version,
        toVersion: version,
        diff: [{ op: 'remove', path: `adminTokens.${name}`, before: { tokenId: row.tokenId } }],
      });
      return 'revoked' as const;
    });
  }

  /** The tokens (never the tokens themselves), oldest first; revoked ones only when asked. */
  async list(opts: { includeRevoked?: boolean } = {}): Promise<AdminTokenRow[]> {
    const q = this.db
      .select({
        tokenId: adminTokens.tokenId,
        name: adminTokens.name,
        createdAt: adminTokens.createdAt,
        createdBy: adminTokens.createdBy,
        lastUsedAt: adminTokens.lastUsedAt,
        revokedAt: adminTokens.revokedAt,
        revokedBy: adminTokens.revokedBy,
      })
      .from(adminTokens);
    return (opts.includeRevoked ? q : q.where(isNull(adminTokens.revokedAt))).orderBy(asc(adminTokens.createdAt), asc(adminTokens.tokenId));
  }

  /** Records that these tokens were just used (`lastUsedAt`). */
  async touch(tokenIds: readonly string[]): Promise<void> {
    if (tokenIds.length === 0) return;
    await this.db
      .update(adminTokens)
      .set({ lastUsedAt: sql`now()` })
      .where(inArray(adminTokens.tokenId, [...tokenIds]));
  }
}

/**
 * Active named admin tokens (hash → owner) held in memory by policy-admin: refresh it on every
 * config event and watcher poll, so that a revoked token stops working on every instance as soon as
 * its revocation is announced. Only hashes are held. A refresh that started before another one
 * never replaces that one's (newer) result.
 */
export class AdminTokenCache {
  private tokens = new Map<string, AdminTokenOwner>();
  private loadedOnce = false;
  private started = 0;
  private applied = 0;

  constructor(private readonly store: { activeTokens(): Promise<Map<string, AdminTokenOwner>> }) {}

  /** True after the first successful refresh. */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  get size(): number {
    return this.tokens.size;
  }

  async refresh(): Promise<void> {
    const mine = ++this.started;
    const tokens = await this.store.activeTokens();
    if (mine < this.applied) return;
    this.applied = mine;
    this.tokens = tokens;
    this.loadedOnce = true;
  }

  lookup(bearerToken: string): AdminTokenOwner | undefined {
    return this.tokens.get(hashApiKey(bearerToken));
  }
}
