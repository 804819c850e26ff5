// Which kernel to boot when the user named none, and a clear error when the
// one they named is not there.

import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs'
import { release } from 'node:os'
import { join } from 'node:path'
import { VmtestError } from '../errors.js'
import { hostArch } from '../qemu/arch.js'

export interface ChosenKernel {
  path: string
  /** Where the choice came from, for messages. */
  source: string
}

/** Order (DESIGN.md): the option, VMTEST_KERNEL, /boot/vmlinuz-$(uname -r) if readable, the cached default.
 * For a foreign `arch`: the option, else the kernel in the root `vmtest setup --arch` fetched. */
export function chooseKernel(option: string | undefined, optionSource: string, cache: string, arch?: string): ChosenKernel {
  if (option) return checked({ path: option, source: optionSource })
  if (arch && arch !== hostArch()) {
    const fetched = kernelsIn(join(cache, 'rootfs'), arch)[0]
    if (fetched) return { path: fetched, source: `the ${arch} kernel in the vmtest cache` }
    throw new VmtestError(
      'VMTEST_KERNEL_NOT_FOUND',
      'config',
      `No ${arch} kernel to boot: none was named and none is in ${join(cache, 'rootfs', arch, 'boot')}.\n` +
        `Run \`npx vmtest setup --arch ${arch}\` to fetch Debian's ${arch} kernel and root filesystem, or set the \`kernel\` option.`,
    )
  }
  if (process.env.VMTEST_KERNEL) return checked({ path: process.env.VMTEST_KERNEL, source: 'from the VMTEST_KERNEL environment variable' })
  const looked: string[] = []
  const hostKernel = `/boot/vmlinuz-${release()}`
  looked.push(hostKernel)
  try {
    accessSync(hostKernel, constants.R_OK)
    return { path: hostKernel, source: "the host's own kernel" }
  } catch {
    // not readable (Ubuntu keeps it 0600) or absent (containers)
  }
  const cached = defaultKernels(cache)
  looked.push(join(cache, 'kernels', '*', 'boot', 'vmlinuz-*'))
  if (cached.length > 0) return { path: cached[0], source: 'the default kernel in the vmtest cache' }
  throw new VmtestError(
    'VMTEST_KERNEL_NOT_FOUND',
    'config',
    `No kernel to boot: none was named and none was found (looked at ${looked.join(', ')}).\n` +
      'Set the `kernel` option or VMTEST_KERNEL, or run `npm run setup` (or `npx vmtest setup`) to fetch the default Debian kernel.',
  )
}

/** Kernels fetched by the set-up into <cache>/kernels/<package>/boot/vmlinuz-*, newest first. */
export function defaultKernels(cache: string): string[] {
  return kernelsIn(join(cache, 'kernels'))
}

/** Kernels extracted into <dir>/<package>/boot/vmlinuz-* (only <dir>/<only>/ if given), newest first. */
export function kernelsIn(dir: string, only?: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((pkg) => only === undefined || pkg === only)
    .flatMap((pkg) => {
      const boot = join(dir, pkg, 'boot')
      return existsSync(boot) ? readdirSync(boot).filter((f) => f.startsWith('vmlinuz-')).map((f) => join(boot, f)) : []
    })
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
}

function checked(kernel: ChosenKernel): ChosenKernel {
  let stat
  try {
    stat = statSync(kernel.path)
  } catch {
    throw new VmtestError('VMTEST_KERNEL_NOT_FOUND', 'config', `Kernel image not found: ${kernel.path} (${kernel.source}).`)
  }
  if (!stat.isFile()) {
    throw new VmtestError('VMTEST_KERNEL_INVALID', 'config', `${kernel.path} (${kernel.source}) is not a bootable kernel: it is a directory.`)
  }
  return kernel
}
