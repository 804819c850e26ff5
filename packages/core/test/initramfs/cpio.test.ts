import { execFileSync } from 'node:child_process'
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { writeCpio, type CpioEntry } from '../../src/host/initramfs/cpio.js'

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

const entries: CpioEntry[] = [
  { path: 'bin', type: 'dir' },
  { path: 'bin/busybox', type: 'file', data: Buffer.from('#!/bin/true\nstatic busybox\n'), mode: 0o755 },
  { path: 'bin/sh', type: 'symlink', target: 'busybox' },
  { path: 'bin/abs', type: 'symlink', target: '/bin/busybox' },
  { path: 'dev', type: 'dir' },
  { path: 'dev/console', type: 'chardev', major: 5, minor: 1 },
  { path: 'dev/null', type: 'chardev', major: 1, minor: 3, mode: 0o666 },
  { path: 'etc', type: 'dir', mode: 0o700 },
  { path: 'etc/hostname', type: 'file', data: Buffer.from('vmtest\n') },
  { path: 'etc/empty', type: 'file', data: Buffer.alloc(0) },
  { path: 'etc/secret', type: 'file', data: Buffer.from('s'), mode: 0o600 },
  { path: 'etc/bytes', type: 'file', data: allBytes },
  // Name and data lengths that hit every 4-byte padding case.
  { path: 'etc/a', type: 'file', data: Buffer.from('1') },
  { path: 'etc/ab', type: 'file', data: Buffer.from('12') },
  { path: 'etc/abc', type: 'file', data: Buffer.from('123') },
  { path: 'etc/abcd', type: 'file', data: Buffer.from('1234') },
  { path: 'init', type: 'file', data: Buffer.from('#!/bin/sh\nexec sh\n'), mode: 0o755 },
]

/** Fisher-Yates with a seeded PRNG (mulberry32), so failures replay. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** The newc headers of an archive: name and the numeric fields we set. */
function headers(archive: Buffer) {
  const out = []
  for (let offset = 0; ; ) {
    expect(archive.toString('ascii', offset, offset + 6)).toBe('070701')
    const field = (i: number) => parseInt(archive.toString('ascii', offset + 6 + i * 8, offset + 14 + i * 8), 16)
    const nameSize = field(11)
    const fileSize = field(6)
    const name = archive.toString('utf8', offset + 110, offset + 110 + nameSize - 1)
    out.push({ name, ino: field(0), mode: field(1), uid: field(2), gid: field(3), nlink: field(4), mtime: field(5), fileSize, rdev: [field(9), field(10)] })
    if (name === 'TRAILER!!!') return { headers: out, end: offset + 110 + nameSize }
    const dataStart = (offset + 110 + nameSize + 3) & ~3
    offset = (dataStart + fileSize + 3) & ~3
  }
}

const sortedPaths = entries.map((e) => e.path).sort()
const archive = writeCpio(entries)
const scratch = mkdtempSync(join(tmpdir(), 'vmtest-cpio-test-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('writeCpio', () => {
  test('the same entries in any order give byte-identical archives', () => {
    for (let seed = 1; seed <= 20; seed++) {
      expect(writeCpio(shuffled(entries, seed)).equals(archive), `seed ${seed}`).toBe(true)
    }
    // A change in any entry changes the bytes (the comparison above is not vacuous).
    const changed = entries.map((e) => (e.path === 'etc/secret' ? { ...e, mode: 0o640 } : e))
    expect(writeCpio(changed).equals(archive)).toBe(false)
  })

  test('headers: sorted, inodes in order, owner root, mtime 0, nlink 2 for directories, device numbers', () => {
    const { headers: list, end } = headers(archive)
    expect(list.map((h) => h.name)).toEqual([...sortedPaths, 'TRAILER!!!'])
    expect(list.map((h) => h.ino)).toEqual([...sortedPaths.map((_, i) => i + 1), 0])
    for (const h of list) expect([h.uid, h.gid, h.mtime]).toEqual([0, 0, 0])
    const byName = Object.fromEntries(list.map((h) => [h.name, h]))
    expect(byName['bin'].nlink).toBe(2)
    expect(byName['etc/hostname'].nlink).toBe(1)
    expect(byName['dev/console']).toMatchObject({ mode: 0o020600, rdev: [5, 1], fileSize: 0 })
    expect(byName['dev/null']).toMatchObject({ mode: 0o020666, rdev: [1, 3] })
    expect(byName['bin/sh']).toMatchObject({ mode: 0o120777, fileSize: 'busybox'.length })
    expect(byName['etc']).toMatchObject({ mode: 0o040700, fileSize: 0 })
    expect(byName['etc/hostname']).toMatchObject({ mode: 0o100644, fileSize: 7 })
    // Everything after the trailer is zero padding to the 512-byte block.
    expect(archive.subarray((end + 3) & ~3).every((b) => b === 0)).toBe(true)
  })

  test('cpio -t lists exactly the sorted paths', () => {
    const listing = execFileSync('cpio', ['-t', '--quiet'], { input: archive, encoding: 'utf8' })
    expect(listing.split('\n').filter(Boolean)).toEqual(sortedPaths)
  })

  test('cpio -idm extracts the same contents, symlink targets, modes and devices', () => {
    // Device nodes need root (CAP_MKNOD); without it, check everything else.
    const canMknod = process.getuid?.() === 0
    const extractable = canMknod ? entries : entries.filter((e) => e.type !== 'chardev')
    const root = join(scratch, 'extracted')
    mkdirSync(root)
    execFileSync('cpio', ['-idm', '--quiet'], { cwd: root, input: writeCpio(extractable) })
    for (const entry of extractable) {
      const path = join(root, entry.path)
      const stat = lstatSync(path)
      const perm = stat.mode & 0o7777
      switch (entry.type) {
        case 'dir':
          expect(stat.isDirectory(), entry.path).toBe(true)
          expect(perm, entry.path).toBe(entry.mode ?? 0o755)
          break
        case 'file':
          expect(stat.isFile(), entry.path).toBe(true)
          expect(perm, entry.path).toBe(entry.mode ?? 0o644)
          expect(readFileSync(path).equals(Buffer.from(entry.data)), entry.path).toBe(true)
          expect(stat.mtimeMs, entry.path).toBe(0)
          break
        case 'symlink':
          expect(stat.isSymbolicLink(), entry.path).toBe(true)
          expect(readlinkSync(path)).toBe(entry.target)
          break
        case 'chardev':
          expect(stat.isCharacterDevice(), entry.path).toBe(true)
          expect(perm, entry.path).toBe(entry.mode ?? 0o600)
          // Linux dev_t: major in bits 8..19, minor in bits 0..7 (and 20..31).
          expect([(stat.rdev >> 8) & 0xfff, stat.rdev & 0xff], entry.path).toEqual([entry.major, entry.minor])
          break
      }
    }
  })

  test('archive sizes are multiples of 512', () => {
    const sizes = [
      writeCpio([]),
      writeCpio([{ path: 'a', type: 'dir' }]),
      writeCpio([{ path: 'f', type: 'file', data: Buffer.alloc(511) }]),
      writeCpio([{ path: 'f', type: 'file', data: Buffer.alloc(512) }]),
      writeCpio([{ path: 'f', type: 'file', data: Buffer.alloc(4097, 1) }]),
      archive,
    ].map((a) => a.length)
    for (const size of sizes) {
      expect(size % 512, `size ${size}`).toBe(0)
      expect(size).toBeGreaterThan(0)
    }
    expect(new Set(sizes).size).toBeGreaterThan(2)
  })

  test('a leading slash is dropped from paths', () => {
    expect(writeCpio([{ path: '/init', type: 'file', data: Buffer.from('x') }]).equals(writeCpio([{ path: 'init', type: 'file', data: Buffer.from('x') }]))).toBe(true)
  })

  test('an empty path throws', () => {
    expect(() => writeCpio([{ path: '', type: 'dir' }])).toThrowErrorMatchingInlineSnapshot(`[Error: a cpio entry needs a non-empty path]`)
    expect(() => writeCpio([{ path: 'ok', type: 'dir' }, { path: '/', type: 'dir' }])).toThrowErrorMatchingInlineSnapshot(
      `[Error: a cpio entry needs a non-empty path]`,
    )
  })
})
