// Calls, events and flow-controlled data channels over frames. The same class
// serves both ends; it knows nothing about the transport but a write function.
// `close(error)` rejects every pending call with that error, so a caller sees
// why the link died (a guest panic) rather than a bare "closed".

import { CHANNEL_WINDOW_BYTES, type Message, WireErrorCode } from './methods.js'
import { DATA_CHUNK_BYTES, encodeDataHeader, encodeJson, FRAME_DATA, FrameDecoder, type FrameWriter, ProtocolError } from './framing.js'

export class RpcError extends Error {
  readonly code: string
  readonly errno?: string
  constructor(code: string, message: string, errno?: string) {
    super(message)
    this.name = 'RpcError'
    this.code = code
    this.errno = errno
  }
}

export interface ChannelSink {
  data(chunk: Buffer): void
  end(error?: Error): void
}

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
  timer?: ReturnType<typeof setTimeout>
}

/** Bytes a sender may still send on a channel, and who waits for more. */
interface Credit {
  bytes: number
  waiters: Array<() => void>
}

type Handler = (params: any) => unknown
type EventHandler = (params: any) => void

export class Peer {
  private readonly decoder = new FrameDecoder()
  private readonly pending = new Map<number, Pending>()
  private readonly handlers = new Map<string, Handler>()
  private readonly eventHandlers = new Map<string, EventHandler[]>()
  private readonly sinks = new Map<number, ChannelSink>()
  private readonly credits = new Map<number, Credit>()
  private nextCallId: number
  private closedWith: Error | undefined
  private readonly closeListeners: Array<(error: Error) => void> = []

  /** `firstCallId`: where this end numbers its calls. Two ends that take turns
   * on one link (a relay's client, then the relay itself) use disjoint ranges,
   * so a late answer to one is never taken for an answer to the other. */
  constructor(
    private readonly write: FrameWriter,
    options: { firstCallId?: number } = {},
  ) {
    this.nextCallId = options.firstCallId ?? 1
    this.on('channel.ack', ({ channel, bytes }: { channel: number; bytes: number }) => {
      const credit = this.credits.get(channel)
      if (!credit) return
      credit.bytes += bytes
      wakeAll(credit)
    })
    this.on('channel.cancel', ({ channel }: { channel: number }) => {
      // Remembered even before our first send on it, so that send stops at once.
      const credit = this.credits.get(channel) ?? { bytes: 0, waiters: [] }
      credit.bytes = Number.NEGATIVE_INFINITY
      this.credits.set(channel, credit)
      wakeAll(credit)
    })
  }

  get closed(): Error | undefined {
    return this.closedWith
  }

  /** Feed bytes read from the transport. */
  receive(chunk: Buffer): void {
    if (this.closedWith) return
    let frames
    try {
      frames = this.decoder.push(chunk)
    } catch (error) {
      this.close(error as Error)
      return
    }
    for (const frame of frames) {
      if (frame.kind === FRAME_DATA) this.onData(frame.channel, frame.data)
      else this.onMessage(frame.message)
      if (this.closedWith) return
    }
  }

  call<R = unknown>(method: string, params: unknown, options: { timeoutMs?: number } = {}): Promise<R> {
    if (this.closedWith) return Promise.reject(this.closedWith)
    const id = this.nextCallId++
    return new Promise<R>((resolve, reject) => {
      const pending: Pending = { resolve: resolve as (v: unknown) => void, reject }
      if (options.timeoutMs !== undefined) {
        pending.timer = setTimeout(() => {
          this.pending.delete(id)
          reject(new RpcError(WireErrorCode.Timeout, `${method} got no answer within ${options.timeoutMs} ms`))
        }, options.timeoutMs)
      }
      this.pending.set(id, pending)
      this.send({ t: 'call', id, method, params })
    })
  }

  handle(method: string, handler: Handler): void {
    this.handlers.set(method, handler)
  }

  on(name: string, handler: EventHandler): void {
    const list = this.eventHandlers.get(name) ?? []
    list.push(handler)
    this.eventHandlers.set(name, list)
  }

  emit(name: string, params: unknown): void {
    if (!this.closedWith) this.send({ t: 'event', name, params })
  }

  onClose(listener: (error: Error) => void): void {
    if (this.closedWith) listener(this.closedWith)
    else this.closeListeners.push(listener)
  }

  /** Route data frames of `channel` to `sink`; the sink must `ack` what it consumed. */
  receiveChannel(channel: number, sink: ChannelSink): void {
    this.sinks.set(channel, sink)
  }

  /** Grant the sender `bytes` more of `channel`. */
  ack(channel: number, bytes: number): void {
    if (bytes > 0) this.emit('channel.ack', { channel, bytes })
  }

  /** Stop receiving `channel` and ask the sender to stop sending it. */
  cancelChannel(channel: number): void {
    if (this.sinks.delete(channel)) this.emit('channel.cancel', { channel })
  }

  /** Send `chunk` on `channel`, waiting for window first. Resolves false if the
   * receiver cancelled the channel. An empty chunk ends the channel. With
   * window for all of `chunk` (windowOf), it is written before this returns. */
  async sendData(channel: number, chunk: Buffer): Promise<boolean> {
    if (this.closedWith) throw this.closedWith
    const credit = this.credits.get(channel) ?? { bytes: CHANNEL_WINDOW_BYTES, waiters: [] }
    if (chunk.length === 0) {
      this.credits.delete(channel)
      if (credit.bytes === Number.NEGATIVE_INFINITY) return false
      this.write(encodeDataHeader(channel, 0))
      return true
    }
    this.credits.set(channel, credit)
    for (let offset = 0; offset < chunk.length; ) {
      while (credit.bytes <= 0) {
        if (credit.bytes === Number.NEGATIVE_INFINITY) return false
        await new Promise<void>((wake) => credit.waiters.push(wake))
        if (this.closedWith) throw this.closedWith
      }
      const piece = chunk.subarray(offset, offset + Math.min(DATA_CHUNK_BYTES, credit.bytes))
      credit.bytes -= piece.length
      offset += piece.length
      this.write(encodeDataHeader(channel, piece.length), piece)
    }
    return true
  }

  /** Whether `channel` may send now without waiting (for producers that pause and resume). */
  windowOf(channel: number): number {
    return this.credits.get(channel)?.bytes ?? CHANNEL_WINDOW_BYTES
  }

  close(error: Error): void {
    if (this.closedWith) return
    this.closedWith = error
    for (const [id, pending] of this.pending) {
      if (pending.timer) clearTimeout(pending.timer)
      pending.reject(error)
      this.pending.delete(id)
    }
    for (const [channel, sink] of this.sinks) {
      this.sinks.delete(channel)
      sink.end(error)
    }
    for (const credit of this.credits.values()) wakeAll(credit)
    for (const listener of this.closeListeners.splice(0)) listener(error)
  }

  private send(message: Message): void {
    this.write(encodeJson(message))
  }

  private onData(channel: number, data: Buffer): void {
    const sink = this.sinks.get(channel)
    if (!sink) return // cancelled, or already ended: the sender is told through channel.cancel
    if (data.length === 0) {
      this.sinks.delete(channel)
      sink.end()
    } else {
      sink.data(data)
    }
  }

  private onMessage(raw: unknown): void {
    const message = raw as Message
    switch (message?.t) {
      case 'call':
        this.dispatch(message.id, message.method, message.params)
        return
      case 'result':
      case 'error': {
        const pending = this.pending.get(message.id)
        if (!pending) return // timed out already
        this.pending.delete(message.id)
        if (pending.timer) clearTimeout(pending.timer)
        if (message.t === 'result') pending.resolve(message.value)
        else pending.reject(new RpcError(message.error.code, message.error.message, message.error.errno))
        return
      }
      case 'event':
        for (const handler of this.eventHandlers.get(message.name) ?? []) handler(message.params)
        return
      default:
        this.close(new ProtocolError(`unexpected message ${JSON.stringify(raw).slice(0, 200)}`))
    }
  }

  private dispatch(id: number, method: string, params: unknown): void {
    const handler = this.handlers.get(method)
    if (!handler) {
      this.send({ t: 'error', id, error: { code: WireErrorCode.UnknownMethod, message: `unknown method ${method}` } })
      return
    }
    // Run the handler now, not in a microtask: it may register a channel whose
    // data frames follow in the same chunk.
    let outcome: unknown
    try {
      outcome = handler(params)
    } catch (error) {
      outcome = Promise.reject(error)
    }
    Promise.resolve(outcome).then(
        (value) => !this.closedWith && this.send({ t: 'result', id, value: value ?? {} }),
        (error: NodeJS.ErrnoException) =>
          !this.closedWith &&
          this.send({ t: 'error', id, error: { code: WireErrorCode.Remote, message: String(error?.message ?? error), errno: error?.code } }),
      )
  }
}

function wakeAll(credit: Credit): void {
  for (const wake of credit.waiters.splice(0)) wake()
}
