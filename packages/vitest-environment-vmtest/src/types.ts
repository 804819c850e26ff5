// Types a test may want next to `guest`.
export type { GuestFacade } from '@vmtest/core/runner'
export type { ExecOptions, ExecResult, GuestInfo } from '@vmtest/core'
