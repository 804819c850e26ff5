// The vmtest agent protocol served on the host for a disk image, on top of
// the image's qemu-guest-agent: the rest of vmtest (the guest API, the broker,
// the runners) talks to an image exactly as to a kernel target's agent.
//
// What QGA cannot give, and what that means here:
// - output arrives when the command exits (guest-exec captures it, up to QGA's 16 MB), not streamed;
// - stdin is sent whole when the host ends it, so `input` works and an interactive stdin does not;
// - a signal or a timeout reaches the command's shell (kill PID), not its background children;
// - the kernel log is the serial console's (what the image's console log level lets through),
//   not /dev/kmsg; no lease isolation: a renewed lease is the same guest, as under `rootMode: 'rw'`.

import { EventEmitter } from 'node:events'
import { constants } from 'node:os'
import { PROTOCOL_VERSION, type AgentHello, type ExecExit, type ExecStartParams, type KmsgRecord } from '../../protocol/methods.js'
import { Peer } from '../../protocol/rpc.js'
import { copyingWriter } from '../../protocol/framing.js'
import type { Qga } from './qga.js'

/** guest-exec-status polls after a command starts, then every last one: fast for short commands, cheap for long ones. */
const POLL_SCHEDULE_MS = [0, 2, 5, 10, 20, 40, 80, 100]
/** kernel.sync waits for the console to go quiet this long (its lines arrive after the command's result). */
const CONSOLE_SETTLE_MS = 100
const CONSOLE_SETTLE_MAX_MS = 500
const READ_CHUNK_BYTES = 1 << 20
/** The shell exits with this when the working directory is missing, printing the marker. */
const NO_CWD_STATUS = 126
const NO_CWD_MARKER = 'vmtest: no working directory: '

/** $0 is the working directory, $1 the command: QGA's guest-exec has no cwd of its own. */
const CD_THEN_RUN = `cd -- "$0" 2>/dev/null || { printf '${NO_CWD_MARKER}%s\\n' "$0" >&2; exit ${NO_CWD_STATUS}; }; exec /bin/sh -c "$1"`

export interface Share {
  tag: string
  guestPath: string
  readonly: boolean
}

/** The host's end of the virtual agent: what attach() reads frames from and writes frames to. */
export interface AgentStream {
  write(frame: Buffer): unknown
  on(event: 'data', listener: (chunk: Buffer) => void): unknown
  on(event: 'error' | 'close', listener: () => void): unknown
  destroy(): void
}

interface ExecStatus {
  exited: boolean
  exitcode?: number
  signal?: number
  'out-data'?: string
  'err-data'?: string
  'out-truncated'?: boolean
  'err-truncated'?: boolean
}

export interface QgaAgentOptions {
  shares: Share[]
  /** Console lines of the guest, as they come. */
  onConsoleLine(listener: (line: string) => void): void
}

/** Serves the agent protocol through `qga`; says hello once the shares are mounted (or rejects with why they are not). */
export function startQgaAgent(qga: Qga, o: QgaAgentOptions): { stream: AgentStream; ready: Promise<void> } {
  const stream = new EventEmitter() as EventEmitter & AgentStream
  const peer = new Peer(copyingWriter({ write: (frame) => queueMicrotask(() => stream.emit('data', frame)) }))
  stream.write = (frame: Buffer) => (peer.receive(frame), true)
  stream.destroy = () => {
    qga.close()
    stream.emit('close')
  }

  const kernelLog = consoleKernelLog(o.onConsoleLine, (records) => peer.emit('kmsg', { records }))
  const running = new Map<number, number>()
  const run = (script: string, args: string[] = []) => execAndWait(qga, { path: '/bin/sh', arg: ['-c', script, ...args], 'capture-output': true })
  const readGuestFile = async (path: string) => (await readWhole(qga, path)).toString()

  peer.handle('exec.start', async (params: ExecStartParams): Promise<ExecExit> => {
    const base = params.id * 4
    const input = params.stdin ? await receiveWhole(peer, base) : undefined
    const { pid } = await qga.execute<{ pid: number }>('guest-exec', {
      path: '/bin/sh',
      arg: ['-c', CD_THEN_RUN, params.cwd, params.command],
      env: Object.entries(params.env).map(([k, v]) => `${k}=${v}`),
      ...(input ? { 'input-data': input.toString('base64') } : {}),
      'capture-output': true,
    })
    running.set(params.id, pid)
    let timedOut = false
    const timers: ReturnType<typeof setTimeout>[] = []
    if (params.timeoutMs !== undefined) {
      timers.push(
        setTimeout(() => {
          timedOut = true
          void signal(qga, pid, 'TERM')
          timers.push(setTimeout(() => void signal(qga, pid, 'KILL'), params.killGraceMs))
        }, params.timeoutMs),
      )
    }
    let status: ExecStatus
    try {
      status = await waitForExit(qga, pid)
    } finally {
      timers.forEach(clearTimeout)
      running.delete(params.id)
    }
    const stdout = Buffer.from(status['out-data'] ?? '', 'base64')
    let stderr = Buffer.from(status['err-data'] ?? '', 'base64')
    if (status.exitcode === NO_CWD_STATUS && stderr.toString().startsWith(NO_CWD_MARKER)) {
      throw Object.assign(new Error(`the working directory ${params.cwd} does not exist in the guest`), { code: 'ENOENT' })
    }
    if (status['out-truncated'] || status['err-truncated']) {
      stderr = Buffer.concat([stderr, Buffer.from('\n[vmtest: qemu-guest-agent kept only the first 16 MB of this output]\n')])
    }
    for (const [channel, data] of [[base + 1, stdout], [base + 2, stderr]] as const) {
      if (data.length > 0) await peer.sendData(channel, data)
      await peer.sendData(channel, Buffer.alloc(0))
    }
    return { exitCode: status.signal ? null : (status.exitcode ?? null), signal: status.signal ? signalName(status.signal) : null, timedOut }
  })
  peer.handle('exec.signal', async ({ id, signal: name }: { id: number; signal: string }) => {
    const pid = running.get(id)
    if (pid === undefined) return { delivered: false }
    await signal(qga, pid, name.replace(/^SIG/, ''))
    return { delivered: true }
  })
  peer.handle('file.read', async ({ path, channel }: { path: string; channel: number }) => {
    const handle = await qga.execute<number>('guest-file-open', { path, mode: 'r' })
    let size = 0
    try {
      for (;;) {
        const chunk = await qga.execute<{ count: number; 'buf-b64': string; eof: boolean }>('guest-file-read', { handle, count: READ_CHUNK_BYTES })
        const data = Buffer.from(chunk['buf-b64'], 'base64')
        size += data.length
        if (data.length > 0 && !(await peer.sendData(channel, data))) break
        if (chunk.eof || data.length === 0) break
      }
    } finally {
      await qga.execute('guest-file-close', { handle }).catch(() => {})
    }
    await peer.sendData(channel, Buffer.alloc(0))
    return { size }
  })
  peer.handle('file.write', async ({ path, channel, mode }: { path: string; channel: number; mode?: number }) => {
    // The channel's data follows the call at once: take it before anything is awaited.
    const data = receiveWhole(peer, channel)
    data.catch(() => {}) // a failed open below is the error reported
    const handle = await qga.execute<number>('guest-file-open', { path, mode: 'w' })
    let size = 0
    try {
      const bytes = await data
      for (let at = 0; at < bytes.length; at += READ_CHUNK_BYTES) {
        const piece = bytes.subarray(at, at + READ_CHUNK_BYTES)
        size += (await qga.execute<{ count: number }>('guest-file-write', { handle, 'buf-b64': piece.toString('base64') })).count
      }
    } finally {
      await qga.execute('guest-file-close', { handle }).catch(() => {})
    }
    if (mode !== undefined) await run('chmod "$0" "$1"', [(mode & 0o7777).toString(8), path])
    return { size }
  })
  peer.handle('kernel.sync', async () => {
    await kernelLog.settle()
    kernelLog.flush()
    return { tainted: Number(await readGuestFile('/proc/sys/kernel/tainted')) }
  })
  // No per-test process tracking through QGA: nothing to mark, nothing reaped.
  peer.handle('processes.mark', () => ({}))
  peer.handle('lease.end', () => {
    // The same guest serves the next lease: it says hello again at once.
    setImmediate(() => void hello(qga, readGuestFile).then((h) => peer.emit('agent.hello', h), () => {}))
    return {}
  })

  const ready = (async () => {
    for (const share of o.shares) {
      const mounted = await run('mkdir -p -- "$2" && mount -t 9p -o "trans=virtio,version=9p2000.L,$0" "$1" "$2"', [share.readonly ? 'ro' : 'rw', share.tag, share.guestPath])
      if (mounted.exitCode !== 0) {
        throw new Error(`could not mount ${share.guestPath} (9p tag ${share.tag}) in the image: ${mounted.stderr.trim() || `exit ${mounted.exitCode}`}. The image's kernel needs 9p over virtio (modules 9p, 9pnet_virtio).`)
      }
    }
    kernelLog.start()
    peer.emit('agent.hello', await hello(qga, readGuestFile))
  })()
  return { stream, ready }
}

async function hello(qga: Qga, read: (path: string) => Promise<string>): Promise<AgentHello> {
  const [info, osinfo, bootId, uptime] = await Promise.all([
    qga.execute<{ version: string }>('guest-info'),
    qga.execute<{ 'kernel-release'?: string }>('guest-get-osinfo').catch(() => ({}) as { 'kernel-release'?: string }),
    read('/proc/sys/kernel/random/boot_id'),
    read('/proc/uptime'),
  ])
  return {
    version: PROTOCOL_VERSION,
    pid: 0,
    node: `qemu-guest-agent ${info.version}`,
    release: osinfo['kernel-release'] ?? 'unknown',
    bootId: bootId.trim(),
    uptimeMs: Math.round(Number(uptime.split(' ')[0]) * 1000),
  }
}

async function execAndWait(qga: Qga, args: Record<string, unknown>): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  const { pid } = await qga.execute<{ pid: number }>('guest-exec', args)
  const status = await waitForExit(qga, pid)
  return { exitCode: status.exitcode ?? null, stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString(), stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString() }
}

async function waitForExit(qga: Qga, pid: number): Promise<ExecStatus> {
  for (let poll = 0; ; poll++) {
    await new Promise((wake) => setTimeout(wake, POLL_SCHEDULE_MS[Math.min(poll, POLL_SCHEDULE_MS.length - 1)]))
    const status = await qga.execute<ExecStatus>('guest-exec-status', { pid })
    if (status.exited) return status
  }
}

function signal(qga: Qga, pid: number, name: string): Promise<unknown> {
  return execAndWait(qga, { path: '/bin/sh', arg: ['-c', 'kill -s "$0" "$1"', name, String(pid)] }).catch(() => {})
}

function signalName(number: number): string {
  return Object.entries(constants.signals).find(([, n]) => n === number)?.[0] ?? `SIG${number}`
}

/** All of `channel`'s data, acknowledged as it comes, once the sender ends it. */
function receiveWhole(peer: Peer, channel: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  return new Promise((resolve, reject) => {
    peer.receiveChannel(channel, {
      data: (chunk) => {
        chunks.push(chunk)
        peer.ack(channel, chunk.length)
      },
      end: (error) => (error ? reject(error) : resolve(Buffer.concat(chunks))),
    })
  })
}

async function readWhole(qga: Qga, path: string): Promise<Buffer> {
  const handle = await qga.execute<number>('guest-file-open', { path, mode: 'r' })
  try {
    const chunks: Buffer[] = []
    for (;;) {
      const chunk = await qga.execute<{ 'buf-b64': string; eof: boolean }>('guest-file-read', { handle, count: READ_CHUNK_BYTES })
      const data = Buffer.from(chunk['buf-b64'], 'base64')
      chunks.push(data)
      if (chunk.eof || data.length === 0) return Buffer.concat(chunks)
    }
  } finally {
    await qga.execute('guest-file-close', { handle }).catch(() => {})
  }
}

/** Kernel log records from the serial console's "[ seconds] text" lines. */
function consoleKernelLog(onLine: QgaAgentOptions['onConsoleLine'], emit: (records: KmsgRecord[]) => void) {
  let started = false
  let seq = 0
  let lastLineAt = 0
  const pending: KmsgRecord[] = []
  onLine((line) => {
    const match = /^\[\s*(\d+)\.(\d+)\] (.*)$/.exec(line.replace(/\r$/, ''))
    if (!started || !match) return
    lastLineAt = Date.now()
    // The console does not carry the level: warning, the level splats print at.
    pending.push({ level: 4, seq: seq++, usec: Number(match[1]) * 1e6 + Number(match[2].padEnd(6, '0').slice(0, 6)), text: match[3] })
    queueMicrotask(flush)
  })
  function flush(): void {
    if (pending.length > 0) emit(pending.splice(0))
  }
  return {
    start: () => void (started = true),
    flush,
    /** Resolves once the console has been quiet for a moment (or after a bound). */
    async settle(): Promise<void> {
      const sleep = (ms: number) => new Promise((wake) => setTimeout(wake, ms))
      const until = Date.now() + CONSOLE_SETTLE_MAX_MS
      await sleep(CONSOLE_SETTLE_MS / 2) // lines still on their way from QEMU
      while (Date.now() < until && Date.now() - lastLineAt < CONSOLE_SETTLE_MS) await sleep(20)
    },
  }
}
