// What booting a disk image needs besides QEMU: the image's format (named to
// QEMU, which otherwise probes raw images with a warning and refuses writes to
// sector 0), and for UEFI the OVMF firmware from the usual distro paths.

import { copyFileSync, existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { VmtestError } from '../errors.js'
import { readHeadSync } from '../kernel/inspect.js'

/** Magic numbers of the image formats QEMU opens, at offset 0; anything else is raw. */
const FORMAT_MAGICS: Array<[string, string]> = [
  ['qcow2', 'QFI\xfb'],
  ['qed', 'QED\0'],
  ['vdi', '<<< '],
  ['vmdk', 'KDMV'],
  ['vhdx', 'vhdxfile'],
]

export function imageFormat(path: string, source: string): string {
  let size: number
  try {
    const stat = statSync(path)
    if (!stat.isFile()) throw new VmtestError('VMTEST_IMAGE_INVALID', 'config', `The disk image ${path} (${source}) is not a file.`)
    size = stat.size
  } catch (error) {
    if (error instanceof VmtestError) throw error
    throw new VmtestError('VMTEST_IMAGE_NOT_FOUND', 'config', `Disk image not found: ${path} (${source}).`)
  }
  if (size < 512) throw new VmtestError('VMTEST_IMAGE_INVALID', 'config', `The disk image ${path} (${source}) is ${size} bytes: too small to hold a boot sector.`)
  const head = readHeadSync(path, 8)
  return FORMAT_MAGICS.find(([, magic]) => head.toString('latin1', 0, magic.length) === magic)?.[0] ?? 'raw'
}

export type Firmware = { kind: 'bios' } | { kind: 'file'; path: string } | { kind: 'pflash'; code: string; vars: string }

/** OVMF as distros ship it: split code + variable store (the store is copied, it is written), or one file. */
const OVMF_PAIRS: Array<[string, string]> = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'], // Debian, Ubuntu
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
  ['/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'], // Fedora
  ['/usr/share/edk2/x64/OVMF_CODE.4m.fd', '/usr/share/edk2/x64/OVMF_VARS.4m.fd'], // Arch
  ['/usr/share/qemu/ovmf-x86_64-code.bin', '/usr/share/qemu/ovmf-x86_64-vars.bin'], // openSUSE
]

/** The firmware of an image guest: SeaBIOS (QEMU's default), the `bios` file, or OVMF found on this host. */
export function chooseFirmware(o: { uefi: boolean; bios?: string; source(key: 'bios' | 'uefi'): string }, tempDir: string): Firmware {
  if (!o.uefi) return { kind: 'bios' }
  if (o.bios) {
    if (!existsSync(o.bios)) throw new VmtestError('VMTEST_FIRMWARE_NOT_FOUND', 'config', `UEFI firmware not found: ${o.bios} (${o.source('bios')}).`)
    return { kind: 'file', path: o.bios }
  }
  const pair = OVMF_PAIRS.find(([code, vars]) => existsSync(code) && existsSync(vars))
  if (!pair) {
    throw new VmtestError(
      'VMTEST_FIRMWARE_NOT_FOUND',
      'config',
      `UEFI boot (${o.source('uefi')}) needs OVMF, the UEFI firmware for QEMU: none found (looked at ${OVMF_PAIRS.map(([code]) => code).join(', ')}).\n` +
        'Install it (Debian/Ubuntu: `apt-get install ovmf`; Fedora: `dnf install edk2-ovmf`), or name the firmware file with the `bios` option (vm.bios in vmtest.toml).',
    )
  }
  const vars = join(tempDir, 'OVMF_VARS.fd')
  copyFileSync(pair[1], vars)
  return { kind: 'pflash', code: pair[0], vars }
}
