// The guest agent: started by the guest's init with the host's `node`, it
// opens its virtio-serial port, says hello, and serves the host's calls.
// Zero dependencies: it imports only the shared protocol and node builtins.

import { spawnSync } from 'node:child_process'
import { markProcesses, reapProcesses } from './processes.js'
import { existsSync, openSync, readdirSync, readFileSync, watch, writeFileSync, constants } from 'node:fs'
import { Socket } from 'node:net'
import { release, setPriority } from 'node:os'
import { dirname } from 'node:path'
import { AGENT_PORT_NAME, PROTOCOL_VERSION, type AgentHello, type ExecStartParams } from '../protocol/methods.js'
import { Peer } from '../protocol/rpc.js'
import { corkedWriter } from '../protocol/framing.js'
import { execSignal, execStart } from './exec.js'
import { fileRead, fileWrite } from './files.js'
import { KmsgReader } from './kmsg.js'

/** Left for init by lease.end: start a new lease instead of powering off. */
const LEASE_RENEW_MARKER = '/run/vmtest/renew'
/** Left for init once we serve: the next lease may get ready now. */
const SERVING_MARKER = '/run/vmtest/serving'
/** Left for the next lease's agent by lease.end: the last kernel log record the host has. */
const KMSG_SEQ_FILE = '/run/vmtest/kmsg-seq'

function findPort(name: string): string {
  const base = '/sys/class/virtio-ports'
  for (const port of readdirSync(base)) {
    if (readFileSync(`${base}/${port}/name`, 'utf8').trim() === name) return `/dev/${port}`
  }
  throw new Error(`no virtio-serial port named ${name} under ${base}`)
}

/** The port as a libuv stream: non-blocking and polled with epoll, as
 * qemu-guest-agent does it. With blocking writes (and a blocking read on the
 * same fd in another thread) the whole guest froze at 100% CPU in the middle of
 * a 1 MB transfer: virtio_console's blocking write spins in the kernel, with
 * interrupts off, until QEMU takes the buffer. Node has no public stream type
 * for a character device, hence the Pipe handle opened on our fd. */
function openPort(path: string): Socket {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
  const { Pipe, constants: pipeConstants } = (process as unknown as { binding(name: string): any }).binding('pipe_wrap')
  const handle = new Pipe(pipeConstants.SOCKET)
  const status = handle.open(fd)
  if (status < 0) throw new Error(`cannot open ${path} as a stream (uv error ${status})`)
  return new Socket({ handle, readable: true, writable: true } as ConstructorParameters<typeof Socket>[0])
}

function fatal(error: unknown): never {
  process.stderr.write(`vmtest-agent: ${(error as Error)?.stack ?? error}\n`)
  exitNow()
}

/** Ends the agent at once, without waiting for anything; init then powers the guest off. */
function exitNow(): never {
  process.kill(process.pid, 'SIGKILL')
  throw new Error('unreachable')
}

/** Powers the guest off now: flush what the guest wrote to shared dirs, then
 * sysrq 'o' (needs no userspace tool in the guest root). */
function powerOff(): never {
  spawnSync('sync')
  try {
    writeFileSync('/proc/sysrq-trigger', 'o')
  } catch {
    // no sysrq in this kernel: init powers off once we are gone
  }
  exitNow()
}

/** Runs `then` once the answer to the call being handled has left for the port:
 * the Peer writes it in a microtask after the handler returns, and a write the
 * port took is in the virtqueue, where our exit does not take it back. */
function onceAnswered(port: Socket, then: () => void): void {
  setImmediate(function check() {
    if (port.writableLength === 0) then()
    else setTimeout(check, 5)
  })
}

function hello(): AgentHello {
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])
  return {
    version: PROTOCOL_VERSION,
    pid: process.pid,
    node: process.version,
    release: release(),
    bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    uptimeMs: Math.round(uptime * 1000),
  }
}

/** Resolves once init creates `gate`: this agent was started ahead of its
 * lease (nice'd, on the guest's idle time) and serves from then on. */
async function passGate(gate: string): Promise<void> {
  await warmUp(() => existsSync(gate))
  await new Promise<void>((open) => {
    const watcher = watch(dirname(gate), () => existsSync(gate) && opened())
    const opened = () => {
      watcher.close()
      open()
    }
    if (existsSync(gate)) opened()
  })
  setPriority(0)
}

/** A new node runs its first commands 100-250 ms slower each under emulation
 * (code not yet compiled or translated): a standby runs a few before it serves. */
async function warmUp(until: () => boolean): Promise<void> {
  const discard = new Peer(() => {})
  for (let id = 1; id <= 5 && !until(); id++) {
    const params: ExecStartParams = { id, command: 'true', cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdin: false, killGraceMs: 0 }
    await execStart(discard, params, () => {}).catch(() => {})
  }
}

/** The last kernel log record the previous lease's agent forwarded, -1 if none did. */
function forwardedSeq(): number {
  try {
    return Number(readFileSync(KMSG_SEQ_FILE, 'utf8'))
  } catch {
    return -1
  }
}

async function main(): Promise<void> {
  const gate = process.env.VMTEST_GATE
  const kmsg = new KmsgReader(forwardedSeq())
  if (gate) {
    kmsg.drain() // kept until we serve
    await passGate(gate)
  }
  const port = openPort(findPort(AGENT_PORT_NAME))
  // Zero-copy: a data frame's payload is a fresh chunk of a command's output or a file.
  const peer = new Peer(corkedWriter(port))
  kmsg.forwardTo((records) => peer.emit('kmsg', { records }), forwardedSeq())

  peer.handle('exec.start', (params) => execStart(peer, params, () => kmsg.drain()))
  peer.handle('exec.signal', ({ id, signal }) => execSignal(id, signal))
  peer.handle('file.read', (params) => fileRead(peer, params))
  peer.handle('file.write', (params) => fileWrite(peer, params))
  peer.handle('kernel.sync', ({ reap }) => {
    const reaped = reap ? reapProcesses() : undefined
    kmsg.drain()
    return { tainted: Number(readFileSync('/proc/sys/kernel/tainted', 'utf8')), ...(reaped?.length ? { reaped } : {}) }
  })
  peer.handle('processes.mark', () => {
    markProcesses()
    return {}
  })
  peer.handle('agent.shutdown', () => {
    onceAnswered(port, powerOff)
    return {}
  })
  peer.handle('lease.end', () => {
    // init sees the marker and starts the next lease in fresh namespaces; our
    // PID namespace, and whatever this lease left running, ends with us.
    kmsg.drain()
    writeFileSync(KMSG_SEQ_FILE, String(kmsg.lastSeq))
    writeFileSync(LEASE_RENEW_MARKER, '')
    onceAnswered(port, exitNow)
    return {}
  })

  port.on('data', (chunk: Buffer) => {
    peer.receive(chunk)
    if (peer.closed) fatal(peer.closed)
  })
  // The host closed its end: nobody is left to serve.
  port.on('end', powerOff)
  port.on('error', fatal)

  kmsg.drain() // the boot log arrives before hello, so no command's window holds it
  peer.emit('agent.hello', hello())
  kmsg.start()
  writeFileSync(SERVING_MARKER, '')
}

main().catch(fatal)
