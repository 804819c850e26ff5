// The pool lends one guest to one user at a time, reuses it with a fresh
// lease, boots another for other options, and never lends a dead one.

import { afterAll, describe, expect, test } from 'vitest'
import { GuestPool } from '@vmtest/core'
import { testKernel, vmSkipReason } from '../utils/vm-env.js'

describe.skipIf(vmSkipReason)('GuestPool', () => {
  const pool = new GuestPool({ maxGuests: 1 })
  afterAll(() => pool.close())

  // Each test gives its leases back in `finally`: a lease kept by a failed
  // assertion would make every later lease wait on the full pool.
  test('a released guest is lent again, with a fresh lease, without a boot', async () => {
    const first = await pool.lease({ kernel: testKernel })
    let bootId: string
    try {
      expect(first.booted).toBe(true)
      await first.guest.exec('echo left-behind > /tmp/probe')
      bootId = first.guest.info.bootId
    } finally {
      await first.release()
    }
    const second = await pool.lease({ kernel: testKernel })
    try {
      expect(second.booted).toBe(false)
      expect(second.guest.info.bootId).toBe(bootId)
      expect((await second.guest.exec('test -e /tmp/probe', { reject: false })).exitCode).toBe(1)
      expect(pool.boots).toBe(1)
    } finally {
      await second.release()
    }
  })

  test('a full pool makes the next lease wait for a release', async () => {
    const held = await pool.lease({ kernel: testKernel })
    let granted = false
    const waiting = pool.lease({ kernel: testKernel }).then((lease) => ((granted = true), lease))
    try {
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(granted).toBe(false)
    } finally {
      await held.release()
    }
    const next = await waiting
    try {
      expect(next.guest.info.bootId).toBe(held.guest.info.bootId)
    } finally {
      await next.release()
    }
  })

  test('other options get another guest; the idle one makes room', async () => {
    const before = pool.boots
    const other = await pool.lease({ kernel: testKernel, memory: '512M' })
    try {
      expect(other.booted).toBe(true)
      const memTotalKiB = Number((await other.guest.exec("awk '/MemTotal/ {print $2}' /proc/meminfo")).stdout)
      expect(memTotalKiB).toBeLessThan(512 * 1024)
    } finally {
      await other.release()
    }
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
    try {
      expect(fresh.booted).toBe(true)
      expect(fresh.guest.info.qemuPid).not.toBe(pid)
      expect((await fresh.guest.exec('echo ok')).stdout).toBe('ok\n')
    } finally {
      await fresh.release({ retire: true })
    }
    expect(pool.size).toBe(0)
  })
})
