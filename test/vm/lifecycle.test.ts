// Crashes and teardown: a panic rejects what was running with the panic text;
// nothing (qemu, socket, temp dir) outlives close(), an exit, a signal or a SIGKILL of the host.

import { spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import { tmpdir } from 'node:os'
import { afterAll, describe, expect, test } from 'vitest'
import { bootGuest, isVmtestError } from '@vmtest/core'
import { qemuProcesses, testKernel, vmSkipReason } from '../utils/vm-env.js'

const crashLogDir = join(process.env.VMTEST_CACHE_DIR ?? join(homedir(), '.cache', 'vmtest'), 'crash-logs')
const HOST_SCRIPT = new URL('../utils/boot-and-wait.mjs', import.meta.url).pathname

function tempDirsOf(pid: number): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith(`vmtest-${pid}-`))
}

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (check()) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return check()
}

/** Starts a host process that boots a guest and prints "ready <qemu pid>". */
function bootInChild(): Promise<{ child: ReturnType<typeof spawn>; qemuPid: number }> {
  const child = spawn(process.execPath, [HOST_SCRIPT], { env: { ...process.env, VMTEST_KERNEL: testKernel }, stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk
      const match = /ready (\d+)/.exec(out)
      if (match) resolve({ child, qemuPid: Number(match[1]) })
    })
    child.on('exit', (code) => reject(new Error(`host process exited (${code}) before the guest was up: ${out}`)))
  })
}

const alive = (pid: number) => qemuProcesses().includes(pid)

describe.skipIf(vmSkipReason)('guest lifecycle', () => {
  afterAll(() => {
    expect(tempDirsOf(process.pid)).toEqual([])
  })

  test('a kernel panic rejects the running command with the panic text, and QEMU is gone', async () => {
    const guest = await bootGuest({ kernel: testKernel })
    const started = Date.now()
    const error = await guest.exec('echo c > /proc/sysrq-trigger').catch((e) => e)
    expect(isVmtestError(error)).toBe(true)
    expect(error.code).toBe('VMTEST_GUEST_PANIC')
    expect(error.message).toMatch(/^Guest kernel panicked while running `echo c > \/proc\/sysrq-trigger` \(.+, [\d.]+ s after boot\): Kernel panic - not syncing: sysrq triggered crash/)
    expect(error.message).toContain('Last console lines:')
    const log = /Full console log: (.+)$/m.exec(error.message)?.[1]
    expect(log && readFileSync(log, 'utf8')).toContain('Kernel panic - not syncing: sysrq triggered crash')
    expect(Date.now() - started).toBeLessThan(30_000)
    // Later calls fail the same way, at once.
    const again = await guest.exec('true').catch((e) => e)
    expect(again.code).toBe('VMTEST_GUEST_PANIC')
    expect(alive(guest.info.qemuPid)).toBe(false)
    await guest.close()
  })

  test('the agent killed inside the guest: the running call says the guest stopped, at once', async () => {
    const guest = await bootGuest({ kernel: testKernel })
    const agentPid = (await guest.exec('echo $PPID')).stdout.trim()
    const started = Date.now()
    const error = await guest.exec(`kill -9 ${agentPid}; sleep 600`).catch((e) => e)
    expect(error.code).toBe('VMTEST_GUEST_EXITED')
    expect(error.message).toMatch(/^The guest stopped while running `kill -9 \d+; sleep 600` \(QEMU exited with code 0, [\d.]+ s after boot\)/)
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(alive(guest.info.qemuPid)).toBe(false)
    await guest.close()
  })

  test('QEMU SIGKILLed from outside: the running call says so at once, and its temp dir goes', async () => {
    const guest = await bootGuest({ kernel: testKernel })
    const tempDir = dirname(guest.info.consoleLog)
    const running = guest.exec('sleep 600').catch((e) => e)
    await new Promise((r) => setTimeout(r, 500))
    const started = Date.now()
    process.kill(guest.info.qemuPid, 'SIGKILL')
    const error = await running
    expect(error.code).toBe('VMTEST_GUEST_EXITED')
    expect(error.message).toMatch(/^The guest stopped while running `sleep 600` \(QEMU was killed by SIGKILL, [\d.]+ s after boot\)/)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(await waitFor(() => !existsSync(tempDir), 5000)).toBe(true)
    await guest.close()
  })

  test('orphans are reaped: no zombies after background jobs end', async () => {
    const guest = await bootGuest({ kernel: testKernel })
    try {
      await guest.exec('sh -c "sleep 0.2 &"; (sleep 0.2 &); true')
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const states = (await guest.exec('cat /proc/[0-9]*/stat 2>/dev/null | cut -d" " -f3')).stdout
      expect(states.split('\n')).not.toContain('Z')
    } finally {
      await guest.close()
    }
  })

  test('close() powers off promptly and leaves nothing behind', async () => {
    // Ours only: other test files crash guests on purpose at the same time.
    const crashLogs = () => (existsSync(crashLogDir) ? readdirSync(crashLogDir).filter((f) => f.endsWith(`-${process.pid}.log`)) : [])
    const crashLogsBefore = crashLogs()
    const guest = await bootGuest({ kernel: testKernel })
    const pid = guest.info.qemuPid
    expect(alive(pid)).toBe(true)
    expect(tempDirsOf(process.pid).length).toBeGreaterThan(0)
    const started = Date.now()
    await guest.close()
    await guest.close() // twice is fine
    expect(Date.now() - started).toBeLessThan(5000)
    expect(alive(pid)).toBe(false)
    expect(tempDirsOf(process.pid)).toEqual([])
    const error = await guest.exec('true').catch((e) => e)
    expect(error.code).toBe('VMTEST_GUEST_CLOSED')
    expect(crashLogs()).toEqual(crashLogsBefore) // a console log is kept only for a guest that died
  })

  test.each(['SIGTERM', 'SIGINT', 'SIGKILL'] as const)('%s to the host process leaves no qemu behind', async (signal) => {
    const { child, qemuPid } = await bootInChild()
    expect(alive(qemuPid)).toBe(true)
    const exited = new Promise((resolve) => child.on('exit', resolve))
    child.kill(signal)
    await exited
    expect(await waitFor(() => !alive(qemuPid), 5000)).toBe(true)
    if (signal !== 'SIGKILL') {
      // Exit hooks ran: the temp dir is gone too.
      expect(tempDirsOf(child.pid!)).toEqual([])
    } else {
      // No hook runs on SIGKILL: the next boot sweeps the dead process's dir.
      const guest = await bootGuest({ kernel: testKernel })
      await guest.close()
      expect(tempDirsOf(child.pid!)).toEqual([])
    }
  })
})

