import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Forks, not threads: Temporal's native bridge and PGlite's wasm are happier in processes.
    pool: 'forks',
    maxWorkers: 2,
    // LABRELAY_UNIT_ONLY=1 skips the shared Temporal and Postgres servers, for a quick run of pure tests.
    globalSetup: process.env.LABRELAY_UNIT_ONLY ? [] : ['test/setup/global.ts'],
    testTimeout: 60_000,
    // expect.poll waits for what a page or the server will show; 1 s (the default) is too short on a
    // loaded 2-core CI machine.
    expect: { poll: { timeout: 15_000 } },
    hookTimeout: 180_000,
  },
});
