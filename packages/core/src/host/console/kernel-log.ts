// The guest's kernel log on the host: records forwarded by the agent from
// /dev/kmsg, numbered so a caller can take "the lines since mark M".

import type { KmsgRecord } from '../../protocol/methods.js'

/** Records kept; older ones are dropped (marks before them see what is left). */
const MAX_RECORDS = 50_000

export class KernelLog {
  private records: KmsgRecord[] = []
  private dropped = 0
  private lastSeq = -1

  add(records: readonly KmsgRecord[]): void {
    for (const record of records) {
      if (record.seq <= this.lastSeq) continue // a record seen twice
      this.lastSeq = record.seq
      this.records.push(record)
    }
    if (this.records.length > MAX_RECORDS) {
      const excess = this.records.length - MAX_RECORDS
      this.records.splice(0, excess)
      this.dropped += excess
    }
  }

  /** A position in the log: lines added after this call come after the mark. */
  mark(): number {
    return this.dropped + this.records.length
  }

  since(mark = 0): KmsgRecord[] {
    return this.records.slice(Math.max(0, mark - this.dropped))
  }

  linesSince(mark = 0): string[] {
    return this.since(mark).map((r) => r.text)
  }
}
