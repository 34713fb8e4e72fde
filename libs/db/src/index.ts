export * from './schema/index.js';
export { createDb, type Database, type DbHandle } from './client.js';
export { ensureDatabase, migrate, MIGRATIONS_FOLDER } from './migrate.js';
