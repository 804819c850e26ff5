// What the user sees while targets run, in danobi/vmtest's shape:
//   => name / ===> Booting / ===> Setting up VM / ===> Running command / PASS
// On a terminal a spinner shows boot progress; elsewhere (pipes, CI=true)
// every step is a plain line. Colours follow picocolors (off under NO_COLOR or
// without a terminal).

import type { Writable } from 'node:stream'
import ora, { type Ora } from 'ora'
import pc from 'picocolors'

export interface Report {
  heading(name: string, depth: 1 | 2): void
  /** A progress line (boot steps); on a terminal it replaces the last one. */
  progress(line: string): void
  /** Output of the command, as it comes. */
  output(chunk: string | Buffer, stream: 'stdout' | 'stderr'): void
  pass(): void
  fail(reason: string): void
  /** Everything written so far, for a report that is printed when its target ends. */
  flush(): void
}

/** Writes as it goes to `out` (headings, progress) and the command's streams. */
export function liveReport(out: Writable, commandOut: { stdout: Writable; stderr: Writable }): Report {
  let spinner: Ora | undefined
  const interactive = (out as { isTTY?: boolean }).isTTY === true && !process.env.CI
  const stopSpinner = () => {
    spinner?.stop()
    spinner = undefined
  }
  return {
    heading(name, depth) {
      stopSpinner()
      out.write(`${depth === 1 ? '=>' : '===>'} ${name}\n`)
    },
    progress(line) {
      if (!interactive) return void out.write(`${pc.dim(line)}\n`)
      spinner ??= ora({ stream: out as NodeJS.WriteStream }).start()
      spinner.text = line
    },
    output(chunk, stream) {
      stopSpinner()
      commandOut[stream].write(chunk)
    },
    pass() {
      stopSpinner()
      out.write(`${pc.green('PASS')}\n`)
    },
    fail(reason) {
      stopSpinner()
      out.write(`${pc.red(reason)}\n${pc.red('FAILED')}\n`)
    },
    flush() {},
  }
}

/** Keeps a target's whole report and writes it at once, so parallel targets do not interleave. */
export function bufferedReport(out: Writable): Report {
  const lines: string[] = []
  let partial = ''
  return {
    heading: (name, depth) => void lines.push(`${depth === 1 ? '=>' : '===>'} ${name}`),
    progress: (line) => void lines.push(pc.dim(line)),
    output(chunk) {
      partial += chunk.toString()
      const parts = partial.split('\n')
      partial = parts.pop()!
      lines.push(...parts)
    },
    pass: () => void lines.push(pc.green('PASS')),
    fail: (reason) => void lines.push(pc.red(reason), pc.red('FAILED')),
    flush() {
      if (partial) lines.push(partial)
      out.write(`${lines.join('\n')}\n`)
      lines.length = 0
      partial = ''
    },
  }
}
