import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'ingress',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two files at a time even on two cores (vitest's default is cores - 1): these files mostly wait
    // on timers and services, and this suite is CI's critical path (retry-scheduler alone: ~450 s with one, ~250 s with two; ingress ~290 s, ~140 s).
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/ingress.json' }]],
  },
});
