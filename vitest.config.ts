import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real daemons and workers: a 2-core machine runs a few test files at once, not many.
    maxWorkers: 2,
  },
});
