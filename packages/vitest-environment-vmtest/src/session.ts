// Which file is running, its merged options, and its session. Vitest tells the
// environment nothing about the file (setup() runs before one is assigned), so
// the file is read from `expect` when the guest is first used.

import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import { FileSession, mergeFileOptions, parseDocblock, type MergedOptions } from '@vmtest/core/runner'
import { workerState } from './state.js'

interface WorkerConfig {
  root?: string
  environmentOptions?: Record<string, unknown>
}

const CONFIG_SOURCE = 'environmentOptions.vmtest of the Vitest config'

/** The session of the test file running now, made on first use. */
export function currentSession(): FileSession {
  const state = workerState()
  const file = expect.getState().testPath
  if (!state.active || !file) {
    throw new Error("vmtest: `guest` is available in test files that run in the vmtest environment: set `environment: 'vmtest'` in the Vitest config (or `// @vitest-environment vmtest` in the file).")
  }
  if (state.session?.file !== file) {
    // isolate: false runs several files in one environment: each gets its own lease.
    void state.session?.close()
    state.session = new FileSession({ file, options: () => fileOptions(file), print: (line) => process.stderr.write(`${line}\n`) })
  }
  return state.session
}

/** vmtest.toml target < config environmentOptions.vmtest < @vitest-environment-options < @vmtest-* (Vitest replaces; we merge). */
export function fileOptions(file: string): MergedOptions {
  const config = vitestConfig()
  const root = config?.root ?? process.cwd()
  const directives = parseDocblock(readFileSync(file, 'utf8'), file)
  // setup() got the file's own options instead of the config's when it has some: take the config's from the worker.
  const configOptions = (config?.environmentOptions?.vmtest ?? (directives.environmentOptions ? undefined : workerState().setupOptions)) as Record<string, unknown> | undefined
  return mergeFileOptions({ file, directives, rootDir: root, config: { source: CONFIG_SOURCE, options: configOptions } })
}

/** The worker's copy of the resolved config (internal to Vitest, so read defensively). */
function vitestConfig(): WorkerConfig | undefined {
  return (globalThis as { __vitest_worker__?: { config?: WorkerConfig } }).__vitest_worker__?.config
}
