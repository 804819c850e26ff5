// What a test worker and the guest broker say to each other before the
// connection becomes the guest agent's: one call to lease a guest, progress
// while it boots, and one event if the guest dies while lent.

import type { GuestInfo } from '../guest.js'
import type { GuestOptions } from '../options.js'
import type { VmtestErrorCode, VmtestPhase } from '../errors.js'

/** broker.lease: lend me a guest for these options. */
export interface LeaseParams {
  /** Guest options, already resolved against the worker's files and cwd (no functions). */
  options: Omit<GuestOptions, 'onProgress'>
  /** The test file, for messages. */
  file?: string
  /** 'reboot': power the guest off after this lease instead of renewing it. */
  isolate?: 'lease' | 'reboot'
}

export type LeaseResult =
  | { info: GuestInfo; booted: boolean; /** One line for the user, the first time a kernel comes up in this run. */ announce?: string }
  | { error: WireVmtestError }

export interface WireVmtestError {
  code: VmtestErrorCode
  phase: VmtestPhase
  message: string
}

/** Progress of a boot the worker waits for. */
export const PROGRESS_EVENT = 'broker.progress'
/** The lent guest died (panic, QEMU exit): the error a pending call should get. */
export const GUEST_EXIT_EVENT = 'broker.guest-exit'
export const LEASE_METHOD = 'broker.lease'
/** Power every guest off and exit (sent by the Vitest plugin at the end of a run). */
export const SHUTDOWN_METHOD = 'broker.shutdown'
