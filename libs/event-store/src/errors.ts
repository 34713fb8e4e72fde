/** The PostgreSQL error under Drizzle's `DrizzleQueryError` wrapper (its message holds every parameter). */
export function rootDbError(error: unknown): unknown {
  let current = error;
  for (let i = 0; i < 5; i++) {
    const code = (current as { code?: unknown } | null)?.code;
    if (typeof code === 'string') return current;
    const cause = (current as { cause?: unknown } | null)?.cause;
    if (cause === undefined || cause === null) return current;
    current = cause;
  }
  return current;
}

/** SQLSTATE of a PostgreSQL error, or the Node error code (ECONNREFUSED...), if any. */
export function dbErrorCode(error: unknown): string | undefined {
  const code = (rootDbError(error) as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * True for errors that say "these rows can never be stored": data exceptions (class 22),
 * integrity violations (23) and program limits such as an oversized index entry (54). Everything
 * else — lost connections, pool timeouts, deadlocks, serialization failures, shutdowns, a schema
 * not migrated yet, and anything unknown — is transient: the batch is retried, never dropped.
 */
export function isPermanentDbError(error: unknown): boolean {
  const code = dbErrorCode(error);
  if (code === undefined || !/^[0-9A-Z]{5}$/.test(code)) return false;
  return code.startsWith('22') || code.startsWith('23') || code.startsWith('54');
}

/** A short description for logs and `rejected_messages` (never the query's parameters). */
export function describeDbError(error: unknown): string {
  const root = rootDbError(error) as { code?: unknown; message?: unknown } | null;
  const message = typeof root?.message === 'string' ? root.message.split('\n')[0] : String(root);
  return typeof root?.code === 'string' ? `${root.code}: ${message}` : (message ?? 'unknown error');
}
