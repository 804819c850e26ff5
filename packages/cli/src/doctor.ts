// `vmtest doctor`: the host checks a boot makes, one by one, each with what it
// found or what is wrong and the exact fix. No check throws and none can hang:
// each is bounded, so a broken host gets a report, not a stuck command.

import { execFile } from 'node:child_process'
import { accessSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import pc from 'picocolors'
import {
  cacheDir,
  OVERLAY_MODULE,
  requiredModules,
  chooseAccel,
  chooseKernel,
  findExecutable,
  findModuleDir,
  findQemu,
  inspectNamedKernel,
  isStaticElf,
  KVM_PROBE_TIMEOUT_MS,
  planModules,
  type KernelInfo,
  type ModulePlan,
} from '@vmtest/core/runner'

export interface DoctorCheck {
  name: string
  ok: boolean
  /** one line: what was found, or what is wrong and the exact fix */
  detail: string
  /** false: a warning that does not make the host unusable (e.g. KVM unusable → TCG) */
  fatal: boolean
}

export interface DoctorOptions {
  /** A kernel to check instead of the one a boot would choose (`--kernel`). */
  kernel?: string
  /** A QEMU binary instead of qemu-system-<arch> on PATH (`--qemu`). */
  qemu?: string
}

const MIN_NODE: [number, number] = [20, 5]
const QEMU_VERSION_TIMEOUT_MS = 5000
/** The probe's own bound, its kill delay, and slack for a loaded host. */
const ACCEL_TIMEOUT_MS = KVM_PROBE_TIMEOUT_MS + 3000
/** Reading headers and module lists: milliseconds normally; seconds mean a stuck filesystem. */
const FILE_CHECK_TIMEOUT_MS = 5000
const BUSYBOX_INSTALL = 'Install it: apt-get install busybox-static'
const TCG_COST = 'guests run under TCG, expect boots and commands 5-10x slower'

export async function doctor(options: DoctorOptions = {}): Promise<DoctorCheck[]> {
  const cache = cacheDir()

  // The kernel comes first (the others depend on it) but is reported after them.
  let kernel: KernelInfo | undefined
  let kernelPath: string | undefined
  const kernelCheck = await bounded('kernel', FILE_CHECK_TIMEOUT_MS, true, async () => {
    let chosen: { path: string; source: string }
    try {
      chosen = chooseKernel(options.kernel && resolve(options.kernel), 'from the --kernel option', cache)
    } catch (error) {
      const noneNamed = !options.kernel && !process.env.VMTEST_KERNEL
      const first = message(error).split('\n')[0]
      const fix = noneNamed
        ? 'Fix: run `vmtest setup` to fetch the default Debian kernel, or name one with --kernel or VMTEST_KERNEL.'
        : `Name an existing bzImage or vmlinux${options.kernel ? '' : ' in VMTEST_KERNEL'}, or leave it unset to use the default kernel.`
      return fail('kernel', `${first} ${fix}`)
    }
    try {
      kernel = await inspectNamedKernel(chosen.path, chosen.source)
    } catch (error) {
      return fail('kernel', message(error))
    }
    kernelPath = chosen.path
    const what = [kernel.release ?? 'release unknown', `${kernel.arch} ${kernel.format}`].join(', ')
    return ok('kernel', `${chosen.path} (${what}; ${chosen.source})`)
  })

  const arch = kernel?.arch ?? 'x86_64'
  let qemu: string | undefined
  const qemuCheck = await bounded('qemu', QEMU_VERSION_TIMEOUT_MS + 1000, true, async () => {
    try {
      qemu = findQemu(arch, options.qemu, 'from the --qemu option')
    } catch (error) {
      return fail('qemu', message(error).replace(/^Cannot start guest: /, ''))
    }
    const version = await qemuVersion(qemu)
    if (!version.ok) {
      const found = qemu
      qemu = undefined
      return fail('qemu', `${found} does not run: \`${found} --version\` ${version.detail}. Reinstall it: apt-get install qemu-system-x86`)
    }
    return ok('qemu', `${qemu} (${version.detail})`)
  })

  // Modules decide whether busybox is needed: undefined when that is unknown.
  let needsModules: boolean | undefined
  const modulesCheck = await bounded('modules', FILE_CHECK_TIMEOUT_MS, true, async () => {
    if (!kernel || !kernelPath) return warn('modules', 'not checked: no kernel (see the kernel line)')
    if (!kernel.release) {
      return warn('modules', `not checked: ${kernelPath} names no release, so its modules cannot be found; it must have 9p, virtio PCI and virtio console built in`)
    }
    const found = findModuleDir({ kernelPath, release: kernel.release })
    if (!found.dir) {
      needsModules = false
      return warn('modules', `none found for ${kernel.release} (looked in ${found.looked.join(', ')}): the kernel must have 9p, virtio PCI and virtio console built in, else point the \`modules\` option at its lib/modules/${kernel.release}`)
    }
    const plan = await planModules(found.dir, [...requiredModules(kernel.arch), OVERLAY_MODULE])
    needsModules = plan.files.length > 0
    return describeModules(kernel.release, found.dir, plan)
  })

  const fatal = needsModules === true
  const busyboxCheck = await bounded('busybox', FILE_CHECK_TIMEOUT_MS, fatal, async () => {
    const why =
      needsModules === true
        ? `kernel ${kernel?.release} loads its 9p/virtio drivers as modules from an initramfs whose shell is a static busybox`
        : needsModules === false
          ? `not needed by kernel ${kernel?.release} (no modules to load), but kernels with modules need a static busybox`
          : 'kernels with modules need a static busybox'
    const busybox = findExecutable('busybox')
    if (!busybox) return { name: 'busybox', ok: false, fatal, detail: `\`busybox\` was not found on PATH: ${why}. ${BUSYBOX_INSTALL}` }
    if (!isStaticElf(readFileSync(busybox))) {
      return { name: 'busybox', ok: false, fatal, detail: `${busybox} is dynamically linked and cannot run in the guest's initramfs: ${why}. ${BUSYBOX_INSTALL}` }
    }
    return ok('busybox', `${busybox} (static)`)
  })

  const accelCheck = await bounded('accel', ACCEL_TIMEOUT_MS, false, async () => {
    const kvmAccess = devKvmProblem()
    if (kvmAccess) return warn('accel', `KVM is unusable here (${kvmAccess}): ${TCG_COST}`)
    if (!qemu || !kernelPath) {
      const failed = [!qemu && 'qemu', !kernelPath && 'kernel'].filter(Boolean).join(' and ')
      return warn('accel', `KVM not probed: the probe boots a kernel under QEMU (see the ${failed} line)`)
    }
    // The same probe and per-host cached verdict a boot uses.
    const choice = await chooseAccel('auto', qemu, kernelPath, cache)
    if (choice.accel === 'kvm') return ok('accel', 'KVM works: guests run at native speed')
    return warn('accel', `KVM is unusable here (${choice.fallbackReason}): ${TCG_COST}`)
  })

  const cacheCheck = await bounded('cache', FILE_CHECK_TIMEOUT_MS, true, async () => {
    const probe = join(cache, `.doctor-${process.pid}`)
    try {
      mkdirSync(cache, { recursive: true })
      writeFileSync(probe, '')
      rmSync(probe, { force: true })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? message(error)
      return fail('cache', `${cache} is not writable (${code}): set VMTEST_CACHE_DIR to a writable directory, or fix its permissions`)
    }
    return ok('cache', `${cache} is writable`)
  })

  return [qemuCheck, accelCheck, busyboxCheck, kernelCheck, modulesCheck, cacheCheck, nodeCheck()]
}

/** "ok   name: detail", "warn name: detail" or "FAIL name: detail", one line per check. */
export function formatDoctor(checks: DoctorCheck[], color: boolean): string {
  const c = pc.createColors(color)
  return checks
    .map((check) => {
      const [label, paint] = check.ok ? ['ok', c.green] : check.fatal ? ['FAIL', c.red] : ['warn', c.yellow]
      return `${paint(label.padEnd(4))} ${check.name}: ${check.detail}`
    })
    .join('\n')
}

function describeModules(release: string, dir: string, plan: ModulePlan): DoctorCheck {
  const missing = plan.missing.filter((m) => m !== OVERLAY_MODULE)
  if (missing.length > 0) {
    return fail('modules', `the modules of kernel ${release} in ${dir} lack ${missing.join(', ')}: the guest needs virtio PCI, virtio console and 9p, as modules or built in. Use a kernel that has them, or point the \`modules\` option at the right lib/modules/${release}`)
  }
  const parts = [plan.files.length > 0 ? `loads ${plan.files.length} modules` : 'no modules to load']
  if (plan.builtin.length > 0) parts.push(`built in: ${plan.builtin.join(', ')}`)
  const found = `${release} in ${dir}: ${parts.join('; ')}`
  if (plan.missing.includes(OVERLAY_MODULE)) {
    return warn('modules', `${found}; no overlay module: the guest's root is read-only (rootMode 'ro'), not a throwaway overlay`)
  }
  return ok('modules', found)
}

function nodeCheck(): DoctorCheck {
  const [major, minor] = process.versions.node.split('.').map(Number)
  const enough = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])
  if (enough) return ok('node', `${process.version} (${process.execPath})`)
  return fail('node', `${process.version} is too old: vmtest needs Node.js >= ${MIN_NODE.join('.')}. Install a newer Node.js (e.g. \`nvm install 22\`)`)
}

/** "QEMU 7.2.22" from `qemu --version`, or how it failed. */
function qemuVersion(qemu: string): Promise<{ ok: boolean; detail: string }> {
  return new Promise((done) => {
    execFile(qemu, ['--version'], { timeout: QEMU_VERSION_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const version = /version (\S+)/i.exec(String(stdout))?.[1]
      if (!error && version) return done({ ok: true, detail: `QEMU ${version}` })
      if (error?.killed) return done({ ok: false, detail: `did not answer within ${QEMU_VERSION_TIMEOUT_MS} ms` })
      const why = String(stderr).trim().split('\n')[0] || error?.message.split('\n')[0] || 'printed no version'
      done({ ok: false, detail: `failed: ${why}` })
    })
  })
}

/** Why /dev/kvm cannot be used at all, or undefined when it can be opened. */
function devKvmProblem(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK)
    return undefined
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'ENOENT' ? '/dev/kvm does not exist' : `/dev/kvm is not accessible (${code}): add yourself to the \`kvm\` group`
  }
}

/** Runs one check: a throw becomes a failure (or warning, when not `fatal`)
 * line, and a check that takes longer than `ms` is reported, not waited for. */
async function bounded(name: string, ms: number, fatal: boolean, run: () => Promise<DoctorCheck>): Promise<DoctorCheck> {
  const failed = (detail: string) => (fatal ? fail(name, detail) : warn(name, detail))
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<DoctorCheck>((done) => {
    timer = setTimeout(() => done(failed(`did not finish within ${ms / 1000} s`)), ms)
    timer.unref()
  })
  try {
    return await Promise.race([run().catch((error: unknown) => failed(message(error))), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function ok(name: string, detail: string): DoctorCheck {
  return { name, ok: true, fatal: false, detail: oneLine(detail) }
}

function warn(name: string, detail: string): DoctorCheck {
  return { name, ok: false, fatal: false, detail: oneLine(detail) }
}

function fail(name: string, detail: string): DoctorCheck {
  return { name, ok: false, fatal: true, detail: oneLine(detail) }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** Details are one line each: an engine message's own line breaks become spaces. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
