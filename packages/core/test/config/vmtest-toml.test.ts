import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { findTarget, loadVmtestToml, targetToGuestOptions, VMTEST_TOML_DEFAULTS, type VmtestTarget } from '../../src/config/vmtest-toml.js'
import { isVmtestError, type VmtestErrorCode } from '../../src/host/errors.js'
import { resolveOptions } from '../../src/host/options.js'

const root = mkdtempSync(join(tmpdir(), 'vmtest-toml-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let count = 0
/** Writes `text` as <fresh dir>/vmtest.toml and returns its path. */
function toml(text: string): string {
  const dir = join(root, `p${++count}`)
  mkdirSync(dir)
  const path = join(dir, 'vmtest.toml')
  writeFileSync(path, text)
  return path
}

/** The message `fn` throws, with the temp dir shown as <dir>; checks the code and phase. */
function message(fn: () => unknown, code: VmtestErrorCode = 'VMTEST_CONFIG_INVALID'): string {
  try {
    fn()
  } catch (error) {
    expect(isVmtestError(error), String(error)).toBe(true)
    expect(error).toMatchObject({ code, phase: 'config' })
    // <dir>: the directory of the vmtest.toml at hand; <tmp>: the temp dir they all live in.
    return (error as Error).message.replaceAll(root, '<tmp>').replace(/<tmp>\/p\d+/g, '<dir>')
  }
  throw new Error('did not throw')
}
const loadError = (text: string) => message(() => loadVmtestToml(toml(text)))

const KERNEL_TARGET = '[[target]]\nname = "k"\nkernel = "bzImage"\ncommand = "/bin/true"\n'

describe('loading', () => {
  test('every field, typed, with paths made absolute against the file\'s directory', () => {
    const path = toml(`
# Kernel target: the host's root over 9p.
[[target]]
name = "6.6 debug"
kernel = "kernels/bzImage-6.6"
kernel_args = "quiet loglevel=3"
rootfs = "/"
arch = "x86_64"
command = "/bin/bash -c 'make test'"

[target.vm]
num_cpus = 4
memory = "2G"
extra_args = ["-s", "-device", "virtio-rng-pci"]

[target.vm.mounts]
"/mnt/data" = { host_path = "data", writable = true }
"/mnt/ro" = { host_path = "/srv/ro" }

[[target]]
name = "image"
image = "./images/fedora.qcow2"
uefi = true
command = '''/usr/bin/echo 'literal \\ string' '''
qemu_command = "qemu-system-x86_64"

[target.vm]
bios = "OVMF_CODE.fd"
`)
    const dir = join(path, '..')
    const config = loadVmtestToml(path)
    expect(config.path).toBe(path)
    expect(config.targets).toEqual<VmtestTarget[]>([
      {
        name: '6.6 debug',
        file: path,
        kernel: join(dir, 'kernels/bzImage-6.6'),
        image: undefined,
        uefi: false,
        rootfs: '/',
        arch: 'x86_64',
        kernelArgs: 'quiet loglevel=3',
        command: "/bin/bash -c 'make test'",
        qemuCommand: undefined,
        vm: {
          numCpus: 4,
          memory: '2G',
          extraArgs: ['-s', '-device', 'virtio-rng-pci'],
          mounts: { '/mnt/data': { hostPath: join(dir, 'data'), writable: true }, '/mnt/ro': { hostPath: '/srv/ro', writable: false } },
        },
      },
      {
        name: 'image',
        file: path,
        kernel: undefined,
        image: join(dir, 'images/fedora.qcow2'),
        uefi: true,
        rootfs: '/',
        arch: undefined,
        kernelArgs: undefined,
        command: "/usr/bin/echo 'literal \\ string' ",
        qemuCommand: 'qemu-system-x86_64',
        vm: { bios: join(dir, 'OVMF_CODE.fd') },
      },
    ])
  })

  test('a minimal target; vmtest\'s own [target.vm] defaults are exported for the CLI, not applied', () => {
    const [target] = loadVmtestToml(toml(KERNEL_TARGET)).targets
    expect(target).toMatchObject({ name: 'k', uefi: false, rootfs: '/', vm: {} })
    expect(VMTEST_TOML_DEFAULTS).toEqual({ numCpus: 2, memory: '4G' })
  })

  test('a relative rootfs resolves against the file', () => {
    const path = toml('[[target]]\nname = "r"\nkernel = "/boot/vmlinuz"\nrootfs = "./rootfs"\ncommand = "/bin/true"\n')
    expect(loadVmtestToml(path).targets[0].rootfs).toBe(join(path, '..', 'rootfs'))
  })
})

describe('load errors', () => {
  test('file not found names the file and who asked for it', () => {
    expect(message(() => loadVmtestToml(join(root, 'nowhere', 'vmtest.toml')))).toMatchInlineSnapshot(`"vmtest.toml not found: <tmp>/nowhere/vmtest.toml. Create it with a [[target]] that names a kernel, or set \`config\` to the path of yours."`)
    expect(message(() => loadVmtestToml(join(root, 'nowhere', 'vmtest.toml'), '`config` in vitest.config environmentOptions.vmtest'))).toMatchInlineSnapshot(`"vmtest.toml not found: <tmp>/nowhere/vmtest.toml (\`config\` in vitest.config environmentOptions.vmtest). Create it with a [[target]] that names a kernel, or set \`config\` to the path of yours."`)
    expect(message(() => loadVmtestToml(root))).toMatchInlineSnapshot(`"<tmp> is a directory: set \`config\` to the vmtest.toml file itself."`)
  })

  test('TOML syntax errors give the file, line and column', () => {
    expect(loadError('[[target]]\nname = "k\ncommand = "x"\n')).toMatchInlineSnapshot(`
      "Invalid TOML in <dir>/vmtest.toml at line 2, column 10: control characters are not allowed in strings.

      1:  [[target]]
      2:  name = "k
                   ^
      3:  command = "x"
      "
    `)
    expect(loadError('[[target]]\nname = "a"\nname = "b"\n')).toMatchInlineSnapshot(`
      "Invalid TOML in <dir>/vmtest.toml at line 3, column 1: trying to redefine an already defined table or value.

      2:  name = "a"
      3:  name = "b"
          ^
      "
    `)
  })

  test('no targets', () => {
    expect(loadError('')).toMatchInlineSnapshot(`"<dir>/vmtest.toml defines no targets: add a [[target]] with a \`name\`, a \`kernel\` and a \`command\`."`)
    expect(loadError('target = []')).toMatchInlineSnapshot(`"<dir>/vmtest.toml defines no targets: add a [[target]] with a \`name\`, a \`kernel\` and a \`command\`."`)
    expect(loadError('[target]\nname = "k"\n')).toMatchInlineSnapshot(`"Invalid \`target\` in <dir>/vmtest.toml: write each target as a [[target]] table (an array of tables), got a table."`)
  })

  test('unknown keys get a did-you-mean', () => {
    expect(loadError(`[[targets]]\nname = "k"\n`)).toMatchInlineSnapshot(`"Unknown top-level key \`targets\` in <dir>/vmtest.toml: did you mean \`target\` ([[target]])? vmtest.toml holds [[target]] tables only."`)
    expect(loadError(`${KERNEL_TARGET}kernal_args = "quiet"\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: unknown field \`kernal_args\`: did you mean \`kernel_args\`? Known fields: name, kernel, image, uefi, rootfs, arch, kernel_args, command, qemu_command, vm."`)
    expect(loadError(`${KERNEL_TARGET}kernelArgs = "quiet"\n`)).toContain('did you mean `kernel_args`?')
    expect(loadError(`${KERNEL_TARGET}colour = "blue"\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: unknown field \`colour\`. Known fields: name, kernel, image, uefi, rootfs, arch, kernel_args, command, qemu_command, vm."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nnum_cpu = 2\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: unknown field \`vm.num_cpu\`: did you mean \`vm.num_cpus\`? Known fields of [target.vm]: num_cpus, memory, mounts, bios, extra_args."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm.mounts]\n"/mnt" = { hostpath = "/srv" }\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: unknown field \`vm.mounts."/mnt".hostpath\`: did you mean \`host_path\`? Known fields of a mount: host_path, writable."`)
  })

  test('wrong types', () => {
    expect(loadError('[[target]]\nname = 5\n')).toMatchInlineSnapshot(`"Invalid [[target]] #1 in <dir>/vmtest.toml: \`name\` must be a non-empty string, got an integer (5)."`)
    expect(loadError(`${KERNEL_TARGET}uefi = "yes"\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`uefi\` must be a boolean, got a string ("yes")."`)
    expect(loadError(`${KERNEL_TARGET}kernel_args = ["quiet"]\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`kernel_args\` must be a string, got an array."`)
    expect(loadError(`${KERNEL_TARGET}vm = "big"\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm\` must be a table ([target.vm]), got a string ("big")."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nnum_cpus = "2"\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.num_cpus\` must be an integer, got a string ("2")."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nnum_cpus = 2.0\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.num_cpus\` must be an integer, got a float (2.0)."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nnum_cpus = 0\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.num_cpus\` must be from 1 to 255, got 0."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nmemory = 4096\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.memory\` must be a string, got an integer (4096)."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nextra_args = "-s"\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.extra_args\` must be an array, got a string ("-s")."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nextra_args = ["-smp", 2]\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.extra_args\` must be an array of strings, got an integer (2) at index 1."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm]\nmounts = { "/mnt" = "/srv" }\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.mounts."/mnt"\` must be a table like { host_path = "...", writable = false }, got a string ("/srv")."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm.mounts]\n"/mnt" = { writable = true }\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.mounts."/mnt"\` needs a \`host_path\`: the host directory to share at /mnt."`)
    expect(loadError(`${KERNEL_TARGET}[target.vm.mounts]\n"/mnt" = { host_path = "/srv", writable = "yes" }\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`vm.mounts."/mnt".writable\` must be a boolean, got a string ("yes")."`)
    expect(loadError('target = ["k"]\n')).toMatchInlineSnapshot(`"Invalid [[target]] #1 in <dir>/vmtest.toml: expected a table, got a string ("k")."`)
  })

  test('missing name or command', () => {
    expect(loadError('[[target]]\nkernel = "bzImage"\ncommand = "/bin/true"\n')).toMatchInlineSnapshot(`"Invalid [[target]] #1 in <dir>/vmtest.toml: missing \`name\`: give every target a unique name = "..."."`)
    expect(loadError(`${KERNEL_TARGET}[[target]]\nkernel = "bzImage"\ncommand = "/bin/true"\n`)).toMatchInlineSnapshot(`"Invalid [[target]] #2 in <dir>/vmtest.toml: missing \`name\`: give every target a unique name = "..."."`)
    expect(loadError('[[target]]\nname = ""\n')).toMatchInlineSnapshot(`"Invalid [[target]] #1 in <dir>/vmtest.toml: \`name\` must be a non-empty string, got a string ("")."`)
    expect(loadError('[[target]]\nname = "k"\nkernel = "bzImage"\n')).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: missing \`command\`: vmtest.toml requires one per target, e.g. command = "/bin/true" (the vmtest CLI runs it in the guest; the test environments run your tests instead)."`)
    expect(loadError('[[target]]\nname = "k"\nkernel = "bzImage"\ncommand = ""\n')).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`command\` is empty."`)
  })

  test('kernel and image: exactly one', () => {
    expect(loadError('[[target]]\nname = "k"\nkernel = "bzImage"\nimage = "disk.img"\ncommand = "/bin/true"\n')).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: sets both \`kernel\` and \`image\`: a target boots either a kernel (over the host's root, or \`rootfs\`) or a bootable disk image. Remove one."`)
    expect(loadError('[[target]]\nname = "k"\ncommand = "/bin/true"\n')).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: sets neither \`kernel\` nor \`image\`: add kernel = "path/to/bzImage" (relative to the vmtest.toml)."`)
    expect(loadError('[[target]]\nname = "k"\nkernel = ""\ncommand = "/bin/true"\n')).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`kernel\` is an empty path."`)
  })

  test('vmtest\'s other rules: uefi needs an image, bios needs uefi, kernel_args needs a kernel', () => {
    expect(loadError(`${KERNEL_TARGET}uefi = true\n`)).toMatchInlineSnapshot(`"Invalid target "k" in <dir>/vmtest.toml: \`uefi = true\` needs an \`image\`: UEFI boots a disk image, not a kernel."`)
    expect(loadError('[[target]]\nname = "i"\nimage = "disk.img"\ncommand = "/bin/true"\n[target.vm]\nbios = "OVMF.fd"\n')).toMatchInlineSnapshot(`"Invalid target "i" in <dir>/vmtest.toml: \`vm.bios\` needs \`uefi = true\`: the BIOS file is only used for UEFI boot."`)
    expect(loadError('[[target]]\nname = "i"\nimage = "disk.img"\nkernel_args = "quiet"\ncommand = "/bin/true"\n')).toMatchInlineSnapshot(`"Invalid target "i" in <dir>/vmtest.toml: \`kernel_args\` needs a \`kernel\`: an image boots its own kernel command line."`)
  })

  test('duplicate target names', () => {
    expect(loadError(`${KERNEL_TARGET}\n[[target]]\nname = "other"\nkernel = "b"\ncommand = "/bin/true"\n\n${KERNEL_TARGET}`)).toMatchInlineSnapshot(`"Duplicate target name "k" in <dir>/vmtest.toml: [[target]] #1 and #3. Target names must be unique, since \`target\` and @vmtest-target pick one by name."`)
  })
})

describe('findTarget', () => {
  const config = () => loadVmtestToml(toml(`${KERNEL_TARGET}\n[[target]]\nname = "6.6 debug"\nkernel = "b"\ncommand = "/bin/true"\n`))

  test('by exact name', () => {
    expect(findTarget(config(), '6.6 debug').name).toBe('6.6 debug')
  })

  test('an unknown name lists the known ones', () => {
    expect(message(() => findTarget(config(), '6.6-debug'), 'VMTEST_TARGET_UNKNOWN')).toMatchInlineSnapshot(`"Unknown target "6.6-debug": did you mean "6.6 debug"? <dir>/vmtest.toml defines "k", "6.6 debug"."`)
    expect(message(() => findTarget(config(), 'arm64', '`target` in vitest.config environmentOptions.vmtest'), 'VMTEST_TARGET_UNKNOWN')).toMatchInlineSnapshot(`"Unknown target "arm64" (\`target\` in vitest.config environmentOptions.vmtest). <dir>/vmtest.toml defines "k", "6.6 debug"."`)
  })
})

describe('targetToGuestOptions', () => {
  test('maps kernel, kernel_args and [target.vm], each with the target as its source', () => {
    const path = toml(`
[[target]]
name = "full"
kernel = "bzImage"
kernel_args = "quiet"
arch = "x86_64"
command = "/bin/true"
[target.vm]
num_cpus = 4
memory = "4G"
extra_args = ["-s"]
[target.vm.mounts]
"/mnt/data" = { host_path = "data", writable = true }
`)
    const dir = join(path, '..')
    const options = targetToGuestOptions(loadVmtestToml(path).targets[0])
    const source = `target "full" in ${path}`
    expect(options).toEqual({
      kernel: join(dir, 'bzImage'),
      kernelArgs: 'quiet',
      arch: 'x86_64',
      cpus: 4,
      memory: '4G',
      mounts: { '/mnt/data': { hostPath: join(dir, 'data'), writable: true } },
      extraArgs: ['-s'],
      sources: { kernel: source, arch: source, kernelArgs: source, cpus: source, memory: source, mounts: source, extraArgs: source },
    })
    // vmtest's memory strings are what resolveOptions reads.
    expect(resolveOptions(options)).toMatchObject({ memoryMiB: 4096, cpus: 4 })
  })

  test('a minimal target sets only the kernel', () => {
    const path = toml(KERNEL_TARGET)
    expect(targetToGuestOptions(loadVmtestToml(path).targets[0])).toEqual({ kernel: join(path, '..', 'bzImage'), sources: { kernel: `target "k" in ${path}` } })
  })

  test('a bad value is reported by resolveOptions with the target as its source', () => {
    const options = targetToGuestOptions(loadVmtestToml(toml(`${KERNEL_TARGET}[target.vm]\nmemory = "lots"\n`)).targets[0])
    expect(message(() => resolveOptions(options), 'VMTEST_OPTION_INVALID')).toMatchInlineSnapshot(`"Invalid option \`memory\` (in target "k" in <dir>/vmtest.toml): expected a number of MiB or a size like '512M' or '2G' (at least 128M), got 'lots'."`)
  })

  const options = (text: string) => targetToGuestOptions(loadVmtestToml(toml(text)).targets[0])

  test('image, uefi, vm.bios, rootfs and arch map to options, each with the target as its source', () => {
    const path = toml('[[target]]\nname = "img"\nimage = "disk.img"\nuefi = true\nvm.bios = "OVMF.fd"\ncommand = "/bin/true"\n')
    const image = targetToGuestOptions(loadVmtestToml(path).targets[0])
    expect(image).toMatchObject({ image: join(path, '../disk.img'), uefi: true, bios: join(path, '../OVMF.fd') })
    expect(image.sources?.image).toBe(`target "img" in ${path}`)
    expect(options(`${KERNEL_TARGET}rootfs = "./rootfs"\narch = "aarch64"\n`)).toMatchObject({ rootfs: expect.stringMatching(/\/rootfs$/), arch: 'aarch64' })
    // vmtest's default root, the host's, is no option at all.
    expect(options(`${KERNEL_TARGET}rootfs = "/"\n`).rootfs).toBeUndefined()
  })

  test('qemu_command is the CLI\'s only', () => {
    expect(message(() => options(`${KERNEL_TARGET}qemu_command = "qemu-system-x86_64 -enable-kvm"\n`), 'VMTEST_OPTION_INVALID')).toMatchInlineSnapshot(`"Target "k" in <dir>/vmtest.toml sets \`qemu_command\`, which the test environments do not take: they build the QEMU command line themselves (the vmtest CLI takes it). Remove it here; to pick the QEMU binary set \`qemu\`, to add arguments \`vm.extra_args\`."`)
  })

  test('an invalid arch is named by the option check, with the target as its source', () => {
    expect(message(() => resolveOptions(options(`${KERNEL_TARGET}arch = "arm64"\n`)), 'VMTEST_OPTION_INVALID')).toMatchInlineSnapshot(`"Invalid option \`arch\` (in target "k" in <dir>/vmtest.toml): expected one of x86_64, aarch64, riscv64, s390x, got 'arm64'."`)
  })
})
