// A qemu-guest-agent client: QGA's JSON commands over the host's end of the
// guest's org.qemu.guest_agent.0 port. QGA answers in order and carries no
// ids, so one command is in flight at a time. guest-sync-delimited finds where
// the answers start: QGA prefixes its answer with 0xFF, past anything stale
// in the channel (syncs sent while the guest was still booting).

import type { Socket } from 'node:net'

export const QGA_PORT_NAME = 'org.qemu.guest_agent.0'

/** QGA answers a command in milliseconds; a longer silence is a wedged agent. */
const COMMAND_TIMEOUT_MS = 30_000
const SYNC_MARKER = 0xff

export class QgaError extends Error {
  constructor(
    readonly qgaClass: string,
    message: string,
  ) {
    super(message)
    this.name = 'QgaError'
  }
}

export class Qga {
  private buffer = Buffer.alloc(0)
  private chain: Promise<unknown> = Promise.resolve()
  private pending?: { resolve(value: unknown): void; reject(error: Error): void }
  /** The id of the newest sync sent; only its answer counts (answers come in order, so none stale follows it). */
  private syncId?: number
  private onSynced?: () => void
  private syncFailed?: (error: Error) => void
  private closedWith?: Error

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk))
    socket.on('error', () => {})
    socket.on('close', () => this.fail(new QgaError('Closed', 'the qemu-guest-agent channel closed')))
  }

  /** Resolves once the agent answers a sync, resending one every `everyMs` until then. */
  sync(everyMs = 1000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith)
      const send = () => {
        this.syncId = Math.floor(Math.random() * 2 ** 31)
        this.socket.write(Buffer.concat([Buffer.from([SYNC_MARKER]), Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id: this.syncId } })}\n`)]))
      }
      const timer = setInterval(send, everyMs)
      const done = () => {
        clearInterval(timer)
        this.onSynced = this.syncFailed = undefined
      }
      this.onSynced = () => (done(), resolve())
      this.syncFailed = (error) => (done(), reject(error))
      send()
    })
  }

  /** Runs one QGA command and resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> {
    const run = () =>
      new Promise<T>((resolve, reject) => {
        if (this.closedWith) return reject(this.closedWith)
        const timer = setTimeout(() => {
          // A late answer would be taken for the next command's: sync again before that one.
          this.pending = undefined
          reject(new QgaError('Timeout', `qemu-guest-agent did not answer ${command} within ${timeoutMs} ms`))
          this.chain = this.chain.then(() => this.sync())
        }, timeoutMs)
        this.pending = {
          resolve: (value) => (clearTimeout(timer), resolve(value as T)),
          reject: (error) => (clearTimeout(timer), reject(error)),
        }
        this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`)
      })
    const result = this.chain.then(run, run)
    this.chain = result.catch(() => {})
    return result
  }

  close(): void {
    this.socket.destroy()
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
    for (;;) {
      if (this.onSynced) {
        // Until synced, only an answer right after the marker counts.
        const marker = this.buffer.indexOf(SYNC_MARKER)
        if (marker < 0) return void (this.buffer = Buffer.alloc(0))
        const end = this.buffer.indexOf(0x0a, marker)
        if (end < 0) return void (this.buffer = this.buffer.subarray(marker))
        const line = this.buffer.subarray(marker + 1, end).toString()
        this.buffer = this.buffer.subarray(end + 1)
        if (parse(line)?.return === this.syncId) this.onSynced()
        continue
      }
      const end = this.buffer.indexOf(0x0a)
      if (end < 0) return
      // A marker here starts the answer to a sync, not to the pending command: skipped.
      const stale = this.buffer[0] === SYNC_MARKER
      const line = this.buffer.subarray(0, end).toString().trim()
      this.buffer = this.buffer.subarray(end + 1)
      if (!line || stale) continue
      const answer = parse(line)
      const pending = this.pending
      this.pending = undefined
      if (!pending || !answer) continue
      if (answer.error) pending.reject(new QgaError(answer.error.class, answer.error.desc))
      else pending.resolve(answer.return)
    }
  }

  private fail(error: Error): void {
    this.closedWith ??= error
    this.syncFailed?.(error)
    this.pending?.reject(error)
    this.pending = undefined
  }
}

function parse(line: string): { return?: unknown; error?: { class: string; desc: string } } | undefined {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}
