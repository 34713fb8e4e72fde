import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { dropPgNamespace, testEnv, testNamespace } from '@janus/testing';
import { createDb } from './client.js';
import { migrate, MIGRATIONS_FOLDER } from './migrate.js';
import { jobs } from './schema/index.js';

const ns = testNamespace('db');
const settings = loadSettings(testEnv(ns));

afterAll(async () => {
  await dropPgNamespace(settings.databaseUrl, ns);
});

describe('migrate', () => {
  it('is safe to run from several processes at once and creates the tables in the namespace schema', async () => {
    await Promise.all(Array.from({ length: 5 }, () => migrate(settings)));
    await migrate(settings);
    const handle = createDb(settings);
    try {
      const tables = await handle.pool.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [ns],
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining(['admin_tokens', 'api_keys', 'attempts', 'audit_log', 'budget_ledger', 'dead_letters', 'jobs', 'policy_versions', 'rejected_messages']),
      );
      const applied = await handle.pool.query(`SELECT count(*)::int AS n FROM "${ns}".__drizzle_migrations`);
      const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
      expect(applied.rows[0]).toEqual({ n: journal.entries.length });

      const now = new Date();
      await handle.db.insert(jobs).values({ jobId: 'j1', tenant: 't', type: 'x', priority: 'normal', status: 'admitted', createdAt: now, updatedAt: now });
      const rows = await handle.db.select().from(jobs);
      expect(rows.map((r) => r.jobId)).toEqual(['j1']);
      expect(await handle.ping()).toBe(true);
    } finally {
      await handle.close();
    }
  });
});

describe('migration 0015 (the room prefix of a payload dedupe key)', () => {
  it("rewrites a waiting job's `§dedupe:` key to the control-character prefix and leaves producer keys alone", async () => {
    await migrate(settings);
    const handle = createDb(settings);
    try {
      const insert = (jobId: string, key: string) =>
        handle.pool.query(
          `INSERT INTO "${ns}".waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at, idempotency_key)
           VALUES ($1, 1, 't', 'x', 1, 'normal', now(), now(), now(), now(), 'queued', now(), $2)`,
          [jobId, key],
        );
      await insert('w1', '\u00a7dedupe:abc');
      await insert('w2', 'producer-\u00a7dedupe:abc');
      // 0015 once more, as on a database written before it
      await handle.pool.query(`DELETE FROM "${ns}".__drizzle_migrations WHERE id = (SELECT max(id) FROM "${ns}".__drizzle_migrations)`);
      await migrate(settings);
      const rows = await handle.pool.query<{ job_id: string; idempotency_key: string }>(`SELECT job_id, idempotency_key FROM "${ns}".waiting_jobs ORDER BY job_id`);
      expect(rows.rows).toEqual([
        { job_id: 'w1', idempotency_key: '\u0001dedupe:abc' },
        { job_id: 'w2', idempotency_key: 'producer-\u00a7dedupe:abc' },
      ]);
    } finally {
      await handle.close();
    }
  });
});
