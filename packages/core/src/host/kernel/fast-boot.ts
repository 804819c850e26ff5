// The fast path: under emulation a bzImage spends seconds decompressing
// itself. A kernel with a PVH entry can be booted as the uncompressed ELF
// vmlinux directly; extract it once and cache it by the bzImage's identity.

import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { extractVmlinux, type KernelInfo } from './inspect.js'

/** The image QEMU should load for `kernel`: a cached PVH vmlinux when possible, else the file itself. */
export async function fastBootImage(kernel: KernelInfo, cacheDir: string): Promise<{ image: string; pvh: boolean }> {
  if (kernel.format !== 'bzImage' || kernel.arch !== 'x86_64' || process.env.VMTEST_NO_PVH) return { image: kernel.path, pvh: false }
  const real = realpathSync(kernel.path)
  const stat = statSync(real)
  const key = createHash('sha256').update(`${real}\0${stat.size}\0${stat.mtimeMs}`).digest('hex').slice(0, 16)
  const dir = join(cacheDir, 'vmlinux')
  const image = join(dir, `${key}.elf`)
  const noPvh = join(dir, `${key}.no-pvh`)
  if (existsSync(image)) return { image, pvh: true }
  if (existsSync(noPvh)) return { image: kernel.path, pvh: false }
  mkdirSync(dir, { recursive: true })
  let extracted
  try {
    extracted = await extractVmlinux(kernel.path)
  } catch {
    extracted = undefined // an unusual compression: boot the bzImage as it is
  }
  if (!extracted?.pvh) {
    writeFileSync(noPvh, '')
    return { image: kernel.path, pvh: false }
  }
  const tmp = `${image}.${process.pid}.tmp`
  writeFileSync(tmp, extracted.elf)
  renameSync(tmp, image) // atomic: parallel runs never load half a file
  return { image, pvh: true }
}
