import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { findModuleDir, planModules, readModinfo, readModuleBytes } from '../src/host/kernel/modules.js'

const tmp = mkdtempSync(join(tmpdir(), 'modules-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const write = (path: string, data: string | Buffer) => {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, data)
  return path
}

/** A minimal ELF64 relocatable with sections [null, .modinfo, .shstrtab], like a .ko as modinfo sees it. */
function ko(name: string, depends: string[], extra: string[] = []): Buffer {
  const modinfo = Buffer.from([`license=GPL`, ...extra, `depends=${depends.join(',')}`, `name=${name}`, ''].join('\0'))
  const shstrtab = Buffer.from('\0.modinfo\0.shstrtab\0')
  const shoff = 64 + modinfo.length + shstrtab.length
  const b = Buffer.alloc(shoff + 3 * 64)
  b.write('\x7fELF', 0, 'latin1')
  b[4] = 2 // ELFCLASS64
  b[5] = 1 // little-endian
  b[6] = 1
  b.writeUInt16LE(1, 16) // ET_REL
  b.writeUInt16LE(62, 18)
  b.writeUInt32LE(1, 20)
  b.writeBigUInt64LE(BigInt(shoff), 40)
  b.writeUInt16LE(64, 52)
  b.writeUInt16LE(64, 58) // e_shentsize
  b.writeUInt16LE(3, 60) // e_shnum
  b.writeUInt16LE(2, 62) // e_shstrndx
  modinfo.copy(b, 64)
  shstrtab.copy(b, 64 + modinfo.length)
  const section = (i: number, nameOff: number, offset: number, size: number) => {
    const sh = shoff + i * 64
    b.writeUInt32LE(nameOff, sh)
    b.writeUInt32LE(i === 2 ? 3 : 1, sh + 4) // SHT_STRTAB / SHT_PROGBITS
    b.writeBigUInt64LE(BigInt(offset), sh + 24)
    b.writeBigUInt64LE(BigInt(size), sh + 32)
  }
  section(1, 1, 64, modinfo.length)
  section(2, 10, 64 + modinfo.length, shstrtab.length)
  return b
}

/** A fake module tree; `dep` writes modules.dep, otherwise dependencies live only in .modinfo. */
function tree(name: string, dep: boolean): string {
  const dir = join(tmp, name, 'lib/modules/6.9.0-test')
  const mods: [string, string[]][] = [
    ['kernel/drivers/virtio/virtio.ko', []],
    ['kernel/drivers/virtio/virtio_ring.ko', ['virtio']],
    ['kernel/drivers/virtio/virtio_pci.ko', ['virtio_ring', 'virtio']],
    ['kernel/net/9p/9pnet.ko', []],
    ['kernel/net/9p/9pnet_virtio.ko', ['virtio', '9pnet', 'virtio_ring']],
    ['kernel/fs/9p/9p.ko', ['9pnet', 'netfs']],
    ['kernel/fs/foo/intel-foo.ko', ['ghost']],
  ]
  // With modules.dep the .ko files are not even ELF, proving modules.dep alone is used.
  for (const [path, deps] of mods) write(join(dir, path), dep ? '' : ko(path.split('/').pop()!.replace('.ko', '').replace(/-/g, '_'), deps))
  write(join(dir, 'modules.builtin'), 'kernel/fs/netfs/netfs.ko\nkernel/fs/overlayfs/overlay.ko\n')
  if (dep) {
    // modules.dep lists the transitive closure, as depmod writes it.
    const path = (n: string) => mods.find(([p]) => p.endsWith(`/${n}.ko`))![0]
    const closure: Record<string, string[]> = { virtio_ring: ['virtio'], virtio_pci: ['virtio_ring', 'virtio'], '9pnet_virtio': ['virtio_ring', 'virtio', '9pnet'], '9p': ['9pnet'] }
    write(join(dir, 'modules.dep'), mods.map(([p]) => `${p}: ${(closure[p.split('/').pop()!.replace('.ko', '')] ?? []).map(path).join(' ')}`).join('\n') + '\n')
  }
  return dir
}

/** Each file's dependencies (by name) appear before it. */
function expectDepsFirst(files: string[], deps: Record<string, string[]>) {
  const names = files.map((f) => f.split('/').pop()!.replace(/\.ko.*/, ''))
  names.forEach((n, i) => (deps[n] ?? []).forEach((d) => expect(names.slice(0, i), `${d} before ${n}`).toContain(d)))
}

describe('planModules', () => {
  const request = ['virtio-pci', '9p', '9pnet_virtio', 'overlay', 'nope', 'virtio_pci']
  const deps = { virtio_ring: ['virtio'], virtio_pci: ['virtio_ring', 'virtio'], '9pnet_virtio': ['virtio', '9pnet', 'virtio_ring'], '9p': ['9pnet'] }

  it.each([
    ['.modinfo depends', false],
    ['modules.dep', true],
  ])('orders dependencies first using %s', async (name, dep) => {
    const dir = tree(name.replace(/\W/g, ''), dep)
    const plan = await planModules(dir, request)
    expect(plan.files.map((f) => f.split('/').pop()).sort()).toEqual(['9p.ko', '9pnet.ko', '9pnet_virtio.ko', 'virtio.ko', 'virtio_pci.ko', 'virtio_ring.ko'])
    expect(plan.files.every((f) => f.startsWith(dir + '/'))).toBe(true)
    expectDepsFirst(plan.files, deps)
    expect(plan.builtin).toEqual(['overlay'])
    expect(plan.missing).toEqual(['nope'])
  })

  it('reports missing dependencies and matches - and _ alike', async () => {
    const dir = tree('dashes', false)
    const plan = await planModules(dir, ['intel_foo', 'netfs'])
    expect(plan.files).toEqual([join(dir, 'kernel/fs/foo/intel-foo.ko')])
    expect(plan.missing).toEqual(['ghost'])
    expect(plan.builtin).toEqual(['netfs'])
  })

  it('finds kernel/ modules through modules.order, compressed or not, updates/ still first', async () => {
    const dir = join(tmp, 'ordered')
    write(join(dir, 'kernel/a/base.ko.xz'), ko('base', [])) // modules.order lists names as built: base.ko
    write(join(dir, 'kernel/a/top.ko'), ko('top', ['base']))
    write(join(dir, 'kernel/b/unlisted.ko'), ko('unlisted', []))
    write(join(dir, 'updates/top.ko'), ko('top', ['base', 'unlisted']))
    write(join(dir, 'modules.order'), 'kernel/a/base.ko\nkernel/a/top.ko\nkernel/gone/vanished.ko\n')
    const plan = await planModules(dir, ['top', 'vanished'])
    // unlisted.ko is found by the walk the missing name triggers; vanished.ko exists nowhere.
    expect(plan.files).toEqual([join(dir, 'kernel/a/base.ko.xz'), join(dir, 'kernel/b/unlisted.ko'), join(dir, 'updates/top.ko')])
    expect(plan).toMatchObject({ builtin: [], missing: ['vanished'] })
  })

  it('prefers updates/ over kernel/ and reads compressed modules', async () => {
    const dir = join(tmp, 'compressed')
    write(join(dir, 'kernel/a/base.ko'), ko('base', []))
    write(join(dir, 'kernel/a/top.ko'), ko('top', ['base']))
    write(join(dir, 'updates/top.ko.gz'), gzipSync(ko('top', ['base', 'extra_dep'])))
    write(join(dir, 'extra/extra_dep.ko'), ko('extra_dep', []))
    const plan = await planModules(dir, ['top'])
    expect(plan.files).toEqual([join(dir, 'kernel/a/base.ko'), join(dir, 'extra/extra_dep.ko'), join(dir, 'updates/top.ko.gz')])
    expect(plan).toMatchObject({ builtin: [], missing: [] })
  })
})

describe('readModinfo / readModuleBytes', () => {
  it('parses name, depends and softdeps', async () => {
    const path = write(join(tmp, 'info/a.ko'), ko('a', ['b', 'c'], ['softdep=pre: crc32c post: d']))
    expect(await readModinfo(path)).toEqual({ name: 'a', depends: ['b', 'c'], softdeps: ['crc32c', 'd'] })
    expect(await readModinfo(write(join(tmp, 'info/e.ko'), ko('e', [])))).toEqual({ name: 'e', depends: [] })
  })

  const compressors: [string, (b: Buffer) => Buffer, boolean][] = [
    ['gz', (b) => gzipSync(b), true],
    ['xz', (b) => execFileSync('xz', ['-c', '--check=crc32'], { input: b }), spawnSync('xz', ['--version']).status === 0],
    ['zst', (b) => execFileSync('zstd', ['-c', '-q'], { input: b }), spawnSync('zstd', ['--version']).status === 0],
  ]
  for (const [ext, compress, available] of compressors) {
    it.skipIf(!available)(`decompresses .ko.${ext}`, async () => {
      const raw = ko('z', ['y'])
      const path = write(join(tmp, `info/z.ko.${ext}`), compress(raw))
      expect(await readModuleBytes(path)).toEqual(raw)
      expect(await readModinfo(path)).toEqual({ name: 'z', depends: ['y'] })
    })
  }

  it('rejects a file without .modinfo', async () => {
    await expect(readModinfo(write(join(tmp, 'info/bad.ko'), 'junk'))).rejects.toThrow(/no \.modinfo/)
  })
})

describe('findModuleDir', () => {
  const release = '6.9.0-vmtest-nonexistent'
  const pkg = join(tmp, 'pkg')
  const modDir = join(pkg, 'lib/modules', release)
  write(join(modDir, 'modules.order'), 'kernel/fs/9p/9p.ko\n')
  const kernel = write(join(pkg, 'boot', `vmlinuz-${release}`), 'kernel')

  it('finds the extracted-package layout through a symlinked kernel', () => {
    const link = join(tmp, 'elsewhere', 'vmlinuz')
    mkdirSync(dirname(link), { recursive: true })
    symlinkSync(kernel, link)
    const found = findModuleDir({ kernelPath: link, release })
    expect(found.dir).toBe(modDir)
    expect(found.looked[0]).toBe(modDir)
  })

  it('accepts an explicit parent or release dir, and rejects bad ones', () => {
    expect(findModuleDir({ kernelPath: kernel, release, explicit: join(pkg, 'lib/modules') }).dir).toBe(join(pkg, 'lib/modules', release))
    expect(findModuleDir({ kernelPath: kernel, release, explicit: modDir }).dir).toBe(modDir)
    expect(() => findModuleDir({ kernelPath: kernel, release, explicit: join(pkg, 'boot') })).toThrow(/no 6\.9\.0-vmtest-nonexistent\//)
    expect(() => findModuleDir({ kernelPath: kernel, release, explicit: kernel })).toThrow(/not a directory/)
  })

  it('skips a release dir holding no modules (what installing the headers alone leaves)', () => {
    const headersOnly = join(tmp, 'headers-only')
    mkdirSync(join(headersOnly, 'lib/modules', release, 'build'), { recursive: true })
    const image = write(join(headersOnly, 'boot', `vmlinuz-${release}`), 'kernel')
    expect(findModuleDir({ kernelPath: image, release }).dir).toBeUndefined()
  })

  it('returns no dir and the places looked when nothing matches', () => {
    const lone = write(join(tmp, 'lone', 'vmlinuz'), 'kernel')
    expect(findModuleDir({ kernelPath: lone, release })).toEqual({ dir: undefined, looked: [`/lib/modules/${release}`] })
  })
})
