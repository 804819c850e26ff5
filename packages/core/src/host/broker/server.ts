// The guest broker: owns the QEMU guests of one test run and lends each to one
// test file at a time. After the lease call, a worker's connection carries the
// guest agent's own frames, passed through whole; the broker steps aside until
// the worker hangs up, then renews the guest for the next file.

import { createServer, type Server, type Socket } from 'node:net'
import { copyingWriter, encodeJson, FrameSplitter } from '../../protocol/framing.js'
import { Peer } from '../../protocol/rpc.js'
import { relayGuest, type GuestRelay } from '../boot.js'
import { isVmtestError } from '../errors.js'
import { GuestPool, type GuestLease } from '../pool/pool.js'
import { GUEST_EXIT_EVENT, LEASE_METHOD, PROGRESS_EVENT, SHUTDOWN_METHOD, type LeaseParams, type LeaseResult, type WireVmtestError } from './protocol.js'

export interface BrokerOptions {
  maxGuests: number
  /** Called once a client asked for shutdown and every guest is off. */
  onShutdown?: () => void
}

export class Broker {
  readonly pool: GuestPool
  private readonly server: Server
  private readonly announced = new Set<string>()
  private readonly clients = new Set<Socket>()

  constructor(private readonly options: BrokerOptions) {
    this.pool = new GuestPool({ maxGuests: options.maxGuests })
    this.server = createServer((socket) => this.serve(socket))
  }

  listen(socketPath: string): Promise<void> {
    return new Promise((ok, fail) => this.server.once('error', fail).listen(socketPath, ok))
  }

  /** Powers every guest off; `except`: the client that asked, which waits for the answer. */
  async close(except?: Socket): Promise<void> {
    this.server.close()
    for (const socket of this.clients) if (socket !== except) socket.destroy()
    await this.pool.close()
  }

  private serve(socket: Socket): void {
    this.clients.add(socket)
    const splitter = new FrameSplitter()
    const peer = new Peer(copyingWriter(socket))
    let relay: GuestRelay | undefined
    let lease: Promise<GuestLease | undefined> | undefined
    let isolate: LeaseParams['isolate']

    peer.handle(LEASE_METHOD, async (params: LeaseParams): Promise<LeaseResult> => {
      if (lease) return { error: { code: 'VMTEST_PROTOCOL', phase: 'handshake', message: 'This connection already holds a guest.' } }
      isolate = params.isolate
      const pending = this.pool.lease({ ...params.options, onProgress: (message) => peer.emit(PROGRESS_EVENT, { message }) })
      lease = pending.catch(() => undefined)
      let granted: GuestLease
      try {
        granted = await pending
      } catch (error) {
        return { error: toWire(error) }
      }
      if (socket.destroyed) return { error: { code: 'VMTEST_GUEST_CLOSED', phase: 'handshake', message: 'The worker left.' } } // released on close
      // From the next frame on, this connection belongs to the guest's agent.
      const current = relayGuest(granted.guest, (frame) => socket.write(frame))
      relay = current
      void current.closed.then((error) => {
        if (relay !== current) return // the lease ended first
        socket.end(encodeJson({ t: 'event', name: GUEST_EXIT_EVENT, params: toWire(error) }))
      })
      return { info: granted.guest.info, booted: granted.booted, announce: this.announce(granted) }
    })
    peer.handle(SHUTDOWN_METHOD, async () => {
      await this.close(socket)
      setImmediate(() => this.options.onShutdown?.())
      return {}
    })

    socket.on('data', (chunk) => {
      let frames: Buffer[]
      try {
        frames = splitter.push(chunk)
      } catch {
        socket.destroy() // not our protocol
        return
      }
      for (const frame of frames) {
        if (relay) relay.toAgent(frame)
        else peer.receive(frame)
        // A frame that is not a protocol message closed the peer: drop the client.
        if (!relay && peer.closed) return void socket.destroy()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.clients.delete(socket)
      relay?.detach()
      relay = undefined
      peer.close(new Error('client gone'))
      // A half-written frame of the worker dies with its splitter; the guest gets a fresh lease.
      void lease?.then((granted) => granted?.release({ retire: isolate === 'reboot' }))
    })
  }

  /** The first guest of each kernel and accel in this run is named once, with why it is not KVM. */
  private announce({ guest }: GuestLease): string | undefined {
    const { release, accel, accelReason, kernel } = guest.info
    const key = `${kernel}|${accel}`
    if (this.announced.has(key)) return undefined
    this.announced.add(key)
    const why = accelReason ? `: KVM is unusable here (${accelReason}); expect boots and commands 5-10x slower than with KVM` : ''
    return `vmtest: guest kernel ${release} (${kernel}) under ${accel}${why}`
  }
}

function toWire(error: unknown): WireVmtestError {
  if (isVmtestError(error)) return { code: error.code, phase: error.phase, message: error.message }
  return { code: 'VMTEST_GUEST_EXITED', phase: 'boot', message: `The guest broker failed: ${(error as Error)?.stack ?? error}` }
}
