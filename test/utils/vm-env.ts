// Whether real-guest tests can run here: QEMU and a kernel. Outside CI they
// skip with the reason; under CI=true a missing piece fails the run instead.

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
// @ts-expect-error: a plain .mjs script, typed by use
import { testImagePath } from '../../scripts/test-image.mjs'

const cache = process.env.VMTEST_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmtest')

function findKernel(): string | undefined {
  if (process.env.VMTEST_KERNEL) return process.env.VMTEST_KERNEL
  return firstKernelIn(join(cache, 'kernels'))
}

function firstKernelIn(kernels: string): string | undefined {
  if (!existsSync(kernels)) return undefined
  for (const pkg of readdirSync(kernels)) {
    const boot = join(kernels, pkg, 'boot')
    const image = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) : undefined
    if (image) return join(boot, image)
  }
  return undefined
}

function hasQemu(): boolean {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const testKernel = findKernel()
/** A second kernel for the kernel matrix test: the one `npm run setup -- --kernel newest` fetched (pretest does). */
export const otherKernel = firstKernelIn(join(cache, 'kernels', 'extra'))
const missing = [!hasQemu() && 'qemu-system-x86_64', !testKernel && 'a kernel (run `npm run setup` or set VMTEST_KERNEL)'].filter(Boolean)
export const vmSkipReason = missing.length > 0 ? `real-guest tests need ${missing.join(' and ')}` : undefined

if (vmSkipReason && process.env.CI) throw new Error(`CI=true: ${vmSkipReason}`)
if (vmSkipReason) console.warn(`skipping: ${vmSkipReason}`)

/** The disk image `node scripts/test-image.mjs` builds (pretest does), for the image-target tests. */
export const testImage = existingOrUndefined(testImagePath())
/** The aarch64 root (kernel included) `npm run setup -- --arch aarch64` fetches (pretest does). */
export const arm64Root = existingOrUndefined(join(cache, 'rootfs', 'aarch64'))
/** Why the image and foreign-arch tests cannot run here; under CI=true that fails the run. */
export const targetsSkipReason = vmSkipReason ?? ([!testImage && 'the test image (run `node scripts/test-image.mjs` as root)', !arm64Root && 'the aarch64 root (run `npm run setup -- --arch aarch64`)'].filter(Boolean).join(' and ') || undefined)
if (targetsSkipReason && process.env.CI) throw new Error(`CI=true: image and aarch64 tests need ${targetsSkipReason}`)

function existingOrUndefined(path: string): string | undefined {
  return existsSync(path) ? path : undefined
}

/** qemu-system processes whose command line mentions `needle` (a socket path or temp dir). */
export function qemuProcesses(needle = 'qemu-system'): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
  return out
    .split('\n')
    .filter((l) => l.includes('qemu-system') && l.includes(needle) && !l.includes('setpriv'))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
}

/** A fresh host dir the guest sees through its root, not through the shared
 * project dir (which may be bound where /tmp is), for checks on what a guest can
 * do to host paths. Under the home dir: /tmp, /run and /var/tmp can be the guest's own tmpfs. */
export function hostProbeDir(): string {
  const parent = join(homedir(), '.cache', 'vmtest-test-probes')
  mkdirSync(parent, { recursive: true })
  return mkdtempSync(join(parent, 'probe-'))
}
