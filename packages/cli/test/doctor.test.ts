import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, test } from 'vitest'
import { cacheDir, chooseKernel, findExecutable } from '@vmtest/core/runner'
import { doctor, formatDoctor, type DoctorCheck } from '../src/doctor.js'

const QEMU = findExecutable('qemu-system-x86_64')
const NO_QEMU = 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)'
const CHECK_NAMES = ['qemu', 'accel', 'busybox', 'kernel', 'modules', 'cache', 'node']

/** On a developer's machine without QEMU the host checks are skipped; on CI QEMU must be there. */
function requireQemu(skip: (note: string) => never): void {
  if (QEMU) return
  if (process.env.CI === 'true') throw new Error(`${NO_QEMU}, and CI=true: the doctor tests must run on CI`)
  skip(NO_QEMU)
}

const lineOf = (lines: string[], name: string) => lines.find((l) => l.slice(5).startsWith(`${name}: `))

describe('formatDoctor', () => {
  const checks: DoctorCheck[] = [
    { name: 'qemu', ok: true, fatal: false, detail: '/usr/bin/qemu-system-x86_64 (QEMU 7.2.22)' },
    { name: 'accel', ok: false, fatal: false, detail: 'KVM is unusable here (/dev/kvm does not exist): guests run under TCG, expect boots and commands 5-10x slower' },
    { name: 'busybox', ok: false, fatal: true, detail: '`busybox` was not found on PATH: kernels with modules need a static busybox. Install it: apt-get install busybox-static' },
  ]

  test('one line per check, the status padded to one width, no colour codes', () => {
    expect(formatDoctor(checks, false)).toBe(
      [
        'ok   qemu: /usr/bin/qemu-system-x86_64 (QEMU 7.2.22)',
        'warn accel: KVM is unusable here (/dev/kvm does not exist): guests run under TCG, expect boots and commands 5-10x slower',
        'FAIL busybox: `busybox` was not found on PATH: kernels with modules need a static busybox. Install it: apt-get install busybox-static',
      ].join('\n'),
    )
  })

  test('colours the status green, yellow or red when asked', () => {
    const lines = formatDoctor(checks, true).split('\n')
    expect(lines[0]).toBe('\x1b[32mok  \x1b[39m qemu: /usr/bin/qemu-system-x86_64 (QEMU 7.2.22)')
    expect(lines[1]).toMatch(/^\x1b\[33mwarn\x1b\[39m accel: KVM is unusable here/)
    expect(lines[2]).toMatch(/^\x1b\[31mFAIL\x1b\[39m busybox: /)
  })

  test('no checks, no lines', () => {
    expect(formatDoctor([], false)).toBe('')
  })
})

describe('doctor on this host', () => {
  let checks: DoctorCheck[] = []
  let lines: string[] = []
  let ms = 0

  beforeAll(async () => {
    if (!QEMU) return
    const started = Date.now()
    checks = await doctor()
    ms = Date.now() - started
    lines = formatDoctor(checks, false).split('\n')
  }, 30_000)

  test('reports every check once, in order, one line each, within 20 s', ({ skip }) => {
    requireQemu(skip)
    expect(checks.map((c) => c.name)).toEqual(CHECK_NAMES)
    expect(lines).toHaveLength(CHECK_NAMES.length)
    expect(ms).toBeLessThan(20_000)
  })

  test('nothing fatal: this host runs the VM tests', ({ skip }) => {
    requireQemu(skip)
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([])
  })

  test('names the QEMU binary and its version', ({ skip }) => {
    requireQemu(skip)
    expect(QEMU).toBe('/usr/bin/qemu-system-x86_64')
    expect(lineOf(lines, 'qemu')).toMatch(/^ok {3}qemu: \/usr\/bin\/qemu-system-x86_64 \(QEMU \d+\.\d+\.\d+\)$/)
  })

  test('says whether KVM works, and if not why, as a warning', ({ skip }) => {
    requireQemu(skip)
    const accel = checks.find((c) => c.name === 'accel')!
    const line = lineOf(lines, 'accel')!
    if (accel.ok) {
      expect(line).toBe('ok   accel: KVM works: guests run at native speed')
      return
    }
    // This machine: /dev/kvm opens, but QEMU aborts ("failed to set MSR 0x10a") or a stock kernel hangs.
    expect(accel.fatal).toBe(false)
    const reason = /^warn accel: KVM is unusable here \((.+)\): guests run under TCG, expect boots and commands 5-10x slower$/.exec(line)?.[1]
    expect(reason, line).toBeDefined()
    expect(reason).toMatch(/^(QEMU failed under KVM: .*(error|fail).*|a stock kernel hung under KVM .*|\/dev\/kvm .*)$/i)
  })

  test('names the kernel a boot would use, its release and where it came from', ({ skip }) => {
    requireQemu(skip)
    const chosen = chooseKernel(undefined, '', cacheDir())
    const match = /^ok {3}kernel: (\S+) \(([^,]+), x86_64 bzImage; (.+)\)$/.exec(lineOf(lines, 'kernel')!)
    expect(match, lineOf(lines, 'kernel')).not.toBeNull()
    expect(match![1]).toBe(chosen.path)
    expect(match![2]).toMatch(/^\d+\.\d+/)
    expect(match![3]).toBe(chosen.source)
  })

  test('a module kernel has its modules and a static busybox', async ({ skip }) => {
    requireQemu(skip)
    const root = join(cacheDir(), 'kernels')
    const cached = existsSync(root)
      ? readdirSync(root).flatMap((pkg) => (existsSync(join(root, pkg, 'boot')) ? readdirSync(join(root, pkg, 'boot')).filter((f) => f.startsWith('vmlinuz-')).map((f) => join(root, pkg, 'boot', f)) : []))
      : []
    if (cached.length === 0) {
      if (process.env.CI === 'true') throw new Error('no default kernel in the vmtest cache: `npm run setup` must run first on CI')
      skip('no default kernel in the vmtest cache (run `npm run setup`)')
    }
    const kernel = cached[0]
    const release = kernel.replace(/^.*\/vmlinuz-/, '')
    const pkgRoot = kernel.replace(/\/boot\/vmlinuz-[^/]+$/, '')
    // The main run's kernel, when it was this one; else a run naming it.
    const run = lineOf(lines, 'kernel')?.includes(kernel) ? lines : formatDoctor(await doctor({ kernel }), false).split('\n')
    expect(lineOf(run, 'kernel')).toBe(`ok   kernel: ${kernel} (${release}, x86_64 bzImage; ${run === lines ? 'the default kernel in the vmtest cache' : 'from the --kernel option'})`)
    expect(lineOf(run, 'modules')).toMatch(new RegExp(`^ok {3}modules: ${escape(release)} in ${escape(pkgRoot)}/(usr/)?lib/modules/${escape(release)}: loads \\d+ modules$`))
    expect(lineOf(run, 'busybox')).toMatch(/^ok {3}busybox: \/\S+\/busybox \(static\)$/)
  }, 30_000)

  test('the cache is writable and node is new enough', ({ skip }) => {
    requireQemu(skip)
    expect(lineOf(lines, 'cache')).toBe(`ok   cache: ${cacheDir()} is writable`)
    expect(lineOf(lines, 'node')).toBe(`ok   node: ${process.version} (${process.execPath})`)
  })
})

describe('doctor with a broken host', () => {
  test('a --kernel that does not exist fails the kernel line, naming the path', async () => {
    const checks = await doctor({ kernel: '/nonexistent' })
    const lines = formatDoctor(checks, false).split('\n')
    expect(lineOf(lines, 'kernel')).toBe('FAIL kernel: Kernel image not found: /nonexistent (from the --kernel option). Name an existing bzImage or vmlinux, or leave it unset to use the default kernel.')
    expect(lineOf(lines, 'modules')).toBe('warn modules: not checked: no kernel (see the kernel line)')
    expect(checks.find((c) => c.name === 'accel')).toMatchObject({ ok: false, fatal: false })
  }, 20_000)

  test('a --qemu that does not exist fails the qemu line with the install command', async () => {
    const checks = await doctor({ qemu: '/nonexistent/qemu-system-x86_64' })
    const line = lineOf(formatDoctor(checks, false).split('\n'), 'qemu')
    expect(line).toMatch(/^FAIL qemu: QEMU binary `\/nonexistent\/qemu-system-x86_64` was not found \(from the --qemu option\)\. Install QEMU \(Debian\/Ubuntu: `apt-get install qemu-system-x86`/)
    expect(checks.find((c) => c.name === 'accel')).toMatchObject({ ok: false, fatal: false })
  }, 20_000)
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
