import { bootGuest, type VmtestError } from '@vmtest/core'

/** The error bootGuest rejects with for `options`; a guest that boots instead fails the test. */
export async function bootError(options: Parameters<typeof bootGuest>[0]): Promise<VmtestError> {
  const guest = await bootGuest(options).catch((error: VmtestError) => error)
  if ('close' in guest) {
    await guest.close()
    throw new Error('the guest booted, but an error was expected')
  }
  return guest
}
