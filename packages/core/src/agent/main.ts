// The guest agent: started by the guest's init with the host's `node`, it
// opens its virtio-serial port, says hello, and serves the host's calls.
// Zero dependencies: it imports only the shared protocol and node builtins.

import { spawnSync } from 'node:child_process'
import { openSync, read, readdirSync, readFileSync, write, writeFileSync, constants } from 'node:fs'
import { release } from 'node:os'
import { AGENT_PORT_NAME, PROTOCOL_VERSION, type AgentHello } from '../protocol/methods.js'
import { Peer } from '../protocol/rpc.js'
import { execSignal, execStart } from './exec.js'
import { fileRead, fileWrite } from './files.js'
import { KmsgReader } from './kmsg.js'

const READ_CHUNK_BYTES = 256 * 1024

function findPort(name: string): string {
  const base = '/sys/class/virtio-ports'
  for (const port of readdirSync(base)) {
    if (readFileSync(`${base}/${port}/name`, 'utf8').trim() === name) return `/dev/${port}`
  }
  throw new Error(`no virtio-serial port named ${name} under ${base}`)
}

/** Serialises writes to the port; a char device has no stream handle in
 * node, so writes go through the thread pool one at a time, coalesced. */
function portWriter(fd: number): (frame: Buffer) => void {
  let queue: Buffer[] = []
  let busy = false
  const flush = () => {
    if (queue.length === 0) {
      busy = false
      return
    }
    busy = true
    const data = queue.length === 1 ? queue[0] : Buffer.concat(queue)
    queue = []
    const writeAll = (offset: number) =>
      write(fd, data, offset, data.length - offset, null, (error, n) => {
        if (error) return fatal(error)
        if (offset + n < data.length) writeAll(offset + n)
        else flush()
      })
    writeAll(0)
  }
  return (frame) => {
    queue.push(frame)
    if (!busy) flush()
  }
}

function fatal(error: unknown): never {
  process.stderr.write(`vmtest-agent: ${(error as Error)?.stack ?? error}\n`)
  exitNow()
}

/** process.exit() would join the thread pool, where a read of the port blocks
 * for ever; SIGKILL ends us at once, and init then powers the guest off. */
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

function main(): void {
  const fd = openSync(findPort(AGENT_PORT_NAME), constants.O_RDWR)
  const peer = new Peer(portWriter(fd))
  const kmsg = new KmsgReader((records) => peer.emit('kmsg', { records }))

  peer.handle('exec.start', (params) => execStart(peer, params, () => kmsg.drain()))
  peer.handle('exec.signal', ({ id, signal }) => execSignal(id, signal))
  peer.handle('file.read', (params) => fileRead(peer, params))
  peer.handle('file.write', (params) => fileWrite(peer, params))
  peer.handle('kernel.sync', () => {
    kmsg.drain()
    return { tainted: Number(readFileSync('/proc/sys/kernel/tainted', 'utf8')) }
  })
  peer.handle('agent.shutdown', () => {
    setTimeout(powerOff, 50) // let the answer reach the port first
    return {}
  })

  peer.emit('agent.hello', hello())
  kmsg.drain()
  kmsg.start()

  const readNext = () =>
    read(fd, Buffer.allocUnsafe(READ_CHUNK_BYTES), 0, READ_CHUNK_BYTES, null, (error, n, buffer) => {
      if (error) return fatal(error)
      if (n === 0) {
        // The host closed its end: nobody is left to serve.
        powerOff()
      }
      peer.receive(buffer.subarray(0, n))
      if (peer.closed) fatal(peer.closed)
      readNext()
    })
  readNext()
}

main()
