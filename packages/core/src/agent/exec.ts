// Runs one command for the host: /bin/sh -c in its own process group, stdio
// carried on three flow-controlled channels, the exit status or signal reported.

import { spawn, type ChildProcess } from 'node:child_process'
import { statSync } from 'node:fs'
import type { Readable } from 'node:stream'
import type { ExecExit, ExecStartParams } from '../protocol/methods.js'
import type { Peer } from '../protocol/rpc.js'

/** After the command exits, how long its stdout/stderr may sit idle (open, no
 * data, not waiting for the host's window) before we stop reading and report:
 * a background child that inherited them would otherwise hold the result for ever. */
const STDIO_IDLE_GRACE_MS = 200

const running = new Map<number, ChildProcess>()

export function execStart(peer: Peer, params: ExecStartParams, beforeResult: () => void): Promise<ExecExit> {
  checkCwd(params.cwd)
  const base = params.id * 4
  const child = spawn('/bin/sh', ['-c', params.command], {
    cwd: params.cwd,
    env: params.env,
    detached: true, // its own process group, so a signal reaches everything it started
    stdio: [params.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  running.set(params.id, child)

  if (child.stdin) {
    const stdin = child.stdin
    stdin.on('error', () => {}) // EPIPE: the command stopped reading; the host learns it from the exit
    peer.receiveChannel(base, {
      data: (chunk) => stdin.write(chunk, () => peer.ack(base, chunk.length)),
      end: () => stdin.end(),
    })
  }
  const outputs = [pump(peer, child.stdout!, base + 1), pump(peer, child.stderr!, base + 2)]

  return new Promise<ExecExit>((resolve, reject) => {
    let timedOut = false
    let killTimer: ReturnType<typeof setTimeout> | undefined
    const timeout =
      params.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            killGroup(child, 'SIGTERM')
            killTimer = setTimeout(() => killGroup(child, 'SIGKILL'), params.killGraceMs)
          }, params.timeoutMs)
    child.on('error', (error) => {
      running.delete(params.id)
      clearTimeout(timeout)
      reject(error)
    })
    child.on('exit', (exitCode, signal) => {
      running.delete(params.id)
      clearTimeout(timeout)
      clearTimeout(killTimer)
      const exitedAt = Date.now()
      // Judged in the check phase, after the poll phase has read whatever the
      // pipes hold: on a loaded guest a late timer must not beat the last output.
      const idleCheck = setInterval(
        () =>
          setImmediate(() => {
            for (const output of outputs) if (output.idleMs(exitedAt) > STDIO_IDLE_GRACE_MS) output.stream.destroy()
          }),
        STDIO_IDLE_GRACE_MS / 2,
      )
      Promise.all(outputs.map((o) => o.done)).then(() => {
        clearInterval(idleCheck)
        beforeResult()
        resolve({ exitCode, signal, timedOut })
      }, reject)
    })
  })
}

export function execSignal(id: number, signal: string): { delivered: boolean } {
  const child = running.get(id)
  if (!child) return { delivered: false }
  killGroup(child, signal as NodeJS.Signals)
  return { delivered: true }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    // the group is gone already
  }
}

export interface Pump {
  stream: Readable
  /** Resolves once the end marker is sent. */
  done: Promise<void>
  /** How long the stream has been idle with nothing in flight, counted from `since` at the
   * earliest (0 while sending or ended). */
  idleMs(since: number): number
}

/** Sends a readable's bytes on `channel`, pausing while the host's window is
 * full, then the end marker. */
export function pump(peer: Peer, stream: Readable, channel: number): Pump {
  let cancelled = false
  let pending = 0
  let lastData = Date.now()
  // Chunks are sent strictly in order, one after the other: 'end' can fire
  // while the last chunk still waits for window, and node's child_process
  // resumes a paused stdout on exit, so 'data' can come while one is in flight.
  let inFlight: Promise<unknown> = Promise.resolve()
  const done = new Promise<void>((resolve, reject) => {
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      inFlight.then(() => peer.sendData(channel, Buffer.alloc(0))).then(() => resolve(), reject)
    }
    stream.on('data', (chunk: Buffer) => {
      lastData = Date.now()
      if (cancelled) return
      if (pending === 0 && peer.windowOf(channel) >= chunk.length) {
        // The window has room: sendData writes the chunk before it returns,
        // so the stream need not pause (a pause and resume per chunk cost
        // more than the copy into the port under emulation).
        inFlight = peer.sendData(channel, chunk).then((sent) => void (cancelled ||= !sent))
        inFlight.catch(reject)
        return
      }
      pending++
      stream.pause()
      inFlight = inFlight.then(async () => {
        if (!cancelled) cancelled = !(await peer.sendData(channel, chunk))
        lastData = Date.now()
        if (--pending === 0) stream.resume()
      })
      inFlight.catch(reject)
    })
    stream.on('end', finish)
    stream.on('close', finish) // destroyed while idle: end the channel all the same
    stream.on('error', () => {})
  })
  return { stream, done, idleMs: (since) => (pending > 0 || stream.readableEnded ? 0 : Date.now() - Math.max(lastData, since)) }
}

function checkCwd(cwd: string): void {
  let isDir: boolean
  try {
    isDir = statSync(cwd).isDirectory()
  } catch {
    throw Object.assign(new Error(`the working directory ${cwd} does not exist in the guest`), { code: 'ENOENT' })
  }
  if (!isDir) throw Object.assign(new Error(`the working directory ${cwd} is not a directory in the guest`), { code: 'ENOTDIR' })
}
