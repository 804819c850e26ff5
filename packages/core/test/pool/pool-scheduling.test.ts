// GuestPool's lending rules with stand-in guests (no QEMU): when it boots,
// when it waits, and when it powers a guest off.

import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { GuestPool } from '../../src/host/pool/pool.js'
import type { Guest } from '../../src/host/guest.js'
import type { GuestOptions } from '../../src/host/options.js'

/** A stand-in guest whose renewal finishes when the test says so. */
function fakeBoot() {
  const booted: Array<{ options: GuestOptions; closed: boolean; finishRenew?: () => void }> = []
  const boot = async (options: GuestOptions) => {
    const entry: (typeof booted)[number] = { options, closed: false }
    booted.push(entry)
    return {
      get closed() {
        return entry.closed
      },
      renewLease: () => new Promise<{ ms: number }>((done) => (entry.finishRenew = () => done({ ms: 1 }))),
      close: async () => void (entry.closed = true),
    } as unknown as Guest
  }
  return { booted, boot }
}

const tick = () => new Promise((r) => setTimeout(r, 10))

describe('GuestPool scheduling', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pool-scheduling-'))
  const kernel = join(dir, 'bzImage')
  writeFileSync(kernel, 'kernel bytes')
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('a lease waits for a guest of its kind that is renewing instead of booting another', async () => {
    const { booted, boot } = fakeBoot()
    const pool = new GuestPool({ maxGuests: 4, boot })
    const first = await pool.lease({ kernel })
    const release = first.release()
    const second = pool.lease({ kernel })
    await tick()
    expect(booted).toHaveLength(1) // waiting, not booting
    booted[0].finishRenew!()
    await release
    const lease = await second
    expect(lease.booted).toBe(false)
    expect(pool.boots).toBe(1)
  })

  test('other options boot their own guest while one of another kind renews', async () => {
    const { booted, boot } = fakeBoot()
    const pool = new GuestPool({ maxGuests: 4, boot })
    const first = await pool.lease({ kernel })
    void first.release()
    const other = await pool.lease({ kernel, memory: '2G' })
    expect(other.booted).toBe(true)
    expect(booted).toHaveLength(2)
  })

  test('a rebuilt kernel file gets a new guest and the idle guests of the old file are powered off', async () => {
    const { booted, boot } = fakeBoot()
    const pool = new GuestPool({ maxGuests: 4, boot })
    const first = await pool.lease({ kernel })
    const release = first.release()
    booted[0].finishRenew!()
    await release
    const later = new Date(Date.now() + 5000)
    utimesSync(kernel, later, later) // what a rebuild looks like to the pool
    const next = await pool.lease({ kernel })
    expect(next.booted).toBe(true)
    expect(booted[0].closed).toBe(true)
    expect(pool.size).toBe(1)
  })

  test('isolate reboot: a released guest is powered off, not renewed', async () => {
    const { booted, boot } = fakeBoot()
    const pool = new GuestPool({ maxGuests: 4, boot })
    const lease = await pool.lease({ kernel })
    await lease.release({ retire: true })
    expect(booted[0].closed).toBe(true)
    expect(booted[0].finishRenew).toBeUndefined()
    expect(pool.size).toBe(0)
  })
})
