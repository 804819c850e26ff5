// Loads and checks a vmtest.toml (danobi/vmtest's format) and maps a [[target]] to guest options.

import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parse, TomlError } from 'smol-toml'
import { didYouMean } from '../host/did-you-mean.js'
import { VmtestError } from '../host/errors.js'
import type { GuestOptions, MountOption } from '../host/options.js'

export interface VmtestMount {
  /** Absolute (resolved against the vmtest.toml's directory). */
  hostPath: string
  writable: boolean
}

/** One [[target]], as written, with its paths made absolute against the directory of its vmtest.toml. */
export interface VmtestTarget {
  name: string
  /** The vmtest.toml this target came from (absolute). */
  file: string
  kernel?: string
  image?: string
  uefi: boolean
  /** '/' (the default) shares the host's root. */
  rootfs: string
  /** Absent: the host's architecture. */
  arch?: string
  kernelArgs?: string
  /** What vmtest runs in the guest; the test environments run the tests instead. */
  command: string
  /** The command that launches QEMU, for the CLI. */
  qemuCommand?: string
  /** [target.vm]; absent fields take vmtest's defaults (VMTEST_TOML_DEFAULTS) in the CLI, the environments' own otherwise. */
  vm: {
    numCpus?: number
    /** A QEMU -m size: '4G', '512M', '2048' (MiB). */
    memory?: string
    /** Guest path -> host directory. */
    mounts?: Record<string, VmtestMount>
    bios?: string
    extraArgs?: string[]
  }
}

export interface VmtestConfig {
  /** Absolute path of the vmtest.toml. */
  path: string
  targets: VmtestTarget[]
}

/** vmtest's own defaults for [target.vm], for a CLI that behaves like vmtest. */
export const VMTEST_TOML_DEFAULTS = Object.freeze({ numCpus: 2, memory: '4G' })

const TOP_FIELDS = ['target']
const TARGET_FIELDS = ['name', 'kernel', 'image', 'uefi', 'rootfs', 'arch', 'kernel_args', 'command', 'qemu_command', 'vm']
const VM_FIELDS = ['num_cpus', 'memory', 'mounts', 'bios', 'extra_args']
const MOUNT_FIELDS = ['host_path', 'writable']

type Table = Record<string, unknown>

/**
 * Reads and validates `path`. `from` says who asked for it ("`config` in vitest.config ..."), for the
 * not-found message.
 */
export function loadVmtestToml(path: string, from?: string): VmtestConfig {
  const file = resolve(path)
  const fail = (message: string) => new VmtestError('VMTEST_CONFIG_INVALID', 'config', message)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const asked = from ? ` (${from})` : ''
    if (code === 'ENOENT') throw fail(`vmtest.toml not found: ${file}${asked}. Create it with a [[target]] that names a kernel, or set \`config\` to the path of yours.`)
    if (code === 'EISDIR') throw fail(`${file}${asked} is a directory: set \`config\` to the vmtest.toml file itself.`)
    throw fail(`Cannot read ${file}${asked}: ${(error as Error).message}`)
  }

  let doc: Table
  try {
    // Integers as bigints: the only way to tell `num_cpus = 2` from `num_cpus = 2.0`.
    doc = parse(text, { integersAsBigInt: true })
  } catch (error) {
    if (!(error instanceof TomlError)) throw error
    const reason = error.message.replace(/^Invalid TOML document: /, '').split('\n\n')[0]
    throw fail(`Invalid TOML in ${file} at line ${error.line}, column ${error.column}: ${reason}.\n\n${error.codeblock}`)
  }

  unknownFields(doc, TOP_FIELDS, (key, hint) => fail(`Unknown top-level key \`${key}\` in ${file}${hint ? `: did you mean \`${hint}\` ([[${hint}]])?` : '.'} vmtest.toml holds [[target]] tables only.`))
  const list = doc.target
  if (list === undefined || (Array.isArray(list) && list.length === 0)) throw fail(`${file} defines no targets: add a [[target]] with a \`name\`, a \`kernel\` and a \`command\`.`)
  if (!Array.isArray(list)) throw fail(`Invalid \`target\` in ${file}: write each target as a [[target]] table (an array of tables), got ${got(list)}.`)

  const targets = list.map((entry, index) => readTarget(entry, index, file))
  const first = new Map<string, number>()
  targets.forEach((t, index) => {
    const earlier = first.get(t.name)
    if (earlier !== undefined) throw fail(`Duplicate target name "${t.name}" in ${file}: [[target]] #${earlier + 1} and #${index + 1}. Target names must be unique, since \`target\` and @vmtest-target pick one by name.`)
    first.set(t.name, index)
  })
  return { path: file, targets }
}

function readTarget(entry: unknown, index: number, file: string): VmtestTarget {
  const base = dirname(file)
  let label = `[[target]] #${index + 1}`
  const fail = (message: string) => new VmtestError('VMTEST_CONFIG_INVALID', 'config', `Invalid ${label} in ${file}: ${message}`)
  if (!isTable(entry)) throw fail(`expected a table, got ${got(entry)}.`)

  const name = entry.name
  if (name === undefined) throw fail('missing `name`: give every target a unique name = "...".')
  if (typeof name !== 'string' || name === '') throw fail(`\`name\` must be a non-empty string, got ${got(name)}.`)
  label = `target "${name}"`

  unknownFields(entry, TARGET_FIELDS, (key, hint) => fail(`unknown field \`${key}\`${hint ? `: did you mean \`${hint}\`?` : '.'} Known fields: ${TARGET_FIELDS.join(', ')}.`))
  const field = fieldReader(entry, '', fail)
  const path = (key: string) => {
    const value = field(key, 'string') as string | undefined
    if (value === '') throw fail(`\`${key}\` is an empty path.`)
    return value === undefined ? undefined : resolve(base, value)
  }

  const kernel = path('kernel')
  const image = path('image')
  const uefi = (field('uefi', 'boolean') as boolean | undefined) ?? false
  const rootfs = path('rootfs') ?? '/'
  const arch = field('arch', 'string') as string | undefined
  if (arch === '') throw fail('`arch` is empty: remove it (the default is the host\'s architecture) or name one, like "x86_64".')
  const kernelArgs = field('kernel_args', 'string') as string | undefined
  const command = field('command', 'string') as string | undefined
  const qemuCommand = field('qemu_command', 'string') as string | undefined
  const vm = readVm(entry.vm, base, fail)

  if (command === undefined) throw fail('missing `command`: vmtest.toml requires one per target, e.g. command = "/bin/true" (the vmtest CLI runs it in the guest; the test environments run your tests instead).')
  if (command === '') throw fail('`command` is empty.')
  if (kernel !== undefined && image !== undefined) throw fail('sets both `kernel` and `image`: a target boots either a kernel (over the host\'s root, or `rootfs`) or a bootable disk image. Remove one.')
  if (kernel === undefined && image === undefined) throw fail('sets neither `kernel` nor `image`: add kernel = "path/to/bzImage" (relative to the vmtest.toml).')
  if (uefi && image === undefined) throw fail('`uefi = true` needs an `image`: UEFI boots a disk image, not a kernel.')
  if (vm.bios !== undefined && !uefi) throw fail('`vm.bios` needs `uefi = true`: the BIOS file is only used for UEFI boot.')
  if (kernelArgs !== undefined && kernel === undefined) throw fail('`kernel_args` needs a `kernel`: an image boots its own kernel command line.')

  return { name, file, kernel, image, uefi, rootfs, arch, kernelArgs, command, qemuCommand, vm }
}

function readVm(value: unknown, base: string, fail: (message: string) => VmtestError): VmtestTarget['vm'] {
  if (value === undefined) return {}
  if (!isTable(value)) throw fail(`\`vm\` must be a table ([target.vm]), got ${got(value)}.`)
  unknownFields(value, VM_FIELDS, (key, hint) => fail(`unknown field \`vm.${key}\`${hint ? `: did you mean \`vm.${hint}\`?` : '.'} Known fields of [target.vm]: ${VM_FIELDS.join(', ')}.`))
  const field = fieldReader(value, 'vm.', fail)

  const cpus = field('num_cpus', 'integer') as bigint | undefined
  if (cpus !== undefined && (cpus < 1n || cpus > 255n)) throw fail(`\`vm.num_cpus\` must be from 1 to 255, got ${cpus}.`)
  const memory = field('memory', 'string') as string | undefined
  if (memory === '') throw fail('`vm.memory` is empty: write a QEMU size like "4G" or "512M".')
  const bios = field('bios', 'string') as string | undefined
  if (bios === '') throw fail('`vm.bios` is an empty path.')
  const extraArgs = field('extra_args', 'array') as unknown[] | undefined
  extraArgs?.forEach((arg, i) => {
    if (typeof arg !== 'string') throw fail(`\`vm.extra_args\` must be an array of strings, got ${got(arg)} at index ${i}.`)
  })

  let mounts: Record<string, VmtestMount> | undefined
  const table = field('mounts', 'table') as Table | undefined
  if (table !== undefined) {
    mounts = {}
    for (const [guestPath, mount] of Object.entries(table)) {
      const where = `vm.mounts."${guestPath}"`
      if (!isTable(mount)) throw fail(`\`${where}\` must be a table like { host_path = "...", writable = false }, got ${got(mount)}.`)
      unknownFields(mount, MOUNT_FIELDS, (key, hint) => fail(`unknown field \`${where}.${key}\`${hint ? `: did you mean \`${hint}\`?` : '.'} Known fields of a mount: ${MOUNT_FIELDS.join(', ')}.`))
      const read = fieldReader(mount, `${where}.`, fail)
      const hostPath = read('host_path', 'string') as string | undefined
      if (hostPath === undefined || hostPath === '') throw fail(`\`${where}\` needs a \`host_path\`: the host directory to share at ${guestPath}.`)
      mounts[guestPath] = { hostPath: resolve(base, hostPath), writable: (read('writable', 'boolean') as boolean | undefined) ?? false }
    }
  }
  return { numCpus: cpus === undefined ? undefined : Number(cpus), memory, mounts, bios: bios === undefined ? undefined : resolve(base, bios), extraArgs: extraArgs as string[] | undefined }
}

/** The target called `name`; VMTEST_TARGET_UNKNOWN listing the known ones otherwise. `from` names who asked. */
export function findTarget(config: VmtestConfig, name: string, from?: string): VmtestTarget {
  const target = config.targets.find((t) => t.name === name)
  if (target) return target
  const names = config.targets.map((t) => t.name)
  const hint = didYouMean(name, names)
  throw new VmtestError(
    'VMTEST_TARGET_UNKNOWN',
    'config',
    `Unknown target "${name}"${from ? ` (${from})` : ''}${hint ? `: did you mean "${hint}"?` : '.'} ${config.path} defines ${names.map((n) => `"${n}"`).join(', ')}.`,
  )
}

/** The guest options a target stands for; what the test environments cannot do yet is an error, not ignored. */
export function targetToGuestOptions(target: VmtestTarget): GuestOptions {
  const where = `Target "${target.name}" in ${target.file}`
  if (target.qemuCommand !== undefined) {
    throw new VmtestError(
      'VMTEST_OPTION_INVALID',
      'config',
      `${where} sets \`qemu_command\`, which the test environments do not take: they build the QEMU command line themselves (the vmtest CLI takes it). Remove it here; to pick the QEMU binary set \`qemu\`, to add arguments \`vm.extra_args\`.`,
    )
  }

  const source = `target "${target.name}" in ${target.file}`
  const options: GuestOptions = {}
  const sources: NonNullable<GuestOptions['sources']> = {}
  const set = <K extends keyof GuestOptions>(key: K, value: GuestOptions[K] | undefined) => {
    if (value === undefined) return
    options[key] = value
    sources[key] = source
  }
  set('kernel', target.kernel)
  set('image', target.image)
  if (target.uefi) set('uefi', true)
  set('bios', target.vm.bios)
  // vmtest's default root is the host's (/): no option needed for it.
  if (target.rootfs !== '/') set('rootfs', target.rootfs)
  set('arch', target.arch)
  set('kernelArgs', target.kernelArgs)
  set('cpus', target.vm.numCpus)
  set('memory', target.vm.memory)
  set('mounts', target.vm.mounts && Object.fromEntries(Object.entries(target.vm.mounts).map(([guest, m]): [string, MountOption] => [guest, { hostPath: m.hostPath, writable: m.writable }])))
  set('extraArgs', target.vm.extraArgs && [...target.vm.extraArgs])
  options.sources = sources
  return options
}

/** `field(key, kind)`: the value of `key` in `table` when it has that TOML type, undefined when absent. */
function fieldReader(table: Table, prefix: string, fail: (message: string) => VmtestError) {
  return (key: string, kind: 'string' | 'boolean' | 'integer' | 'array' | 'table'): unknown => {
    const value = table[key]
    if (value === undefined) return undefined
    const ok =
      kind === 'integer' ? typeof value === 'bigint' : kind === 'array' ? Array.isArray(value) : kind === 'table' ? isTable(value) : typeof value === kind
    if (!ok) throw fail(`\`${prefix}${key}\` must be ${kind === 'integer' || kind === 'array' ? 'an' : 'a'} ${kind}, got ${got(value)}.`)
    return value
  }
}

function unknownFields(table: Table, known: string[], error: (key: string, hint: string | undefined) => VmtestError): void {
  for (const key of Object.keys(table)) if (!known.includes(key)) throw error(key, didYouMean(key, known))
}

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
}

/** A TOML value's type and, for scalars, the value: 'a string ("2")', 'an integer (2)', 'a table'. */
function got(value: unknown): string {
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`
  if (typeof value === 'bigint') return `an integer (${value})`
  if (typeof value === 'number') return `a float (${Number.isInteger(value) ? value.toFixed(1) : value})`
  if (typeof value === 'boolean') return `a boolean (${value})`
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Date) return `a date (${String(value)})`
  return 'a table'
}
