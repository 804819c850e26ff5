// Where a run's broker listens: a private directory named after the process
// whose life the broker shares (the test runner's main process), so every
// worker of that run finds the same broker without being told.

import { isMainThread } from 'node:worker_threads'
import { lstatSync, mkdirSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The runner's main process: our parent when we are a forked worker (Vitest
 * forks, Jest workers), ourselves when we are a worker thread or run in band. */
export function anchorPid(): number {
  const forced = Number(process.env.VMTEST_BROKER_ANCHOR)
  if (forced > 0) return forced
  if (!isMainThread) return process.pid
  return process.channel ? process.ppid : process.pid
}

/** `vmtest-<pid>-…` like the guests' temp dirs, so a dir left by a killed run is swept with them. */
export function brokerDir(anchor: number): string {
  return join(tmpdir(), `vmtest-${anchor}-broker-${process.getuid?.() ?? 0}`)
}

export function brokerSocket(dir: string): string {
  return join(dir, 'broker.sock')
}

/** Creates the dir 0700, or checks that an existing one is ours and private:
 * whoever can connect to the socket can run commands as root in our guests. */
export function makePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
    return
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  const stat = lstatSync(dir)
  const uid = process.getuid?.()
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new Error(`${dir} exists but is not a private directory of this user: remove it`)
  }
}

/** A connection to the broker listening at `path`, or undefined when none answers there. */
export function connectIfListening(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path)
    socket.once('connect', () => {
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', () => resolve(undefined))
  })
}
