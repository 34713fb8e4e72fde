import { sql } from 'drizzle-orm';
import { bigserial, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * Tables are declared without a PostgreSQL schema: every connection sets `search_path` to the
 * namespace's schema, so one set of migrations serves every namespace (CONTRACT §1).
 */

/** Every policy version ever stored; the highest version is the live policy. */
export const policyVersions = pgTable('policy_versions', {
  version: integer('version').primaryKey(),
  document: jsonb('document').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  createdBy: text('created_by').notNull(),
});

/** Who changed what, when, from which version to which. Append-only. */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    target: text('target'),
    fromVersion: integer('from_version'),
    toVersion: integer('to_version'),
    diff: jsonb('diff'),
  },
  (t) => [index('audit_log_at_idx').on(t.at)],
);

/** Tenant API keys, stored only as a SHA-256 hash; revocation is a timestamp, never a delete. */
export const apiKeys = pgTable(
  'api_keys',
  {
    keyId: text('key_id').primaryKey(),
    tenant: text('tenant').notNull(),
    keyHash: text('key_hash').notNull().unique(),
    label: text('label'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('api_keys_tenant_idx').on(t.tenant)],
);

/**
 * Named admin tokens (besides JANUS_ADMIN_TOKEN), stored only as a SHA-256 hash; revocation is a
 * timestamp, never a delete. A name belongs to at most one active token (a revoked token's name may
 * be given to a new one); the audit log names the token (`token:<name>`) that made each change.
 */
export const adminTokens = pgTable(
  'admin_tokens',
  {
    tokenId: text('token_id').primaryKey(),
    name: text('name').notNull(),
    tokenHash: text('token_hash').notNull().unique(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    createdBy: text('created_by').notNull(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
    revokedBy: text('revoked_by'),
  },
  (t) => [uniqueIndex('admin_tokens_active_name_idx').on(t.name).where(sql`revoked_at IS NULL`)],
);
