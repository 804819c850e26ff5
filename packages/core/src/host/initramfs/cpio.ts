// A newc ("070701") cpio writer, the format the kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst). Pure: identical
// entries give identical bytes (sorted, mtime 0, inodes numbered in order).

export type CpioEntry =
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'file'; data: Uint8Array; mode?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'chardev'; major: number; minor: number; mode?: number }

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const S_IFCHR = 0o020000

export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const parts: Buffer[] = []
  let ino = 1
  for (const entry of sorted) {
    const path = entry.path.replace(/^\/+/, '')
    if (!path) throw new Error('a cpio entry needs a non-empty path')
    const { mode, data, rdev } = describe(entry)
    parts.push(...record(path, ino++, mode, data, rdev))
  }
  parts.push(...record('TRAILER!!!', 0, 0, Buffer.alloc(0), [0, 0]))
  const archive = Buffer.concat(parts)
  // The kernel reads the archive in 512-byte blocks' worth; pad like cpio(1) does.
  return Buffer.concat([archive, Buffer.alloc((512 - (archive.length % 512)) % 512)])
}

function describe(entry: CpioEntry): { mode: number; data: Buffer; rdev: [number, number] } {
  switch (entry.type) {
    case 'dir':
      return { mode: S_IFDIR | (entry.mode ?? 0o755), data: Buffer.alloc(0), rdev: [0, 0] }
    case 'file':
      return { mode: S_IFREG | (entry.mode ?? 0o644), data: Buffer.from(entry.data), rdev: [0, 0] }
    case 'symlink':
      return { mode: S_IFLNK | 0o777, data: Buffer.from(entry.target), rdev: [0, 0] }
    case 'chardev':
      return { mode: S_IFCHR | (entry.mode ?? 0o600), data: Buffer.alloc(0), rdev: [entry.major, entry.minor] }
  }
}

function record(path: string, ino: number, mode: number, data: Buffer, rdev: [number, number]): Buffer[] {
  const name = Buffer.from(`${path}\0`)
  const fields = [ino, mode, 0 /* uid */, 0 /* gid */, mode & S_IFDIR ? 2 : 1, 0 /* mtime */, data.length, 0, 0, rdev[0], rdev[1], name.length, 0]
  const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'ascii')
  return [header, name, pad(header.length + name.length), data, pad(data.length)]
}

function pad(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4)
}
