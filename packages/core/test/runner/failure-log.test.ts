import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { writeFailureLog, type FailureLog } from '../../src/runner/failure-log.js'
import type { GuestInfo } from '../../src/host/guest.js'

const dir = mkdtempSync(join(tmpdir(), 'vmtest-failure-log-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const consoleLog = join(dir, 'console.log')
writeFileSync(consoleLog, 'Linux version 6.1.0\nvmtest-init: 3.5 root mounted\n')
const info: GuestInfo = {
  kernel: '/k/vmlinuz-6.1.0',
  release: '6.1.0',
  arch: 'x86_64',
  accel: 'tcg',
  accelReason: 'KVM is unusable',
  bootMs: 9000,
  bootId: 'b00t',
  qemuPid: 1,
  qemuCommand: ['/usr/bin/qemu-system-x86_64', '-kernel', '/k/vmlinuz', '-append', 'console=ttyS0 quiet'],
  consoleLog,
}
const log = (test: string, extra: Partial<FailureLog> = {}): FailureLog => ({
  dir: join(dir, 'results', 'test', 'a.test.ts'),
  file: '/p/test/a.test.ts',
  test,
  info,
  failures: ['AssertionError: expected 1 to be 2'],
  kernelLog: ['WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1'],
  ...extra,
})

describe('writeFailureLog', () => {
  test('names the test, the kernel, the QEMU command line (shell-quoted); holds the failures, the window and the console', () => {
    const path = writeFailureLog(log('suite > does a thing'), new Set())
    expect(path).toBe(join(dir, 'results', 'test', 'a.test.ts', 'suite-does-a-thing.log'))
    expect(readFileSync(path, 'utf8')).toBe(
      [
        'test:    suite > does a thing',
        'file:    /p/test/a.test.ts',
        'kernel:  6.1.0 (/k/vmlinuz-6.1.0), x86_64, tcg (KVM is unusable), boot id b00t',
        "qemu:    /usr/bin/qemu-system-x86_64 -kernel /k/vmlinuz -append 'console=ttyS0 quiet'",
        '',
        '== What failed the test ==',
        'AssertionError: expected 1 to be 2',
        '',
        '== Kernel log while the test ran (1 lines) ==',
        'WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1',
        '',
        `== The guest's whole console (${consoleLog}) ==`,
        'Linux version 6.1.0',
        'vmtest-init: 3.5 root mounted',
        '',
      ].join('\n'),
    )
  })

  test('two tests of one name in a run get two logs; a very long name is cut and keeps a hash', () => {
    const taken = new Set<string>()
    expect(writeFailureLog(log('same'), taken)).toMatch(/\/same\.log$/)
    expect(writeFailureLog(log('same'), taken)).toMatch(/\/same-2\.log$/)
    const long = writeFailureLog(log('x'.repeat(300)), taken)
    expect(long).toMatch(/\/x{91}-[0-9a-f]{8}\.log$/)
    expect(writeFailureLog(log('x'.repeat(299) + 'y'), taken)).not.toBe(long)
  })

  test("a dead guest's console comes from where its crash message says it was kept", () => {
    const kept = join(dir, 'kept.log')
    writeFileSync(kept, 'Kernel panic - not syncing: sysrq triggered crash\n')
    const crash = new Error(`Guest kernel panicked: ...\nFull console log: ${kept}`)
    const text = readFileSync(writeFailureLog(log('panics', { info: { ...info, consoleLog: join(dir, 'gone.log') }, crash }), new Set()), 'utf8')
    expect(text).toContain(`== The guest's whole console (${kept}) ==\nKernel panic - not syncing: sysrq triggered crash\n`)
  })
})
