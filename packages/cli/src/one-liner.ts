// `vmtest -k KERNEL "command"`: one guest, the command's output on our stdout
// and stderr as it comes (our own lines on stderr, so a pipe gets only the
// command's), and its exit status as ours. `-` instead of a command: an
// interactive shell on a pseudo-terminal in the guest.

import type { GuestOptions } from '@vmtest/core'
import { bootGuest } from '@vmtest/core'
import { liveReport } from './report.js'
import { message, runTarget, SETUP_FAILED } from './run-target.js'

export async function runOneLiner(options: GuestOptions, command: string, name: string): Promise<number> {
  const report = liveReport(process.stderr, { stdout: process.stdout, stderr: process.stderr })
  return runTarget({ name, options: { ...options, shared: process.cwd() }, command, cwd: process.cwd() }, report)
}

export async function runShell(options: GuestOptions): Promise<number> {
  const stdin = process.stdin
  if (!stdin.isTTY || !process.stdout.isTTY) {
    process.stderr.write('vmtest: `-` starts an interactive shell, which needs a terminal on stdin and stdout.\n')
    return 2
  }
  let guest
  try {
    guest = await bootGuest({ ...options, shared: process.cwd(), onProgress: (line) => process.stderr.write(`${line}\n`) })
  } catch (error) {
    process.stderr.write(`${message(error)}\n`)
    return SETUP_FAILED
  }
  // util-linux script(1), from the shared host userspace, gives the shell a
  // pseudo-terminal in the guest: job control, and Ctrl-C (passed through raw)
  // reaches the guest's foreground process, not us.
  const { rows = 24, columns = 80 } = process.stdout
  const shell = guest.spawn(`exec script -qfec 'stty rows ${rows} cols ${columns}; exec /bin/sh -i' /dev/null`, {
    env: { TERM: process.env.TERM ?? 'linux' },
    reject: false,
  })
  stdin.setRawMode(true)
  stdin.pipe(shell.stdin)
  shell.stdout.pipe(process.stdout)
  shell.stderr.pipe(process.stderr)
  try {
    const result = await shell
    return result.exitCode ?? SETUP_FAILED
  } finally {
    stdin.unpipe(shell.stdin)
    stdin.setRawMode(false)
    stdin.pause()
    await guest.close()
  }
}
