import { defineConfig } from 'vitest/config'

// Two projects: `unit` needs no QEMU; `vm` boots real guests (slow under TCG, so
// long timeouts and at most two files at once on a 2-core machine). Unit
// tests run first.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'test/docs/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'vm',
          include: ['test/vm/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Real `vitest`/`jest` runs on fixture projects; each boots its own guests, so one at a time.
        test: {
          name: 'e2e',
          include: ['test/e2e/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 60_000,
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
})
