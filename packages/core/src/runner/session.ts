// One test file's use of a guest, runner-agnostic: lease it on first use (or
// up front), give each test its kernel log window and verdict, lease a fresh
// guest after a crash, and give the guest back when the file is done.

import { rmSync } from 'node:fs'
import { leaseGuest, type RemoteLease } from '../host/broker/client.js'
import type { Guest } from '../host/guest.js'
import type { GuestOptions } from '../host/options.js'
import type { RunnerOptions } from '../config/merge.js'
import { kernelLogNote, kernelVerdict } from './kernel-report.js'
import { displayPath, writeFailureLog } from './failure-log.js'
import { appendLine, withoutStack } from '../host/errors.js'

export interface SessionOptions {
  file: string
  /** Options for this file, merged from every source; read at the first lease. */
  options: () => { guest: GuestOptions; runner: RunnerOptions }
  /** A line for the user (the run's first boot, boot progress). */
  print: (line: string) => void
}

/** The test now running: its name, where its kernel log window starts, on which lease. */
interface RunningTest {
  name: string
  mark: number
  lease?: RemoteLease
  allowed: RegExp[]
}

export class FileSession {
  private lease?: RemoteLease
  private leasing?: Promise<Guest>
  private resolved?: { guest: GuestOptions; runner: RunnerOptions }
  private test?: RunningTest
  /** Taint after the last check: the next test's "before". */
  private taint?: number
  private closed = false
  /** Failure logs written for this file in this run (two tests of one name get two logs). */
  private readonly logsWritten = new Set<string>()
  private logsCleared = false

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
    const guest = this.current
    guest?.markProcesses()
    this.test = { name, mark: guest?.markKernelLog() ?? 0, lease: this.lease, allowed: [] }
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
   * guest's crash), or, for a test that failed anyway, its kernel log to read.
   * A failed test also gets its failure log written, and a line naming it.
   * `failures` are the runner's errors for the test, quoted in that log. */
  async testFinished(failed: boolean, failures: readonly unknown[] = []): Promise<Error[]> {
    const test = this.test
    this.test = undefined
    const lease = this.lease
    if (!test || !lease || test.lease !== lease) return []
    const errors = await this.judge(test, lease.guest, failed)
    if (!failed && errors.length === 0) return errors
    const path = this.keepFailureLog(test, lease.guest, [...failures, ...errors])
    if (!path) return errors
    const line = `Console log and QEMU command line: ${displayPath(path)}`
    const [first, ...rest] = errors
    return first ? [appendLine(first, line), ...rest] : [failureLogNote(line)]
  }

  /** The failed test's log under resultsDir; undefined when logs are off or it could not be written (said so). */
  private keepFailureLog(test: RunningTest, guest: Guest, failures: readonly unknown[]): string | undefined {
    const dir = this.runner.failureLogDir
    if (!dir) return undefined
    try {
      const log = { dir, file: this.o.file, test: test.name, info: guest.info, failures: failures.map(describeFailure), kernelLog: guest.kernelLog(test.mark), crash: guest.closeReason }
      return writeFailureLog(log, this.logsWritten)
    } catch (error) {
      this.o.print(`vmtest: could not write the failure log of "${test.name}" into ${dir}: ${(error as Error).message}`)
      return undefined
    }
  }

  /** The verdict on one finished test's kernel log window. */
  private async judge(test: RunningTest, guest: Guest, failed: boolean): Promise<Error[]> {
    if (guest.closed) {
      // The crash already failed the command that was running; a test whose
      // commands had all returned learns of it here.
      return failed ? [] : [guest.closeReason!]
    }
    let taintAfter: number | undefined
    try {
      // The test's lease is live, so its processes were marked when it started (or when its guest came up).
      taintAfter = (await guest.syncKernelLog({ reap: true })).tainted
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

  /** The failure logs of this file's last run are stale once it runs again. */
  private clearOldLogs(): void {
    const dir = this.runner.failureLogDir
    if (this.logsCleared || !dir) return
    this.logsCleared = true
    rmSync(dir, { recursive: true, force: true })
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
    this.clearOldLogs()
    this.taint = (await lease.guest.syncKernelLog()).tainted
    // A test that started before the guest existed watches from here.
    if (this.test && !this.test.lease) {
      lease.guest.markProcesses()
      Object.assign(this.test, { lease, mark: lease.guest.markKernelLog() })
    }
    return lease.guest
  }
}

/** One failure as text for the log: an Error's stack (its message when it has none), a runner's [error, asyncError] pair by its first. */
function describeFailure(failure: unknown): string {
  const error = Array.isArray(failure) ? failure[0] : failure
  if (error instanceof Error || (typeof error === 'object' && error !== null && 'message' in error)) {
    const e = error as { stack?: string; message: string }
    return e.stack && e.stack.includes(e.message) ? e.stack : e.message
  }
  return String(error)
}

function failureLogNote(line: string): Error {
  const note = new Error(line)
  note.name = 'VmtestFailureLog'
  return withoutStack(note)
}
