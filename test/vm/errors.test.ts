// The errors a user gets instead of a hang, each checked by its message.

import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, type VmtestError } from '@vmtest/core'
import { bootError } from '../utils/boot-error.js'
import { hostProbeDir, testKernel, vmSkipReason } from '../utils/vm-env.js'

const QEMU = '/usr/bin/qemu-system-x86_64'

describe.skipIf(vmSkipReason)('errors a user gets', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vmtest-errors-test-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('kernel path missing', async () => {
    const error = await bootError({ kernel: join(dir, 'bzImag'), sources: { kernel: 'vitest.config.ts' } })
    expect(error.code).toBe('VMTEST_KERNEL_NOT_FOUND')
    expect(error.message).toBe(`Kernel image not found: ${join(dir, 'bzImag')} (from \`kernel\` in vitest.config.ts).`)
  })

  test('a file that is not a kernel', async () => {
    const notKernel = join(dir, 'System.map')
    writeFileSync(notKernel, 'ffffffff81000000 T _text\n')
    const error = await bootError({ kernel: notKernel })
    expect(error.code).toBe('VMTEST_KERNEL_INVALID')
    expect(error.message).toBe(
      `${notKernel} (from \`kernel\`) is not a bootable kernel: expected a bzImage or an ELF vmlinux, found text. It is a text file (a config or System.map?): name the bzImage or vmlinux instead.`,
    )
  })

  test('qemu missing, with the install hint', async () => {
    const error = await bootError({ kernel: testKernel, qemu: 'qemu-system-nonexistent' })
    expect(error.code).toBe('VMTEST_QEMU_NOT_FOUND')
    expect(error.message).toMatch(/^Cannot start guest: QEMU binary `qemu-system-nonexistent` was not found \(from `qemu`\)\.\nInstall QEMU \(Debian\/Ubuntu: `apt-get install qemu-system-x86`/)
  })

  test('qemu not on PATH', async () => {
    const path = process.env.PATH
    process.env.PATH = dir
    try {
      const error = await bootError({ kernel: testKernel })
      expect(error.message).toMatch(/^Cannot start guest: QEMU binary `qemu-system-x86_64` was not found on PATH\./)
    } finally {
      process.env.PATH = path
    }
  })

  test('busybox missing for a module kernel', async () => {
    const path = process.env.PATH
    process.env.PATH = dir
    try {
      const error = await bootError({ kernel: testKernel, qemu: QEMU })
      expect(error.code).toBe('VMTEST_BUSYBOX_NOT_FOUND')
      expect(error.message).toMatch(
        /^Kernel [\w.-]+ has its 9p\/virtio drivers as modules, which the guest loads from an initramfs with a static busybox as its shell, but `busybox` was not found on PATH\.\nInstall it: Debian\/Ubuntu `apt-get install busybox-static`/,
      )
    } finally {
      process.env.PATH = path
    }
  })

  test('modules for the release not found: says where it looked, within seconds', async () => {
    const lonely = join(dir, 'vmlinuz-copy')
    copyFileSync(testKernel!, lonely)
    const started = Date.now()
    const error = await bootError({ kernel: lonely })
    expect(error.code).toBe('VMTEST_MODULES_NOT_FOUND')
    expect(error.message).toMatch(/could not mount the host root: it has no 9p built in, and no modules for it were found \(looked in .*\/lib\/modules\/[\w.-]+\)/)
    expect(error.message).toContain('Point the `modules` option at its lib/modules/<release> directory')
    expect(Date.now() - started).toBeLessThan(60_000)
  })

  test('modules option pointing nowhere', async () => {
    const error = await bootError({ kernel: testKernel, modules: join(dir, 'nope') })
    expect(error.message).toContain(join(dir, 'nope'))
  })

  test('boot timeout: bounded, with the last console lines', async () => {
    const started = Date.now()
    const error = await bootError({ kernel: testKernel, bootTimeout: 1500 })
    expect(error.code).toBe('VMTEST_BOOT_TIMEOUT')
    expect(error.message).toMatch(/^The guest did not come up within 1500 ms \(bootTimeout\)/)
    expect(error.message).toContain('raise bootTimeout')
    const log = /Full console log: (.+)$/m.exec(error.message)?.[1]
    const quoted = [...error.message.matchAll(/^  \| (.*)$/gm)].map((m) => m[1])
    const whole = readFileSync(log!, 'utf8')
    for (const line of quoted) expect(whole).toContain(line)
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  test("accel: 'kvm' where KVM is unusable is a clear error", async () => {
    const result = await bootGuest({ kernel: testKernel, accel: 'kvm' }).catch((e: VmtestError) => e)
    if ('close' in result) {
      await result.close() // this host has a working KVM: nothing to check
      return
    }
    expect(result.code).toBe('VMTEST_KVM_UNAVAILABLE')
    expect(result.message).toMatch(/^accel: 'kvm' was requested, but KVM is unusable on this host: .+\.\nCheck that \/dev\/kvm exists/)
  })

  test('an agent that speaks another protocol version is refused at the handshake, with both versions', async () => {
    // The kernel passes the last vmtest_node= to init: a wrapper that runs the fake agent instead of ours.
    const probe = hostProbeDir() // not under /tmp, which the guest mounts afresh
    const wrapper = join(probe, 'fake-node.sh')
    writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${new URL('../utils/fake-agent.cjs', import.meta.url).pathname}\n`, { mode: 0o755 })
    try {
      const error = await bootError({ kernel: testKernel, kernelArgs: `vmtest_node=${wrapper}` })
      expect(error.code).toBe('VMTEST_PROTOCOL')
      expect(error.message).toBe('The guest agent speaks protocol version 99, this host speaks 1: the guest runs an agent from another vmtest version.')
    } finally {
      rmSync(probe, { recursive: true, force: true })
    }
  })

  test('an invalid option names itself', async () => {
    const error = await bootError({ kernel: testKernel, memory: 'lots', sources: { memory: '@vmtest-memory in a.test.ts' } })
    expect(error.message).toBe("Invalid option `memory` (in @vmtest-memory in a.test.ts): expected a number of MiB or a size like '512M' or '2G' (at least 128M), got 'lots'.")
  })
})
