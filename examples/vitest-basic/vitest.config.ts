import { defineConfig } from 'vitest/config'
import vmtest from 'vitest-environment-vmtest/plugin'

export default defineConfig({
  plugins: [vmtest()],
  test: {
    environment: 'vmtest',
    // No `kernel`: VMTEST_KERNEL, the host's own kernel, or the one `npm run setup` fetched.
    environmentOptions: { vmtest: { memory: '1G' } },
  },
})
