// Builds the initramfs a module kernel needs: busybox as the shell, the .ko
// files in load order, the guest agent, and init.sh as /init. Cached by the
// hash of its content, so a second boot with the same inputs reads one file.

import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pruneCache } from '../paths.js'
import { readModuleBytes } from '../kernel/modules.js'
import { writeCpio, type CpioEntry } from './cpio.js'

/** Initramfs images kept (a few MB each; one per kernel and vmtest version in use). */
const KEEP_INITRAMFS = 12

/** The busybox applets init.sh calls. */
const APPLETS = ['sh', 'mount', 'mkdir', 'insmod', 'chroot', 'sleep', 'ln', 'dirname', 'poweroff', 'sync', 'cat', 'rm', 'unshare', 'renice']

/** The guest agent, bundled into one file by the build (scripts/bundle-agent.mjs). */
export const AGENT_BUNDLE = fileURLToPath(new URL('../../agent.cjs', import.meta.url))
export const INIT_SCRIPT = fileURLToPath(new URL('../../../assets/init.sh', import.meta.url))

export interface InitramfsInputs {
  busybox: string
  /** Module files, dependencies first. */
  modules: readonly string[]
}

export async function buildInitramfs(inputs: InitramfsInputs, cacheDir: string): Promise<string> {
  const entries = await initramfsEntries({ ...inputs, init: readFileSync(INIT_SCRIPT) })
  entries.push({ path: 'vmtest/agent.cjs', type: 'file', data: readFileSync(AGENT_BUNDLE) })
  const archive = writeCpio(entries)
  const hash = createHash('sha256').update(archive).digest('hex').slice(0, 16)
  const path = join(cacheDir, `initramfs-${hash}.cpio`)
  if (existsSync(path)) {
    const now = new Date()
    utimesSync(path, now, now) // recently used: kept by the pruning below
  } else {
    mkdirSync(cacheDir, { recursive: true })
    const tmp = `${path}.${process.pid}.tmp`
    writeFileSync(tmp, archive)
    renameSync(tmp, path) // atomic: a parallel run never sees half a file
    pruneCache(cacheDir, '.cpio', KEEP_INITRAMFS)
  }
  return path
}

/** Whether an ELF file is statically linked (has no PT_INTERP): busybox must
 * run in an initramfs that has no libc. */
export function isStaticElf(file: Buffer): boolean {
  if (file.readUInt32BE(0) !== 0x7f454c46) return false
  const is64 = file[4] === 2
  const phoff = is64 ? Number(file.readBigUInt64LE(0x20)) : file.readUInt32LE(0x1c)
  const phentsize = file.readUInt16LE(is64 ? 0x36 : 0x2a)
  const phnum = file.readUInt16LE(is64 ? 0x38 : 0x2c)
  const PT_INTERP = 3
  for (let i = 0; i < phnum; i++) {
    if (file.readUInt32LE(phoff + i * phentsize) === PT_INTERP) return false
  }
  return true
}

/** The initramfs without the agent: busybox and its applets, `init` as /init,
 * the modules numbered in load order under /vmtest/ko and listed in
 * /vmtest/modules. The benchmark builds its reference boots from it too. */
export async function initramfsEntries(inputs: InitramfsInputs & { init: Uint8Array }): Promise<CpioEntry[]> {
  const entries: CpioEntry[] = [
    { path: 'bin', type: 'dir' },
    { path: 'dev', type: 'dir' },
    { path: 'dev/console', type: 'chardev', major: 5, minor: 1 },
    { path: 'proc', type: 'dir' },
    { path: 'sys', type: 'dir' },
    { path: 'vmtest', type: 'dir' },
    { path: 'vmtest/ko', type: 'dir' },
    { path: 'init', type: 'file', data: inputs.init, mode: 0o755 },
    { path: 'bin/busybox', type: 'file', data: readFileSync(inputs.busybox), mode: 0o755 },
    ...APPLETS.map((applet): CpioEntry => ({ path: `bin/${applet}`, type: 'symlink', target: 'busybox' })),
  ]
  const order: string[] = []
  for (const [index, file] of inputs.modules.entries()) {
    // Numbered, uncompressed: busybox insmod reads plain .ko files only.
    const name = `vmtest/ko/${String(index).padStart(2, '0')}-${basename(file).replace(/\.ko\..*$/, '.ko')}`
    entries.push({ path: name, type: 'file', data: await readModuleBytes(file) })
    order.push(`/${name}`)
  }
  entries.push({ path: 'vmtest/modules', type: 'file', data: Buffer.from(order.map((o) => `${o}\n`).join('')) })
  return entries
}
