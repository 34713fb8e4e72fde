import pg from 'pg';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { Settings } from '@janus/config';
import * as schema from './schema/index.js';

export type Database = NodePgDatabase<typeof schema>;

export interface DbHandle {
  readonly pool: pg.Pool;
  readonly db: Database;
  /** A cheap round trip, bounded in time: what readiness asks. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * A pool whose every connection works inside the namespace's schema (`search_path`), so the same
 * unqualified tables and migrations serve every namespace.
 */
export function createDb(
  settings: Pick<Settings, 'databaseUrl' | 'namespace'>,
  opts: { max?: number; applicationName?: string } = {},
): DbHandle {
  const pool = new pg.Pool({
    // The whole URL: its sslmode, sslrootcert, sslcert and sslkey configure TLS (docs/operations.md#tls).
    connectionString: settings.databaseUrl,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'janus',
    options: `-c search_path="${settings.namespace}"`,
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener that kills
  // the process. Readiness reports the outage instead.
  pool.on('error', () => {});
  // A client checked out of the pool (a transaction) has no pool listener: if its server goes away
  // mid-query, its 'error' event would kill the process. The query itself still rejects, and the
  // pool drops the dead client on release.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const db = drizzle(pool, { schema });
  return {
    pool,
    db,
    async ping() {
      try {
        await pool.query({ text: 'SELECT 1', query_timeout: 800 } as pg.QueryConfig);
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await pool.end();
    },
  };
}
