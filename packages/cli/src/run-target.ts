// One target: boot its guest, run its command in it, report as vmtest does,
// power the guest off. The result is the command's exit status.

import { constants } from 'node:os'
import { bootGuest, isVmtestError, type GuestOptions } from '@vmtest/core'
import type { Report } from './report.js'

export interface RunnableTarget {
  name: string
  options: GuestOptions
  command: string
  /** Working directory of the command in the guest. */
  cwd: string
}

/** Exit status a target gets when it failed before its command could run. */
export const SETUP_FAILED = 1

export async function runTarget(target: RunnableTarget, report: Report): Promise<number> {
  report.heading(target.name, 1)
  report.heading('Booting', 2)
  let guest
  try {
    guest = await bootGuest({ ...target.options, onProgress: (line) => report.progress(line) })
  } catch (error) {
    report.fail(message(error))
    return SETUP_FAILED
  }
  try {
    report.heading('Setting up VM', 2)
    const { release, accel, accelReason, bootMs } = guest.info
    report.progress(`kernel ${release} under ${accel}${accelReason ? ` (KVM unusable: ${accelReason})` : ''}, up in ${(bootMs / 1000).toFixed(1)} s`)
    report.heading('Running command', 2)
    const child = guest.spawn(target.command, { cwd: target.cwd, reject: false })
    child.stdin.end()
    child.stdout.on('data', (chunk: Buffer) => report.output(chunk, 'stdout'))
    child.stderr.on('data', (chunk: Buffer) => report.output(chunk, 'stderr'))
    const result = await child
    // A shell's convention for a command killed by a signal: 128 + its number.
    const status = result.exitCode ?? 128 + (constants.signals[result.signal as keyof typeof constants.signals] ?? 0)
    if (status === 0) report.pass()
    else report.fail(result.signal ? `Command was killed by ${result.signal}` : `Command failed with exit code: ${status}`)
    return status
  } catch (error) {
    report.fail(message(error))
    return SETUP_FAILED
  } finally {
    await guest.close()
  }
}

export function message(error: unknown): string {
  return isVmtestError(error) ? error.message : String((error as Error)?.stack ?? error)
}
