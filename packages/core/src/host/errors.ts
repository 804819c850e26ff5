// Every error a user can get from the engine: a stable code, the phase it
// happened in, and a brand instead of `instanceof` (Jest runs tests in other
// node:vm realms, where `instanceof` fails).

const BRAND = Symbol.for('vmtest.error')

export type VmtestErrorCode =
  | 'VMTEST_OPTION_INVALID'
  | 'VMTEST_CONFIG_INVALID' | 'VMTEST_TARGET_UNKNOWN'
  | 'VMTEST_QEMU_NOT_FOUND'
  | 'VMTEST_QEMU_FAILED'
  | 'VMTEST_KERNEL_NOT_FOUND'
  | 'VMTEST_KERNEL_INVALID'
  | 'VMTEST_BUSYBOX_NOT_FOUND'
  | 'VMTEST_ROOTFS_NOT_FOUND' | 'VMTEST_ROOTFS_INVALID'
  | 'VMTEST_IMAGE_NOT_FOUND' | 'VMTEST_IMAGE_INVALID' | 'VMTEST_FIRMWARE_NOT_FOUND'
  | 'VMTEST_GUEST_AGENT'
  | 'VMTEST_MODULES_NOT_FOUND'
  | 'VMTEST_KVM_UNAVAILABLE'
  | 'VMTEST_BOOT_TIMEOUT'
  | 'VMTEST_GUEST_PANIC'
  | 'VMTEST_GUEST_EXITED'
  | 'VMTEST_PROTOCOL'
  | 'VMTEST_COMMAND_FAILED'
  | 'VMTEST_GUEST_CLOSED'
  | 'VMTEST_REMOTE'
  | 'VMTEST_KERNEL_SPLAT'
  | 'VMTEST_KERNEL_TAINTED'

export type VmtestPhase = 'config' | 'launch' | 'boot' | 'handshake' | 'command' | 'teardown'

export class VmtestError extends Error {
  readonly code: VmtestErrorCode
  readonly phase: VmtestPhase

  constructor(code: VmtestErrorCode, phase: VmtestPhase, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.phase = phase
    Object.defineProperty(this, 'name', { value: 'VmtestError', enumerable: false })
    Object.defineProperty(this, BRAND, { value: true, enumerable: false })
  }
}

export function isVmtestError(value: unknown): value is VmtestError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
}

/** The last `count` lines of a text, indented, for the tail of an error message. */
export function tail(lines: readonly string[], count: number): string {
  return lines.slice(-count).map((l) => `  | ${l}`).join('\n')
}

/** For an error about the guest, not about a line of code: the stack would
 * only show our internals, so it is the message alone. */
export function withoutStack<E extends Error>(error: E): E {
  error.stack = `${error.name}: ${error.message}`
  return error
}

/** Adds a line to an error's message, and to its stack, which runners print instead and which was written when it was made. */
export function appendLine<E extends Error>(error: E, line: string): E {
  const before = error.message
  error.message = `${before}\n${line}`
  if (error.stack?.includes(before)) error.stack = error.stack.replace(before, error.message)
  return error
}
