import { defineConfig } from 'vitest/config'
import vmtest from 'vitest-environment-vmtest/plugin'

export default defineConfig({
  plugins: [vmtest()],
  test: {
    environment: 'vmtest',
    // Builds module/vmtest_demo.ko for the kernel the tests boot (a no-op when it is up to date).
    globalSetup: ['./build-module.ts'],
    // failing/ shows what a kernel WARNING and an Oops in a test look like: run it with `VMTEST_SHOW_FAILURE=1`.
    include: process.env.VMTEST_SHOW_FAILURE ? ['failing/**/*.test.ts'] : ['test/**/*.test.ts'],
  },
})
