import { desc, eq, lt } from 'drizzle-orm';
import { auditLog, policyVersions, type Database } from '@janus/db';
import { PolicyDocument, type VersionedPolicy } from '@janus/contracts';
import { diffPolicies, samePolicy, type PolicyChange } from './diff.js';
import { lockPolicy, readCurrentPolicy, readCurrentVersion, type Tx } from './versions.js';

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

/** Work inside a policy write's transaction, after the new version is stored: its number and what changed. */
export type Within = (tx: Tx, version: number, diff: readonly PolicyChange[]) => Promise<void>;

/** What a plan decided: the next document (with its audit entry), or a typed refusal passed back untouched. */
export type Plan<R> = { readonly ok: true; readonly document: PolicyDocument; readonly audit: AuditInput } | { readonly ok: false; readonly refusal: R };

export type ApplyResult<R> = SaveResult | { readonly ok: false; readonly reason: 'refused'; readonly refusal: R; readonly currentVersion: number };

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

/** Policy versions and their audit log in PostgreSQL (API keys: ApiKeyStore). The highest version is the live policy; version 0 means none stored. */
export class PolicyStore {
  constructor(private readonly db: Database) {}

  async current(): Promise<VersionedPolicy> {
    return readCurrentPolicy(this.db);
  }

  async currentVersion(): Promise<number> {
    return readCurrentVersion(this.db);
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
    opts: { expectedVersion?: number; within?: Within } = {},
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
   * transaction after the write, with the new version and the diff (e.g. revoking the keys of the
   * tenants the change removed); it runs only when something changed.
   */
  async apply<R>(
    plan: (current: VersionedPolicy) => Plan<R>,
    opts: { expectedVersion?: number; within?: Within } = {},
  ): Promise<ApplyResult<R>> {
    return this.db.transaction(async (tx) => {
      await lockPolicy(tx);
      const current = await readCurrentPolicy(tx);
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
      await opts.within?.(tx, version, diff);
      return { ok: true as const, policy: { version, document }, previousVersion: current.version, changed: true, diff };
    });
  }

  /** Audit entries, newest first; `before` pages by id. */
  async audit(opts: { limit?: number; before?: number } = {}): Promise<AuditRow[]> {
    const q = this.db.select().from(auditLog);
    const filtered = opts.before !== undefined ? q.where(lt(auditLog.id, opts.before)) : q;
    return filtered.orderBy(desc(auditLog.id)).limit(opts.limit ?? 50);
  }
}
