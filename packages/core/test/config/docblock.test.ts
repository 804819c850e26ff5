import { describe, expect, test } from 'vitest'
import { parseDocblock } from '../../src/config/docblock.js'
import { isVmtestError } from '../../src/host/errors.js'

const FILE = '/work/project/test/a.test.ts'
// Vitest scans a test file's whole text, this one included, for the environment tag and for the
// environment-options tag (either spelling, followed by JSON): written whole here, they would configure
// this file's own environment. So the spellings are assembled.
const V = '@vitest' + '-environment-options'
const J = '@jest' + '-environment-options'
const VITEST_ENV = '@vitest' + '-environment'
const JEST_ENV = '@jest' + '-environment'
const OTHERS = `other options go in ${V} (or ${J}) {"memory": "2G"}.`
const parse = (source: string) => parseDocblock(source, FILE)

/** The message parseDocblock throws for `source` (fails the test if it does not throw). */
function message(source: string): string {
  try {
    parse(source)
  } catch (error) {
    expect(isVmtestError(error), String(error)).toBe(true)
    expect(error).toMatchObject({ code: 'VMTEST_OPTION_INVALID', phase: 'config' })
    return (error as Error).message
  }
  throw new Error(`parseDocblock accepted ${source}`)
}

/** JSON.parse's own message for `text`, as this Node prints it. */
function jsonError(text: string): string {
  try {
    JSON.parse(text)
  } catch (error) {
    return (error as Error).message
  }
  throw new Error(`${text} is valid JSON`)
}

describe('directives', () => {
  test('a file with none has none', () => {
    expect(parse('')).toEqual({})
    expect(parse("import { test } from 'vitest'\ntest('x', () => {})\n")).toEqual({})
  })

  test('each directive in a leading docblock', () => {
    const source = [
      '/**',
      ' * @vmtest-kernel ../kernels/bzImage-6.6',
      ' * @vmtest-kernel-args "quiet loglevel=3"',
      ' * @vmtest-isolate reboot',
      ' */',
      "import { test } from 'vitest'",
    ].join('\n')
    expect(parse(source)).toEqual({ kernel: '../kernels/bzImage-6.6', kernelArgs: 'quiet loglevel=3', isolate: 'reboot' })
  })

  test('@vmtest-target takes the rest of the line: target names may have spaces', () => {
    expect(parse('/**\n * @vmtest-target 5.4 kernel\n */')).toEqual({ target: '5.4 kernel' })
    expect(parse('// @vmtest-target "6.6 debug"')).toEqual({ target: '6.6 debug' })
  })

  test('one-line block comments, line comments, and "/*" comments', () => {
    expect(parse('/** @vmtest-kernel ./bzImage */')).toEqual({ kernel: './bzImage' })
    expect(parse('/* @vmtest-kernel ./bzImage*/')).toEqual({ kernel: './bzImage' })
    expect(parse('// @vmtest-kernel ./bzImage')).toEqual({ kernel: './bzImage' })
    expect(parse('  //@vmtest-isolate lease')).toEqual({ isolate: 'lease' })
  })

  test('anywhere in the file, in CRLF files too', () => {
    const source = "import { test } from 'vitest'\r\n\r\n// @vmtest-kernel /boot/vmlinuz\r\ntest('x', () => {})\r\n  /**\r\n   * @vmtest-isolate reboot\r\n   */\r\n"
    expect(parse(source)).toEqual({ kernel: '/boot/vmlinuz', isolate: 'reboot' })
  })

  test('@vmtest-kernel is kept as written, unresolved', () => {
    expect(parse('// @vmtest-kernel ../../k/bzImage')).toEqual({ kernel: '../../k/bzImage' })
    expect(parse("// @vmtest-kernel '/opt/my kernels/bzImage'")).toEqual({ kernel: '/opt/my kernels/bzImage' })
  })

  test('@vmtest-kernel-args: double quotes, single quotes, or the rest of the line', () => {
    expect(parse('// @vmtest-kernel-args "a=1 b=\'2\'"')).toEqual({ kernelArgs: "a=1 b='2'" })
    expect(parse("// @vmtest-kernel-args 'a=\"x y\" b'")).toEqual({ kernelArgs: 'a="x y" b' })
    expect(parse('/** @vmtest-kernel-args quiet  panic=-1 */')).toEqual({ kernelArgs: 'quiet  panic=-1' })
    expect(parse(' * @vmtest-kernel-args dyndbg="file foo.c +p" quiet')).toEqual({ kernelArgs: 'dyndbg="file foo.c +p" quiet' })
    // Empty quotes are an explicit empty command line (over one from the config).
    expect(parse('// @vmtest-kernel-args ""')).toEqual({ kernelArgs: '' })
  })

  test('the vitest and jest environment-options directives: one line of JSON, the vmtest options', () => {
    expect(parse(`/**\n * ${VITEST_ENV} vmtest\n * ${V} {"memory": "2G", "cpus": 2}\n */`)).toEqual({
      environmentOptions: { memory: '2G', cpus: 2 },
      environmentOptionsDirective: V,
    })
    expect(parse(`/** ${J} {"failOnKernel": ["panic"]} */`)).toEqual({
      environmentOptions: { failOnKernel: ['panic'] },
      environmentOptionsDirective: J,
    })
  })

  test('a directive repeated with the same value is fine', () => {
    expect(parse('// @vmtest-kernel ./a\n// @vmtest-kernel ./a')).toEqual({ kernel: './a' })
    expect(parse(`// ${V} {"cpus": 2}\n// ${J} {"cpus":2}`)).toMatchObject({ environmentOptions: { cpus: 2 } })
  })

  test('other tags and non-comment lines are not directives', () => {
    const source = [
      '/**',
      ` * ${VITEST_ENV} vmtest`,
      ` * ${JEST_ENV} vmtest`,
      ' * @constructor',
      ' * @param kernel the kernel',
      ' * see @vmtest-kernal below', // not at the start of the comment line
      ' */',
      "const s = '@vmtest-kernel ./not-a-directive'",
      '  @vmtest-nonsense in code',
      '*/ @vmtest-nonsense',
    ].join('\n')
    expect(parse(source)).toEqual({})
  })
})

describe('errors name the file, the line, and the fix', () => {
  test('a directive with no value', () => {
    expect(message('/**\n * @vmtest-kernel\n */')).toMatchInlineSnapshot(`"@vmtest-kernel in /work/project/test/a.test.ts:2 has no value: write @vmtest-kernel ../kernels/bzImage (a path relative to the test file)."`)
    expect(message('/** @vmtest-target */')).toMatchInlineSnapshot(`"@vmtest-target in /work/project/test/a.test.ts:1 has no value: write @vmtest-target NAME (a [[target]] of vmtest.toml)."`)
    expect(message('// @vmtest-kernel-args')).toMatchInlineSnapshot(`"@vmtest-kernel-args in /work/project/test/a.test.ts:1 has no value: write @vmtest-kernel-args "quiet loglevel=3"."`)
    expect(message('// @vmtest-isolate   ')).toMatchInlineSnapshot(`"@vmtest-isolate in /work/project/test/a.test.ts:1 has no value: write @vmtest-isolate reboot (or lease)."`)
    expect(message(`\n\n// ${V}`)).toBe(`${V} in /work/project/test/a.test.ts:3 has no value: write ${V} {"memory": "2G"}.`)
    expect(message('// @vmtest-kernel ""')).toMatchInlineSnapshot(`"@vmtest-kernel in /work/project/test/a.test.ts:1 has no value: write @vmtest-kernel ../kernels/bzImage (a path relative to the test file)."`)
  })

  test('the same directive twice with different values quotes both', () => {
    expect(message('/**\n * @vmtest-kernel ./a\n * @vmtest-kernel ./b\n */')).toMatchInlineSnapshot(`"@vmtest-kernel is set twice in /work/project/test/a.test.ts with different values: './a' (line 2) and './b' (line 3). Keep one."`)
    expect(message('// @vmtest-isolate lease\n\n// @vmtest-isolate reboot')).toMatchInlineSnapshot(`"@vmtest-isolate is set twice in /work/project/test/a.test.ts with different values: 'lease' (line 1) and 'reboot' (line 3). Keep one."`)
    expect(message(`// ${J} {"cpus": 2}\n// ${V} {"cpus": 4}`)).toBe(`${V} is set twice in /work/project/test/a.test.ts with different values: '{"cpus": 2}' (${J}, line 1) and '{"cpus": 4}' (line 2). Keep one.`)
  })

  test('an unknown @vmtest- directive gets a did-you-mean', () => {
    expect(message('/**\n * @vmtest-kernal ./bzImage\n */')).toBe(`Unknown directive @vmtest-kernal in /work/project/test/a.test.ts:2: did you mean @vmtest-kernel? Known: @vmtest-kernel, @vmtest-target, @vmtest-kernel-args, @vmtest-isolate; ${OTHERS}`)
    expect(message('// @vmtest-kernelargs quiet')).toContain('did you mean @vmtest-kernel-args?')
    expect(message('// @vmtest-isolation reboot')).toContain('did you mean @vmtest-isolate?')
    expect(message('// @vmtest-memory 2G')).toBe(`Unknown directive @vmtest-memory in /work/project/test/a.test.ts:1. Known: @vmtest-kernel, @vmtest-target, @vmtest-kernel-args, @vmtest-isolate; ${OTHERS}`)
  })

  test('a directive glued to its value', () => {
    expect(message('// @vmtest-kernel:./bzImage')).toMatchInlineSnapshot(`"\`@vmtest-kernel:./bzImage\` in /work/project/test/a.test.ts:1 is not a directive: put a space between @vmtest-kernel and its value, as in @vmtest-kernel ../kernels/bzImage (a path relative to the test file)."`)
  })

  test('a bad isolate value', () => {
    expect(message('// @vmtest-isolate fresh')).toMatchInlineSnapshot(`"@vmtest-isolate in /work/project/test/a.test.ts:1 is 'fresh': expected 'reboot' (a freshly booted guest for this file) or 'lease' (the default: a reused guest with a fresh writable layer)."`)
  })

  test('invalid JSON carries the JSON error', () => {
    const bad = "{memory: '2G'}"
    expect(message(`/**\n * ${V} ${bad}\n */`)).toBe(
      `Invalid JSON after ${V} in /work/project/test/a.test.ts:2: ${jsonError(bad)}. Write the options as one line of JSON, e.g. ${V} {"memory": "2G", "cpus": 2}.`,
    )
    // A docblock spanning lines is not read past its first line.
    expect(message(`/**\n * ${J} {\n *   "cpus": 2\n * }\n */`)).toBe(
      `Invalid JSON after ${J} in /work/project/test/a.test.ts:2: ${jsonError('{')}. Write the options as one line of JSON, e.g. ${J} {"memory": "2G", "cpus": 2}.`,
    )
  })

  test('JSON that is not an object', () => {
    expect(message(`// ${V} ["2G"]`)).toBe(`${V} in /work/project/test/a.test.ts:1 must be a JSON object of vmtest options, e.g. {"memory": "2G"}; got ["2G"].`)
    expect(message(`// ${V} "2G"`)).toBe(`${V} in /work/project/test/a.test.ts:1 must be a JSON object of vmtest options, e.g. {"memory": "2G"}; got "2G".`)
    expect(message(`/** ${J} null */`)).toBe(`${J} in /work/project/test/a.test.ts:1 must be a JSON object of vmtest options, e.g. {"memory": "2G"}; got null.`)
  })
})
