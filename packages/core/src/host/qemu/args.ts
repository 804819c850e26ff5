// Pure: a resolved guest description -> QEMU's argv. One builder per group of
// flags, each flag with the reason it is there.

import { archProfile } from './arch.js'
import type { Firmware } from '../image/image.js'

export interface QemuSpec {
  arch: string
  accel: 'kvm' | 'tcg'
  /** The kernel image QEMU loads: an uncompressed ELF vmlinux (PVH boot) or a bzImage. */
  kernel?: string
  initramfs?: string
  /** Kernel command line, complete. */
  append?: string
  /** Instead of a kernel: a disk image its firmware boots (never written, see diskArgs). */
  disk?: { file: string; format: string; firmware: Firmware }
  memoryMiB: number
  cpus: number
  /** Unix socket the host listens on; QEMU connects to it for the agent port. */
  agentSocket: string
  agentPortName: string
  /** 9p exports: tag -> host path. */
  shares: Array<{ tag: string; path: string; readonly: boolean }>
  extraArgs: readonly string[]
}

export function buildQemuArgs(spec: QemuSpec): string[] {
  return [...machineArgs(spec), ...(spec.disk ? diskArgs(spec.disk) : kernelArgs(spec)), ...consoleArgs(), ...agentArgs(spec), ...shareArgs(spec), ...spec.extraArgs]
}

function machineArgs(spec: QemuSpec): string[] {
  return [
    // No default devices (VGA, NIC, floppy...), no user config: only what we add.
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-machine', `${profile(spec).machine},accel=${spec.accel}`,
    // KVM: the host's CPU as is. TCG: every feature QEMU can emulate.
    '-cpu', spec.accel === 'kvm' ? 'host' : profile(spec).tcgCpu,
    '-smp', String(spec.cpus),
    '-m', `${spec.memoryMiB}M`,
    // A reboot (panic=-1 turns a panic into one) ends QEMU instead of booting again.
    '-no-reboot',
    // QEMU's seccomp filter: a guest that breaks into QEMU still cannot gain
    // privileges, start programs or change scheduling on the host.
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
  ]
}

function kernelArgs(spec: QemuSpec): string[] {
  if (!spec.kernel) throw new Error('buildQemuArgs: a kernel or a disk is needed')
  const args = ['-kernel', spec.kernel, '-append', spec.append ?? '']
  if (spec.initramfs) args.push('-initrd', spec.initramfs)
  return args
}

function diskArgs(disk: NonNullable<QemuSpec['disk']>): string[] {
  // snapshot=on: the guest's writes go to a temporary overlay QEMU deletes, never to the image.
  const args = ['-drive', `file=${escapeOption(disk.file)},format=${disk.format},if=virtio,snapshot=on`]
  const fw = disk.firmware
  if (fw.kind === 'file') args.push('-bios', fw.path)
  if (fw.kind === 'pflash') {
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${escapeOption(fw.code)}`, '-drive', `if=pflash,format=raw,unit=1,file=${escapeOption(fw.vars)}`)
  }
  return args
}

function consoleArgs(): string[] {
  // The serial console goes to QEMU's stdout, where the host reads it live
  // (panic text, boot progress); signal=off so a Ctrl-C reaches the host process, not QEMU.
  return ['-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console']
}

function agentArgs(spec: QemuSpec): string[] {
  // The agent's bridge: a virtio-serial port backed by the host's unix socket
  // (QEMU is the client, so the host's listener exists before QEMU starts).
  return [
    '-device', `virtio-serial-${profile(spec).bus},id=vmtest-serial`,
    '-chardev', `socket,id=vmtest-agent,path=${spec.agentSocket}`,
    '-device', `virtserialport,chardev=vmtest-agent,name=${spec.agentPortName}`,
  ]
}

function shareArgs(spec: QemuSpec): string[] {
  return spec.shares.flatMap(({ tag, path, readonly }, i) => [
    // security_model=none: the guest sees the host's owners and modes as they are;
    // multidevs=remap: the root spans several host filesystems, keep inodes unique;
    // readonly=on: QEMU itself refuses writes, whatever the guest mounts.
    '-fsdev', `local,id=fs${i},path=${escapeOption(path)},security_model=none,multidevs=remap${readonly ? ',readonly=on' : ''}`,
    '-device', `virtio-9p-${profile(spec).bus},fsdev=fs${i},mount_tag=${tag}`,
  ])
}

function profile(spec: { arch: string }) {
  const found = archProfile(spec.arch)
  if (!found) throw new Error(`no QEMU profile for architecture ${spec.arch}`)
  return found
}

/** QEMU option values escape a comma by doubling it. */
function escapeOption(value: string): string {
  return value.replaceAll(',', ',,')
}
