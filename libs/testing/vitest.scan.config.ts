import { defineConfig } from 'vitest/config';

// The secret scan of a whole test run: `npm test` runs it after every project's tests, over the log
// lines they wrote to test-output/logs (JANUS_LOG_FILE). Not part of the `testing` project's own run.
export default defineConfig({
  test: {
    name: 'log-scan',
    include: ['scan/**/*.test.ts'],
    testTimeout: 60_000,
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/log-scan.json' }]],
  },
});
