// Reads a test file's vmtest directives (@vmtest-kernel, @vmtest-target, ...) from its comments.

import { didYouMean } from '../host/did-you-mean.js'
import { VmtestError } from '../host/errors.js'

export interface FileDirectives {
  /** @vmtest-kernel: as written, relative to the test file (resolved later, by the option layering). */
  kernel?: string
  /** @vmtest-target: the name of a [[target]] in vmtest.toml. */
  target?: string
  /** @vmtest-kernel-args: appended to the kernel command line. */
  kernelArgs?: string
  /** @vmtest-isolate: 'reboot' gives the file a freshly booted guest instead of a lease on a reused one. */
  isolate?: 'lease' | 'reboot'
  /** @vitest-environment-options / @jest-environment-options: the vmtest options themselves, as one line of JSON. */
  environmentOptions?: Record<string, unknown>
  /** Which of the two spellings set environmentOptions, so messages name the one the file uses. */
  environmentOptionsDirective?: '@vitest-environment-options' | '@jest-environment-options'
}

type Key = Exclude<keyof FileDirectives, 'environmentOptionsDirective'>

const DIRECTIVES: Record<string, Key> = {
  'vmtest-kernel': 'kernel',
  'vmtest-target': 'target',
  'vmtest-kernel-args': 'kernelArgs',
  'vmtest-isolate': 'isolate',
  'vitest-environment-options': 'environmentOptions',
  'jest-environment-options': 'environmentOptions',
}

const EXAMPLES: Record<Key, string> = {
  kernel: '@vmtest-kernel ../kernels/bzImage (a path relative to the test file)',
  target: '@vmtest-target NAME (a [[target]] of vmtest.toml)',
  kernelArgs: '@vmtest-kernel-args "quiet loglevel=3"',
  isolate: '@vmtest-isolate reboot (or lease)',
  environmentOptions: '@vitest-environment-options {"memory": "2G"}',
}

const VMTEST_DIRECTIVES = Object.keys(DIRECTIVES).filter((d) => d.startsWith('vmtest-'))

// A directive opens a comment line: after "/**", "/*", "*" or "//" and optional spaces.
// Other @tags (@vitest-environment vmtest, @param, ...) are not ours and are skipped.
const LINE = /^\s*(?:\/\*\*?|\*(?!\/)|\/\/)\s*@([\w-]+)(.*)$/

/** The directives of one test file. `file` only names the file in error messages. */
export function parseDocblock(source: string, file: string): FileDirectives {
  const found: FileDirectives = {}
  const seen = new Map<Key, { line: number; text: string; directive: string }>()
  const lines = source.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const match = LINE.exec(lines[i])
    if (!match) continue
    const [, name, rest] = match
    // hasOwn: a JSDoc @constructor must not find Object.prototype.constructor.
    const key = Object.hasOwn(DIRECTIVES, name) ? DIRECTIVES[name] : undefined
    const at = `${file}:${i + 1}`
    if (key === undefined) {
      if (name.startsWith('vmtest-')) throw unknownDirective(name, at)
      continue
    }
    // "*/" closes a one-line block comment: /** @vmtest-kernel ./bzImage */
    const body = rest.replace(/\s*\*\/\s*$/, '')
    if (body !== '' && !/^\s/.test(body)) throw invalid(`\`@${name}${body}\` in ${at} is not a directive: put a space between @${name} and its value, as in ${EXAMPLES[key]}.`)
    const raw = body.trim()
    const text = key === 'environmentOptions' ? raw : unquote(raw)
    if (text === '' && !(key === 'kernelArgs' && raw !== '')) throw invalid(`@${name} in ${at} has no value: write ${EXAMPLES[key]}.`)

    const value = parseValue(key, name, text, at)
    const earlier = seen.get(key)
    if (earlier) {
      if (JSON.stringify(found[key]) !== JSON.stringify(value)) {
        throw invalid(`@${name} is set twice in ${file} with different values: ${quote(earlier.text)} (${earlier.directive === name ? '' : `@${earlier.directive}, `}line ${earlier.line}) and ${quote(text)} (line ${i + 1}). Keep one.`)
      }
      continue
    }
    seen.set(key, { line: i + 1, text, directive: name })
    Object.assign(found, { [key]: value })
    if (key === 'environmentOptions') found.environmentOptionsDirective = `@${name}` as FileDirectives['environmentOptionsDirective']
  }
  return found
}

function parseValue(key: Key, name: string, text: string, at: string): FileDirectives[Key] {
  if (key === 'isolate') {
    if (text !== 'lease' && text !== 'reboot') throw invalid(`@${name} in ${at} is ${quote(text)}: expected 'reboot' (a freshly booted guest for this file) or 'lease' (the default: a reused guest with a fresh writable layer).`)
    return text
  }
  if (key !== 'environmentOptions') return text
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw invalid(`Invalid JSON after @${name} in ${at}: ${(error as Error).message}. Write the options as one line of JSON, e.g. @${name} {"memory": "2G", "cpus": 2}.`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw invalid(`@${name} in ${at} must be a JSON object of vmtest options, e.g. {"memory": "2G"}; got ${text}.`)
  }
  return json as Record<string, unknown>
}

function unknownDirective(name: string, at: string): VmtestError {
  const hint = didYouMean(name, VMTEST_DIRECTIVES)
  const known = VMTEST_DIRECTIVES.map((d) => `@${d}`).join(', ')
  return invalid(`Unknown directive @${name} in ${at}${hint ? `: did you mean @${hint}?` : '.'} Known: ${known}; other options go in @vitest-environment-options (or @jest-environment-options) {"memory": "2G"}.`)
}

/** A value in matching double or single quotes loses them; anything else is taken as written. */
function unquote(text: string): string {
  return text.length >= 2 && (text[0] === '"' || text[0] === "'") && text.at(-1) === text[0] ? text.slice(1, -1) : text
}

const quote = (text: string) => `'${text}'`

const invalid = (message: string) => new VmtestError('VMTEST_OPTION_INVALID', 'config', message)
