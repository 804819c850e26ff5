// The guest's root filesystem for a kernel target: the host's own (/), or a
// directory holding another userspace (another distro, another architecture),
// shared over 9p all the same. What the guest needs from it: a `node` for the
// agent, and for a foreign architecture a static busybox for the initramfs.

import { existsSync, lstatSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { VmtestError } from './errors.js'
import { elfArch, readHeadSync } from './kernel/inspect.js'
import { hostArch } from './qemu/arch.js'
import type { ResolvedOptions } from './options.js'

export interface GuestRoot {
  /** Host directory exported as the guest's root. */
  path: string
  /** The node binary the guest runs the agent with, as a path inside the guest. */
  node: string
}

/** Where `vmtest setup --arch <arch>` puts a foreign architecture's root (kernel included, under boot/). */
export function archRootDir(cache: string, arch: string): string {
  return join(cache, 'rootfs', arch)
}

const NODE_PATHS = ['/usr/local/bin/node', '/usr/bin/node', '/bin/node']

export function chooseRoot(o: ResolvedOptions, arch: string, cache: string): GuestRoot {
  let path = o.rootfs
  let source = o.source('rootfs')
  if (path === undefined) {
    if (arch === hostArch()) return { path: '/', node: process.execPath }
    path = archRootDir(cache, arch)
    source = `the ${arch} root that \`vmtest setup --arch ${arch}\` fetches`
    if (!existsSync(path)) {
      throw new VmtestError(
        'VMTEST_ROOTFS_NOT_FOUND',
        'config',
        `An ${arch} guest needs an ${arch} root filesystem (a shell, and node for the vmtest agent): none was named (\`rootfs\`) and ${path} does not exist.\n` +
          `Run \`npx vmtest setup --arch ${arch}\` to fetch Debian's, or set \`rootfs\` to a directory holding one.`,
      )
    }
  }
  let stat
  try {
    stat = statSync(path)
  } catch {
    throw new VmtestError('VMTEST_ROOTFS_NOT_FOUND', 'config', `Root filesystem not found: ${path} (${source}).`)
  }
  if (!stat.isDirectory()) throw new VmtestError('VMTEST_ROOTFS_NOT_FOUND', 'config', `The root filesystem ${path} (${source}) is not a directory: vmtest shares a directory as the guest's root over 9p.`)
  if (path === '/' && arch === hostArch()) return { path, node: process.execPath }

  const node = NODE_PATHS.find((p) => lstatOk(join(path!, p)))
  if (!node) {
    throw new VmtestError(
      'VMTEST_ROOTFS_INVALID',
      'config',
      `The root filesystem ${path} (${source}) has no node (looked at ${NODE_PATHS.join(', ')}): the vmtest guest agent runs on the guest's own Node.js. Install it there (Debian: nodejs).`,
    )
  }
  // A symlink may point outside the root (an absolute target means the guest's /): only a plain file is checked.
  const built = lstatSync(join(path, node)).isFile() ? elfArchOf(join(path, node)) : undefined
  if (built && built !== arch) {
    throw new VmtestError('VMTEST_ROOTFS_INVALID', 'config', `The root filesystem ${path} (${source}) is for ${built}: its ${node} cannot run in an ${arch} guest. Name a root filesystem for ${arch}.`)
  }
  return { path, node }
}

/** Static busybox binaries a root filesystem offers, for the initramfs of a guest of its architecture. */
export function busyboxesIn(root: GuestRoot): string[] {
  if (root.path === '/') return []
  return ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox'].map((p) => join(root.path, p)).filter(lstatOk)
}

function lstatOk(path: string): boolean {
  try {
    const stat = lstatSync(path)
    return stat.isFile() || stat.isSymbolicLink()
  } catch {
    return false
  }
}

/** The architecture of an ELF file; undefined when it cannot be read (the boot then says what fails). */
function elfArchOf(path: string): string | undefined {
  try {
    return elfArch(readHeadSync(path, 64))
  } catch {
    return undefined
  }
}
