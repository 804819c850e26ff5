// The pool lends one guest to one user at a time, reuses it with a fresh
// lease, boots another for other options, and never lends a dead one.

import { afterAll, describe, expect, test } from 'vitest'
import { GuestPool } from '@vmtest/core'
import { testKernel, vmSkipReason } from '../utils/vm-env.js'

describe.skipIf(vmSkipReason)('GuestPool', () => {
  const pool = new GuestPool({ maxGuests: 1 })
  afterAll(() => pool.close())

  test('a released guest is lent again, with a fresh lease, without a boot', async () => {
    const first = await pool.lease({ kernel: testKernel })
    expect(first.booted).toBe(true)
    await first.guest.exec('echo left-behind > /tmp/probe')
    const bootId = first.guest.info.bootId
    await first.release()

    const second = await pool.lease({ kernel: testKernel })
    expect(second.booted).toBe(false)
    expect(second.guest.info.bootId).toBe(bootId)
    expect((await second.guest.exec('ls /tmp')).stdout).toBe('')
    await second.release()
    expect(pool.boots).toBe(1)
  })

  test('a full pool makes the next lease wait for a release', async () => {
    const held = await pool.lease({ kernel: testKernel })
    let granted = false
    const waiting = pool.lease({ kernel: testKernel }).then((lease) => ((granted = true), lease))
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(granted).toBe(false)
    await held.release()
    const next = await waiting
    expect(next.guest.info.bootId).toBe(held.guest.info.bootId)
    await next.release()
  })

  test('other options get another guest; the idle one makes room', async () => {
    const before = pool.boots
    const other = await pool.lease({ kernel: testKernel, memory: '512M' })
    expect(other.booted).toBe(true)
    const memTotalKiB = Number((await other.guest.exec("awk '/MemTotal/ {print $2}' /proc/meminfo")).stdout)
    expect(memTotalKiB).toBeLessThan(512 * 1024)
    await other.release()
    expect(pool.boots).toBe(before + 1)
    expect(pool.size).toBe(1)
  })

  test('a guest that died while idle is not lent again', async () => {
    const lease = await pool.lease({ kernel: testKernel, memory: '512M' })
    const pid = lease.guest.info.qemuPid
    await lease.release()
    process.kill(pid, 'SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 500))
    const fresh = await pool.lease({ kernel: testKernel, memory: '512M' })
    expect(fresh.booted).toBe(true)
    expect(fresh.guest.info.qemuPid).not.toBe(pid)
    expect((await fresh.guest.exec('echo ok')).stdout).toBe('ok\n')
    await fresh.release({ retire: true })
    expect(pool.size).toBe(0)
  })
})
