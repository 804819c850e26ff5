// Where the engine keeps files: a cache that outlives runs (extracted vmlinux,
// initramfs images, the KVM verdict, the default kernel), and one private temp
// dir per guest that never outlives its process.

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { onExit } from 'signal-exit'

export function cacheDir(): string {
  if (process.env.VMTEST_CACHE_DIR) return process.env.VMTEST_CACHE_DIR
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmtest')
}

const TEMP_PREFIX = 'vmtest-'
const live = new Set<string>()
let exitHookInstalled = false

/** A 0700 directory (mkdtemp: created atomically, never reused) named after
 * our pid, removed at close, at exit and on SIGINT/SIGTERM/SIGHUP. */
export function makeGuestTempDir(): string {
  sweepStaleTempDirs()
  const dir = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${process.pid}-`))
  live.add(dir)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    onExit(() => {
      for (const d of live) rmSync(d, { recursive: true, force: true })
    })
  }
  return dir
}

export function removeGuestTempDir(dir: string): void {
  live.delete(dir)
  rmSync(dir, { recursive: true, force: true })
}

/** Temp dirs of processes that died by SIGKILL, where no exit hook ran. */
function sweepStaleTempDirs(): void {
  let names: string[]
  try {
    names = readdirSync(tmpdir())
  } catch {
    return
  }
  for (const name of names) {
    const pid = Number(/^vmtest-(\d+)-/.exec(name)?.[1])
    if (!pid || pid === process.pid || isAlive(pid)) continue
    rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
}

/** Whether process `pid` exists (EPERM: it does, as another user's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Console logs of guests that died, kept for the user to read: the newest 20. */
const KEEP_CRASH_LOGS = 20

/** Copies a dead guest's console log out of its temp dir, into the cache. */
export function keepCrashLog(consoleLog: string): string {
  const dir = join(cacheDir(), 'crash-logs')
  mkdirSync(dir, { recursive: true })
  const kept = join(dir, `console-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`)
  copyFileSync(consoleLog, kept)
  pruneCache(dir, '.log', KEEP_CRASH_LOGS)
  return kept
}

/** Keeps the `keep` most recently used (modified) files of `dir` ending in `suffix`. */
export function pruneCache(dir: string, suffix: string, keep: number): void {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(suffix))
    .map((f) => ({ path: join(dir, f), mtime: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime)
  for (const old of files.slice(keep)) rmSync(old.path, { force: true })
}
