import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { extractVmlinux, hasPvhNote, inspectKernel, KernelFormatError } from '../src/host/kernel/inspect.js'
import { findModuleDir, planModules, readModinfo } from '../src/host/kernel/modules.js'

const tmp = mkdtempSync(join(tmpdir(), 'kernel-inspect-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const file = (name: string, data: string | Buffer) => {
  const path = join(tmp, name)
  writeFileSync(path, data)
  return path
}
const hasCli = (cmd: string) => spawnSync(cmd, ['--version']).status === 0

/** One ELF note: namesz, descsz, type, then name and desc each padded to 4 bytes. */
function note(name: string, type: number, desc: Buffer): Buffer {
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)])
  const head = Buffer.alloc(12)
  head.writeUInt32LE(name.length + 1, 0)
  head.writeUInt32LE(desc.length, 4)
  head.writeUInt32LE(type, 8)
  return Buffer.concat([head, pad(Buffer.from(name + '\0')), pad(desc)])
}

/** A minimal little-endian ELF64 executable: header, one PT_NOTE program header, the notes, then `tail`. */
function elf(machine: number, notes: Buffer, tail = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(64 + 56)
  h.write('\x7fELF', 0, 'latin1')
  h[4] = 2 // ELFCLASS64
  h[5] = 1 // little-endian
  h[6] = 1
  h.writeUInt16LE(2, 16) // ET_EXEC
  h.writeUInt16LE(machine, 18)
  h.writeUInt32LE(1, 20)
  h.writeBigUInt64LE(64n, 32) // e_phoff
  h.writeUInt16LE(64, 52)
  h.writeUInt16LE(56, 54)
  h.writeUInt16LE(1, 56) // e_phnum
  h.writeUInt32LE(4, 64) // PT_NOTE
  h.writeBigUInt64LE(120n, 64 + 8) // p_offset
  h.writeBigUInt64LE(BigInt(notes.length), 64 + 32) // p_filesz
  h.writeBigUInt64LE(4n, 64 + 48)
  return Buffer.concat([h, notes, tail])
}

const pvhNotes = Buffer.concat([note('Xen', 6, Buffer.from('linux\0')), note('Linux', 18, Buffer.alloc(4)), note('Xen', 18, Buffer.alloc(8))])
const vmlinux = elf(62, pvhNotes, Buffer.from('\0Linux version %s\0Linux version 6.9.0-test (me@host) #1 SMP\n\0'))

/** A fake bzImage: setup header per Documentation/arch/x86/boot.rst, version string and payload. */
function bzImage(payload: Buffer, version = '6.9.0-test (me@host) #1 SMP'): Buffer {
  const b = Buffer.alloc(0x800)
  b[0x1f1] = 3 // setup_sects: protected-mode code starts at (3 + 1) * 512 = 0x800
  b.write('HdrS', 0x202, 'latin1')
  b.writeUInt16LE(0x20f, 0x206)
  b.writeUInt16LE(0x300, 0x20e) // kernel_version: string at 0x300 + 0x200
  b.write(version + '\0', 0x500, 'latin1')
  b.writeUInt16LE(1, 0x236) // XLF_KERNEL_64
  b.writeUInt32LE(0x40, 0x248) // payload_offset
  b.writeUInt32LE(payload.length + 4, 0x24c) // payload_length includes the size trailer
  const size = Buffer.alloc(4)
  size.writeUInt32LE(vmlinux.length)
  return Buffer.concat([b, Buffer.alloc(0x40), payload, size, Buffer.from('trailing junk, e.g. a signature')])
}

describe('inspectKernel', () => {
  it('reads release and version from a bzImage header', async () => {
    const path = file('bz', bzImage(gzipSync(vmlinux)))
    expect(await inspectKernel(path)).toEqual({ path, format: 'bzImage', arch: 'x86_64', release: '6.9.0-test', version: '6.9.0-test (me@host) #1 SMP' })
  })

  it('reads machine and banner from an ELF vmlinux', async () => {
    const info = await inspectKernel(file('vmlinux', vmlinux))
    expect(info).toMatchObject({ format: 'elf', arch: 'x86_64', release: '6.9.0-test', version: '6.9.0-test (me@host) #1 SMP' })
  })

  it('recognises an arm64 Image', async () => {
    const img = Buffer.alloc(0x100)
    img.write('ARM\x64', 0x38, 'latin1')
    img.write('Linux version 6.9.0-arm64 (x) #1\n', 0x80, 'latin1')
    expect(await inspectKernel(file('Image', img))).toMatchObject({ format: 'Image', arch: 'aarch64', release: '6.9.0-arm64' })
  })

  it.each([
    ['empty', '', 'empty file'],
    ['text', '#!/bin/sh\necho not a kernel\n', 'text'],
    ['gz', gzipSync('hello'), 'gzip data'],
    ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2]), 'xz data'],
    ['bin', Buffer.from([0, 1, 2, 3, 0xff]), 'unknown binary'],
    ['program', elf(183, Buffer.alloc(0)), 'ELF for aarch64'],
  ])('rejects a %s file with found=%j', async (name, data, found) => {
    const err = await inspectKernel(file(name, data)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(KernelFormatError)
    expect((err as KernelFormatError).found).toBe(found)
  })
})

describe('hasPvhNote', () => {
  it('finds the Xen PHYS32_ENTRY note, ignoring same-typed notes of other owners', () => {
    expect(hasPvhNote(vmlinux)).toBe(true)
    expect(hasPvhNote(elf(62, Buffer.concat([note('Xen', 6, Buffer.from('linux\0')), note('Linux', 18, Buffer.alloc(4))])))).toBe(false)
    expect(hasPvhNote(Buffer.from('not an elf'))).toBe(false)
  })
})

describe('extractVmlinux', () => {
  const compressors: [string, (b: Buffer) => Buffer, boolean][] = [
    ['gzip', (b) => gzipSync(b), true],
    ['xz', (b) => execFileSync('xz', ['-c', '--check=crc32'], { input: b }), hasCli('xz')],
    ['zstd', (b) => execFileSync('zstd', ['-c', '-q'], { input: b }), hasCli('zstd')],
  ]
  for (const [name, compress, available] of compressors) {
    it.skipIf(!available)(`unpacks a ${name} payload despite the size trailer`, async () => {
      const out = await extractVmlinux(file(`bz-${name}`, bzImage(compress(vmlinux))))
      expect(out).toEqual({ elf: vmlinux, pvh: true, compression: name })
    })
  }

  it('rejects a payload that is not an x86-64 ELF', async () => {
    await expect(extractVmlinux(file('bz-arm', bzImage(gzipSync(elf(183, pvhNotes)))))).rejects.toThrow(/not an x86-64 ELF/)
  })

  it('rejects a non-bzImage with KernelFormatError', async () => {
    await expect(extractVmlinux(file('plain.txt', 'hello\n'))).rejects.toBeInstanceOf(KernelFormatError)
  })
})

const REAL_KERNEL = '/tmp/k/root/boot/vmlinuz-6.1.0-57-amd64'
describe.skipIf(!existsSync(REAL_KERNEL))('real Debian kernel package', () => {
  it('inspects the header', async () => {
    expect(await inspectKernel(REAL_KERNEL)).toMatchObject({ format: 'bzImage', arch: 'x86_64', release: '6.1.0-57-amd64' })
  })

  it('extracts a PVH-bootable x86-64 ELF', async () => {
    const { elf: out, pvh, compression } = await extractVmlinux(REAL_KERNEL)
    expect(out.subarray(0, 4).toString('latin1')).toBe('\x7fELF')
    expect(out.readUInt16LE(18)).toBe(62)
    expect({ pvh, compression }).toEqual({ pvh: true, compression: 'xz' })
  }, 60_000)

  it('plans the virtio/9p/overlay modules, dependencies first', async () => {
    const { dir } = findModuleDir({ kernelPath: REAL_KERNEL, release: '6.1.0-57-amd64' })
    expect(dir).toBe('/tmp/k/root/lib/modules/6.1.0-57-amd64')
    const plan = await planModules(dir!, ['virtio_pci', 'virtio_console', '9pnet_virtio', '9p', 'overlay'])
    expect(plan.missing).toEqual([])
    const loaded = new Set<string>()
    for (const f of plan.files) {
      const info = await readModinfo(f)
      for (const dep of info.depends) expect(loaded, `${info.name} needs ${dep} first`).toContain(dep)
      loaded.add(info.name)
    }
    for (const name of ['virtio_pci', 'virtio_console', '9pnet_virtio', '9p', 'overlay']) expect(loaded).toContain(name)
    expect(new Set(plan.files).size).toBe(plan.files.length)
  }, 30_000)
})
