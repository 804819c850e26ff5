// A failing test's artifact: what failed it, its kernel log window, QEMU's
// command line and the guest's whole serial console, in one file at a path a
// CI job can upload (<resultsDir>/<test file>/<test name>.log).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { isAbsolute, join, relative } from 'node:path'
import { quoteArgument } from '../host/command.js'
import type { GuestInfo } from '../host/guest.js'

export interface FailureLog {
  /** The test file's folder under resultsDir. */
  dir: string
  file: string
  test: string
  info: GuestInfo
  /** What failed the test: the runner's errors, then ours. */
  failures: string[]
  kernelLog: readonly string[]
  /** Why the guest stopped, if it did: its message names the kept console log. */
  crash?: Error
}

/** The longest test-name part of a log's file name; longer names are cut and keep their hash. */
const NAME_BYTES = 100

/** Writes the log and returns its path. `taken` holds the paths already written by this file's run. */
export function writeFailureLog(log: FailureLog, taken: Set<string>): string {
  mkdirSync(log.dir, { recursive: true })
  const path = uniquePath(log.dir, fileNameOf(log.test), taken)
  const { info } = log
  const console = consoleOf(info, log.crash)
  const text = [
    `test:    ${log.test}`,
    `file:    ${log.file}`,
    `kernel:  ${info.release} (${info.kernel}), ${info.arch}, ${info.accel}${info.accelReason ? ` (${info.accelReason})` : ''}, boot id ${info.bootId}`,
    `qemu:    ${info.qemuCommand.map(quoteArgument).join(' ')}`,
    '',
    '== What failed the test ==',
    ...log.failures,
    '',
    `== Kernel log while the test ran (${log.kernelLog.length} lines) ==`,
    ...log.kernelLog,
    '',
    `== The guest's whole console${console.from ? ` (${console.from})` : ''} ==`,
    console.text,
  ].join('\n')
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`)
  return path
}

/** The path as a report line shows it: relative to the working directory when under it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

function consoleOf(info: GuestInfo, crash: Error | undefined): { text: string; from?: string } {
  // A dead guest's temp dir is gone; its log was kept elsewhere and the crash message says where.
  const kept = crash && /Full console log: (\S+)/.exec(crash.message)?.[1]
  for (const from of [info.consoleLog, kept]) {
    try {
      if (from) return { text: readFileSync(from, 'utf8'), from }
    } catch {
      // removed with the guest's temp dir, maybe just now: try the kept copy
    }
  }
  return { text: '(the console log is no longer there)' }
}

function fileNameOf(test: string): string {
  const name = test.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'test'
  if (name.length <= NAME_BYTES) return name
  let hash = 0
  for (const c of test) hash = (Math.imul(hash, 31) + c.charCodeAt(0)) >>> 0
  return `${name.slice(0, NAME_BYTES - 9)}-${hash.toString(16).padStart(8, '0')}`
}

function uniquePath(dir: string, name: string, taken: Set<string>): string {
  let path = join(dir, `${name}.log`)
  for (let n = 2; taken.has(path); n++) path = join(dir, `${name}-${n}.log`)
  taken.add(path)
  return path
}
