// The errors of image targets and foreign architectures, each checked by its
// message: what is missing or wrong is named before QEMU starts, and an image
// whose qemu-guest-agent never answers fails within bootTimeout.

import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootError } from '../utils/boot-error.js'
import { arm64Root, qemuProcesses, targetsSkipReason, testKernel } from '../utils/vm-env.js'

/** The first bytes of an ELF executable for `machine` (e_machine 183: aarch64): enough for an architecture check. */
function elfHeader(machine: number): Buffer {
  const head = Buffer.alloc(64)
  head.writeUInt32BE(0x7f454c46, 0)
  head[4] = 2 // 64-bit
  head[5] = 1 // little-endian
  head.writeUInt16LE(machine, 18)
  return head
}

describe.skipIf(targetsSkipReason)('image and foreign-arch errors', () => {
  let dir: string
  let armKernel: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vmtest-targets-errors-'))
    const boot = join(arm64Root!, 'boot')
    armKernel = join(boot, readdirSync(boot).find((f) => f.startsWith('vmlinuz-'))!)
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('an image whose qemu-guest-agent never answers: bounded, and it says what the image needs', async () => {
    const blank = join(dir, 'blank.raw')
    writeFileSync(blank, Buffer.alloc(1 << 20)) // no boot sector: SeaBIOS finds nothing to boot
    const started = Date.now()
    const error = await bootError({ image: blank, bootTimeout: 5000, shared: dir })
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(error.code).toBe('VMTEST_BOOT_TIMEOUT')
    expect(error.message).toContain(`qemu-guest-agent in the image ${blank} did not answer within 5000 ms (bootTimeout)`)
    expect(error.message).toContain('Image targets run commands through qemu-guest-agent on the virtio-serial port org.qemu.guest_agent.0: install it in the image (Debian/Ubuntu: qemu-guest-agent) and have it start at boot.')
    expect(qemuProcesses(blank)).toEqual([])
  })

  test('a missing image, a missing UEFI firmware', async () => {
    expect((await bootError({ image: join(dir, 'nope.qcow2'), sources: { image: 'vmtest.toml' } })).message).toBe(`Disk image not found: ${join(dir, 'nope.qcow2')} (from \`image\` in vmtest.toml).`)
    const image = join(dir, 'disk.raw')
    writeFileSync(image, Buffer.alloc(4096))
    const error = await bootError({ image, uefi: true, bios: join(dir, 'OVMF.fd') })
    expect(error).toMatchObject({ code: 'VMTEST_FIRMWARE_NOT_FOUND', message: `UEFI firmware not found: ${join(dir, 'OVMF.fd')} (from \`bios\`).` })
  })

  test('a foreign arch with no kernel fetched names the set-up command', async () => {
    const empty = mkdtempSync(join(dir, 'cache-'))
    const saved = process.env.VMTEST_CACHE_DIR
    process.env.VMTEST_CACHE_DIR = empty
    try {
      const error = await bootError({ arch: 'aarch64' })
      expect(error.code).toBe('VMTEST_KERNEL_NOT_FOUND')
      expect(error.message).toBe(
        `No aarch64 kernel to boot: none was named and none is in ${join(empty, 'rootfs', 'aarch64', 'boot')}.\n` +
          "Run `npx vmtest setup --arch aarch64` to fetch Debian's aarch64 kernel and root filesystem, or set the `kernel` option.",
      )
    } finally {
      if (saved === undefined) delete process.env.VMTEST_CACHE_DIR
      else process.env.VMTEST_CACHE_DIR = saved
    }
  })

  test('a kernel of another arch than `arch` says, and KVM cannot run a foreign guest', async () => {
    const mismatch = await bootError({ kernel: testKernel!, arch: 'aarch64', sources: { arch: 'vitest.config.ts' } })
    expect(mismatch.message).toBe(`Kernel ${testKernel} (from \`kernel\`) is an x86_64 kernel, but \`arch\` (from \`arch\` in vitest.config.ts) asks for aarch64. Name an aarch64 kernel, or drop \`arch\`.`)
    const kvm = await bootError({ kernel: armKernel, accel: 'kvm' })
    expect(kvm.message).toBe("accel 'kvm' (from `accel`) cannot run an aarch64 guest on this x86_64 host: KVM runs guests of the host's architecture only. Use 'auto' or 'tcg'.")
  })

  test('a root filesystem that is missing, of the wrong arch, without node, without busybox', async () => {
    expect((await bootError({ kernel: armKernel, rootfs: join(dir, 'nope') })).message).toBe(`Root filesystem not found: ${join(dir, 'nope')} (from \`rootfs\`).`)
    expect((await bootError({ kernel: armKernel, rootfs: '/' })).message).toMatch(/^The root filesystem \/ \(from `rootfs`\) is for x86_64: its \/usr\/(local\/)?bin\/node cannot run in an aarch64 guest\. Name a root filesystem for aarch64\.$/)
    const root = join(dir, 'root')
    mkdirSync(join(root, 'usr/bin'), { recursive: true })
    expect((await bootError({ kernel: armKernel, rootfs: root })).message).toBe(
      `The root filesystem ${root} (from \`rootfs\`) has no node (looked at /usr/local/bin/node, /usr/bin/node, /bin/node): the vmtest guest agent runs on the guest's own Node.js. Install it there (Debian: nodejs).`,
    )
    writeFileSync(join(root, 'usr/bin/node'), elfHeader(183))
    const busybox = await bootError({ kernel: armKernel, rootfs: root })
    expect(busybox.code).toBe('VMTEST_BUSYBOX_NOT_FOUND')
    expect(busybox.message).toMatch(/built for aarch64: the root filesystem \S+ has none \(looked at \/bin\/busybox, \/usr\/bin\/busybox, \/sbin\/busybox\)\.\nInstall one there \(Debian: busybox-static for arm64\); `vmtest setup --arch aarch64` does\.$/)
  })
})
