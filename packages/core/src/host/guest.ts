// The host-side `guest`: commands, streams, files and the kernel log of one
// running guest, all over the agent bridge.

import { Readable, Writable } from 'node:stream'
import { CHANNEL_WINDOW_BYTES, type AgentHello, type ExecExit, type KmsgRecord } from '../protocol/methods.js'
import type { Peer } from '../protocol/rpc.js'
import { VmtestError, isVmtestError } from './errors.js'
import { failureMessage, templateToCommand } from './command.js'
import { KernelLog } from './console/kernel-log.js'

/** After a timeout's SIGTERM, how long the command's process group has before SIGKILL (execa waits 5 s; commands in a test guest get less). */
const KILL_GRACE_MS = 2000
/** Output is acknowledged once this much is unacknowledged: the sender's window never runs dry for it. */
const ACK_BATCH_BYTES = CHANNEL_WINDOW_BYTES / 8
/** Control calls (files, log sync) that get no answer in this long mean the agent is wedged. */
const CONTROL_CALL_TIMEOUT_MS = 60_000

export interface ExecOptions {
  /** Working directory in the guest. Default: the host's cwd, which exists in the guest. */
  cwd?: string
  /** Merged over the guest's default environment. */
  env?: Record<string, string | undefined>
  /** Bytes for stdin. Without it stdin is /dev/null (exec) or a pipe (spawn). */
  input?: string | Uint8Array
  /** Milliseconds before the command's process group is killed. */
  timeout?: number
  /** Aborting kills the command in the guest. */
  signal?: AbortSignal
  /** Reject on a non-zero exit, a signal or a timeout (default true). */
  reject?: boolean
  /** 'buffer' gives stdout/stderr as Buffers. */
  encoding?: 'utf8' | 'buffer'
  /** Each chunk of output as it arrives (exec; spawn has the streams). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void
}

export interface ExecResult<T extends string | Buffer = string> {
  command: string
  stdout: T
  stderr: T
  exitCode: number | null
  signal: string | null
  timedOut: boolean
  /** Set when options.signal aborted it. */
  isCanceled: boolean
  durationMs: number
  /** Kernel log records printed while the command ran. */
  kernelLog: KmsgRecord[]
}

export interface GuestInfo {
  /** The kernel as the user named it, absolute, symlinks not resolved (for an image target: the image). */
  kernel: string
  /** The disk image an image target booted. */
  image?: string
  release: string
  arch: string
  accel: 'kvm' | 'tcg'
  /** Why KVM was not used, when it was wanted. */
  accelReason?: string
  /** Milliseconds from bootGuest() to the agent's hello. */
  bootMs: number
  bootId: string
  /** The QEMU process on the host. */
  qemuPid: number
  /** QEMU's command line, the binary first. */
  qemuCommand: string[]
  /** The file the guest's whole serial console goes to while QEMU runs. */
  consoleLog: string
}

/** What Guest needs from boot: the live link and its lifecycle. */
export interface GuestLink {
  peer: Peer
  log: KernelLog
  info: GuestInfo
  cwd: string
  /** Commands now running by id, named in a crash message. */
  running: Map<number, string>
  shutdown(): Promise<void>
  /** Ends the lease and waits for the next agent's hello. */
  renewLease(): Promise<AgentHello>
}

const DEFAULT_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'linux',
}

export class Guest {
  readonly info: GuestInfo
  private nextId = 1
  private closing?: Promise<void>

  constructor(private readonly link: GuestLink) {
    this.info = link.info
  }

  /** Runs `command` with /bin/sh -c in the guest and collects its output. */
  exec(command: string, options?: ExecOptions & { encoding?: 'utf8' }): Promise<ExecResult<string>>
  exec(command: string, options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult<string | Buffer>> {
    const process = this.start(command, { ...options, reject: false }, options.input !== undefined)
    const out: Buffer[] = []
    const err: Buffer[] = []
    process.stdout.on('data', (c: Buffer) => (out.push(c), options.onOutput?.('stdout', c)))
    process.stderr.on('data', (c: Buffer) => (err.push(c), options.onOutput?.('stderr', c)))
    const result = await process
    const decode = (chunks: Buffer[]) => (options.encoding === 'buffer' ? Buffer.concat(chunks) : Buffer.concat(chunks).toString('utf8'))
    const full = { ...result, stdout: decode(out), stderr: decode(err) }
    if (options.reject !== false) throwIfFailed(full, options.timeout)
    return full
  }

  /** execa-style template: each interpolated value is one escaped argument. */
  get $(): (strings: TemplateStringsArray, ...values: unknown[]) => Promise<ExecResult<string>> {
    return (strings, ...values) => this.exec(templateToCommand(strings, values))
  }

  /** Streaming form: stdout/stderr Readables, stdin Writable, kill(), awaitable for the exit. */
  spawn(command: string, options: ExecOptions = {}): GuestProcess {
    return this.start(command, options, true)
  }

  /** `withStdin`: a pipe the host writes (spawn, or exec with input); otherwise /dev/null. */
  private start(command: string, options: ExecOptions, withStdin: boolean): GuestProcess {
    const { peer, log, running } = this.link
    const id = this.nextId++
    const base = id * 4
    const stdout = channelReadable(peer, base + 1)
    const stderr = channelReadable(peer, base + 2)
    const stdin = new Writable({
      write: (chunk: Buffer, _enc, done) => void peer.sendData(base, chunk).then(() => done(), done),
      final: (done) => void peer.sendData(base, Buffer.alloc(0)).then(() => done(), done),
    })
    stdin.on('error', () => {}) // writes after the command or the guest ended; the result says why
    const mark = log.mark()
    const started = Date.now()
    let aborted = false
    const kill = (signal = 'SIGTERM') => void peer.call('exec.signal', { id, signal }).catch(() => {})
    const onAbort = () => {
      aborted = true
      kill('SIGKILL')
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    running.set(id, command)
    const exit = peer.call<ExecExit>('exec.start', {
      id,
      command,
      cwd: options.cwd ?? this.link.cwd,
      env: mergeEnv(options.env),
      stdin: withStdin,
      timeoutMs: options.timeout,
      killGraceMs: KILL_GRACE_MS,
    })
    if (options.input !== undefined) stdin.end(Buffer.from(options.input))
    if (options.signal?.aborted) onAbort()
    // A command that never started sends no end markers: end its streams here,
    // or a reader waiting on them would wait for ever.
    exit.catch(() => {
      for (const channel of [base + 1, base + 2]) peer.cancelChannel(channel)
      stdout.push(null)
      stderr.push(null)
    })
    const result = exit.then(
      (status): ExecResult<string> => ({
        command,
        stdout: '',
        stderr: '',
        ...status,
        isCanceled: aborted,
        durationMs: Date.now() - started,
        kernelLog: log.since(mark),
      }),
      (error: Error) => {
        if (isVmtestError(error)) throw error
        // /tmp and /run are the guest's own tmpfs: a host dir there exists in the guest only as the shared dir.
        const hint = /working directory \/(tmp|run)\//.test(error.message) ? ' (/tmp and /run are the guest\'s own; share the dir with `shared` or pick another `cwd`)' : ''
        throw new VmtestError('VMTEST_REMOTE', 'command', `Cannot run \`${command}\` in the guest: ${error.message}${hint}`, { cause: error })
      },
    )
    void result
      .finally(() => {
        running.delete(id)
        options.signal?.removeEventListener('abort', onAbort)
      })
      .catch(() => {}) // the caller gets the error from `settled`
    // exec collects the output and decides; a bare spawn rejects like exec would.
    const settled = options.reject === false ? result : result.then((r) => (throwIfFailed(r, options.timeout), r))
    return new GuestProcess(stdin, stdout, stderr, kill, settled)
  }

  async readFile(path: string): Promise<Buffer> {
    const channel = this.nextId++ * 4 + 1
    const stream = channelReadable(this.link.peer, channel)
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    const ended = new Promise((resolve) => stream.on('end', resolve))
    try {
      await this.control('file.read', { path, channel }, `read ${path}`)
    } catch (error) {
      this.link.peer.cancelChannel(channel)
      throw error
    }
    await ended
    return Buffer.concat(chunks)
  }

  async writeFile(path: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
    const channel = this.nextId++ * 4 + 1
    const { peer } = this.link
    const done = this.control('file.write', { path, channel, mode: options.mode }, `write ${path}`)
    const send = (async () => {
      const bytes = Buffer.from(data)
      if (bytes.length > 0 && !(await peer.sendData(channel, bytes))) return
      await peer.sendData(channel, Buffer.alloc(0))
    })()
    await done
    await send.catch(() => {})
  }

  /** True once the guest is closed or dead: no call on it can succeed. */
  get closed(): boolean {
    return this.link.peer.closed !== undefined
  }

  /** Why the guest is closed (a panic, QEMU's exit, close()); undefined while it runs. */
  get closeReason(): Error | undefined {
    return this.link.peer.closed
  }

  /** Kernel log lines since `mark` (default: since boot). */
  kernelLog(mark?: number): string[] {
    return this.link.log.linesSince(mark)
  }

  /** Kernel log records (level, seq, time) since `mark`. */
  kernelRecords(mark?: number): KmsgRecord[] {
    return this.link.log.since(mark)
  }

  /** A position in the kernel log, for kernelLog(mark). */
  markKernelLog(): number {
    return this.link.log.mark()
  }

  /** Brings the host's copy of the kernel log up to date; resolves with the taint mask.
   * `reap`: first kill the processes started since markProcesses(), and name them. */
  async syncKernelLog(options: { reap?: boolean } = {}): Promise<{ tainted: number; reaped?: string[] }> {
    return this.control('kernel.sync', options.reap ? { reap: true } : {}, 'read the kernel log')
  }

  /** Records the guest's processes now, for syncKernelLog({ reap }). Not awaited: the
   * agent handles calls in order, so it is done before any command sent after it. */
  markProcesses(): void {
    this.control('processes.mark', {}, 'record the running processes').catch(() => {})
  }

  /**
   * Starts a fresh lease without a reboot: every process earlier commands left
   * running is killed, and the next commands see a fresh root layer (overlay
   * mode: host files as after boot), /tmp and /run. Kernel-wide state (loaded
   * modules, sysctls, taint, the kernel log) stays. Resolves with how long it took.
   */
  async renewLease(): Promise<{ ms: number }> {
    const started = Date.now()
    await this.link.renewLease()
    return { ms: Date.now() - started }
  }

  /** Powers the guest off (then kills QEMU after a bounded wait) and removes its files. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.link.shutdown()
    return this.closing
  }

  private async control<R>(method: string, params: unknown, what: string): Promise<R> {
    try {
      return await this.link.peer.call<R>(method, params, { timeoutMs: CONTROL_CALL_TIMEOUT_MS })
    } catch (error) {
      if (isVmtestError(error)) throw error
      throw new VmtestError('VMTEST_REMOTE', 'command', `Cannot ${what} in the guest: ${(error as Error).message}`, { cause: error })
    }
  }
}

export class GuestProcess implements PromiseLike<ExecResult<string>> {
  constructor(
    readonly stdin: Writable,
    readonly stdout: Readable,
    readonly stderr: Readable,
    /** Sends `signal` (default SIGTERM) to the command's process group in the guest. */
    readonly kill: (signal?: string) => void,
    private readonly result: Promise<ExecResult<string>>,
  ) {}

  then<A = ExecResult<string>, B = never>(
    onResolved?: ((value: ExecResult<string>) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    // Awaiting without reading the output must not stall the command on a full window.
    for (const stream of [this.stdout, this.stderr]) if (stream.listenerCount('data') === 0 && !stream.readableFlowing) stream.resume()
    return this.result.then(onResolved, onRejected)
  }
}

/** A Readable fed by a channel; bytes are acknowledged as the consumer takes
 * them (backpressure): in batches, since each ack is a message the guest must
 * decode, and not while the consumer holds back, then all at once when it reads again. */
function channelReadable(peer: Peer, channel: number): Readable {
  let unacked = 0
  let held = false
  const ackNow = () => {
    peer.ack(channel, unacked)
    unacked = 0
  }
  const stream = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (held) ackNow()
      held = false
    },
    destroy(error, done) {
      peer.cancelChannel(channel)
      done(error)
    },
  })
  peer.receiveChannel(channel, {
    data(chunk) {
      unacked += chunk.length
      if (!stream.push(chunk)) held = true
      else if (!held && unacked >= ACK_BATCH_BYTES) ackNow()
    },
    // On a broken link the stream just ends: the command's result carries the
    // error, and an 'error' event nobody listens to would crash the host.
    end: () => stream.push(null),
  })
  return stream
}

function mergeEnv(env: Record<string, string | undefined> = {}): Record<string, string> {
  const merged: Record<string, string> = { ...DEFAULT_ENV }
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete merged[key]
    else merged[key] = value
  }
  return merged
}

function throwIfFailed(result: ExecResult<string | Buffer>, timeoutMs: number | undefined): void {
  if (result.exitCode === 0 && !result.signal && !result.timedOut) return
  const text = (v: string | Buffer) => (typeof v === 'string' ? v : v.toString('utf8'))
  const message = failureMessage({
    ...result,
    timeoutMs,
    aborted: result.isCanceled,
    stdout: text(result.stdout),
    stderr: text(result.stderr),
  })
  throw Object.assign(new VmtestError('VMTEST_COMMAND_FAILED', 'command', message), result)
}
