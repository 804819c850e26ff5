import { resolve } from 'node:path'
import { describe, expect, test } from 'vitest'
import { isVmtestError } from '../src/host/errors.js'
import { parseMemory, resolveOptions, type GuestOptions } from '../src/host/options.js'

/** The error resolveOptions throws for `options` (fails the test if it does not throw). */
function rejection(options: unknown): Error {
  try {
    resolveOptions(options as GuestOptions)
  } catch (error) {
    expect(isVmtestError(error), String(error)).toBe(true)
    expect(error).toMatchObject({ code: 'VMTEST_OPTION_INVALID', phase: 'config' })
    return error as Error
  }
  throw new Error(`resolveOptions accepted ${String(options)}`)
}
const message = (options: unknown) => rejection(options).message

describe('unknown options', () => {
  test('a misspelling gets a did-you-mean', () => {
    expect(message({ memroy: '2G' })).toMatchInlineSnapshot(`"Unknown option \`memroy\`: did you mean \`memory\`? Known options: kernel, kernelArgs, arch, rootfs, image, uefi, bios, modules, memory, cpus, accel, qemu, rootMode, shared, mounts, bootTimeout, extraArgs, cwd, consoleLog, onProgress."`)
    expect(message({ kernelargs: 'quiet' })).toMatchInlineSnapshot(`"Unknown option \`kernelargs\`: did you mean \`kernelArgs\`? Known options: kernel, kernelArgs, arch, rootfs, image, uefi, bios, modules, memory, cpus, accel, qemu, rootMode, shared, mounts, bootTimeout, extraArgs, cwd, consoleLog, onProgress."`)
    expect(message({ cpu: 2 })).toMatchInlineSnapshot(`"Unknown option \`cpu\`: did you mean \`cpus\`? Known options: kernel, kernelArgs, arch, rootfs, image, uefi, bios, modules, memory, cpus, accel, qemu, rootMode, shared, mounts, bootTimeout, extraArgs, cwd, consoleLog, onProgress."`)
  })

  test('a name like nothing known gets the list only', () => {
    expect(message({ colour: 'blue' })).toMatchInlineSnapshot(`"Unknown option \`colour\`. Known options: kernel, kernelArgs, arch, rootfs, image, uefi, bios, modules, memory, cpus, accel, qemu, rootMode, shared, mounts, bootTimeout, extraArgs, cwd, consoleLog, onProgress."`)
  })

  test('the first unknown key is reported even next to valid ones', () => {
    expect(message({ memory: '2G', mount: {} })).toContain('Unknown option `mount`: did you mean `mounts`?')
  })
})

describe('invalid values', () => {
  test('kernel', () => {
    expect(message({ kernel: '' })).toMatchInlineSnapshot(`"Invalid option \`kernel\`: expected a path to a kernel image, got ''."`)
    expect(message({ kernel: 42 })).toMatchInlineSnapshot(`"Invalid option \`kernel\`: expected a path to a kernel image, got 42 (number)."`)
  })

  test('kernelArgs', () => {
    expect(message({ kernelArgs: ['quiet'] })).toMatchInlineSnapshot(`"Invalid option \`kernelArgs\`: expected a string, got ["quiet"] (object)."`)
  })

  test('cpus', () => {
    expect(message({ cpus: 0 })).toMatchInlineSnapshot(`"Invalid option \`cpus\`: expected an integer from 1 to 64, got 0 (number)."`)
    expect(message({ cpus: 65 })).toMatchInlineSnapshot(`"Invalid option \`cpus\`: expected an integer from 1 to 64, got 65 (number)."`)
    expect(message({ cpus: 1.5 })).toMatchInlineSnapshot(`"Invalid option \`cpus\`: expected an integer from 1 to 64, got 1.5 (number)."`)
    expect(message({ cpus: '2' })).toMatchInlineSnapshot(`"Invalid option \`cpus\`: expected an integer from 1 to 64, got '2'."`)
    expect(message({ cpus: NaN })).toMatchInlineSnapshot(`"Invalid option \`cpus\`: expected an integer from 1 to 64, got NaN (number)."`)
    expect(message({ cpus: 2n })).toMatchInlineSnapshot(`"Invalid option \`cpus\`: expected an integer from 1 to 64, got 2 (bigint)."`)
    expect(message({ bootTimeout: -Infinity })).toMatchInlineSnapshot(`"Invalid option \`bootTimeout\`: expected a positive number of milliseconds, got -Infinity (number)."`)
  })

  test('accel and rootMode', () => {
    expect(message({ accel: 'hvf' })).toMatchInlineSnapshot(`"Invalid option \`accel\`: expected 'auto', 'kvm' or 'tcg', got 'hvf'."`)
    expect(message({ rootMode: 'tmpfs' })).toMatchInlineSnapshot(`"Invalid option \`rootMode\`: expected 'overlay', 'ro' or 'rw', got 'tmpfs'."`)
  })

  test('bootTimeout', () => {
    expect(message({ bootTimeout: 0 })).toMatchInlineSnapshot(`"Invalid option \`bootTimeout\`: expected a positive number of milliseconds, got 0 (number)."`)
    expect(message({ bootTimeout: '10s' })).toMatchInlineSnapshot(`"Invalid option \`bootTimeout\`: expected a positive number of milliseconds, got '10s'."`)
  })

  test('extraArgs', () => {
    expect(message({ extraArgs: '-s' })).toMatchInlineSnapshot(`"Invalid option \`extraArgs\`: expected an array of strings, got '-s'."`)
    expect(message({ extraArgs: ['-s', 1] })).toMatchInlineSnapshot(`"Invalid option \`extraArgs\`: expected an array of strings, got ["-s",1] (object)."`)
  })

  test('shared', () => {
    expect(message({ shared: true })).toMatchInlineSnapshot(`"Invalid option \`shared\`: expected a directory, false, or { path, writable }, got true (boolean)."`)
    expect(message({ shared: null })).toMatchInlineSnapshot(`"Invalid option \`shared\`: expected a directory, false, or { path, writable }, got null (object)."`)
  })

  test('mounts', () => {
    expect(message({ mounts: { 'relative/path': '/tmp' } })).toMatchInlineSnapshot(`"Invalid option \`mounts\`: expected absolute guest paths without spaces, ";" or ":", got 'relative/path'."`)
    expect(message({ mounts: { '/with space': '/tmp' } })).toMatchInlineSnapshot(`"Invalid option \`mounts\`: expected absolute guest paths without spaces, ";" or ":", got '/with space'."`)
    expect(message({ mounts: { '/a;b': '/tmp' } })).toContain("got '/a;b'")
    expect(message({ mounts: { '/a:b': '/tmp' } })).toContain("got '/a:b'")
    expect(message({ mounts: { '/data': { writable: true } } })).toMatchInlineSnapshot(`"Invalid option \`mounts\`: expected { hostPath, writable } or a host path, got {"writable":true} (object)."`)
    expect(message({ mounts: { '/data': null } })).toMatchInlineSnapshot(`"Invalid option \`mounts\`: expected { hostPath, writable } or a host path, got null (object)."`)
  })

  test('memory', () => {
    expect(message({ memory: '64M' })).toMatchInlineSnapshot(`"Invalid option \`memory\`: expected a number of MiB or a size like '512M' or '2G' (at least 128M), got '64M'."`)
    expect(message({ memory: 'lots' })).toMatchInlineSnapshot(`"Invalid option \`memory\`: expected a number of MiB or a size like '512M' or '2G' (at least 128M), got 'lots'."`)
    expect(message({ memory: 100 })).toMatchInlineSnapshot(`"Invalid option \`memory\`: expected a number of MiB or a size like '512M' or '2G' (at least 128M), got 100 (number)."`)
  })

  test('the message names where the value came from when sources says so', () => {
    expect(message({ memory: '64M', sources: { memory: 'vitest.config.ts' } })).toMatchInlineSnapshot(`"Invalid option \`memory\` (in vitest.config.ts): expected a number of MiB or a size like '512M' or '2G' (at least 128M), got '64M'."`)
    expect(message({ cpus: 0, sources: { cpus: '@vmtest-cpus in a.test.ts', memory: 'vitest.config.ts' } })).toMatchInlineSnapshot(`"Invalid option \`cpus\` (in @vmtest-cpus in a.test.ts): expected an integer from 1 to 64, got 0 (number)."`)
    // A source for another option does not leak into this one's message.
    expect(message({ accel: 'xen', sources: { memory: 'vitest.config.ts' } })).not.toContain('vitest.config.ts')
  })
})

describe('resolved options', () => {
  test('defaults', () => {
    const resolved = resolveOptions()
    expect(resolved).toMatchObject({
      kernelArgs: '',
      memoryMiB: 1024,
      cpus: 1,
      accel: 'auto',
      shared: { path: process.cwd(), writable: true },
      mounts: [],
      extraArgs: [],
      cwd: process.cwd(),
    })
    for (const key of ['kernel', 'modules', 'qemu', 'rootMode', 'bootTimeoutMs', 'consoleLog'] as const) expect(resolved[key], key).toBeUndefined()
    expect(() => resolved.onProgress('booting')).not.toThrow()
    expect(resolveOptions({})).toMatchObject({ memoryMiB: 1024, cpus: 1, accel: 'auto' })
  })

  test('given values pass through, memory is parsed', () => {
    const progress: string[] = []
    const resolved = resolveOptions({
      kernel: '/boot/vmlinuz',
      kernelArgs: 'quiet',
      memory: '1.5G',
      cpus: 4,
      accel: 'tcg',
      rootMode: 'ro',
      bootTimeout: 90_000,
      extraArgs: ['-s'],
      cwd: '/tmp',
      onProgress: (m) => progress.push(m),
    })
    expect(resolved).toMatchObject({ kernel: '/boot/vmlinuz', kernelArgs: 'quiet', memoryMiB: 1536, cpus: 4, accel: 'tcg', rootMode: 'ro', bootTimeoutMs: 90_000, extraArgs: ['-s'], cwd: '/tmp' })
    resolved.onProgress('hello')
    expect(progress).toEqual(['hello'])
  })

  test('shared: false, a path, or { path, writable }', () => {
    expect(resolveOptions({ shared: false }).shared).toBeUndefined()
    expect(resolveOptions({ shared: 'some/dir' }).shared).toEqual({ path: resolve('some/dir'), writable: true })
    expect(resolveOptions({ shared: { writable: false } }).shared).toEqual({ path: process.cwd(), writable: false })
    expect(resolveOptions({ shared: { path: '/srv' } }).shared).toEqual({ path: '/srv', writable: true })
  })

  test('mounts: a host path is read-only; the object form may be writable; host paths are resolved', () => {
    expect(resolveOptions({ mounts: { '/data': '/host/data', '/cache': { hostPath: 'cache', writable: true } } }).mounts).toEqual([
      { guestPath: '/data', hostPath: '/host/data', writable: false },
      { guestPath: '/cache', hostPath: resolve('cache'), writable: true },
    ])
  })

  test('source() names the option and, when known, where it was set', () => {
    const resolved = resolveOptions({ memory: '2G', sources: { memory: 'vitest.config.ts' } })
    expect(resolved.source('memory')).toBe('from `memory` in vitest.config.ts')
    expect(resolved.source('cpus')).toBe('from `cpus`')
  })
})

describe('parseMemory', () => {
  test.each<[number | string, number | undefined]>([
    ['512M', 512],
    ['1G', 1024],
    ['1.5G', 1536],
    [2048, 2048],
    ['2048', 2048],
    ['128M', 128],
    ['1g', 1024],
    ['1GiB', 1024],
    ['512MB', 512],
    [' 2 G ', 2048],
    ['131072K', 128],
    ['1T', 1024 * 1024],
    ['64M', undefined],
    ['127M', undefined],
    [127, undefined],
    ['lots', undefined],
    ['', undefined],
    ['-1G', undefined],
    ['1.5', undefined],
    ['1 X', undefined],
  ])('parseMemory(%j) = %j', (input, expected) => {
    expect(parseMemory(input)).toBe(expected)
  })
})

describe('guest kinds: arch, rootfs, image, uefi, bios', () => {
  test('values', () => {
    expect(message({ arch: 'arm64' })).toMatchInlineSnapshot(`"Invalid option \`arch\`: expected one of x86_64, aarch64, riscv64, s390x, got 'arm64'."`)
    expect(message({ rootfs: '' })).toMatchInlineSnapshot(`"Invalid option \`rootfs\`: expected a path to a root filesystem directory, got ''."`)
    expect(message({ image: 42 })).toMatchInlineSnapshot(`"Invalid option \`image\`: expected a path to a disk image, got 42 (number)."`)
    expect(message({ image: 'a.raw', uefi: 'yes' })).toMatchInlineSnapshot(`"Invalid option \`uefi\`: expected true or false, got 'yes'."`)
    expect(resolveOptions({ image: 'a.raw', uefi: true, bios: 'OVMF.fd' })).toMatchObject({ image: resolve('a.raw'), uefi: true, bios: resolve('OVMF.fd') })
  })

  test('conflicts name both options and where they came from', () => {
    const sources = { image: 'vmtest.toml', kernel: '@vmtest-kernel in a.test.ts' }
    expect(message({ image: 'a.raw', kernel: 'bzImage', sources })).toMatchInlineSnapshot(`"\`image\` (in vmtest.toml) and \`kernel\` (in @vmtest-kernel in a.test.ts) conflict: a guest boots either a disk image (through its own bootloader) or a kernel. Keep one."`)
    expect(message({ image: 'a.raw', rootfs: '/srv/root' })).toMatchInlineSnapshot(`"\`image\` and \`rootfs\` conflict: a disk image brings its own root filesystem. Remove \`rootfs\`."`)
    expect(message({ image: 'a.raw', kernelArgs: 'quiet' })).toMatchInlineSnapshot(`"\`image\` and \`kernelArgs\` conflict: a disk image boots its own kernel command line (set it in the image's bootloader). Remove \`kernelArgs\`."`)
    expect(message({ image: 'a.raw', arch: 'aarch64' })).toMatchInlineSnapshot(`"\`image\` and \`arch\` conflict: image targets boot x86_64 images only."`)
    expect(message({ uefi: true })).toMatchInlineSnapshot(`"Invalid option \`uefi\`: expected false without an \`image\` (UEFI boots a disk image, not a kernel), got true (boolean)."`)
    expect(message({ image: 'a.raw', bios: 'OVMF.fd' })).toMatchInlineSnapshot(`"\`bios\` and \`uefi\` conflict: the \`bios\` firmware file is used for UEFI boot only: set \`uefi: true\`, or remove \`bios\`."`)
  })

  test('an image guest starts its commands in the project at /mnt/vmtest (or / with none shared)', () => {
    expect(resolveOptions({ image: 'a.raw' }).cwd).toBe('/mnt/vmtest')
    expect(resolveOptions({ image: 'a.raw', shared: false }).cwd).toBe('/')
    expect(resolveOptions({ image: 'a.raw', shared: '/p', cwd: '/p/sub' }).cwd).toBe('/mnt/vmtest/sub')
    expect(resolveOptions({ image: 'a.raw', shared: '/p', cwd: '/p' }).cwd).toBe('/mnt/vmtest')
    expect(resolveOptions({ image: 'a.raw', shared: '/p', cwd: '/root' }).cwd).toBe('/root')
    expect(resolveOptions({}).cwd).toBe(process.cwd())
  })
})
