import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { classifyLine, findSplats, SPLAT_KINDS, taintFlags, type Splat, type SplatKind } from '../src/host/console/splat.js'

function fixture(name: string): string[] {
  const text = readFileSync(new URL(`./fixtures/console/${name}`, import.meta.url), 'utf8')
  return text.replace(/\n$/, '').split('\n')
}

const summary = (splats: Splat[]) => splats.map((s) => [s.kind, s.title])
/** A log line's text without its "[    1.234567] " timestamp. */
const text = (line: string | undefined) => (line ?? '').replace(/^\[\s*\d+\.\d+\] /, '')

describe('findSplats on recorded-style reports', () => {
  it.each<[string, [SplatKind, string][]]>([
    ['warning.log', [['warning', 'WARNING: CPU: 1 PID: 318 at /tmp/wtest/wtest.c:12 wtest_init+0x15/0x1000 [wtest]']]],
    ['oops-null-deref.log', [['oops', 'BUG: kernel NULL pointer dereference, address: 0000000000000000']]],
    [
      'oops-panic-on-oops.log',
      [
        ['oops', 'BUG: unable to handle page fault for address: ffffffffffffffe8'],
        ['panic', 'Kernel panic - not syncing: Fatal exception'],
      ],
    ],
    ['kernel-bug.log', [['bug', 'kernel BUG at /tmp/bugtest/bugtest.c:9!']]],
    ['sysrq-panic.log', [['panic', 'Kernel panic - not syncing: sysrq triggered crash']]],
    ['kasan-use-after-free.log', [['kasan', 'BUG: KASAN: use-after-free in kmalloc_uaf+0x1ac/0x1f0 [kasan_test]']]],
    ['ubsan-array-index.log', [['ubsan', 'UBSAN: array-index-out-of-bounds in /tmp/oob/oob.c:14:13']]],
    ['lockdep-circular.log', [['lockdep', 'WARNING: possible circular locking dependency detected']]],
    ['hung-task.log', [['hung_task', 'INFO: task cat:402 blocked for more than 120 seconds.']]],
    [
      'soft-lockup.log',
      [
        ['soft_lockup', 'watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [spin_thread:412]'],
        ['panic', 'Kernel panic - not syncing: softlockup: hung tasks'],
      ],
    ],
    ['rcu-stall.log', [['rcu_stall', 'rcu: INFO: rcu_preempt self-detected stall on CPU']]],
    ['clean-boot.log', []],
  ])('%s', (name, expected) => {
    const lines = fixture(name)
    const splats = findSplats(lines)
    expect(summary(splats)).toEqual(expected)
    for (const s of splats) {
      expect(s.lines[0]).toBe(lines[s.index])
      expect(s.lines).toEqual(lines.slice(s.index, s.index + s.lines.length))
    }
  })

  it('the clean boot excerpt is a realistic length and yields nothing line by line', () => {
    const lines = fixture('clean-boot.log')
    expect(lines.length).toBeGreaterThanOrEqual(40)
    expect(lines.map(classifyLine).filter((k) => k !== undefined)).toEqual([])
  })
})

describe('report extent', () => {
  const only = (name: string, i = 0) => {
    const lines = fixture(name)
    const s = findSplats(lines)[i]
    if (!s) throw new Error(`no splat ${i} in ${name}`)
    return { lines, s, last: text(s.lines.at(-1)) }
  }

  it('a WARN stops at its end-trace marker; the cut-here line precedes the title', () => {
    const { lines, s, last } = only('warning.log')
    expect(last).toBe('---[ end trace 0000000000000000 ]---')
    expect(text(lines[s.index - 1])).toBe('------------[ cut here ]------------')
    expect(text(lines[s.index + s.lines.length])).toBe('wtest: self-test device registered')
  })

  it('an oops includes its die header and stops before the executive-summary registers', () => {
    const { lines, s, last } = only('oops-null-deref.log')
    expect(s.lines.map(text)).toContain('Oops: 0002 [#1] PREEMPT SMP NOPTI')
    expect(last).toBe('---[ end trace 0000000000000000 ]---')
    expect(text(lines[s.index + s.lines.length])).toMatch(/^RIP: 0010:nulltest_init/)
  })

  it('an oops followed by panic_on_oops yields two separate reports', () => {
    const { s: oops } = only('oops-panic-on-oops.log', 0)
    const { s: panic, last } = only('oops-panic-on-oops.log', 1)
    expect(text(oops.lines.at(-1))).toBe('---[ end trace 0000000000000000 ]---')
    expect(panic.lines.map(text)).toEqual([
      'Kernel panic - not syncing: Fatal exception',
      'Kernel Offset: 0x11c00000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)',
      '---[ end Kernel panic - not syncing: Fatal exception ]---',
    ])
    expect(last).toMatch(/^---\[ end Kernel panic/)
  })

  it('kernel BUG at runs through its stack to the end-trace marker', () => {
    const { s, last } = only('kernel-bug.log')
    expect(text(s.lines[1])).toBe('invalid opcode: 0000 [#1] PREEMPT SMP NOPTI')
    expect(last).toBe('---[ end trace 0000000000000000 ]---')
  })

  it('a sysrq panic runs past </TASK> to the end-Kernel-panic marker', () => {
    const { lines, s, last } = only('sysrq-panic.log')
    expect(text(lines[s.index - 1])).toBe('sysrq: Trigger a crash')
    expect(last).toBe('---[ end Kernel panic - not syncing: sysrq triggered crash ]---')
    expect(s.index + s.lines.length).toBe(lines.length)
  })

  it('a KASAN report runs past its first </TASK> to the closing rule, even beyond 60 lines', () => {
    const { lines, s, last } = only('kasan-use-after-free.log')
    expect(s.lines.map(text)).toContain('Freed by task 297:')
    expect(last).toMatch(/^={60,}$/)
    expect(s.lines.length).toBeGreaterThan(60)
    expect(text(lines[s.index + s.lines.length])).toBe('Disabling lock debugging due to kernel taint')
  })

  it('a UBSAN report stops at its closing rule', () => {
    const { lines, s, last } = only('ubsan-array-index.log')
    expect(last).toMatch(/^={60,}$/)
    expect(text(lines[s.index + s.lines.length])).toBe('oob: done')
  })

  it('reports without an end marker (lockdep, hung task, soft lockup, RCU stall) stop at </TASK>', () => {
    for (const name of ['lockdep-circular.log', 'hung-task.log', 'rcu-stall.log', 'soft-lockup.log']) {
      const { s, last } = only(name)
      expect(last, name).toBe(' </TASK>')
    }
    // the soft lockup's </IRQ> is not the end; its </TASK> is
    expect(only('soft-lockup.log').s.lines.map(text)).toContain(' </IRQ>')
    // lockdep's report is longer than the 60-line fallback cap but has a clear end
    expect(only('lockdep-circular.log').s.lines.length).toBeGreaterThan(60)
    expect(text(fixture('hung-task.log').at(-1))).toBe('stuck: holder released the mutex')
  })

  it('a report with no end is cut at 60 lines', () => {
    const lines = ['[    5.000000] BUG: scheduling while atomic: swapper/0/1/0x00000002']
    for (let i = 0; i < 100; i++) lines.push(`[    5.${String(i).padStart(6, '0')}] filler ${i}`)
    const [s] = findSplats(lines)
    expect(s?.lines).toHaveLength(60)
  })

  it('a report with no end stops at the next splat of another kind', () => {
    const lines = [
      'BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580',
      'in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: swapper/0',
      'Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009',
    ]
    expect(findSplats(lines).map((s) => [s.kind, s.index, s.lines.length])).toEqual([
      ['bug', 0, 2],
      ['panic', 2, 1],
    ])
  })

  it('two back-to-back reports of the same kind stay separate', () => {
    const lines = [
      'BUG: Bad page state in process a  pfn:0a3f1',
      ...Array.from({ length: 10 }, (_, i) => `detail ${i}`),
      'BUG: Bad page state in process b  pfn:0a3f2',
      'detail',
    ]
    expect(findSplats(lines).map((s) => [s.index, s.lines.length])).toEqual([
      [0, 11],
      [11, 2],
    ])
  })
})

describe('classifyLine', () => {
  it.each<[string, SplatKind]>([
    ['[    1.234567] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)', 'panic'],
    ['Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100', 'panic'],
    ['[   12.000001][    T1] Kernel panic - not syncing: hung_task: blocked tasks', 'panic'],
    ['[   12.000001] [ C1] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2', 'kasan'],
    ['BUG: KMSAN: uninit-value in bar+0x10/0x20', 'kmsan'],
    ['BUG: KCSAN: data-race in baz / qux', 'kcsan'],
    ['UBSAN: shift-out-of-bounds in lib/foo.c:12:3', 'ubsan'],
    ['WARNING: possible circular locking dependency detected', 'lockdep'],
    ['WARNING: possible recursive locking detected', 'lockdep'],
    ['WARNING: inconsistent lock state', 'lockdep'],
    ['WARNING: suspicious RCU usage', 'lockdep'],
    ['WARNING: bad unlock balance detected!', 'lockdep'],
    ['INFO: possible irq lock inversion dependency detected', 'lockdep'],
    ['WARNING: possible irq lock inversion dependency detected', 'lockdep'],
    ['WARNING: held lock freed!', 'lockdep'],
    ['WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected', 'lockdep'],
    ['BUG: sleeping function called from invalid context at mm/slab.h:723', 'bug'],
    ['BUG: scheduling while atomic: kworker/0:1/12/0x00000002', 'bug'],
    ['watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]', 'soft_lockup'],
    ['BUG: soft lockup - CPU#3 stuck for 23s! [kworker/3:1:58]', 'soft_lockup'],
    ['NMI watchdog: Watchdog detected hard LOCKUP on cpu 1', 'hard_lockup'],
    ['watchdog: Watchdog detected hard LOCKUP on cpu 2', 'hard_lockup'],
    ['Watchdog detected hard LOCKUP on cpu 0', 'hard_lockup'],
    ['INFO: task kworker/u4:2:57 blocked for more than 122 seconds.', 'hung_task'],
    ['INFO: task jbd2/vda1-8:143 blocked for more than 241 seconds. [Warning #2]', 'hung_task'],
    ['rcu: INFO: rcu_sched self-detected stall on CPU', 'rcu_stall'],
    ['rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:', 'rcu_stall'],
    ['rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... } 21002 jiffies s: 485 root: 0x2/.', 'rcu_stall'],
    ['INFO: rcu_sched detected stall on CPU 0 (t=15000 jiffies)', 'rcu_stall'],
    ['INFO: rcu_tasks detected stalls on tasks:', 'rcu_stall'],
    ['Oops: 0000 [#1] PREEMPT SMP NOPTI', 'oops'],
    ['BUG: unable to handle page fault for address: ffffc90000a2b000', 'oops'],
    ['BUG: unable to handle kernel NULL pointer dereference at 0000000000000008', 'oops'],
    ['BUG: kernel NULL pointer dereference, address: 0000000000000008', 'oops'],
    ['general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI', 'oops'],
    ['general protection fault: 0000 [#1] SMP PTI', 'oops'],
    ['Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000', 'oops'],
    ['kernel BUG at mm/slub.c:435!', 'bug'],
    ['Kernel BUG at 0xffffffffc0a1b2c3 [verbose debug info unavailable]', 'bug'],
    ['BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 41s!', 'bug'],
    ['WARNING: CPU: 0 PID: 1 at kernel/sched/core.c:9876 __might_sleep+0x5a/0x70', 'warning'],
    ['WARNING: at fs/inode.c:1234 iput+0x1f/0x200()', 'warning'],
    ['WARNING: kernel/sched/core.c:9876 at __might_sleep+0x5a/0x70, CPU#0: swapper/0/1', 'warning'],
    ['<4>[    3.000000] WARNING: CPU: 1 PID: 7 at net/core/dev.c:1 f+0x1/0x2', 'warning'],
  ])('%s -> %s', (line, kind) => {
    expect(classifyLine(line)).toBe(kind)
  })

  it.each([
    'ACPI: bug workaround',
    'x86/cpu: SGX disabled by BIOS.',
    'Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!',
    'RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!',
    'MDS CPU bug present and SMT on, data leak possible. See https://www.kernel.org/doc/html/latest/admin-guide/hw-vuln/mds.html for more details.',
    'ACPI BIOS Warning (bug): Incorrect checksum in table [BGRT] - 0x5C, should be 0x5B (20220331/tbprint-174)',
    '[Firmware Bug]: TSC_DEADLINE disabled due to Errata; please update microcode to version: 0x3a (or later)',
    'workqueue: drm_fb_helper_damage_work hogged CPU for >10000us 4 times, consider switching to WQ_UNBOUND',
    'NMI watchdog: Perf NMI watchdog permanently disabled',
    'watchdog: Disabling watchdog on nohz_full cores by default',
    'kasan: KernelAddressSanitizer initialized (generic)',
    'Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar',
    'rcu: Hierarchical RCU implementation.',
    'rcu: RCU grace-period kthread stack dump:',
    'Warning: unable to open an initial console.',
    'warning: `iwconfig\' uses wireless extensions which will stop working for Wi-Fi 7 hardware; use nl80211',
    '------------[ cut here ]------------',
    '---[ end trace 0000000000000000 ]---',
    'invalid opcode: 0000 [#1] PREEMPT SMP NOPTI',
    'Internal error: Oops: 0000000096000045 [#1] PREEMPT SMP',
    'sysrq: Trigger a crash',
    'test runner: expected output "Kernel panic - not syncing" not found',
    '  BUG: indented text is not a report header',
    '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
    'INFO: lockdep is turned off.',
    '',
  ])('not a splat: %j', (line) => {
    expect(classifyLine(line)).toBeUndefined()
    expect(classifyLine(`[   10.000000] ${line}`)).toBeUndefined()
    expect(findSplats([line])).toEqual([])
  })

  it('SPLAT_KINDS lists every kind once', () => {
    expect(new Set(SPLAT_KINDS).size).toBe(13)
    expect(SPLAT_KINDS).toContain('rcu_stall')
  })
})

describe('taintFlags', () => {
  it.each<[number, string[]]>([
    [0, []],
    [1, ['P']],
    [512, ['W']],
    [4096, ['O']],
    [4096 + 512, ['W', 'O']],
    [8192 + 4096, ['O', 'E']],
    [128 + 512 + 16384, ['D', 'W', 'L']],
    [1 << 18, ['N']],
    [1 << 19, ['J']],
    [2 ** 20 - 1, 'PFSRMBUDAWCIOELKXTNJ'.split('')],
    [2 ** 20 + 512, ['W']],
  ])('%i -> %j', (value, flags) => {
    expect(taintFlags(value)).toEqual(flags)
  })

  it('rejects values that cannot come from /proc/sys/kernel/tainted', () => {
    expect(() => taintFlags(-1)).toThrow(RangeError)
    expect(() => taintFlags(1.5)).toThrow(RangeError)
    expect(() => taintFlags(Number.NaN)).toThrow(RangeError)
  })
})
