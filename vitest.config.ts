import { defineConfig } from 'vitest/config';

/**
 * Three projects: `unit` runs the pure core over in-process adapters; `differential` compares it
 * with independent implementations; `integration` needs the real services (DynamoDB Local,
 * Ceph RGW, the docker CLI), which its global setup starts once.
 */
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      // Strata against independent implementations (kernel overlayfs, umoci); needs root.
      { extends: true, test: { name: 'differential', include: ['test/differential/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/contract/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});
