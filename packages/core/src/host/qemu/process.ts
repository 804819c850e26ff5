// One QEMU process: spawned so it cannot outlive us, its serial console read
// line by line, stopped with SIGTERM then SIGKILL on named timeouts.

import { createWriteStream, type WriteStream } from 'node:fs'
import { execa, type ResultPromise } from 'execa'
import { findExecutable } from './binary.js'

/** After SIGTERM, how long QEMU gets to exit before SIGKILL. QEMU exits on
 * SIGTERM in milliseconds unless wedged; 2 s bounds a wedged one. */
export const QEMU_KILL_GRACE_MS = 2000

/** Console lines kept in memory for error messages. */
const CONSOLE_TAIL_LINES = 200
/** QEMU's own stderr kept for error messages. */
const STDERR_LIMIT_BYTES = 16 * 1024

export interface QemuExit {
  exitCode?: number
  signal?: string
  stderr: string
}

export class QemuProcess {
  readonly pid: number | undefined
  readonly exited: Promise<QemuExit>
  readonly consoleTail: string[] = []
  private readonly child: ResultPromise
  private readonly lineListeners: Array<(line: string) => void> = []
  private stderr = ''
  private partial = ''
  private readonly log: WriteStream
  private hasExited = false

  /** The whole console is written to `consoleLog`. */
  constructor(binary: string, args: readonly string[], readonly consoleLog: string) {
    // setpriv --pdeathsig: the kernel kills QEMU if we die, even by SIGKILL,
    // where no exit handler of ours can run.
    const setpriv = findExecutable('setpriv')
    const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', binary, ...args]] : [binary, [...args]]
    this.child = execa(file, argv, {
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true, // killed on our exit, SIGINT or SIGTERM
      forceKillAfterDelay: QEMU_KILL_GRACE_MS,
    })
    this.pid = this.child.pid
    this.log = createWriteStream(consoleLog)
    this.child.stdout!.on('data', (chunk: Buffer) => this.onConsole(chunk))
    this.child.stderr!.on('data', (chunk: Buffer) => {
      if (this.stderr.length < STDERR_LIMIT_BYTES) this.stderr += chunk.toString('utf8')
    })
    this.exited = this.child.then(async (result) => {
      this.hasExited = true
      if (this.partial) this.emitLine(this.partial)
      this.partial = ''
      await new Promise((resolve) => this.log.end(resolve)) // the file is complete once exited resolves
      return { exitCode: result.exitCode, signal: result.signal, stderr: this.stderr.trim() }
    })
  }

  get running(): boolean {
    return !this.hasExited
  }

  onLine(listener: (line: string) => void): void {
    this.lineListeners.push(listener)
  }

  /** SIGTERM now, SIGKILL after QEMU_KILL_GRACE_MS; resolves once it is gone. */
  async kill(): Promise<QemuExit> {
    if (!this.hasExited) this.child.kill('SIGTERM')
    return this.exited
  }

  /** Waits up to `ms` for QEMU to exit by itself, then kills it. */
  async stop(ms: number): Promise<QemuExit> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))
    const first = await Promise.race([this.exited, timedOut])
    clearTimeout(timer)
    return first === 'timeout' ? this.kill() : first
  }

  private onConsole(chunk: Buffer): void {
    this.log.write(chunk)
    const text = this.partial + chunk.toString('utf8')
    const lines = text.split('\n')
    this.partial = lines.pop() ?? ''
    for (const line of lines) this.emitLine(line)
  }

  private emitLine(raw: string): void {
    const line = raw.replace(/\r$/, '')
    this.consoleTail.push(line)
    if (this.consoleTail.length > CONSOLE_TAIL_LINES) this.consoleTail.shift()
    for (const listener of this.lineListeners) listener(line)
  }
}
