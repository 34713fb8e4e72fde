import { defineConfig } from 'vitest/config';

// Not `vitest.config.ts`: these tests need the local clusters (tools/scripts/cluster.mjs) and run
// with `npm run test:cluster`, not with `npm test` (docs/scaling.md says why and what they prove).
export default defineConfig({
  test: {
    name: 'cluster-tests',
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One file at a time: every file kills and restarts nodes of the same clusters.
    fileParallelism: false,
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/cluster-tests.json' }]],
  },
});
