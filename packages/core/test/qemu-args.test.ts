import { describe, expect, test } from 'vitest'
import { buildQemuArgs, type QemuSpec } from '../src/host/qemu/args.js'

const base: QemuSpec = {
  arch: 'x86_64',
  accel: 'tcg',
  kernel: '/k/vmlinux',
  append: 'console=ttyS0',
  memoryMiB: 512,
  cpus: 1,
  agentSocket: '/tmp/vmtest-1/agent.sock',
  agentPortName: 'org.vmtest.agent.0',
  shares: [{ tag: 'vmtest-root', path: '/', readonly: true }],
  extraArgs: [],
}
const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag)

describe('buildQemuArgs per architecture', () => {
  test('x86_64: q35, -cpu max under TCG, host under KVM, virtio on PCI', () => {
    const args = buildQemuArgs(base)
    expect(after(args, '-machine')).toEqual(['q35,accel=tcg'])
    expect(after(args, '-cpu')).toEqual(['max,-erms'])
    expect(after(buildQemuArgs({ ...base, accel: 'kvm' }), '-cpu')).toEqual(['host'])
    expect(after(args, '-device')).toEqual(['virtio-serial-pci,id=vmtest-serial', 'virtserialport,chardev=vmtest-agent,name=org.vmtest.agent.0', 'virtio-9p-pci,fsdev=fs0,mount_tag=vmtest-root'])
  })

  test('aarch64: the virt board, a cheap pointer authentication under TCG', () => {
    const args = buildQemuArgs({ ...base, arch: 'aarch64' })
    expect(after(args, '-machine')).toEqual(['virt,accel=tcg'])
    expect(after(args, '-cpu')).toEqual(['max,pauth-impdef=on'])
  })

  test('riscv64 and s390x: their boards; s390x has virtio on channel I/O', () => {
    expect(after(buildQemuArgs({ ...base, arch: 'riscv64' }), '-machine')).toEqual(['virt,accel=tcg'])
    const s390 = buildQemuArgs({ ...base, arch: 's390x' })
    expect(after(s390, '-machine')).toEqual(['s390-ccw-virtio,accel=tcg'])
    expect(after(s390, '-device')).toEqual(['virtio-serial-ccw,id=vmtest-serial', 'virtserialport,chardev=vmtest-agent,name=org.vmtest.agent.0', 'virtio-9p-ccw,fsdev=fs0,mount_tag=vmtest-root'])
  })

  test('an architecture without a profile is a clear error', () => {
    expect(() => buildQemuArgs({ ...base, arch: 'mips' })).toThrow('no QEMU profile for architecture mips')
  })
})

describe('buildQemuArgs for a disk image', () => {
  const image = { ...base, kernel: undefined, append: undefined, agentPortName: 'org.qemu.guest_agent.0', shares: [] }

  test('BIOS: the image on virtio with a throw-away overlay, no -kernel', () => {
    const args = buildQemuArgs({ ...image, disk: { file: '/img/a,b.raw', format: 'raw', firmware: { kind: 'bios' } } })
    expect(after(args, '-drive')).toEqual(['file=/img/a,,b.raw,format=raw,if=virtio,snapshot=on'])
    expect(args).not.toContain('-kernel')
    expect(args).not.toContain('-bios')
    expect(after(args, '-device')).toContain('virtserialport,chardev=vmtest-agent,name=org.qemu.guest_agent.0')
  })

  test('UEFI: OVMF code read-only and a private copy of its variables, or one firmware file', () => {
    const pflash = buildQemuArgs({ ...image, disk: { file: '/a.qcow2', format: 'qcow2', firmware: { kind: 'pflash', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/tmp/vmtest-1/OVMF_VARS.fd' } } })
    expect(after(pflash, '-drive')).toEqual([
      'file=/a.qcow2,format=qcow2,if=virtio,snapshot=on',
      'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
      'if=pflash,format=raw,unit=1,file=/tmp/vmtest-1/OVMF_VARS.fd',
    ])
    const file = buildQemuArgs({ ...image, disk: { file: '/a.raw', format: 'raw', firmware: { kind: 'file', path: '/fw/OVMF.fd' } } })
    expect(after(file, '-bios')).toEqual(['/fw/OVMF.fd'])
  })
})
