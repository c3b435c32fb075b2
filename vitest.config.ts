import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'ferry',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.kernel.test.ts'],
          // Real daemons and workers: a 2-core machine runs a few test files at once, not many.
          maxWorkers: 2,
        },
      },
      {
        // Tests that lower machine-wide kernel limits (inotify): alone, after every other file,
        // so that no other test's watcher meets the lowered limit.
        extends: true,
        test: {
          name: 'kernel',
          include: ['test/**/*.kernel.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
