// Decides KVM or TCG by trying, not by /dev/kvm existing: nested and
// paravirtual hosts expose a /dev/kvm under which a stock kernel hangs or QEMU
// aborts. The verdict is cached per host (kernel release + QEMU binary).

import { createHash } from 'node:crypto'
import { accessSync, constants, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { release } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { VmtestError } from '../errors.js'

/** A stock kernel under working KVM reaches its "no root" panic in about a
 * second; 6 s leaves room for a loaded host and keeps the probe under 10 s. */
export const KVM_PROBE_TIMEOUT_MS = 6000

export interface AccelVerdict {
  kvmUsable: boolean
  /** Why KVM is not usable, in words for the user. */
  reason?: string
  probedAt?: string
}

export interface AccelChoice {
  accel: 'kvm' | 'tcg'
  /** Set when KVM was wanted (auto) but is not usable. */
  fallbackReason?: string
}

export async function chooseAccel(requested: 'auto' | 'kvm' | 'tcg', qemu: string, kernel: string, cacheDir: string): Promise<AccelChoice> {
  if (requested === 'tcg') return { accel: 'tcg' }
  const verdict = await kvmVerdict(qemu, kernel, cacheDir)
  if (verdict.kvmUsable) return { accel: 'kvm' }
  if (requested === 'kvm') {
    throw new VmtestError(
      'VMTEST_KVM_UNAVAILABLE',
      'launch',
      `accel: 'kvm' was requested, but KVM is unusable on this host: ${verdict.reason}.\n` +
        "Check that /dev/kvm exists and that you can read and write it (the `kvm` group), or use accel: 'auto' to fall back to TCG.",
    )
  }
  return { accel: 'tcg', fallbackReason: verdict.reason }
}

export async function kvmVerdict(qemu: string, kernel: string, cacheDir: string): Promise<AccelVerdict> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return { kvmUsable: false, reason: code === 'ENOENT' ? '/dev/kvm does not exist' : `/dev/kvm is not accessible (${code})` }
  }
  const key = createHash('sha256').update(`${release()}\0${qemu}\0${statSync(qemu).mtimeMs}`).digest('hex').slice(0, 16)
  const cacheFile = join(cacheDir, `accel-${key}.json`)
  try {
    return JSON.parse(readFileSync(cacheFile, 'utf8')) as AccelVerdict
  } catch {
    // not probed yet on this host
  }
  const verdict = await probeKvm(qemu, kernel)
  mkdirSync(cacheDir, { recursive: true })
  writeFileSync(cacheFile, JSON.stringify({ ...verdict, probedAt: new Date().toISOString() }))
  return verdict
}

/** Boots `kernel` under KVM with no root: a working KVM gets to the kernel's
 * "Unable to mount root fs" panic, and panic=-1 + -no-reboot ends QEMU. */
async function probeKvm(qemu: string, kernel: string): Promise<AccelVerdict> {
  const started = Date.now()
  const result = await execa(
    qemu,
    ['-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'q35,accel=kvm', '-cpu', 'host', '-m', '256M', '-no-reboot',
      '-serial', 'stdio', '-kernel', kernel, '-append', 'console=ttyS0 panic=-1 root=/dev/vmtest-probe-no-root'],
    { stdin: 'ignore', reject: false, timeout: KVM_PROBE_TIMEOUT_MS, forceKillAfterDelay: 1000, maxBuffer: 4 * 1024 * 1024 },
  )
  if (/Kernel panic/.test(String(result.stdout))) return { kvmUsable: true }
  if (result.timedOut) {
    const last = String(result.stdout).trim().split('\n').pop()?.trim()
    return { kvmUsable: false, reason: `a stock kernel hung under KVM for ${Date.now() - started} ms${last ? ` after "${last}"` : ''} (a nested or paravirtual KVM)` }
  }
  const stderr = String(result.stderr).trim().split('\n').find((l) => /error|fail/i.test(l)) ?? String(result.stderr).trim().split('\n')[0]
  return { kvmUsable: false, reason: `QEMU failed under KVM: ${stderr || `exit code ${result.exitCode}`}` }
}
