// `guest` as a test sees it: every member passes through to the guest the
// environment put on this test file's global. No dependencies, so it loads in
// Jest's test context (which cannot require the engine's ES modules).

import type { GuestFacade } from '@vmtest/core/runner'
import { GUEST_KEY, type GlobalWithGuest } from './shared.js'

function current(): GuestFacade {
  const facade = (globalThis as unknown as GlobalWithGuest)[GUEST_KEY]
  if (!facade) {
    throw new Error("vmtest: `guest` is available in test files that run in the vmtest environment: set `testEnvironment: 'vmtest'` in the Jest config (or `@jest-environment vmtest` in the file's docblock).")
  }
  return facade
}

export const guest: GuestFacade = {
  exec: ((command: string, options?: object) => current().exec(command, options as never)) as GuestFacade['exec'],
  $: (strings, ...values) => current().$(strings, ...values),
  spawn: (command, options) => current().spawn(command, options),
  readFile: (path) => current().readFile(path),
  writeFile: (path, data, options) => current().writeFile(path, data, options),
  kernelLog: () => current().kernelLog(),
  allowKernelLog: (pattern) => current().allowKernelLog(pattern),
  get info() {
    return current().info
  },
  ready: () => current().ready(),
}
