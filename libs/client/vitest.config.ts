import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'client',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 90_000,
    pool: 'forks',
    // the worker keeps its module cache from file to file (each file has a namespace of its own):
    // importing every file's graph anew cost CI minutes (e.g. ingress: 44 s of 288 s)
    isolate: false,
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/client.json' }]],
  },
});
