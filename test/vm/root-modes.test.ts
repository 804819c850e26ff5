// The ro and rw root modes, each on its own guest. (overlay, the default, is
// covered in exec.test.ts.)

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, type Guest } from '@vmtest/core'
import { hostProbeDir, testKernel, vmSkipReason } from '../utils/vm-env.js'

describe.skipIf(vmSkipReason)('root modes', () => {
  let hostDir: string
  beforeAll(() => {
    hostDir = hostProbeDir()
    writeFileSync(join(hostDir, 'keep'), 'host data\n')
  })
  afterAll(() => rmSync(hostDir, { recursive: true, force: true }))

  describe('ro', () => {
    let guest: Guest
    beforeAll(async () => {
      guest = await bootGuest({ kernel: testKernel, rootMode: 'ro', shared: { writable: false } })
    })
    afterAll(() => guest?.close())

    test('host paths are read-only; /tmp, /run and /var/tmp are writable tmpfs', async () => {
      const write = await guest.exec(`echo x > ${hostDir}/new`, { reject: false })
      expect(write.exitCode).not.toBe(0)
      expect(write.stderr).toMatch(/Read-only file system/)
      for (const attempt of [`rm ${hostDir}/keep`, `chmod 000 ${hostDir}/keep`, `mkdir ${hostDir}/sub`, 'touch /etc/vmtest-probe']) {
        expect((await guest.exec(attempt, { reject: false })).exitCode, attempt).not.toBe(0)
      }
      await guest.exec('echo a > /tmp/a && echo b > /run/b && echo c > /var/tmp/c && cat /tmp/a /run/b /var/tmp/c')
      expect(readFileSync(join(hostDir, 'keep'), 'utf8')).toBe('host data\n')
      expect(existsSync(join(hostDir, 'new'))).toBe(false)
      expect(existsSync(join(hostDir, 'sub'))).toBe(false)
    })

    test('the shared dir is read-only when asked', async () => {
      const write = await guest.exec('touch /mnt/vmtest/vmtest-ro-probe', { reject: false })
      expect(write.stderr).toMatch(/Read-only file system/)
      expect((await guest.exec('cat /mnt/vmtest/package.json')).stdout).toBe(readFileSync('package.json', 'utf8'))
    })
  })

  describe('rw', () => {
    let guest: Guest
    beforeAll(async () => {
      // No shared dir: the host's cwd may be hidden under the guest's own /tmp, so run from /.
      guest = await bootGuest({ kernel: testKernel, rootMode: 'rw', shared: false, cwd: '/' })
    })
    afterAll(() => guest?.close())

    test('writes reach the host, as with vmtest', async () => {
      await guest.exec(`echo from-guest > ${hostDir}/written`)
      expect(readFileSync(join(hostDir, 'written'), 'utf8')).toBe('from-guest\n')
      expect((await guest.exec('grep -c " /mnt/vmtest " /proc/mounts || true')).stdout.trim()).toBe('0')
    })
  })
})
