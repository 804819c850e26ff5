// `environment: 'vmtest'`: the environment object Vitest loads, and the `guest`
// that tests import. setup() only records options (it must be quick and does
// not know the file); the guest is leased from the run's broker on first use.

import type { Environment } from 'vitest/environments'
import { expect, onTestFinished } from 'vitest'
import { createGuestFacade, type FileSession, type GuestFacade } from '@vmtest/core/runner'
import { currentSession } from './session.js'
import { workerState } from './state.js'

export type { GuestFacade, ExecOptions, ExecResult, GuestInfo } from './types.js'

/** The guest of the test file that is running: see the README for its members. */
export const guest: GuestFacade = createGuestFacade({ session: currentSession, used: watchTest })

const environment: Environment = {
  name: 'vmtest',
  viteEnvironment: 'ssr',
  setup(_global, options) {
    const state = workerState()
    state.active = true
    state.setupOptions = options?.vmtest as Record<string, unknown> | undefined
    return {
      async teardown() {
        const session = state.session
        state.session = undefined
        state.active = false
        await session?.close()
      },
    }
  },
}
export default environment

/** Without the plugin's setup file, a test is watched from its first use of `guest`:
 * its kernel log window opens then and is judged when it finishes. */
function watchTest(session: FileSession): void {
  const state = workerState()
  if (state.hooked) return
  // Outside a test (beforeAll, module scope) there is none to watch, and onTestFinished() would throw.
  const name = expect.getState().currentTestName
  if (!name || state.watchedTest === `${session.file}\0${name}`) return
  state.watchedTest = `${session.file}\0${name}`
  session.testStarted(name)
  onTestFinished(async ({ task }) => {
    const errors = await session.testFinished(task.result?.state === 'fail', task.result?.errors)
    if (errors.length > 0) throw errors[0]
  })
}
