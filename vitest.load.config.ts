import { defineConfig } from 'vitest/config'

// `npm run test:load`: the load tests (minutes under TCG), apart from `npm test`.
export default defineConfig({
  test: {
    include: ['test/load/**/*.test.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 180_000,
    maxWorkers: 1,
  },
})
