// A fresh lease on a running guest: what one user of a guest leaves behind
// (files, processes) is gone for the next, without a reboot.

import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, type Guest } from '@vmtest/core'
import { testKernel, vmSkipReason } from '../utils/vm-env.js'

describe.skipIf(vmSkipReason)('renewLease', () => {
  let guest: Guest
  beforeAll(async () => {
    guest = await bootGuest({ kernel: testKernel })
  })
  afterAll(() => guest?.close())

  test('files, /tmp and leftover processes are gone; the kernel is the same', async () => {
    const bootId = guest.info.bootId
    await guest.exec('echo x > /etc/vmtest-lease-probe; echo y > /tmp/probe; mkdir /root/probe-dir')
    await guest.exec('sleep 600 >/dev/null 2>&1 & (setsid sleep 601 >/dev/null 2>&1 &)')
    await guest.exec('echo "<4>vmtest: before the new lease" > /dev/kmsg')
    expect((await guest.exec('ps -o args | grep -c "^sleep 60" || true')).stdout.trim()).toBe('2')

    const { ms } = await guest.renewLease()
    expect(ms).toBeLessThan(guest.info.bootMs) // far cheaper than a boot

    const after = await guest.exec('ls /etc/vmtest-lease-probe /tmp/probe /root/probe-dir 2>&1; ps -o args | grep -c "^sleep 60" || true', { reject: false })
    expect(after.stdout).toMatch(/\/etc\/vmtest-lease-probe'?: No such file/)
    expect(after.stdout).toMatch(/\/tmp\/probe'?: No such file/)
    expect(after.stdout).toMatch(/\/root\/probe-dir'?: No such file/)
    expect(after.stdout.trim().split('\n').at(-1)).toBe('0')
    expect((await guest.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim()).toBe(bootId)
    expect(guest.kernelLog()).toContain('vmtest: before the new lease') // the kernel log spans leases
  })

  test('the new lease has the usual mounts and the shared dir', async () => {
    const mounts = (await guest.exec('cat /proc/mounts')).stdout
    for (const point of ['/', '/proc', '/sys', '/dev', '/dev/pts', '/tmp', '/run', '/mnt/vmtest', '/sys/fs/cgroup']) {
      expect(mounts).toMatch(new RegExp(`^\\S+ ${point.replaceAll('/', '\\/')} `, 'm'))
    }
    expect((await guest.exec('readlink /dev/fd')).stdout.trim()).toBe('/proc/self/fd')
    expect((await guest.exec('pwd')).stdout.trim()).toBe(process.cwd())
  })

  test('the next lease gets ready while this one serves: a renewal after a pause is much quicker than one right after the last', async () => {
    await guest.renewLease()
    // Right after a renewal the next lease has not started yet: this one starts from nothing.
    const cold = await guest.renewLease()
    await guest.exec('echo "<4>vmtest: printed before a ready lease takes over" > /dev/kmsg')
    await new Promise((resolve) => setTimeout(resolve, 8000)) // the standby starts on the guest's idle time
    const ready = await guest.renewLease()
    expect(ready.ms).toBeLessThan(cold.ms / 2)
    await guest.exec('echo "<4>vmtest: printed in the lease it handed over to" > /dev/kmsg')
    const log = guest.kernelLog()
    expect(log.filter((line) => line === 'vmtest: printed before a ready lease takes over')).toHaveLength(1)
    expect(log).toContain('vmtest: printed in the lease it handed over to')
    expect((await guest.exec('echo ok; nice')).stdout).toBe('ok\n0\n') // it serves at the normal priority
  })

  test('a call pending when the lease ends is told so', async () => {
    const pending = guest.exec('sleep 600').catch((e) => e)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await guest.renewLease()
    const error = await pending
    expect(error.code).toBe('VMTEST_GUEST_CLOSED')
    expect(error.message).toBe('The lease ended (guest.renewLease()) while this call was pending.')
    expect((await guest.exec('echo still here')).stdout).toBe('still here\n')
  })
})
