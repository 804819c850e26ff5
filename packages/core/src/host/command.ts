// Shell command text: the `$` template's argument quoting, and the messages
// of a failed command (built in one place, execa-style).

import type { KmsgRecord } from '../protocol/methods.js'
import { tail } from './errors.js'

/** Quotes one argument for /bin/sh: single quotes, with ' written as '\''. */
export function quoteArgument(value: unknown): string {
  const text = typeof value === 'number' || typeof value === 'bigint' ? String(value) : value
  if (typeof text !== 'string') throw new TypeError(`guest.$: an interpolated value must be a string, number or array of them, got ${typeof value}`)
  if (text.includes('\0')) throw new TypeError(`guest.$: an argument contains a NUL byte, which no command line can carry: ${JSON.stringify(text)}`)
  if (/^[\w@%+=:,./-]+$/.test(text)) return text
  return `'${text.replaceAll("'", `'\\''`)}'`
}

/** The command line of a `$` template: literal parts as written (split on
 * spaces by the shell), each interpolated value one argument (arrays: one each). */
export function templateToCommand(strings: TemplateStringsArray, values: readonly unknown[]): string {
  let command = strings[0]
  values.forEach((value, i) => {
    command += (Array.isArray(value) ? value.map(quoteArgument).join(' ') : quoteArgument(value)) + strings[i + 1]
  })
  return command
}

export interface FailureFacts {
  command: string
  exitCode: number | null
  signal: string | null
  timedOut: boolean
  timeoutMs?: number
  aborted: boolean
  stdout: string
  stderr: string
  kernelLog: readonly KmsgRecord[]
}

/** Lines of output quoted in a failure message. */
const OUTPUT_TAIL_LINES = 20
/** Kernel log records quoted in a failure message. */
const KERNEL_TAIL_LINES = 30

export function failureMessage(f: FailureFacts): string {
  const reason = f.timedOut
    ? `timed out after ${f.timeoutMs} ms and was killed${f.signal ? ` (${f.signal})` : ''}`
    : f.aborted
      ? `was aborted${f.signal ? ` (${f.signal})` : ''}`
      : f.signal
        ? `was killed by ${f.signal}`
        : `failed with exit code ${f.exitCode}`
  const parts = [`Command ${reason} in the guest: ${f.command}`]
  // Killed by SIGKILL (or a shell saying 137 = 128 + 9 for its child) with the OOM killer's line in the log: say so.
  const oom = f.signal === 'SIGKILL' || f.exitCode === 137 ? f.kernelLog.find((r) => /Out of memory: Killed process|Memory cgroup out of memory/.test(r.text)) : undefined
  if (oom) parts.push(`The guest ran out of memory and the kernel's OOM killer ended a process (${oom.text.trim()}); raise the \`memory\` option if the test needs more.`)
  const block = (label: string, text: string) => {
    const lines = text.replace(/\n$/, '').split('\n')
    if (text.trim()) parts.push(`${label}${lines.length > OUTPUT_TAIL_LINES ? ` (last ${OUTPUT_TAIL_LINES} lines)` : ''}:\n${tail(lines, OUTPUT_TAIL_LINES)}`)
  }
  block('stderr', f.stderr)
  if (f.timedOut || !f.stderr.trim()) block('stdout', f.stdout)
  if (f.kernelLog.length > 0) {
    parts.push(`kernel log while it ran:\n${tail(f.kernelLog.map((r) => r.text), KERNEL_TAIL_LINES)}`)
  }
  return parts.join('\n')
}
