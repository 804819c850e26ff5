// The options of one guest: their types, their defaults in one place, and a
// validator whose messages name the option and where its value came from.

import { isAbsolute, resolve } from 'node:path'
import { levenshtein } from './did-you-mean.js'
import { VmtestError } from './errors.js'

export type RootMode = 'overlay' | 'ro' | 'rw'
export type Accel = 'auto' | 'kvm' | 'tcg'

export interface MountOption {
  /** Host directory to share. */
  hostPath: string
  writable?: boolean
}

export interface GuestOptions {
  /** Kernel image (bzImage or ELF vmlinux). Default: VMTEST_KERNEL, /boot/vmlinuz-$(uname -r), the cached default kernel. */
  kernel?: string
  /** Appended to the kernel command line. */
  kernelArgs?: string
  /** Module directory of the kernel (…/lib/modules/<release>) when it is not in a standard place. */
  modules?: string
  /** Guest memory: a number of MiB or a string like '512M', '1G'. Default 1G. */
  memory?: number | string
  cpus?: number
  accel?: Accel
  /** QEMU binary (name on PATH or a path). Default qemu-system-<arch>. */
  qemu?: string
  /** How the host root is shared: overlay (writes land in guest RAM), ro, or rw (writes reach the host). */
  rootMode?: RootMode
  /** Host directory mounted at /mnt/vmtest (default: cwd); false to mount none. */
  shared?: string | false | { path?: string; writable?: boolean }
  /** Extra 9p mounts: guest path -> host directory. */
  mounts?: Record<string, string | MountOption>
  /** Milliseconds for the guest to come up (agent hello). Default 60 s under TCG, 20 s under KVM. */
  bootTimeout?: number
  /** Raw QEMU arguments appended last. */
  extraArgs?: string[]
  /** Default working directory of commands (default: the host's cwd, which exists in the guest). */
  cwd?: string
  /** Write the whole serial console to this file. */
  consoleLog?: string
  /** Where each option's value came from, for error messages: option -> "vitest.config.ts", "@vmtest-kernel in a.test.ts"... */
  sources?: Partial<Record<keyof GuestOptions, string>>
  /** Progress of a long boot: called with one-line messages. Default: none. */
  onProgress?: (message: string) => void
}

export interface ResolvedOptions {
  kernel?: string
  kernelArgs: string
  modules?: string
  memoryMiB: number
  cpus: number
  accel: Accel
  qemu?: string
  rootMode?: RootMode
  shared?: { path: string; writable: boolean }
  mounts: Array<{ guestPath: string; hostPath: string; writable: boolean }>
  bootTimeoutMs?: number
  extraArgs: string[]
  cwd: string
  consoleLog?: string
  source(key: keyof GuestOptions): string
  onProgress: (message: string) => void
}

const KNOWN = new Set<string>(['kernel', 'kernelArgs', 'modules', 'memory', 'cpus', 'accel', 'qemu', 'rootMode', 'shared', 'mounts', 'bootTimeout', 'extraArgs', 'cwd', 'consoleLog', 'sources', 'onProgress'])

export function resolveOptions(options: GuestOptions = {}): ResolvedOptions {
  const source = (key: keyof GuestOptions) => `from \`${key}\`${options.sources?.[key] ? ` in ${options.sources[key]}` : ''}`
  const bad = (key: keyof GuestOptions, expected: string, value: unknown): never => {
    const where = options.sources?.[key] ? ` (in ${options.sources[key]})` : ''
    throw new VmtestError('VMTEST_OPTION_INVALID', 'config', `Invalid option \`${key}\`${where}: expected ${expected}, got ${describe(value)}.`)
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      const hint = [...KNOWN].find((k) => k.toLowerCase() === key.toLowerCase() || levenshtein(k, key) <= 2)
      throw new VmtestError('VMTEST_OPTION_INVALID', 'config', `Unknown option \`${key}\`${hint ? `: did you mean \`${hint}\`?` : '.'} Known options: ${[...KNOWN].filter((k) => k !== 'sources').join(', ')}.`)
    }
  }
  const o = options
  if (o.kernel !== undefined && (typeof o.kernel !== 'string' || !o.kernel)) bad('kernel', 'a path to a kernel image', o.kernel)
  if (o.kernelArgs !== undefined && typeof o.kernelArgs !== 'string') bad('kernelArgs', 'a string', o.kernelArgs)
  if (o.cpus !== undefined && !(Number.isInteger(o.cpus) && o.cpus >= 1 && o.cpus <= 64)) bad('cpus', 'an integer from 1 to 64', o.cpus)
  if (o.accel !== undefined && !['auto', 'kvm', 'tcg'].includes(o.accel)) bad('accel', "'auto', 'kvm' or 'tcg'", o.accel)
  if (o.rootMode !== undefined && !['overlay', 'ro', 'rw'].includes(o.rootMode)) bad('rootMode', "'overlay', 'ro' or 'rw'", o.rootMode)
  if (o.bootTimeout !== undefined && !(typeof o.bootTimeout === 'number' && o.bootTimeout > 0)) bad('bootTimeout', 'a positive number of milliseconds', o.bootTimeout)
  if (o.extraArgs !== undefined && !(Array.isArray(o.extraArgs) && o.extraArgs.every((a) => typeof a === 'string'))) bad('extraArgs', 'an array of strings', o.extraArgs)

  let shared: ResolvedOptions['shared']
  if (o.shared === undefined) shared = { path: process.cwd(), writable: true }
  else if (o.shared === false) shared = undefined
  else if (typeof o.shared === 'string') shared = { path: resolve(o.shared), writable: true }
  else if (typeof o.shared === 'object' && o.shared !== null) shared = { path: resolve(o.shared.path ?? process.cwd()), writable: o.shared.writable ?? true }
  else bad('shared', 'a directory, false, or { path, writable }', o.shared)

  const mounts = Object.entries(o.mounts ?? {}).map(([guestPath, m]) => {
    const mount = typeof m === 'string' ? { hostPath: m } : m
    if (!isAbsolute(guestPath) || /[\s;:]/.test(guestPath)) bad('mounts', 'absolute guest paths without spaces, ";" or ":"', guestPath)
    if (typeof mount?.hostPath !== 'string') bad('mounts', '{ hostPath, writable } or a host path', m)
    return { guestPath, hostPath: resolve(mount.hostPath), writable: mount.writable ?? false }
  })

  return {
    kernel: o.kernel,
    kernelArgs: o.kernelArgs ?? '',
    modules: o.modules,
    memoryMiB: o.memory === undefined ? 1024 : parseMemory(o.memory) ?? bad('memory', "a number of MiB or a size like '512M' or '2G' (at least 128M)", o.memory),
    cpus: o.cpus ?? 1,
    accel: o.accel ?? 'auto',
    qemu: o.qemu,
    rootMode: o.rootMode,
    shared,
    mounts,
    bootTimeoutMs: o.bootTimeout,
    extraArgs: o.extraArgs ?? [],
    cwd: o.cwd ?? process.cwd(),
    consoleLog: o.consoleLog,
    source,
    onProgress: o.onProgress ?? (() => {}),
  }
}

/** '512M', '1G', '1.5G', 2048 -> MiB; undefined when unreadable or below 128 MiB. */
export function parseMemory(value: number | string): number | undefined {
  const match = typeof value === 'number' ? [String(value), String(value), 'M'] : /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$/i.exec(value)
  if (!match) return undefined
  const scale: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024, '': 1 }
  const mib = Math.floor(Number(match[1]) * scale[match[2].toUpperCase()])
  return mib >= 128 ? mib : undefined
}

function describe(value: unknown): string {
  // String() for numbers: JSON.stringify writes NaN and Infinity as null, and throws on a bigint.
  const text = typeof value === 'number' || typeof value === 'bigint' ? String(value) : JSON.stringify(value)
  return typeof value === 'string' ? `'${value}'` : `${text} (${typeof value})`
}
