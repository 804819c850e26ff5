// The only host entry of @vmtest/core.
export { bootGuest } from '../host/boot.js'
export { GuestPool, poolKey, type GuestLease, type GuestPoolOptions } from '../host/pool/pool.js'
export { Guest, GuestProcess, type ExecOptions, type ExecResult, type GuestInfo } from '../host/guest.js'
export type { GuestOptions, RootMode, Accel, MountOption } from '../host/options.js'
export { VmtestError, isVmtestError, type VmtestErrorCode, type VmtestPhase } from '../host/errors.js'
export { findSplats, classifyLine, taintFlags, type Splat, type SplatKind } from '../host/console/splat.js'
export type { KmsgRecord } from '../protocol/methods.js'
