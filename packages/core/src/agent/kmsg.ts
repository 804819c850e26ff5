// Reads the guest kernel log from /dev/kmsg without blocking a thread: the fd
// is non-blocking and drained on a timer and on demand (before each command
// result), so records printed during a command reach the host before its result.

import { closeSync, openSync, readSync, constants } from 'node:fs'
import type { KmsgRecord } from '../protocol/methods.js'

/** How often idle records are forwarded. Short enough that a test's log window
 * is current, long enough to cost nothing measurable under emulation. */
const POLL_INTERVAL_MS = 200

/** One /dev/kmsg record is at most this long (the kernel's own limit is 8 KiB). */
const RECORD_BUFFER_BYTES = 16 * 1024

export class KmsgReader {
  private readonly fd: number
  private readonly buffer = Buffer.allocUnsafe(RECORD_BUFFER_BYTES)
  private timer?: ReturnType<typeof setInterval>
  private held: KmsgRecord[] = []
  private forward: (records: KmsgRecord[]) => void = (records) => this.held.push(...records)
  /** The sequence number of the last record read, -1 before any. */
  lastSeq = -1

  /** `afterSeq`: records up to this one reached the host through an earlier
   * agent (a lease before this one): they are read past, not forwarded. */
  constructor(private afterSeq = -1) {
    this.fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK)
  }

  /** From now on records go to `forward`, first those read before (kept until
   * now: a standby agent reads the kernel log ahead, on idle time), less any up
   * to `afterSeq`. */
  forwardTo(forward: (records: KmsgRecord[]) => void, afterSeq = -1): void {
    this.afterSeq = Math.max(this.afterSeq, afterSeq)
    const held = this.held.filter((r) => r.seq > this.afterSeq)
    this.held = []
    this.forward = forward
    if (held.length > 0) forward(held)
  }

  start(): void {
    this.timer = setInterval(() => this.drain(), POLL_INTERVAL_MS)
    this.timer.unref()
  }

  /** Forward every record the kernel has now. */
  drain(): void {
    const records: KmsgRecord[] = []
    for (;;) {
      let n: number
      try {
        n = readSync(this.fd, this.buffer, 0, this.buffer.length, null)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === 'EPIPE') continue // records were overwritten before we read them; go on with the next
        if (code === 'EAGAIN') break
        throw error
      }
      if (n === 0) break
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, n))
      if (record) {
        if (record.seq > this.afterSeq) records.push(record)
        this.lastSeq = record.seq
      }
    }
    if (records.length > 0) this.forward(records)
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    closeSync(this.fd)
  }
}

/** "6,339,5140900,-;text\n KEY=value\n" -> a record (Documentation/ABI/testing/dev-kmsg). */
export function parseKmsgRecord(raw: string): KmsgRecord | undefined {
  const semi = raw.indexOf(';')
  if (semi < 0) return undefined
  const [prefix, seq, usec] = raw.slice(0, semi).split(',')
  const end = raw.indexOf('\n', semi)
  // The kernel escapes every byte < 0x20, >= 0x7f and the backslash as \xNN: decode each run of
  // escapes as bytes, so UTF-8 text (several escaped bytes per character) comes back whole.
  const text = raw
    .slice(semi + 1, end < 0 ? undefined : end)
    .replace(/(?:\\x[0-9a-f]{2})+/g, (run) => Buffer.from(run.replaceAll('\\x', ''), 'hex').toString('utf8'))
  return { level: Number(prefix) & 7, seq: Number(seq), usec: Number(usec), text }
}
