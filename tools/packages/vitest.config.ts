import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'packages',
    include: ['test/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/packages.json' }]],
  },
});
