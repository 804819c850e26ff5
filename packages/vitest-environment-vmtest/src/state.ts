// The environment's state in a worker. It lives on globalThis: Vitest may load
// this package once for the environment and again for a test's import, and
// both must see the same session.

import type { FileSession } from '@vmtest/core/runner'

export interface WorkerState {
  /** The environment's setup() ran in this worker and its teardown has not. */
  active: boolean
  /** The options setup() received (the config's, or a file's @vitest-environment-options). */
  setupOptions?: Record<string, unknown>
  /** The session of the file running now. */
  session?: FileSession
  /** The plugin's setup file watches every test; the `guest` object need not. */
  hooked: boolean
  /** The test the `guest` object last saw, when it watches tests itself. */
  watchedTest?: string
}

const KEY = Symbol.for('vitest-environment-vmtest.state')

export function workerState(): WorkerState {
  const global = globalThis as unknown as Record<symbol, WorkerState | undefined>
  return (global[KEY] ??= { active: false, hooked: false })
}
