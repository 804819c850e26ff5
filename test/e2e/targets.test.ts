// Guests other than a kernel over the host's root, end to end: a disk image
// booted by BIOS and by UEFI (commands through its qemu-guest-agent), and an
// aarch64 guest, each through the `vmtest` CLI and through a Vitest file.

import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { resolve } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { targetsSkipReason, testImage } from '../utils/vm-env.js'
import { outcome, qemuLeftAfter } from './helpers.js'
import { fixtures, removeOutDirs, runVitest } from './run-cli.js'

const bin = resolve(import.meta.dirname, '../../packages/cli/dist/main.js')
const vmtest = (args: string[], cwd: string) => execa(process.execPath, [bin, ...args], { cwd, reject: false, env: { CI: '', NO_COLOR: '1' }, timeout: 400_000 })
const fixture = resolve(fixtures, 'vitest-targets')
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

describe.skipIf(targetsSkipReason)('image targets and foreign architectures', () => {
  let imageHash: string
  beforeAll(() => {
    rmSync(resolve(fixture, 'images'), { recursive: true, force: true })
    mkdirSync(resolve(fixture, 'images'))
    symlinkSync(testImage!, resolve(fixture, 'images/test.raw'))
    imageHash = sha256(testImage!)
  })
  afterAll(async () => {
    // Every guest of every run above (the CLI's share the fixture dir too) is gone.
    expect(await qemuLeftAfter('vitest-targets')).toEqual([])
    rmSync(resolve(fixture, 'images'), { recursive: true, force: true })
    removeOutDirs()
  })

  test('Vitest: the image by BIOS and by UEFI (@vmtest-target), an aarch64 guest (options)', async () => {
    const run = await runVitest('vitest-targets')
    for (const file of ['image-bios.test.ts', 'image-uefi.test.ts', 'aarch64.test.ts']) {
      for (const t of run.tests.filter((t) => t.file === file && t.title !== 'warns')) expect(t, `${file} › ${t.title}\n${t.message}`).toMatchObject({ status: 'passed' })
      // A splat fails its test on both kinds of guest: from the console on an image, from /dev/kmsg on aarch64.
      const warns = outcome(run, file, 'warns')
      expect(warns.status).toBe('failed')
      expect(warns.message).toMatch(/The guest kernel \(\S+\) reported a problem while this test ran:\nwarning: WARNING: CPU: 0 PID: 1 at drivers\/vmtest\/e2e\.c:12 e2e_probe/)
    }
    expect(run.tests).toHaveLength(15)
    expect(sha256(testImage!)).toBe(imageHash) // booted from a throw-away overlay
    expect(await qemuLeftAfter('vitest-targets')).toEqual([])
  })

  // The two CLI runs at once: their three boots overlap.
  test.concurrent('CLI: vmtest.toml image targets, BIOS and UEFI; a failing command sets the exit status', async () => {
    const run = await vmtest(['-c', 'vmtest.toml'], fixture)
    expect(run.stdout).toMatch(/=> image-bios\n===> Booting\n[^]*===> Running command\nx86_64\nto-stderr\nCommand failed with exit code: 3\nFAILED(\n|$)/)
    expect(run.stdout).toMatch(/=> image-uefi\n===> Booting\n[^]*===> Running command\nuefi\nPASS(\n|$)/)
    expect(run.exitCode).toBe(1)
    expect(sha256(testImage!)).toBe(imageHash)
  })

  test.concurrent('CLI: `vmtest -a aarch64` boots the aarch64 kernel and root that setup fetched', async () => {
    const run = await vmtest(['-a', 'aarch64', 'uname -m; echo to-stderr >&2; exit 3'], fixture)
    expect(run.stdout).toBe('aarch64')
    expect(run.stderr).toMatch(/=> aarch64\n===> Booting\n[^]*kernel \S+-arm64 under tcg[^]*===> Running command\nto-stderr\nCommand failed with exit code: 3\nFAILED$/)
    expect(run.exitCode).toBe(3)
  })
})
