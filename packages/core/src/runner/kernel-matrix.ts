// The same tests against several kernels in one run: one runner project per
// kernel, named after the kernel's release so every report line says which
// kernel a test ran on.

import { statSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { VmtestError } from '../host/errors.js'
import { bzImageReleaseSync } from '../host/kernel/inspect.js'

/** A kernel of the matrix: its image, and optionally the project's name (default: "kernel <release>"). */
export type MatrixEntry = string | { kernel: string; name?: string }

export interface MatrixKernel {
  name: string
  /** Absolute path of the image. */
  kernel: string
}

/** Resolves the entries against `baseDir`, checks each image exists, and names each one uniquely. */
export function matrixKernels(entries: readonly MatrixEntry[], baseDir: string, caller: string): MatrixKernel[] {
  const invalid = (message: string) => new VmtestError('VMTEST_OPTION_INVALID', 'config', `${caller}: ${message}`)
  if (!Array.isArray(entries) || entries.length === 0) throw invalid('expected a non-empty array of kernel image paths (or { kernel, name } objects).')
  const kernels = entries.map((entry, i) => {
    const path = typeof entry === 'string' ? entry : entry?.kernel
    if (typeof path !== 'string' || path === '') throw invalid(`entry ${i} is ${JSON.stringify(entry)}: expected a kernel image path or { kernel: path, name?: string }.`)
    const kernel = resolve(baseDir, path)
    let isFile = false
    try {
      isFile = statSync(kernel).isFile()
    } catch {
      throw new VmtestError('VMTEST_KERNEL_NOT_FOUND', 'config', `${caller}: kernel image not found: ${kernel} (entry ${i}).`)
    }
    if (!isFile) throw invalid(`${kernel} (entry ${i}) is not a file.`)
    // An ELF or arm64 Image keeps its version deeper in: it is named after its file.
    const name = typeof entry === 'object' && entry.name ? entry.name : `kernel ${bzImageReleaseSync(kernel) ?? basename(kernel)}`
    return { name, kernel }
  })
  const names = kernels.map((k) => k.name)
  const twice = names.find((name, i) => names.indexOf(name) !== i)
  if (twice) throw invalid(`two kernels are both named "${twice}": give them distinct names with { kernel, name }.`)
  return kernels
}
