import { expect, test } from 'vitest'
import { guest } from 'vitest-environment-vmtest'

test('runs in the guest kernel', async () => {
  const { stdout } = await guest.exec('uname -r')
  expect(stdout.trim()).toBe(guest.info.release)
  // PID 1 of this lease is our init, not the host's.
  expect((await guest.exec('cat /proc/1/comm')).stdout.trim()).not.toBe('systemd')
})

test('execa-style template, arguments escaped', async () => {
  const file = '/tmp/a file with spaces'
  await guest.$`touch ${file}`
  const r = await guest.$`ls ${file}`
  expect(r.stdout.trim()).toBe(file)
})

test('a failing command rejects with its exit code and stderr', async () => {
  await expect(guest.exec('echo oops >&2; exit 3')).rejects.toThrow(/exit code 3[\s\S]*oops/)
})
