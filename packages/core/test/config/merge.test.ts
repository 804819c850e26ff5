import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { parseDocblock } from '../../src/config/docblock.js'
import { fileLayers, mergeFileOptions, mergeLayers, type OptionLayer } from '../../src/config/merge.js'
import { isVmtestError, type VmtestErrorCode } from '../../src/host/errors.js'
import { resolveOptions } from '../../src/host/options.js'

// Vitest scans a test file's whole text for the environment-options tag followed by JSON; spelt whole
// here, it would configure this file's own environment.
const V = '@vitest' + '-environment-options'
const J = '@jest' + '-environment-options'

const root = mkdtempSync(join(tmpdir(), 'vmtest-merge-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

// A project: <root>/vmtest.toml with two targets, <root>/ci/other.toml with one, tests in <root>/test.
const TOML = `
[[target]]
name = "base"
kernel = "kernels/bzImage-base"
kernel_args = "from-base"
command = "/bin/true"
[target.vm]
memory = "4G"
num_cpus = 2
[target.vm.mounts]
"/mnt/data" = { host_path = "data" }

[[target]]
name = "bare"
kernel = "kernels/bzImage-bare"
command = "/bin/true"
`
writeFileSync(join(root, 'vmtest.toml'), TOML)
mkdirSync(join(root, 'ci'))
writeFileSync(join(root, 'ci', 'other.toml'), '[[target]]\nname = "ci"\nkernel = "../kernels/bzImage-ci"\ncommand = "/bin/true"\n')
const TOML_PATH = join(root, 'vmtest.toml')
const FILE = join(root, 'test', 'a.test.ts')
const CONFIG = 'vitest.config environmentOptions.vmtest'

const config = (options: Record<string, unknown>): OptionLayer => ({ source: CONFIG, baseDir: root, options })
const merge = (...layers: OptionLayer[]) => mergeLayers(layers, { rootDir: root })
/** The layers of a test file whose source is `source`. */
const docblock = (source: string) => fileLayers(parseDocblock(source, FILE), FILE)

/** The message mergeLayers throws (temp dir shown as <root>); checks the code and phase. */
function message(fn: () => unknown, code: VmtestErrorCode = 'VMTEST_OPTION_INVALID'): string {
  try {
    fn()
  } catch (error) {
    expect(isVmtestError(error), String(error)).toBe(true)
    expect(error).toMatchObject({ code, phase: 'config' })
    return (error as Error).message.replaceAll(root, '<root>')
  }
  throw new Error('did not throw')
}

describe('defaults', () => {
  test('no layers: no guest options, default runner options', () => {
    expect(merge()).toEqual({ guest: { sources: {} }, runner: { isolate: 'lease', verbose: false, failOnKernel: true, resultsDir: join(root, '.vmtest/results') } })
    expect(merge({ source: CONFIG, baseDir: root }, ...docblock(''))).toEqual(merge())
  })

  test('runner options pass through; none of them reaches the guest options', () => {
    const merged = merge(config({ isolate: 'reboot', verbose: true, failOnKernel: ['panic', 'oops', 'panic'], memory: '2G' }))
    expect(merged.runner).toEqual({ isolate: 'reboot', verbose: true, failOnKernel: ['panic', 'oops'], resultsDir: join(root, '.vmtest/results') })
    expect(merged.guest).toEqual({ memory: '2G', sources: { memory: CONFIG } })
    expect(merge(config({ failOnKernel: false })).runner.failOnKernel).toBe(false)
  })

  test('an option set to undefined does not override', () => {
    expect(merge(config({ memory: '2G' }), config({ memory: undefined })).guest.memory).toBe('2G')
  })
})

describe('resultsDir: where failing tests leave their logs', () => {
  test('relative to the layer that sets it; false turns the logs off', () => {
    expect(merge(config({ resultsDir: 'out/logs' })).runner.resultsDir).toBe(join(root, 'out/logs'))
    expect(merge(config({ resultsDir: '/abs/logs' })).runner.resultsDir).toBe('/abs/logs')
    expect(merge(config({ resultsDir: false })).runner.resultsDir).toBe(false)
  })

  test("a test file's logs go in a folder named by its path under the project root", () => {
    const file = (path: string, options: Record<string, unknown> = {}) =>
      mergeFileOptions({ file: path, directives: {}, rootDir: root, config: { source: CONFIG, options } }).runner.failureLogDir
    expect(file(FILE)).toBe(join(root, '.vmtest/results/test/a.test.ts'))
    expect(file(join(root, '../elsewhere/b.test.ts'))).toBe(join(root, '.vmtest/results/elsewhere/b.test.ts'))
    expect(file(FILE, { resultsDir: false })).toBeUndefined()
  })

  test('anything else is an error naming the option and where it was set', () => {
    expect(message(() => merge(config({ resultsDir: true })))).toBe(
      `Invalid option \`resultsDir\` (in ${CONFIG}): expected a folder path, or false to write no failure logs, got true (boolean).`,
    )
  })
})

describe('fileLayers', () => {
  test('the environment-options layer, then the @vmtest-* layer, both relative to the file', () => {
    const layers = docblock(`/**\n * ${J} {"memory": "2G"}\n * @vmtest-kernel ../k/bzImage\n * @vmtest-kernel-args quiet\n * @vmtest-isolate reboot\n */`)
    expect(layers).toEqual([
      { source: `${J} in ${FILE}`, baseDir: join(root, 'test'), options: { memory: '2G' } },
      {
        source: `the @vmtest-* directives in ${FILE}`,
        baseDir: join(root, 'test'),
        options: { kernel: '../k/bzImage', kernelArgs: 'quiet', isolate: 'reboot' },
        sources: { kernel: `@vmtest-kernel in ${FILE}`, kernelArgs: `@vmtest-kernel-args in ${FILE}`, isolate: `@vmtest-isolate in ${FILE}` },
      },
    ])
    expect(docblock(`// ${V} {"cpus": 2}`)[0].source).toBe(`${V} in ${FILE}`)
    expect(docblock('// @vmtest-target base')).toHaveLength(1)
  })
})

describe('relative paths resolve against their own layer', () => {
  test('kernel, modules, consoleLog, qemu, shared and mount host paths', () => {
    const { guest } = merge(
      config({ modules: 'lib/modules/6.6', consoleLog: 'logs/console.txt', qemu: './qemu/build/qemu-system-x86_64', shared: 'shared', mounts: { '/mnt/a': 'a', '/mnt/b': { hostPath: 'b', writable: true }, '/mnt/c': '/abs/c' } }),
      ...docblock(`// ${V} {"consoleLog": "console.txt", "shared": {"path": "../s", "writable": false}}\n// @vmtest-kernel ../kernels/bzImage`),
    )
    expect(guest).toEqual({
      modules: join(root, 'lib/modules/6.6'),
      consoleLog: join(root, 'test/console.txt'),
      qemu: join(root, 'qemu/build/qemu-system-x86_64'),
      shared: { path: join(root, 's'), writable: false },
      mounts: { '/mnt/a': join(root, 'a'), '/mnt/b': { hostPath: join(root, 'b'), writable: true }, '/mnt/c': '/abs/c' },
      kernel: join(root, 'kernels/bzImage'),
      sources: {
        modules: CONFIG,
        consoleLog: `${V} in ${FILE}`,
        qemu: CONFIG,
        shared: `${V} in ${FILE}`,
        mounts: CONFIG,
        kernel: `@vmtest-kernel in ${FILE}`,
      },
    })
  })

  test('a bare qemu name stays a PATH lookup; absolute paths and odd values are left to resolveOptions', () => {
    const { guest } = merge(config({ qemu: 'qemu-system-x86_64', kernel: '/boot/vmlinuz', shared: false }))
    expect(guest).toMatchObject({ qemu: 'qemu-system-x86_64', kernel: '/boot/vmlinuz', shared: false })
    const odd = merge(config({ kernel: 42, shared: { writable: false }, mounts: { '/m': null } })).guest
    expect(odd).toMatchObject({ kernel: 42, shared: { writable: false }, mounts: { '/m': null } })
    expect(message(() => resolveOptions(odd))).toBe(`Invalid option \`kernel\` (in ${CONFIG}): expected a path to a kernel image, got 42 (number).`)
  })
})

describe('precedence', () => {
  test('toml target < config < environment-options docblock < @vmtest-* docblock', () => {
    const source = `/**\n * ${V} {"cpus": 3, "kernelArgs": "from-options", "memory": "3G"}\n * @vmtest-kernel-args from-directive\n */`
    const { guest } = merge(config({ target: 'base', memory: '2G', accel: 'tcg' }), ...docblock(source))
    const target = `target "base" in ${TOML_PATH}`
    expect(guest).toEqual({
      kernel: join(root, 'kernels/bzImage-base'),
      kernelArgs: 'from-directive',
      memory: '3G',
      cpus: 3,
      accel: 'tcg',
      mounts: { '/mnt/data': { hostPath: join(root, 'data'), writable: false } },
      sources: { kernel: target, kernelArgs: `@vmtest-kernel-args in ${FILE}`, memory: `${V} in ${FILE}`, cpus: `${V} in ${FILE}`, accel: CONFIG, mounts: target },
    })
  })

  test('config over the target it names', () => {
    const { guest } = merge(config({ target: 'base', memory: '2G', kernelArgs: 'mine' }))
    expect(guest).toMatchObject({ kernel: join(root, 'kernels/bzImage-base'), memory: '2G', kernelArgs: 'mine', cpus: 2 })
    expect(guest.sources).toMatchObject({ memory: CONFIG, kernelArgs: CONFIG, cpus: `target "base" in ${TOML_PATH}` })
  })

  test('a docblock @vmtest-target overrides the config kernel (and the other options its target sets)', () => {
    const { guest } = merge(config({ kernel: './kernels/mine', memory: '2G', cpus: 1, extraArgs: ['-s'] }), ...docblock('// @vmtest-target base'))
    expect(guest).toMatchObject({ kernel: join(root, 'kernels/bzImage-base'), memory: '4G', cpus: 2, extraArgs: ['-s'] })
    expect(guest.sources).toMatchObject({ kernel: `target "base" in ${TOML_PATH}`, extraArgs: CONFIG })
  })

  test('a docblock @vmtest-kernel overrides the kernel of a configured target', () => {
    const { guest } = merge(config({ target: 'base' }), ...docblock('// @vmtest-kernel ./bzImage'))
    expect(guest).toMatchObject({ kernel: join(root, 'test/bzImage'), kernelArgs: 'from-base' })
  })

  test('only the highest target is expanded: a file\'s target replaces the configured one whole', () => {
    const { guest } = merge(config({ target: 'base' }), ...docblock('// @vmtest-target bare'))
    expect(guest).toEqual({ kernel: join(root, 'kernels/bzImage-bare'), sources: { kernel: `target "bare" in ${TOML_PATH}` } })
  })

  test('the toml is `config`, resolved against its own layer, wherever the target is named', () => {
    const { guest } = merge(config({ config: './ci/other.toml' }), ...docblock('// @vmtest-target ci'))
    expect(guest).toEqual({ kernel: join(root, 'kernels/bzImage-ci'), sources: { kernel: `target "ci" in ${join(root, 'ci/other.toml')}` } })
  })

  test('the merged options are what resolveOptions takes, sources and all', () => {
    const { guest } = merge(config({ target: 'base' }), ...docblock(`// ${V} {"memory": "64M"}`))
    expect(message(() => resolveOptions(guest))).toBe(`Invalid option \`memory\` (in ${V} in ${FILE.replace(root, '<root>')}): expected a number of MiB or a size like '512M' or '2G' (at least 128M), got '64M'.`)
  })
})

describe('errors name the option, where it was set, and the fix', () => {
  test('unknown options get a did-you-mean against guest and runner options', () => {
    expect(message(() => merge(config({ memroy: '2G' })))).toMatchInlineSnapshot(`"Unknown option \`memroy\` in vitest.config environmentOptions.vmtest: did you mean \`memory\`? Known options: kernel, kernelArgs, arch, rootfs, image, uefi, bios, modules, memory, cpus, accel, qemu, rootMode, shared, mounts, bootTimeout, extraArgs, cwd, consoleLog, onProgress, target, config, isolate, verbose, failOnKernel, resultsDir."`)
    expect(message(() => merge(config({ failonkernel: false })))).toContain('did you mean `failOnKernel`?')
    expect(message(() => merge(config({ kernel_args: 'quiet' })))).toContain('did you mean `kernelArgs`?')
    expect(message(() => merge(...docblock(`// ${V} {"colour": "blue"}`)))).toBe(
      `Unknown option \`colour\` in ${V} in <root>/test/a.test.ts. Known options: kernel, kernelArgs, arch, rootfs, image, uefi, bios, modules, memory, cpus, accel, qemu, rootMode, shared, mounts, bootTimeout, extraArgs, cwd, consoleLog, onProgress, target, config, isolate, verbose, failOnKernel, resultsDir.`,
    )
    expect(message(() => merge(config({ sources: {} })))).toContain('Unknown option `sources`')
  })

  test('options that are not an object', () => {
    expect(message(() => merge({ source: CONFIG, baseDir: root, options: 'bzImage' as never }))).toMatchInlineSnapshot(`"The vmtest options in vitest.config environmentOptions.vmtest must be an object like { kernel: './bzImage' }, got 'bzImage'."`)
  })

  test('kernel and target in the same layer conflict', () => {
    expect(message(() => merge(config({ kernel: './k', target: 'base' })))).toMatchInlineSnapshot(`"\`kernel\` and \`target\` in vitest.config environmentOptions.vmtest conflict: both choose the kernel (a target names its own). Keep one."`)
    expect(message(() => merge(...docblock('/**\n * @vmtest-kernel ./k\n * @vmtest-target base\n */')))).toMatchInlineSnapshot(`"@vmtest-kernel in <root>/test/a.test.ts and @vmtest-target in <root>/test/a.test.ts conflict: both choose the kernel (a target names its own). Keep one."`)
  })

  test('target and config must be non-empty strings', () => {
    expect(message(() => merge(config({ target: 3 })))).toMatchInlineSnapshot(`"Invalid option \`target\` (in vitest.config environmentOptions.vmtest): expected the name of a [[target]] in vmtest.toml, got 3 (number)."`)
    expect(message(() => merge(config({ config: '' })))).toMatchInlineSnapshot(`"Invalid option \`config\` (in vitest.config environmentOptions.vmtest): expected the path of a vmtest.toml, got ''."`)
  })

  test('an unknown target names who asked and lists the known ones', () => {
    expect(message(() => merge(config({ target: 'base' }), ...docblock('// @vmtest-target bsae')), 'VMTEST_TARGET_UNKNOWN')).toMatchInlineSnapshot(`"Unknown target "bsae" (@vmtest-target in <root>/test/a.test.ts): did you mean "base"? <root>/vmtest.toml defines "base", "bare"."`)
    expect(message(() => merge(config({ target: 'arm64' })), 'VMTEST_TARGET_UNKNOWN')).toMatchInlineSnapshot(`"Unknown target "arm64" (\`target\` in vitest.config environmentOptions.vmtest). <root>/vmtest.toml defines "base", "bare"."`)
  })

  test('a missing vmtest.toml says which option sent us there', () => {
    expect(message(() => merge(config({ config: 'nope.toml' }), ...docblock('// @vmtest-target base')), 'VMTEST_CONFIG_INVALID')).toMatchInlineSnapshot(`"vmtest.toml not found: <root>/nope.toml (\`config\` in vitest.config environmentOptions.vmtest). Create it with a [[target]] that names a kernel, or set \`config\` to the path of yours."`)
    expect(message(() => mergeLayers(docblock('// @vmtest-target base'), { rootDir: join(root, 'test') }), 'VMTEST_CONFIG_INVALID')).toMatchInlineSnapshot(`"vmtest.toml not found: <root>/test/vmtest.toml (the default \`config\`, read because of @vmtest-target in <root>/test/a.test.ts). Create it with a [[target]] that names a kernel, or set \`config\` to the path of yours."`)
  })

  test('a `config` without a `target` is not read', () => {
    expect(merge(config({ config: 'nope.toml', memory: '2G' })).guest).toEqual({ memory: '2G', sources: { memory: CONFIG } })
  })

  test('rootfs, image and bios paths resolve against the layer that set them', () => {
    expect(merge(config({ rootfs: './rootfs', arch: 'aarch64' })).guest).toEqual({ rootfs: join(root, 'rootfs'), arch: 'aarch64', sources: { rootfs: CONFIG, arch: CONFIG } })
    expect(merge(config({ image: 'disk.qcow2', uefi: true, bios: '../OVMF.fd' })).guest).toMatchObject({ image: join(root, 'disk.qcow2'), uefi: true, bios: join(root, '..', 'OVMF.fd') })
  })

  test('isolate, verbose', () => {
    expect(message(() => merge(config({ isolate: 'fresh' })))).toMatchInlineSnapshot(`"Invalid option \`isolate\` (in vitest.config environmentOptions.vmtest): expected 'lease' or 'reboot', got 'fresh'."`)
    expect(message(() => merge(config({ verbose: 'yes' })))).toMatchInlineSnapshot(`"Invalid option \`verbose\` (in vitest.config environmentOptions.vmtest): expected true or false, got 'yes'."`)
  })

  test('failOnKernel', () => {
    expect(message(() => merge(config({ failOnKernel: 'panic' })))).toMatchInlineSnapshot(`"Invalid option \`failOnKernel\` (in vitest.config environmentOptions.vmtest): expected true, false or an array of splat kinds (panic, oops, bug, warning, kasan, kmsan, kcsan, ubsan, lockdep, hung_task, soft_lockup, hard_lockup, rcu_stall), got 'panic'."`)
    expect(message(() => merge(...docblock(`// ${V} {"failOnKernel": ["panic", "warn"]}`)))).toBe(
      `Invalid option \`failOnKernel\` (in ${V} in <root>/test/a.test.ts): unknown splat kind 'warn': did you mean 'warning'? Known kinds: panic, oops, bug, warning, kasan, kmsan, kcsan, ubsan, lockdep, hung_task, soft_lockup, hard_lockup, rcu_stall.`,
    )
    expect(message(() => merge(config({ failOnKernel: ['hungtask'] })))).toContain("did you mean 'hung_task'?")
    expect(message(() => merge(config({ failOnKernel: [1] })))).toMatchInlineSnapshot(`"Invalid option \`failOnKernel\` (in vitest.config environmentOptions.vmtest): unknown splat kind 1 (number). Known kinds: panic, oops, bug, warning, kasan, kmsan, kcsan, ubsan, lockdep, hung_task, soft_lockup, hard_lockup, rcu_stall."`)
  })

  test('a toml image target: its image, uefi and vm.bios, relative to the toml', () => {
    writeFileSync(join(root, 'ci', 'image.toml'), '[[target]]\nname = "img"\nimage = "disk.img"\nuefi = true\nvm.bios = "fw/OVMF.fd"\ncommand = "/bin/true"\n')
    expect(merge(config({ config: 'ci/image.toml', target: 'img' })).guest).toMatchObject({ image: join(root, 'ci', 'disk.img'), uefi: true, bios: join(root, 'ci', 'fw', 'OVMF.fd') })
  })

  test('a toml foreign-arch target: arch and rootfs', () => {
    writeFileSync(join(root, 'ci', 'arm.toml'), '[[target]]\nname = "arm"\nkernel = "Image"\narch = "aarch64"\nrootfs = "arm64-root"\ncommand = "/bin/true"\n')
    expect(merge(config({ config: 'ci/arm.toml', target: 'arm' })).guest).toMatchObject({ kernel: join(root, 'ci', 'Image'), arch: 'aarch64', rootfs: join(root, 'ci', 'arm64-root') })
  })
})
