// jest-environment-vmtest: the environment class (default export and
// `TestEnvironment`, as jest-environment-node does) and the `guest` tests use.
// The class is loaded on first access: a test's `require` of this package
// wants only `guest`, and must not pull jest-environment-node into its context.

import type { VmtestEnvironment } from './environment.js'

export { guest } from './guest.js'
export type { GuestFacade } from '@vmtest/core/runner'
export type { ExecOptions, ExecResult, GuestInfo } from '@vmtest/core'

declare const exports: Record<string, unknown>
for (const name of ['default', 'TestEnvironment']) {
  Object.defineProperty(exports, name, { enumerable: true, get: () => (require('./environment.js') as { VmtestEnvironment: typeof VmtestEnvironment }).VmtestEnvironment })
}
