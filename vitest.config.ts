import { defineConfig } from 'vitest/config';

// Tests talk to real stores, real daemons and real child processes: generous timeouts, no retries
// (a flaky security test is a bug to fix, not to retry).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    retry: 0,
  },
});
