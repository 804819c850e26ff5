// What differs between guest architectures: QEMU's machine and CPU, the
// console device's name in the guest, the virtio transport, and Debian's name
// for the architecture (for `vmtest setup --arch`).

export interface ArchProfile {
  /** QEMU's -machine type. */
  machine: string
  /** The serial console's device name in the guest (console=<this>). */
  console: string
  /** -cpu under TCG (under KVM it is always `host`). */
  tcgCpu: string
  /** Where virtio devices sit: PCI everywhere but s390x's channel I/O. */
  bus: 'pci' | 'ccw'
  /** Debian's architecture name. */
  debian: string
}

export const ARCHES: Record<string, ArchProfile> = {
  // q35 skips the ≈0.2 s per ACPI interrupt link that `pc` spends under TCG.
  // -erms: with it the guest copies memory with `rep movsb`, which TCG runs a
  // byte at a time; without, `rep movsq`: pipes and virtio-serial twice as fast.
  x86_64: { machine: 'q35', console: 'ttyS0', tcgCpu: 'max,-erms', bus: 'pci', debian: 'amd64' },
  // pauth-impdef: QEMU's own pointer-authentication hash instead of the
  // architected QARMA, which is far slower to emulate (every function return).
  aarch64: { machine: 'virt', console: 'ttyAMA0', tcgCpu: 'max,pauth-impdef=on', bus: 'pci', debian: 'arm64' },
  riscv64: { machine: 'virt', console: 'ttyS0', tcgCpu: 'rv64', bus: 'pci', debian: 'riscv64' },
  s390x: { machine: 's390-ccw-virtio', console: 'ttysclp0', tcgCpu: 'max', bus: 'ccw', debian: 's390x' },
}

export const KNOWN_ARCHES = Object.keys(ARCHES)

/** The profile of `arch`; undefined for an architecture vmtest does not boot. */
export function archProfile(arch: string): ArchProfile | undefined {
  return Object.hasOwn(ARCHES, arch) ? ARCHES[arch] : undefined
}

/** The host's architecture in kernel terms (x86_64, aarch64...): KVM runs only guests of this one. */
export function hostArch(): string {
  const names: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', riscv64: 'riscv64', s390x: 's390x', ia32: 'i386' }
  return names[process.arch] ?? process.arch
}
