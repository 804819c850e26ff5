// A test worker's side of the broker: find (or start) the run's broker, lease a
// guest for one test file, and drive it with the ordinary Guest client over
// the same connection, which the broker passes through to the guest's agent.

import { spawn } from 'node:child_process'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { KmsgRecord } from '../../protocol/methods.js'
import { Peer } from '../../protocol/rpc.js'
import { copyingWriter } from '../../protocol/framing.js'
import { KernelLog } from '../console/kernel-log.js'
import { VmtestError, withoutStack, type VmtestErrorCode, type VmtestPhase } from '../errors.js'
import { Guest, type GuestInfo } from '../guest.js'
import { resolveOptions, type GuestOptions } from '../options.js'
import { anchorPid, brokerDir, brokerSocket, connectIfListening } from './location.js'
import { GUEST_EXIT_EVENT, LEASE_METHOD, PROGRESS_EVENT, SHUTDOWN_METHOD, type LeaseParams, type LeaseResult, type WireVmtestError } from './protocol.js'

/** A broker we started must listen within this long (it is a plain Node start). */
const BROKER_START_TIMEOUT_MS = 15_000
const CONNECT_RETRY_MS = 50

export interface LeaseRequest {
  options: GuestOptions
  file?: string
  isolate?: 'lease' | 'reboot'
  /** Boot progress, one line at a time. */
  onProgress?: (message: string) => void
}

export interface RemoteLease {
  guest: Guest
  /** True when this lease booted the guest. */
  booted: boolean
  /** A line to show the user the first time a kernel comes up in this run. */
  announce?: string
  /** Gives the guest back (the broker renews or, with isolate 'reboot', powers it off). Safe twice. */
  release(): Promise<void>
}

/** Leases a guest from this run's broker, starting the broker if none runs yet. */
export async function leaseGuest(request: LeaseRequest): Promise<RemoteLease> {
  const socket = await connectBroker()
  const log = new KernelLog()
  const { peer, gone } = peerOn(socket, () => new VmtestError('VMTEST_GUEST_CLOSED', 'command', 'The connection to the vmtest guest broker closed: the test run is ending, or the broker died.'))
  peer.on('kmsg', ({ records }: { records: KmsgRecord[] }) => log.add(records))
  peer.on(PROGRESS_EVENT, ({ message }: { message: string }) => request.onProgress?.(message))
  // The broker saw the guest die; only we know which commands were running.
  const running = new Map<number, string>()
  peer.on(GUEST_EXIT_EVENT, (error: WireVmtestError) => peer.close(fromWire(withRunning(error, running))))

  const { onProgress: _onProgress, ...options } = request.options
  const params: LeaseParams = { options: { ...options, cwd: options.cwd ?? process.cwd() }, file: request.file, isolate: request.isolate }
  let result: LeaseResult
  try {
    result = await peer.call<LeaseResult>(LEASE_METHOD, params)
  } catch (error) {
    socket.destroy()
    throw error
  }
  if ('error' in result) {
    socket.destroy()
    throw fromWire(result.error)
  }
  const release = async () => {
    socket.end()
    await gone
  }
  const guest = new Guest({
    peer,
    log,
    info: result.info as GuestInfo,
    // The guest's own name for the worker's cwd (an image sees the project at /mnt/vmtest).
    cwd: resolveOptions(params.options).cwd,
    running,
    shutdown: release,
    renewLease: () => Promise.reject(new VmtestError('VMTEST_OPTION_INVALID', 'command', 'renewLease() is done by the broker between test files; a leased guest cannot renew itself.')),
  })
  return { guest, booted: result.booted, announce: result.announce, release: () => guest.close() }
}

/** Asks this run's broker, if one runs, to power its guests off and exit; resolves when it did. */
export async function stopBroker(anchor = anchorPid()): Promise<void> {
  const socket = await connectIfListening(brokerSocket(brokerDir(anchor)))
  if (!socket) return
  const { peer, gone } = peerOn(socket, () => new Error('the broker hung up'))
  await peer.call(SHUTDOWN_METHOD, {}).catch(() => {})
  socket.destroy()
  await gone
}

/** A Peer over `socket`; `gone` settles once the socket closed, after the Peer was closed with `reason()`. */
function peerOn(socket: Socket, reason: () => Error): { peer: Peer; gone: Promise<void> } {
  const peer = new Peer(copyingWriter(socket))
  socket.on('data', (chunk) => peer.receive(chunk))
  socket.on('error', () => {})
  const gone = new Promise<void>((resolve) =>
    socket.on('close', () => {
      peer.close(reason())
      resolve()
    }),
  )
  return { peer, gone }
}

/** Starts this run's broker now (the plugin does, so the first file does not wait for it). */
export async function startBroker(options: { anchor?: number; maxGuests?: number } = {}): Promise<void> {
  const socket = await connectBroker(options)
  socket.destroy()
}

async function connectBroker(options: { anchor?: number; maxGuests?: number } = {}): Promise<Socket> {
  const anchor = options.anchor ?? anchorPid()
  const path = brokerSocket(brokerDir(anchor))
  const existing = await connectIfListening(path)
  if (existing) return existing

  const main = fileURLToPath(new URL('./main.js', import.meta.url))
  const maxGuests = options.maxGuests ?? (Number(process.env.VMTEST_MAX_GUESTS) || undefined)
  const args = [main, '--anchor', String(anchor), ...(maxGuests ? ['--max-guests', String(maxGuests)] : [])]
  // Not detached: Ctrl-C reaches it with the rest of the run. Its stderr is
  // read only until it listens, so its first failure can be shown.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } })
  let stderr = ''
  let exit: string | undefined
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
  child.on('exit', (code, signal) => (exit = signal ?? String(code)))
  try {
    const deadline = Date.now() + BROKER_START_TIMEOUT_MS
    for (;;) {
      const socket = await connectIfListening(path)
      if (socket) return socket
      // Exit 0 with nothing said: another worker's broker won the race; keep trying to connect.
      if (exit !== undefined && (exit !== '0' || stderr)) {
        throw new VmtestError('VMTEST_GUEST_EXITED', 'launch', `The vmtest guest broker exited (${exit}) before it listened on ${path}:\n${stderr.trim()}`)
      }
      if (Date.now() > deadline) {
        throw new VmtestError('VMTEST_GUEST_EXITED', 'launch', `The vmtest guest broker did not listen on ${path} within ${BROKER_START_TIMEOUT_MS} ms.${stderr ? `\n${stderr.trim()}` : ''}`)
      }
      await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS))
    }
  } finally {
    child.stderr!.destroy()
    child.unref()
  }
}

function withRunning(error: WireVmtestError, running: Map<number, string>): WireVmtestError {
  if (running.size === 0) return error
  const [first, ...rest] = error.message.split('\n')
  const commands = [...running.values()].map((c) => `\`${c}\``).join(', ')
  return { ...error, message: [`${first.replace(/[.:]?$/, '')} (while running ${commands})`, ...rest].join('\n') }
}

function fromWire(error: WireVmtestError): VmtestError {
  return withoutStack(new VmtestError(error.code as VmtestErrorCode, error.phase as VmtestPhase, error.message))
}
