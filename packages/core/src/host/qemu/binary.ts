// Finds the QEMU system emulator for an architecture and says clearly when it
// is missing or cannot be run.

import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { VmtestError } from '../errors.js'

const INSTALL_HINT =
  'Install QEMU (Debian/Ubuntu: `apt-get install qemu-system-x86`; Fedora: `dnf install qemu-system-x86-core`; Arch: `pacman -S qemu-system-x86`), or name the binary with the `qemu` option.'

export function qemuBinaryName(arch: string): string {
  return `qemu-system-${arch}`
}

/** Looks `name` up on PATH (or takes an explicit path) and checks it can be executed. */
export function findExecutable(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : pathEnv.split(delimiter).filter(Boolean).map((dir) => join(dir, name))
  return candidates.find((file) => {
    try {
      return statSync(file).isFile()
    } catch {
      return false
    }
  })
}

export function findQemu(arch: string, explicit: string | undefined, source: string): string {
  const name = explicit ?? qemuBinaryName(arch)
  const found = findExecutable(name)
  if (!found) {
    const where = explicit ? `(${source})` : 'on PATH'
    throw new VmtestError('VMTEST_QEMU_NOT_FOUND', 'launch', `Cannot start guest: QEMU binary \`${name}\` was not found ${where}.\n${INSTALL_HINT}`)
  }
  try {
    accessSync(found, constants.X_OK)
  } catch (cause) {
    throw new VmtestError('VMTEST_QEMU_NOT_FOUND', 'launch', `Cannot start guest: QEMU binary ${found} is not executable (EACCES). Check its permissions.`, { cause })
  }
  return found
}
