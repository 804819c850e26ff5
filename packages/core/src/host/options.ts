// The options of one guest: their types, their defaults in one place, and a
// validator whose messages name the option and where its value came from.

import { isAbsolute, join, relative, resolve } from 'node:path'
import { levenshtein } from './did-you-mean.js'
import { VmtestError } from './errors.js'
import { KNOWN_ARCHES } from './qemu/arch.js'

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
  /** Guest architecture (x86_64, aarch64, riscv64, s390x). Default: the kernel's; with no kernel named, the host's. */
  arch?: string
  /** The guest's root filesystem: a host directory shared over 9p. Default: the host's root (/), or for a
   * foreign arch the root `vmtest setup --arch` fetched. */
  rootfs?: string
  /** A bootable disk image (raw, qcow2...) booted through its own bootloader instead of `kernel`;
   * commands run through qemu-guest-agent in it. Never written: the guest writes to a throw-away overlay. */
  image?: string
  /** Boot `image` with UEFI firmware (OVMF) instead of BIOS. */
  uefi?: boolean
  /** The UEFI firmware file (default: OVMF from the usual distro paths). */
  bios?: string
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
  arch?: string
  rootfs?: string
  image?: string
  uefi: boolean
  bios?: string
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

const KNOWN = new Set<string>(['kernel', 'kernelArgs', 'arch', 'rootfs', 'image', 'uefi', 'bios', 'modules', 'memory', 'cpus', 'accel', 'qemu', 'rootMode', 'shared', 'mounts', 'bootTimeout', 'extraArgs', 'cwd', 'consoleLog', 'sources', 'onProgress'])

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
  if (o.arch !== undefined && !KNOWN_ARCHES.includes(o.arch as string)) bad('arch', `one of ${KNOWN_ARCHES.join(', ')}`, o.arch)
  for (const key of ['rootfs', 'image', 'bios'] as const) {
    if (o[key] !== undefined && (typeof o[key] !== 'string' || !o[key])) bad(key, key === 'image' ? 'a path to a disk image' : key === 'bios' ? 'a path to a UEFI firmware file' : 'a path to a root filesystem directory', o[key])
  }
  if (o.uefi !== undefined && typeof o.uefi !== 'boolean') bad('uefi', 'true or false', o.uefi)
  const conflict = (a: keyof GuestOptions, b: keyof GuestOptions, why: string): never => {
    const at = (k: keyof GuestOptions) => `\`${k}\`${options.sources?.[k] ? ` (in ${options.sources[k]})` : ''}`
    throw new VmtestError('VMTEST_OPTION_INVALID', 'config', `${at(a)} and ${at(b)} conflict: ${why}`)
  }
  if (o.image !== undefined) {
    if (o.kernel !== undefined) conflict('image', 'kernel', 'a guest boots either a disk image (through its own bootloader) or a kernel. Keep one.')
    if (o.rootfs !== undefined) conflict('image', 'rootfs', 'a disk image brings its own root filesystem. Remove `rootfs`.')
    if (o.kernelArgs !== undefined) conflict('image', 'kernelArgs', "a disk image boots its own kernel command line (set it in the image's bootloader). Remove `kernelArgs`.")
    if (o.arch !== undefined && o.arch !== 'x86_64') conflict('image', 'arch', 'image targets boot x86_64 images only.')
  } else {
    if (o.uefi) bad('uefi', 'false without an `image` (UEFI boots a disk image, not a kernel)', o.uefi)
  }
  if (o.bios !== undefined && !o.uefi) conflict('bios', 'uefi', 'the `bios` firmware file is used for UEFI boot only: set `uefi: true`, or remove `bios`.')
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
    arch: o.arch,
    rootfs: o.rootfs && resolve(o.rootfs),
    image: o.image && resolve(o.image),
    uefi: o.uefi ?? false,
    bios: o.bios && resolve(o.bios),
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
    cwd: o.image ? imageCwd(o.cwd, shared) : (o.cwd ?? process.cwd()),
    consoleLog: o.consoleLog,
    source,
    onProgress: o.onProgress ?? (() => {}),
  }
}

/** An image has none of the host's paths: its commands start in the project at /mnt/vmtest, and a
 * host dir inside the project (a runner's cwd) is the same dir there. Other paths are the guest's own. */
function imageCwd(cwd: string | undefined, shared: ResolvedOptions['shared']): string {
  if (cwd === undefined) return shared ? SHARED_MOUNT : '/'
  if (shared && (cwd === shared.path || cwd.startsWith(`${shared.path}/`))) return join(SHARED_MOUNT, relative(shared.path, cwd))
  return cwd
}

/** Where the shared project dir is in every guest. */
export const SHARED_MOUNT = '/mnt/vmtest'

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
