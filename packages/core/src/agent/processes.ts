// What a test leaves running: the processes of this lease's PID namespace are
// recorded when a test starts, and those started since are killed when it
// ends, so a daemon a test forked (or a spawn it never awaited) does not
// outlive it. Those running before the test (started in beforeAll, say) stay.

import { readdirSync, readFileSync } from 'node:fs'

let before: Set<number> | undefined

/** Records the processes alive now: the ones the next reap() leaves alone. */
export function markProcesses(): void {
  before = new Set(livePids())
}

/** Kills (SIGKILL) every process started since markProcesses(); returns their names. */
export function reapProcesses(): string[] {
  const kept = before
  before = undefined
  if (!kept) return []
  const reaped: string[] = []
  // PID 1 is the lease's init; the agent is us.
  for (const pid of livePids()) {
    if (pid === 1 || pid === process.pid || kept.has(pid)) continue
    const name = commOf(pid)
    try {
      process.kill(pid, 'SIGKILL')
      if (name) reaped.push(name)
    } catch {
      // gone already
    }
  }
  return reaped
}

function livePids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return undefined
  }
}
