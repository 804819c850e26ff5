import { defineConfig } from 'vitest/config'
import vmtest from 'vitest-environment-vmtest/plugin'

export default defineConfig({
  plugins: [vmtest()],
  test: {
    environment: 'vmtest',
    // Compiles bpf/*.bpf.c with clang -target bpf and the libbpf loader (a no-op when up to date).
    globalSetup: ['./build-bpf.ts'],
  },
})
