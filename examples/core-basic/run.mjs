// A guest from a script: boot the default kernel, run a few commands in it,
// look at its kernel log, power it off. `npm run example:core` at the repo root.
import { bootGuest } from '@vmtest/core'

const checks = []
const check = (name, ok, detail = '') => {
  checks.push(ok)
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? `  (${detail})` : ''}`)
}

console.log('booting a guest (several seconds under emulation, much less with KVM)...')
const guest = await bootGuest({ onProgress: (line) => console.log(`  ${line}`) })
try {
  const { release, accel, bootMs } = guest.info
  console.log(`guest up: kernel ${release}, ${accel}, ${bootMs} ms\n`)

  const uname = await guest.exec('uname -r')
  check('commands run in the guest kernel', uname.stdout.trim() === release, uname.stdout.trim())

  const mark = guest.markKernelLog()
  await guest.exec('echo "<4>example: hello from the guest" > /dev/kmsg')
  check('kernel log lines come back', guest.kernelLog(mark).includes('example: hello from the guest'))

  const failed = await guest.exec('ls /no/such/path', { reject: false })
  check('exit codes come back', failed.exitCode === 2, `ls exited ${failed.exitCode}: ${failed.stderr.trim()}`)

  await guest.writeFile('/tmp/greeting', 'hello\n')
  const upper = await guest.$`tr a-z A-Z < ${'/tmp/greeting'}`
  check('files and $ templates', upper.stdout === 'HELLO\n', upper.stdout.trim())

  await guest.exec('echo scratch > /etc/example-scratch')
  const { existsSync } = await import('node:fs')
  check('guest writes to / stay in the guest (overlay root)', !existsSync('/etc/example-scratch'))
} finally {
  await guest.close()
}
const failures = checks.filter((ok) => !ok).length
console.log(`\n${checks.length - failures} passed, ${failures} failed`)
process.exitCode = failures > 0 ? 1 : 0
