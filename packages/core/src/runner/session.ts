// One test file's use of a guest, runner-agnostic: lease it on first use (or
// up front), give each test its kernel log window and verdict, lease a fresh
// guest after a crash, and give the guest back when the file is done.

import { leaseGuest, type RemoteLease } from '../host/broker/client.js'
import type { Guest } from '../host/guest.js'
import type { GuestOptions } from '../host/options.js'
import type { RunnerOptions } from '../config/merge.js'
import { kernelLogNote, kernelVerdict } from './kernel-report.js'

export interface SessionOptions {
  file: string
  /** Options for this file, merged from every source; read at the first lease. */
  options: () => { guest: GuestOptions; runner: RunnerOptions }
  /** A line for the user (the run's first boot, boot progress). */
  print: (line: string) => void
}

export class FileSession {
  private lease?: RemoteLease
  private leasing?: Promise<Guest>
  private resolved?: { guest: GuestOptions; runner: RunnerOptions }
  private test?: { name: string; mark: number; lease?: RemoteLease; allowed: RegExp[] }
  /** Taint after the last check: the next test's "before". */
  private taint?: number
  private closed = false

  constructor(private readonly o: SessionOptions) {}

  get file(): string {
    return this.o.file
  }

  get runner(): RunnerOptions {
    return this.settings().runner
  }

  /** The live guest, leasing one if needed (also after the last one crashed). */
  async guest(): Promise<Guest> {
    if (this.closed) throw new Error(`vmtest: the guest of ${this.o.file} was used after the file finished (a command left running?).`)
    const current = this.lease?.guest
    if (current && !current.closed) return current
    this.leasing ??= this.leaseNew().finally(() => (this.leasing = undefined))
    return this.leasing
  }

  /** The file's guest died (a panic, QEMU's exit): the next use leases a fresh one. */
  get crashed(): boolean {
    return this.lease?.guest.closed === true
  }

  /** The live guest if one is leased now. */
  get current(): Guest | undefined {
    const guest = this.lease?.guest
    return guest && !guest.closed ? guest : undefined
  }

  /** A test begins: its kernel log window opens here. */
  testStarted(name: string): void {
    this.test = { name, mark: this.current?.markKernelLog() ?? 0, lease: this.lease, allowed: [] }
  }

  get testName(): string | undefined {
    return this.test?.name
  }

  /** Kernel log lines since the current test started. */
  kernelLog(): string[] {
    const guest = this.lease?.guest
    if (!guest || !this.test || this.test.lease !== this.lease) return []
    return guest.kernelLog(this.test.mark)
  }

  allowKernelLog(pattern: RegExp | string): void {
    const regex = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern
    this.test?.allowed.push(regex)
  }

  /** The current test ended: the errors that fail it (a splat, a taint, the
   * guest's crash), or, for a test that failed anyway, its kernel log to read. */
  async testFinished(failed: boolean): Promise<Error[]> {
    const test = this.test
    this.test = undefined
    const lease = this.lease
    if (!test || !lease || test.lease !== lease) return []
    const { guest } = lease
    if (guest.closed) {
      // The crash already failed the command that was running; a test whose
      // commands had all returned learns of it here.
      return failed ? [] : [guest.closeReason!]
    }
    let taintAfter: number | undefined
    try {
      taintAfter = (await guest.syncKernelLog()).tainted
    } catch (error) {
      return guest.closed && failed ? [] : [error as Error]
    }
    const lines = guest.kernelLog(test.mark)
    const verdict = kernelVerdict({
      lines,
      taintBefore: this.taint,
      taintAfter,
      release: guest.info.release,
      failOn: this.runner.failOnKernel,
      allowed: test.allowed,
    })
    this.taint = taintAfter
    if (verdict) return [verdict]
    const note = failed ? kernelLogNote(lines) : undefined
    return note ? [note] : []
  }

  /** Gives the guest back; safe twice. */
  async close(): Promise<void> {
    this.closed = true
    await this.leasing?.catch(() => {})
    const lease = this.lease
    this.lease = undefined
    await lease?.release()
  }

  private settings(): { guest: GuestOptions; runner: RunnerOptions } {
    this.resolved ??= this.o.options()
    return this.resolved
  }

  private async leaseNew(): Promise<Guest> {
    const old = this.lease
    this.lease = undefined
    await old?.release() // a dead guest: the broker drops it
    const { guest: options, runner } = this.settings()
    const lease = await leaseGuest({ options, file: this.o.file, isolate: runner.isolate, onProgress: (m) => this.o.print(`vmtest: ${m}`) })
    if (lease.announce) this.o.print(lease.announce)
    if (this.closed) {
      await lease.release()
      throw new Error(`vmtest: ${this.o.file} finished while its guest was booting.`)
    }
    this.lease = lease
    this.taint = (await lease.guest.syncKernelLog()).tainted
    // A test that started before the guest existed watches from here.
    if (this.test && !this.test.lease) Object.assign(this.test, { lease, mark: lease.guest.markKernelLog() })
    return lease.guest
  }
}
