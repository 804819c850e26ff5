// Guests shared by the files of a test run: a guest is booted once per
// (kernel, options) and lent to one user at a time; between users it gets a
// fresh lease (renewLease) instead of a reboot. A guest that died, or whose
// kernel file changed, is never lent again.

import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { bootGuest } from '../boot.js'
import type { Guest } from '../guest.js'
import type { GuestOptions } from '../options.js'

export interface GuestLease {
  guest: Guest
  /** True when this lease booted the guest (not a reuse). */
  booted: boolean
  /** Gives the guest back. It gets a fresh lease before its next user; `{ retire: true }` powers it off instead. */
  release(options?: { retire?: boolean }): Promise<void>
}

interface PooledGuest {
  key: string
  /** The kernel file this guest booted, to retire it once that file is rebuilt. */
  kernel?: string
  guest: Guest
  /** busy: lent or booting; renewing: back from a user, getting a fresh lease. */
  state: 'busy' | 'renewing' | 'idle'
}

export interface GuestPoolOptions {
  /** Most guests alive at once (default 2). When full, a lease waits for a release. */
  maxGuests?: number
  /** Boots a guest; tests and the broker may wrap bootGuest. */
  boot?: (options: GuestOptions) => Promise<Guest>
}

export class GuestPool {
  private readonly guests: PooledGuest[] = []
  private readonly waiters: Array<() => void> = []
  private readonly maxGuests: number
  private readonly boot: (options: GuestOptions) => Promise<Guest>
  private closed = false
  /** Boots started, for reports ("2 guests for 6 files"). */
  boots = 0

  constructor(options: GuestPoolOptions = {}) {
    this.maxGuests = options.maxGuests ?? 2
    this.boot = options.boot ?? bootGuest
  }

  async lease(options: GuestOptions = {}): Promise<GuestLease> {
    const key = poolKey(options)
    const kernel = options.kernel && resolve(options.kernel)
    for (;;) {
      if (this.closed) throw new Error('the guest pool is closed')
      this.dropDead()
      this.dropStale(kernel, key)
      const idle = this.guests.find((g) => g.state === 'idle' && g.key === key)
      if (idle) {
        idle.state = 'busy'
        return this.lent(idle, false)
      }
      // A guest of this key is about to be free: wait for it rather than boot another.
      const renewing = this.guests.some((g) => g.state === 'renewing' && g.key === key)
      if (!renewing && (this.guests.length < this.maxGuests || this.retireOneIdle())) {
        const slot: PooledGuest = { key, kernel, guest: undefined as unknown as Guest, state: 'busy' }
        this.guests.push(slot)
        try {
          this.boots++
          slot.guest = await this.boot(options)
        } catch (error) {
          this.remove(slot)
          throw error
        }
        return this.lent(slot, true)
      }
      await new Promise<void>((wake) => this.waiters.push(wake))
    }
  }

  /** Powers off idle guests whose options key matches, e.g. when their kernel was rebuilt. */
  async retire(match: (key: string) => boolean): Promise<void> {
    const idle = this.guests.filter((g) => g.state === 'idle' && match(g.key))
    await Promise.all(idle.map((g) => this.powerOff(g)))
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all(this.guests.map((g) => g.guest?.close()))
    this.guests.length = 0
    this.wakeAll()
  }

  get size(): number {
    return this.guests.length
  }

  private lent(entry: PooledGuest, booted: boolean): GuestLease {
    let released = false
    return {
      guest: entry.guest,
      booted,
      release: async ({ retire = false } = {}) => {
        if (released) return
        released = true
        if (retire || this.closed) return this.powerOff(entry)
        entry.state = 'renewing'
        try {
          await entry.guest.renewLease()
          entry.state = 'idle'
        } catch {
          await this.powerOff(entry) // it died, or would not start a new lease: never lend it again
        }
        this.wakeAll()
      },
    }
  }

  private async powerOff(entry: PooledGuest): Promise<void> {
    this.remove(entry)
    this.wakeAll() // its slot is free
    await entry.guest.close().catch(() => {})
  }

  /** Makes room by powering off an idle guest of another key; false if none is idle. */
  private retireOneIdle(): boolean {
    const idle = this.guests.find((g) => g.state === 'idle')
    if (!idle) return false
    void this.powerOff(idle)
    return true
  }

  /** Idle guests that died (QEMU killed, a panic after release) are forgotten, not lent. */
  private dropDead(): void {
    for (const g of [...this.guests]) if (g.state === 'idle' && g.guest.closed) void this.powerOff(g)
  }

  /** Idle guests of a kernel file that has changed since they booted (a rebuild) will never be lent again. */
  private dropStale(kernel: string | undefined, key: string): void {
    if (!kernel) return
    for (const g of [...this.guests]) if (g.state === 'idle' && g.kernel === kernel && stale(g.key, key)) void this.powerOff(g)
  }

  private remove(entry: PooledGuest): void {
    const i = this.guests.indexOf(entry)
    if (i >= 0) this.guests.splice(i, 1)
  }

  /** Every waiter looks again: a freed slot, an idle guest or a finished renewal may each serve a different one. */
  private wakeAll(): void {
    for (const wake of this.waiters.splice(0)) wake()
  }
}

/** Guests are interchangeable when their options are equal and their kernel
 * (or disk image) file is the same one (a rebuilt one has another size or mtime). */
export function poolKey(options: GuestOptions): string {
  const { onProgress: _progress, sources: _sources, ...rest } = options
  let kernelId = ''
  const bootFile = rest.kernel ?? rest.image
  if (bootFile) {
    try {
      const stat = statSync(resolve(bootFile))
      kernelId = `${stat.size}:${stat.mtimeMs}`
    } catch {
      kernelId = 'missing' // bootGuest will say so
    }
  }
  return JSON.stringify({ ...sortKeys(rest), kernel: rest.kernel && resolve(rest.kernel), kernelId })
}

/** Two keys of one kernel path with another file identity: the file was rebuilt since the old one booted. */
function stale(oldKey: string, newKey: string): boolean {
  return (JSON.parse(oldKey) as { kernelId: string }).kernelId !== (JSON.parse(newKey) as { kernelId: string }).kernelId
}

function sortKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)))
}
