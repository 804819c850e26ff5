// The fast path: under emulation a bzImage spends seconds decompressing
// itself. A kernel with a PVH entry can be booted as the uncompressed ELF
// vmlinux directly; extract it once and cache it by the bzImage's content.

import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pruneCache } from '../paths.js'
import { extractVmlinux, type KernelInfo } from './inspect.js'

/** Extracted kernels kept (≈ 60 MB each for a distro kernel); a developer
 * rebuilding in watch mode makes a new one per build, the oldest go. */
const KEEP_VMLINUX = 6

/** The image QEMU should load for `kernel`: a cached PVH vmlinux when possible, else the file itself. */
export async function fastBootImage(kernel: KernelInfo, cacheDir: string): Promise<{ image: string; pvh: boolean }> {
  if (kernel.format !== 'bzImage' || kernel.arch !== 'x86_64' || process.env.VMTEST_NO_PVH) return { image: kernel.path, pvh: false }
  const bzImage = readFileSync(kernel.path)
  const key = createHash('sha256').update(bzImage).digest('hex').slice(0, 24)
  const dir = join(cacheDir, 'vmlinux')
  const image = join(dir, `${key}.elf`)
  const noPvh = join(dir, `${key}.no-pvh`)
  if (existsSync(image)) {
    const now = new Date()
    utimesSync(image, now, now) // recently used: kept by the pruning below
    return { image, pvh: true }
  }
  if (existsSync(noPvh)) return { image: kernel.path, pvh: false }
  mkdirSync(dir, { recursive: true })
  // A failure (an unusual compression, no xz installed) is not remembered: it may be fixed by next time.
  const extracted = await extractVmlinux(kernel.path).catch(() => undefined)
  if (!extracted) return { image: kernel.path, pvh: false }
  if (!extracted.pvh) {
    writeFileSync(noPvh, '') // a fact about this kernel: no need to extract it again
    return { image: kernel.path, pvh: false }
  }
  const tmp = `${image}.${process.pid}.tmp`
  writeFileSync(tmp, extracted.elf)
  renameSync(tmp, image) // atomic: parallel runs never load half a file
  pruneCache(dir, '.elf', KEEP_VMLINUX)
  return { image, pvh: true }
}
