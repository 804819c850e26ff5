// Host set-up: installs what the engine needs where it can (apt on
// Debian/Ubuntu as root), prints the exact commands where it cannot, and
// fetches a default guest kernel (a distro kernel package, extracted with its
// modules into the cache) so a new user can boot without building a kernel.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import { findExecutable } from './qemu/binary.js'
import { cacheDir } from './paths.js'
import { defaultKernels, kernelsIn } from './kernel/resolve.js'
import { inspectKernel } from './kernel/inspect.js'
import { fastBootImage } from './kernel/fast-boot.js'
import { kvmVerdict } from './qemu/accel.js'
import { archProfile, hostArch } from './qemu/arch.js'
import { archRootDir } from './rootfs.js'

/** What the engine runs on the host, and the Debian package of each. */
const HOST_TOOLS = [
  { binary: 'qemu-system-x86_64', pkg: 'qemu-system-x86', why: 'runs the guest' },
  { binary: 'busybox', pkg: 'busybox-static', why: 'the initramfs shell for module kernels' },
  { binary: 'qemu-ga', pkg: 'qemu-guest-agent', why: 'image targets', paths: ['/usr/sbin/qemu-ga', '/usr/bin/qemu-ga'] },
  { binary: 'xz', pkg: 'xz-utils', why: 'unpacks the kernel for fast boot' },
  { binary: 'dpkg', pkg: 'dpkg', why: 'unpacks the default kernel package' },
]

/** Metapackages that point at the current distro kernel, per distro. */
const KERNEL_METAPACKAGES = ['linux-image-amd64', 'linux-image-generic']

export interface SetupOptions {
  /** Install missing packages with apt when possible (default true). */
  install?: boolean
  /** More kernels to fetch besides the default, for a kernel matrix: a package name
   * (linux-image-6.12.118+deb12-amd64), a version prefix (6.12) or 'newest'. */
  kernels?: string[]
  /** Foreign architectures to make bootable: their QEMU, and Debian's kernel with a root filesystem (node, busybox). */
  arches?: string[]
  log?: (line: string) => void
}

/** Returns the problems left (an empty list: ready). */
export async function setupHost(options: SetupOptions = {}): Promise<string[]> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`))
  const problems: string[] = []
  const isRoot = process.getuid?.() === 0
  const hasApt = Boolean(findExecutable('apt-get'))

  const missing = HOST_TOOLS.filter((t) => !findExecutable(t.binary) && !(t.paths ?? []).some((p) => existsSync(p)))
  if (missing.length > 0) {
    const packages = missing.map((t) => t.pkg)
    if (hasApt && isRoot && options.install !== false) {
      log(`vmtest setup: installing ${packages.join(' ')}`)
      await execa('apt-get', ['update', '-qq'], { stdio: 'inherit' })
      await execa('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env: { DEBIAN_FRONTEND: 'noninteractive' } })
    } else {
      const command = hasApt ? `sudo apt-get install -y --no-install-recommends ${packages.join(' ')}` : `install: ${missing.map((t) => `${t.binary} (${t.why})`).join(', ')}`
      problems.push(`missing ${missing.map((t) => t.binary).join(', ')}; run: ${command}`)
    }
  } else {
    log('vmtest setup: qemu, busybox, qemu-guest-agent and xz are installed')
  }

  const cache = cacheDir()
  let kernel: string | undefined = defaultKernels(cache)[0]
  if (kernel) {
    log(`vmtest setup: default kernel ${kernel}`)
  } else if (hasApt && findExecutable('dpkg')) {
    kernel = await fetchDefaultKernel(cache, log).catch((error: Error) => {
      problems.push(`could not fetch the default kernel: ${error.message}`)
      return undefined
    })
  } else {
    problems.push('no default kernel: set VMTEST_KERNEL to a bzImage whose modules are in /lib/modules/<release> (or built in)')
  }

  if (kernel && findExecutable('qemu-system-x86_64') && findExecutable('xz')) {
    const info = await inspectKernel(kernel)
    const { pvh } = await fastBootImage(info, cache)
    log(`vmtest setup: kernel ${info.release}: ${pvh ? 'fast boot (uncompressed vmlinux, PVH) cached' : 'no PVH entry, boots as bzImage'}`)
    const verdict = await kvmVerdict(findExecutable('qemu-system-x86_64')!, kernel, cache)
    log(`vmtest setup: ${verdict.kvmUsable ? 'KVM works: guests run at native speed' : `KVM unusable (${verdict.reason}): guests run under TCG emulation, 5-10x slower`}`)
  }
  for (const wanted of options.kernels ?? []) {
    const path = await fetchExtraKernel(cache, wanted, log).catch((error: Error) => {
      problems.push(`could not fetch the kernel "${wanted}": ${error.message}`)
    })
    if (path) log(`vmtest setup: kernel "${wanted}": ${path}`)
  }
  for (const arch of options.arches ?? []) {
    const kernel = await fetchArchRoot(cache, arch, { install: options.install !== false && isRoot, log }).catch((error: Error) => {
      problems.push(`could not set up ${arch} guests: ${error.message}`)
    })
    if (kernel) log(`vmtest setup: ${arch}: kernel ${kernel}, root filesystem ${archRootDir(cache, arch)}`)
  }
  for (const problem of problems) log(`vmtest setup: PROBLEM: ${problem}`)
  return problems
}

/** QEMU's Debian package per architecture. */
const QEMU_PACKAGES: Record<string, string> = { x86_64: 'qemu-system-x86', aarch64: 'qemu-system-arm', riscv64: 'qemu-system-misc', s390x: 'qemu-system-s390x' }
/** In the foreign root: node runs the agent, busybox-static is the initramfs shell, dash is /bin/sh for commands, with the
 * basic tools a test expects (mount, ps, modprobe); the kernel package brings its modules. */
const ARCH_ROOT_PACKAGES = ['nodejs', 'busybox-static', 'dash', 'coreutils', 'util-linux', 'mount', 'procps', 'kmod']

/** Makes <cache>/rootfs/<arch>: Debian's packages for that architecture, extracted (mmdebstrap's
 * `extract` variant runs no maintainer script, so no emulation is needed to build it). Returns the kernel. */
async function fetchArchRoot(cache: string, arch: string, o: { install: boolean; log: (line: string) => void }): Promise<string> {
  const profile = archProfile(arch)
  if (!profile || arch === hostArch()) throw new Error(`--arch ${arch}: expected a foreign architecture (${['aarch64', 'riscv64', 's390x'].filter((a) => a !== hostArch()).join(', ')})`)
  const target = archRootDir(cache, arch)
  const needed = [...(findExecutable(`qemu-system-${arch}`) ? [] : [QEMU_PACKAGES[arch]]), ...(findExecutable('mmdebstrap') ? [] : ['mmdebstrap'])]
  if (needed.length > 0) {
    if (!o.install || !findExecutable('apt-get')) throw new Error(`missing ${needed.join(', ')}; run: sudo apt-get install -y --no-install-recommends ${needed.join(' ')}`)
    o.log(`vmtest setup: installing ${needed.join(' ')}`)
    await execa('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...needed], { stdio: 'inherit', env: { DEBIAN_FRONTEND: 'noninteractive' } })
  }
  const present = kernelsIn(join(cache, 'rootfs'), arch)[0]
  if (present) return present
  const suite = debianSuite()
  o.log(`vmtest setup: fetching Debian ${suite} ${profile.debian}: linux-image-${profile.debian}, ${ARCH_ROOT_PACKAGES.join(', ')} (a few hundred MB)`)
  mkdirSync(dirname(target), { recursive: true })
  const work = mkdtempSync(`${target}.tmp-`)
  try {
    const root = join(work, 'root')
    await execa('mmdebstrap', ['--variant=extract', `--architectures=${profile.debian}`, `--include=${[`linux-image-${profile.debian}`, ...ARCH_ROOT_PACKAGES].join(',')}`, suite, root], { stdio: ['ignore', 'inherit', 'inherit'] })
    // Mount points init needs even when the root is shared read-only.
    for (const dir of ['proc', 'sys', 'dev', 'run', 'tmp', 'mnt']) mkdirSync(join(root, dir), { recursive: true })
    rmSync(target, { recursive: true, force: true })
    renameSync(root, target)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  const kernel = kernelsIn(join(cache, 'rootfs'), arch)[0]
  if (!kernel) throw new Error(`the ${profile.debian} root has no boot/vmlinuz-*`)
  return kernel
}

/** The host's Debian release (the arch root matches it), or bookworm elsewhere. */
function debianSuite(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8')
    if (/^ID=debian$/m.test(release)) return /^VERSION_CODENAME=(\w+)$/m.exec(release)?.[1] ?? 'bookworm'
  } catch {
    // no os-release: not a Debian host
  }
  return 'bookworm'
}

/** Extra kernels live apart from the default (<cache>/kernels/extra/<package>), so fetching one never changes the default. */
async function fetchExtraKernel(cache: string, wanted: string, log: (line: string) => void): Promise<string> {
  if (!findExecutable('apt-get') || !findExecutable('dpkg')) throw new Error('fetching a kernel package needs apt-get and dpkg (Debian/Ubuntu)')
  const image = await kernelPackageNamed(wanted)
  const extra = join(cache, 'kernels', 'extra')
  const present = kernelsIn(extra, image)[0]
  if (present) return present
  await fetchKernelPackage(image, join(extra, image), log)
  const kernel = kernelsIn(extra, image)[0]
  if (!kernel) throw new Error(`${image} contained no boot/vmlinuz-*`)
  return kernel
}

/** Fetches the distro's current kernel into <cache>/kernels/<package>. */
async function fetchDefaultKernel(cache: string, log: (line: string) => void): Promise<string> {
  const image = await currentKernelPackage()
  await fetchKernelPackage(image, join(cache, 'kernels', image), log)
  const kernel = defaultKernels(cache)[0]
  if (!kernel) throw new Error(`${image} contained no boot/vmlinuz-*`)
  log(`vmtest setup: default kernel ${kernel}`)
  return kernel
}

/** apt-get download a kernel package (and its modules packages, where the
 * distro splits them) and extract them into `target`. */
async function fetchKernelPackage(image: string, target: string, log: (line: string) => void): Promise<void> {
  const version = image.replace(/^linux-image-(unsigned-)?/, '')
  const packages = [image, ...(await existing([`linux-modules-${version}`, `linux-modules-extra-${version}`]))]
  log(`vmtest setup: fetching ${packages.join(', ')}`)
  const work = mkdtempSync(join(tmpdir(), 'vmtest-setup-'))
  try {
    await execa('apt-get', ['download', ...packages], { cwd: work })
    const root = join(work, 'root')
    for (const deb of readdirSync(work).filter((f) => f.endsWith('.deb'))) await execa('dpkg', ['-x', join(work, deb), root])
    mkdirSync(dirname(target), { recursive: true })
    rmSync(target, { recursive: true, force: true })
    renameSync(root, target)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/** The package a user named: itself if apt knows it, else the newest
 * linux-image-<prefix>* of this architecture ('newest': of all versions). */
async function kernelPackageNamed(wanted: string): Promise<string> {
  if (wanted.startsWith('linux-image-') && (await existing([wanted])).length > 0) return wanted
  const arch = (await execa('dpkg', ['--print-architecture'])).stdout.trim()
  const prefix = wanted === 'newest' ? '' : wanted.replace(/^linux-image-/, '')
  const { stdout } = await execa('apt-cache', ['pkgnames', `linux-image-${prefix}`], { reject: false })
  const chosen = pickKernelPackage(stdout.split('\n'), prefix, arch)
  if (!chosen) throw new Error(`apt knows no kernel package matching linux-image-${prefix}*-${arch} (run apt-get update? see apt-cache search linux-image)`)
  return chosen
}

/** The newest plain kernel image package (not -dbg, -unsigned, -rt-, -cloud-,
 * a metapackage or headers) whose version starts with `prefix` as a whole
 * component: "6.1" picks 6.1.0-57, never 6.12. */
export function pickKernelPackage(names: readonly string[], prefix: string, arch: string): string | undefined {
  const plain = new RegExp(`^linux-image-\\d[\\w.+~-]*-(${arch}|generic)$`)
  const start = `linux-image-${prefix}`
  return names
    .filter((name) => plain.test(name) && !/-(rt|cloud)-/.test(name))
    .filter((name) => name.startsWith(start) && (prefix === '' || /^([.+~-]|$)/.test(name.slice(start.length))))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .at(-1)
}

async function currentKernelPackage(): Promise<string> {
  for (const meta of KERNEL_METAPACKAGES) {
    const { stdout, exitCode } = await execa('apt-cache', ['depends', meta], { reject: false })
    const dep = exitCode === 0 ? /Depends: (linux-image-[\w.+-]+)/.exec(stdout)?.[1] : undefined
    if (dep) return dep
  }
  throw new Error(`none of ${KERNEL_METAPACKAGES.join(', ')} is known to apt (run apt-get update?)`)
}

async function existing(packages: string[]): Promise<string[]> {
  const found: string[] = []
  for (const pkg of packages) {
    const { stdout } = await execa('apt-cache', ['show', '--no-all-versions', pkg], { reject: false })
    if (stdout.includes(`Package: ${pkg}`)) found.push(pkg)
  }
  return found
}
