import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'retry-scheduler',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/retry-scheduler.json' }]],
  },
});
