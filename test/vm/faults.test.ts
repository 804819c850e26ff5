// Faults a test can cause inside one guest, and what the user gets: the
// command's own failure with a reason, and a guest that keeps answering.

import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, isVmtestError, type Guest } from '@vmtest/core'
import { testKernel, vmSkipReason } from '../utils/vm-env.js'

describe.skipIf(vmSkipReason)('faults inside a 256M guest', () => {
  let guest: Guest

  beforeAll(async () => {
    guest = await bootGuest({ kernel: testKernel, memory: '256M' })
  })
  afterAll(async () => {
    await guest?.close()
  })

  test('a command that closes stdout and stderr but keeps running is waited for until it exits, no longer', async () => {
    const started = Date.now()
    const result = await guest.exec('echo before; exec >&- 2>&-; sleep 2; exit 3', { reject: false })
    expect(result).toMatchObject({ exitCode: 3, stdout: 'before\n' })
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  test('a command that forks a daemon returns at once; the reap at test end kills what the test started, not what was there before', async () => {
    await guest.exec('setsid sleep 1001 </dev/null >/dev/null 2>&1 &') // "beforeAll": before the mark
    guest.markProcesses()
    const started = Date.now()
    // The daemon keeps the command's stdout open: the result comes once the shell exits and the pipe idles.
    const result = await guest.exec('setsid sleep 1002 & echo forked')
    expect(result.stdout).toBe('forked\n')
    expect(Date.now() - started).toBeLessThan(5000)
    expect((await guest.exec('pgrep -fa "sleep 100[12]" | sort -k3')).stdout).toMatch(/sleep 1001\n.*sleep 1002\n$/)
    const { reaped } = await guest.syncKernelLog({ reap: true })
    expect(reaped).toEqual(['sleep'])
    expect((await guest.exec('pgrep -fa "sleep 100[12]" || true')).stdout).toMatch(/^\d+ sleep 1001\n$/)
    // No mark, no reap.
    expect((await guest.syncKernelLog({ reap: true })).reaped).toBeUndefined()
  })

  test('a full tmpfs: the write fails with ENOSPC, the guest keeps answering, the next lease starts empty', async () => {
    await guest.exec('mount -o remount,size=8M /tmp')
    const fill = await guest.exec('dd if=/dev/zero of=/tmp/fill bs=1M count=64', { reject: false })
    expect(fill.exitCode).not.toBe(0)
    expect(fill.stderr).toContain('No space left on device')
    await expect(guest.writeFile('/tmp/more', 'x'.repeat(1 << 20))).rejects.toThrow(/ENOSPC|No space left/)
    expect((await guest.exec('echo alive')).stdout).toBe('alive\n')
    await guest.renewLease()
    // (A project checked out under /tmp is bound there too: look for our files only.)
    expect((await guest.exec('ls -A /tmp | grep -x -e fill -e more || true')).stdout).toBe('')
    expect((await guest.exec('echo x > /tmp/room && cat /tmp/room')).stdout).toBe('x\n')
  })

  test('out of memory: the hog is killed, its failure says the guest ran out of memory, the guest keeps answering', async () => {
    const hog = guest.exec(`node -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'`)
    const error = await hog.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isVmtestError(error) && error.code).toBe('VMTEST_COMMAND_FAILED')
    // sh -c reports its child's SIGKILL as 137.
    expect((error as Error).message).toMatch(/^Command failed with exit code 137 in the guest: node -e/)
    expect((error as Error).message).toMatch(/The guest ran out of memory and the kernel's OOM killer ended a process \(Out of memory: Killed process \d+ \(node\)/)
    expect((await guest.exec('echo alive')).stdout).toBe('alive\n')
  })
})
