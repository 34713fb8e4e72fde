import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import type { Settings } from '@janus/config';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../migrations', import.meta.url));

/** Creates the database named in the URL if it does not exist (connecting to `postgres` to do so). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount !== 0) return false;
    try {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    } catch (error) {
      // Another process created it between our check and our CREATE.
      if ((error as { code?: string }).code !== '42P04' && (error as { code?: string }).code !== '23505') throw error;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

/**
 * Applies the committed drizzle-kit migrations to the namespace's schema. Safe to run from many
 * processes at once: a session advisory lock keyed on the namespace serialises them, and the
 * drizzle journal table (in the same schema) makes a second run a no-op.
 */
export async function migrate(settings: Pick<Settings, 'databaseUrl' | 'namespace'>): Promise<void> {
  await ensureDatabase(settings.databaseUrl);
  const client = new pg.Client({ connectionString: settings.databaseUrl, application_name: 'janus-migrate' });
  await client.connect();
  const ns = settings.namespace;
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`janus-migrate:${ns}`]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${ns}"`);
      await client.query(`SET search_path TO "${ns}"`);
      await drizzleMigrate(drizzle(client), {
        migrationsFolder: MIGRATIONS_FOLDER,
        migrationsSchema: ns,
        migrationsTable: '__drizzle_migrations',
      });
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`janus-migrate:${ns}`]);
    }
  } finally {
    await client.end();
  }
}
