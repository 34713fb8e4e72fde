import { defineConfig } from 'drizzle-kit';

// Run from the repository root: `npm run db:generate`. Generated SQL is committed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './libs/db/src/schema/index.ts',
  out: './libs/db/migrations',
});
