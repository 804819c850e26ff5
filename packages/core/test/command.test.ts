import { execFileSync } from 'node:child_process'
import { describe, expect, test } from 'vitest'
import { failureMessage, quoteArgument, templateToCommand, type FailureFacts } from '../src/host/command.js'
import type { KmsgRecord } from '../src/protocol/methods.js'
import { prng } from './helpers/prng.js'


/** Runs a script with the host's /bin/sh and returns its stdout bytes. */
const sh = (script: string): Buffer => execFileSync('/bin/sh', ['-c', script], { maxBuffer: 64 * 1024 * 1024 })

/** The tag function of guest.$, without a guest. */
const $ = (strings: TemplateStringsArray, ...values: unknown[]) => templateToCommand(strings, values)

describe('quoteArgument', () => {
  const ALPHABET = [
    ...`'"$\`\\\n\t *?~!#&|;<>(){}[]=%^,:@+-./\r\x7f`,
    'a', 'Z', '0', '_', 'é', 'ß', 'ü', '日本', '🐧', '\u00a0', '\u2028', '$(id)', '${HOME}', '`id`', "'\\''", '--', '-n', '%s', '\\n',
  ]

  function randomString(rand: () => number): string {
    const length = Math.floor(rand() * 24)
    let text = ''
    for (let i = 0; i < length; i++) {
      text += rand() < 0.6 ? ALPHABET[Math.floor(rand() * ALPHABET.length)] : String.fromCharCode(1 + Math.floor(rand() * 255))
    }
    return text
  }

  test('500 random strings survive /bin/sh -c "printf %s <quoted>" exactly', () => {
    const rand = prng(2024)
    const inputs = ['', ' ', "'", "''", '"', '\\', '\n', '~', '*', 'plain', 'a/b.c', ...Array.from({ length: 500 }, () => randomString(rand))]
    // One shell for all: each output is followed by a NUL, which no input contains.
    const script = inputs.map((input) => `printf %s ${quoteArgument(input)}; printf '\\000'`).join('\n')
    const outputs = sh(script).toString('utf8').split('\0')
    expect(outputs.pop()).toBe('')
    expect(outputs).toHaveLength(inputs.length)
    for (const [i, input] of inputs.entries()) expect(outputs[i], `input ${JSON.stringify(input)}`).toBe(input)
  })

  test('every single byte 1..255 survives the shell on its own and next to a quote', () => {
    const inputs = Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)).flatMap((c) => [c, `${c}'${c}`])
    const script = inputs.map((input) => `printf %s ${quoteArgument(input)}; printf '\\000'`).join('\n')
    expect(sh(script).toString('utf8').split('\0').slice(0, -1)).toEqual(inputs)
  })

  test('safe words are left bare; everything else is single-quoted', () => {
    expect(quoteArgument('/usr/bin/env')).toBe('/usr/bin/env')
    expect(quoteArgument('--flag=a,b:c@d%e+f')).toBe('--flag=a,b:c@d%e+f')
    expect(quoteArgument('')).toBe("''")
    expect(quoteArgument('two words')).toBe("'two words'")
    expect(quoteArgument("it's")).toBe(`'it'\\''s'`)
    expect(quoteArgument('~')).toBe("'~'")
    expect(quoteArgument('é')).toBe("'é'")
  })

  test('numbers and bigints become their decimal text', () => {
    expect([quoteArgument(42), quoteArgument(-1.5), quoteArgument(0), quoteArgument(2n ** 64n)]).toEqual(['42', '-1.5', '0', '18446744073709551616'])
  })

  test('a NUL byte is a TypeError', () => {
    expect(() => quoteArgument('a\0b')).toThrowErrorMatchingInlineSnapshot(
      `[TypeError: guest.$: an argument contains a NUL byte, which no command line can carry: "a\\u0000b"]`,
    )
    expect(() => quoteArgument('a\0b')).toThrow(TypeError)
  })

  test('values that are not strings or numbers are a TypeError', () => {
    expect(() => quoteArgument(undefined)).toThrowErrorMatchingInlineSnapshot(
      `[TypeError: guest.$: an interpolated value must be a string, number or array of them, got undefined]`,
    )
    expect(() => quoteArgument({ path: '/x' })).toThrowErrorMatchingInlineSnapshot(
      `[TypeError: guest.$: an interpolated value must be a string, number or array of them, got object]`,
    )
  })
})

describe('templateToCommand', () => {
  test('literal parts stay as written; each value is one argument, arrays one per element', () => {
    expect($`ls -la ${['a b', "it's", 'plain']} --depth=${3} ${-1.5}`).toBe(`ls -la 'a b' 'it'\\''s' plain --depth=3 -1.5`)
    expect($`echo ${[]}end`).toBe('echo end')
    expect($`true`).toBe('true')
    expect($`${'cmd'}`).toBe('cmd')
  })

  test('the shell sees exactly the intended arguments', () => {
    const command = $`printf '[%s]\n' ${['a b', '', "c'd", '$HOME', '*']} ${7} ${'x\ny'}`
    expect(sh(command).toString()).toBe("[a b]\n[]\n[c'd]\n[$HOME]\n[*]\n[7]\n[x\ny]\n")
  })

  test('a bad value in an array, or a nested array, is a TypeError', () => {
    expect(() => $`echo ${['ok', null]}`).toThrow('got object')
    expect(() => $`echo ${[['nested']]}`).toThrow('got object')
    expect(() => $`echo ${['a\0']}`).toThrow('NUL byte')
  })
})

describe('failureMessage', () => {
  const base: FailureFacts = {
    command: 'make -C /src test',
    exitCode: 2,
    signal: null,
    timedOut: false,
    aborted: false,
    stdout: '',
    stderr: '',
    kernelLog: [],
  }
  const record = (text: string, seq = 1): KmsgRecord => ({ level: 4, seq, usec: 1000 * seq, text })
  const lines = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}`).join('\n') + '\n'

  test('exit code: stderr tail and kernel log; stdout left out when stderr says something', () => {
    expect(
      failureMessage({
        ...base,
        stdout: 'building...\n',
        stderr: 'make: *** [test] Error 2\n',
        kernelLog: [record('wtest: loading out-of-tree module taints kernel.', 1), record('WARNING: CPU: 0 PID: 1 at wtest.c:12', 2)],
      }),
    ).toMatchInlineSnapshot(`
      "Command failed with exit code 2 in the guest: make -C /src test
      stderr:
        | make: *** [test] Error 2
      kernel log while it ran:
        | wtest: loading out-of-tree module taints kernel.
        | WARNING: CPU: 0 PID: 1 at wtest.c:12"
    `)
  })

  test('exit code with nothing on stderr: stdout is quoted instead', () => {
    expect(failureMessage({ ...base, exitCode: 1, stdout: 'FAIL: 3 of 10\n', stderr: '  \n' })).toMatchInlineSnapshot(`
      "Command failed with exit code 1 in the guest: make -C /src test
      stdout:
        | FAIL: 3 of 10"
    `)
  })

  test('killed by a signal, no output at all', () => {
    expect(failureMessage({ ...base, exitCode: null, signal: 'SIGKILL' })).toMatchInlineSnapshot(`"Command was killed by SIGKILL in the guest: make -C /src test"`)
  })

  test('killed by the OOM killer: the message says the guest ran out of memory', () => {
    const oom = record('Out of memory: Killed process 214 (node) total-vm:1216536kB, anon-rss:190044kB', 2)
    expect(failureMessage({ ...base, exitCode: null, signal: 'SIGKILL', kernelLog: [record('node invoked oom-killer: gfp_mask=0x140cca', 1), oom] })).toMatchInlineSnapshot(`
      "Command was killed by SIGKILL in the guest: make -C /src test
      The guest ran out of memory and the kernel's OOM killer ended a process (Out of memory: Killed process 214 (node) total-vm:1216536kB, anon-rss:190044kB); raise the \`memory\` option if the test needs more.
      kernel log while it ran:
        | node invoked oom-killer: gfp_mask=0x140cca
        | Out of memory: Killed process 214 (node) total-vm:1216536kB, anon-rss:190044kB"
    `)
    // A shell reports its child's SIGKILL as 137.
    expect(failureMessage({ ...base, exitCode: 137, kernelLog: [oom] })).toMatch(/^Command failed with exit code 137 in the guest: make -C \/src test\nThe guest ran out of memory/)
    // Another signal with the same line in the log is not blamed on it.
    expect(failureMessage({ ...base, exitCode: null, signal: 'SIGTERM', kernelLog: [oom] })).not.toContain('ran out of memory')
  })

  test('timeout: both stderr and stdout are quoted', () => {
    expect(
      failureMessage({ ...base, exitCode: null, signal: 'SIGTERM', timedOut: true, timeoutMs: 5000, stdout: 'waiting\n', stderr: 'still waiting\n' }),
    ).toMatchInlineSnapshot(`
      "Command timed out after 5000 ms and was killed (SIGTERM) in the guest: make -C /src test
      stderr:
        | still waiting
      stdout:
        | waiting"
    `)
    expect(failureMessage({ ...base, exitCode: null, timedOut: true, timeoutMs: 250 })).toMatchInlineSnapshot(`"Command timed out after 250 ms and was killed in the guest: make -C /src test"`)
  })

  test('abort, with and without a signal', () => {
    expect(failureMessage({ ...base, exitCode: null, signal: 'SIGTERM', aborted: true, stderr: 'interrupted' })).toMatchInlineSnapshot(`
      "Command was aborted (SIGTERM) in the guest: make -C /src test
      stderr:
        | interrupted"
    `)
    expect(failureMessage({ ...base, exitCode: null, aborted: true })).toMatchInlineSnapshot(`"Command was aborted in the guest: make -C /src test"`)
  })

  test('long output keeps the last 20 lines; the kernel log keeps the last 30 records', () => {
    const message = failureMessage({
      ...base,
      stderr: lines('err', 25),
      kernelLog: Array.from({ length: 35 }, (_, i) => record(`kmsg ${i + 1}`, i + 1)),
    })
    expect(message).toContain('stderr (last 20 lines):\n  | err 6\n')
    expect(message).not.toContain('err 5\n')
    expect(message).toContain('  | err 25\nkernel log while it ran:\n  | kmsg 6\n')
    expect(message).not.toContain('kmsg 5\n')
    expect(message.endsWith('  | kmsg 35')).toBe(true)
    expect(message.split('\n')).toHaveLength(1 + 1 + 20 + 1 + 30)
  })

  test('exactly 20 lines are quoted without the "last" note', () => {
    const message = failureMessage({ ...base, stderr: lines('err', 20) })
    expect(message).toContain('stderr:\n  | err 1\n')
    expect(message).not.toContain('last')
  })
})
