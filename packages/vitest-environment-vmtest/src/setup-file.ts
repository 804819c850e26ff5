// Added to setupFiles by the plugin. In a file that runs in the vmtest
// environment it leases the guest before the tests (so a boot does not count
// against a test's timeout) and judges every test's kernel log window.

import { beforeAll, beforeEach } from 'vitest'
import { currentSession } from './session.js'
import { workerState } from './state.js'

/** Waiting for a free guest plus a boot under emulation: far above a boot, far below a hang. */
const LEASE_TIMEOUT_MS = 300_000

const state = workerState()
if (state.active) {
  state.hooked = true
  beforeAll(async () => {
    await currentSession().guest()
  }, LEASE_TIMEOUT_MS)
  beforeEach(async ({ task, onTestFinished }) => {
    const session = currentSession()
    // After a crash the next test gets a fresh guest, booted here rather than in its body.
    if (session.crashed) await session.guest().catch(() => {})
    session.testStarted(task.fullTestName ?? task.name)
    onTestFinished(async ({ task: finished }) => {
      const errors = await session.testFinished(finished.result?.state === 'fail', finished.result?.errors)
      if (errors.length > 0) throw errors[0]
    })
  }, LEASE_TIMEOUT_MS)
}
