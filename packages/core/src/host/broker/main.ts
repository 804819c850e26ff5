// The broker process: `node main.js --anchor PID [--max-guests N]`. It lives as
// long as the anchor (the test runner's main process) and powers every guest
// off when the anchor exits, when asked to, or on SIGINT/SIGTERM/SIGHUP.

import { rmSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { Broker } from './server.js'
import { brokerDir, brokerSocket, connectIfListening, makePrivateDir } from './location.js'
import { isAlive } from '../paths.js'

/** How often the anchor's life is checked; also how long guests may outlive it. */
const ANCHOR_POLL_MS = 300

const { values } = parseArgs({ options: { anchor: { type: 'string' }, 'max-guests': { type: 'string' } } })
const anchor = Number(values.anchor)
if (!(anchor > 0)) {
  process.stderr.write('vmtest broker: --anchor PID is required\n')
  process.exit(2)
}
// The worker that started us may be gone: writes to its pipe must not kill us.
process.stderr.on('error', () => {})

const dir = brokerDir(anchor)
makePrivateDir(dir)
const socketPath = brokerSocket(dir)
let stopping: Promise<void> | undefined
const broker = new Broker({
  maxGuests: Number(values['max-guests']) || availableParallelism(),
  onShutdown: () => void stop(0),
})

if (!(await listenOnce(socketPath))) process.exit(0) // another broker of this run won the race

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(130))
const poll = setInterval(() => {
  if (!isAlive(anchor)) void stop(0)
}, ANCHOR_POLL_MS)

function stop(code: number): Promise<void> {
  stopping ??= (async () => {
    clearInterval(poll)
    await broker.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
    process.exit(code)
  })()
  return stopping
}

/** Listens on the socket, replacing a stale one; false if a live broker already answers there. */
async function listenOnce(path: string): Promise<boolean> {
  try {
    await broker.listen(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
  }
  const live = await connectIfListening(path)
  live?.destroy()
  if (live) return false
  rmSync(path, { force: true }) // left by a broker that was killed
  await broker.listen(path)
  return true
}
