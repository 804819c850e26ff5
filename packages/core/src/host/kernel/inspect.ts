import { spawn } from 'node:child_process'
import { closeSync, openSync, readSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'

export type KernelFormat = 'bzImage' | 'elf' | 'Image'
export type Compression = 'xz' | 'gzip' | 'zstd'

export interface KernelInfo {
  path: string
  format: KernelFormat
  arch: 'x86_64' | 'aarch64' | 'riscv64' | 's390x' | string
  /** e.g. "6.1.0-57-amd64" */
  release?: string
  /** full version string from the header */
  version?: string
}

/** Thrown when a file is not a kernel we can boot; `found` says what it looks like instead. */
export class KernelFormatError extends Error {
  constructor(
    readonly path: string,
    readonly found: string,
  ) {
    super(`${path} is not a Linux kernel (bzImage, ELF vmlinux or arm64 Image): found ${found}`)
    this.name = 'KernelFormatError'
  }
}

// x86 boot protocol setup header, Documentation/arch/x86/boot.rst (offsets from file start).
const SETUP_SECTS = 0x1f1 // u8: 512-byte setup sectors after the boot sector (0 means 4)
const HDRS_MAGIC = 0x202 // "HdrS"
const BOOT_VERSION = 0x206 // u16 boot protocol version
const KERNEL_VERSION = 0x20e // u16 pointer to the version string, minus 0x200
const XLOADFLAGS = 0x236 // u16, bit 0 XLF_KERNEL_64 (protocol >= 2.12)
const PAYLOAD_OFFSET = 0x248 // u32, relative to the protected-mode code (protocol >= 2.08)
const PAYLOAD_LENGTH = 0x24c // u32, includes the 4-byte uncompressed-size trailer
// arm64 Image header, Documentation/arch/arm64/booting.rst.
const ARM64_MAGIC = 0x38 // "ARM\x64"
// ELF notes: include/xen/interface/elfnote.h.
const PT_NOTE = 4
const XEN_ELFNOTE_PHYS32_ENTRY = 18

const HEADER_BYTES = 0x10400 // enough for the largest kernel_version pointer (u16 + 0x200) + string
const BANNER_SCAN_BYTES = 64 << 20
const ELF_MACHINES: Record<number, string> = { 3: 'i386', 8: 'mips', 20: 'ppc', 21: 'ppc64', 22: 's390x', 40: 'arm', 62: 'x86_64', 183: 'aarch64', 243: 'riscv64', 258: 'loongarch64' }
const MAGICS: [Compression, Buffer][] = [
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['gzip', Buffer.from([0x1f, 0x8b, 0x08])],
]

/** Identifies the kernel from its headers only, so a wrong path fails before QEMU starts. */
export async function inspectKernel(path: string): Promise<KernelInfo> {
  const head = await readHead(path, HEADER_BYTES)
  if (isBzImage(head)) {
    const version = bzImageVersion(head)
    const arch = head.readUInt16LE(XLOADFLAGS) & 1 ? 'x86_64' : 'i386'
    return { path, format: 'bzImage', arch, release: version?.split(' ')[0], version }
  }
  const elfArch = isElf(head) ? elfMachine(head) : undefined
  const isImage = head.length >= 0x40 && head.toString('latin1', ARM64_MAGIC, ARM64_MAGIC + 4) === 'ARM\x64'
  if (!elfArch && !isImage) throw new KernelFormatError(path, describe(head))
  const version = findBanner(await readHead(path, BANNER_SCAN_BYTES))
  // An ELF without the banner is some other program (e.g. qemu itself), not a vmlinux.
  if (elfArch && !version) throw new KernelFormatError(path, `ELF for ${elfArch}`)
  return { path, format: isImage ? 'Image' : 'elf', arch: elfArch ?? 'aarch64', release: version?.split(' ')[0], version }
}

/** The version string of a bzImage ("6.1.0-57-amd64 (debian-kernel@…) #1 SMP …") from its first HEADER_BYTES. */
export function bzImageVersion(head: Buffer): string | undefined {
  if (!isBzImage(head)) return undefined
  const ptr = head.readUInt16LE(KERNEL_VERSION)
  return ptr ? cString(head, ptr + 0x200) : undefined
}

/** The release in a bzImage's header ("6.1.0-57-amd64"), read synchronously (for config files); undefined for other formats. */
export function bzImageReleaseSync(path: string): string | undefined {
  return bzImageVersion(readHeadSync(path, HEADER_BYTES))?.split(' ')[0]
}

/** At most the first `bytes` of a file, read synchronously (headers and magic numbers). */
export function readHeadSync(path: string, bytes: number): Buffer {
  const head = Buffer.alloc(bytes)
  const fd = openSync(path, 'r')
  try {
    return head.subarray(0, readSync(fd, head, 0, bytes, 0))
  } finally {
    closeSync(fd)
  }
}

/** Unpacks the vmlinux inside a bzImage so QEMU can boot it directly through its PVH entry. */
export async function extractVmlinux(bzImagePath: string): Promise<{ elf: Buffer; pvh: boolean; compression: Compression }> {
  const file = await readFile(bzImagePath)
  if (!isBzImage(file)) throw new KernelFormatError(bzImagePath, describe(file))
  if (file.readUInt16LE(BOOT_VERSION) < 0x208) throw new Error(`${bzImagePath}: boot protocol too old (< 2.08) to locate the payload`)
  const start = ((file[SETUP_SECTS] || 4) + 1) * 512 + file.readUInt32LE(PAYLOAD_OFFSET)
  const payload = file.subarray(start, start + file.readUInt32LE(PAYLOAD_LENGTH))
  const compression = sniffCompression(payload)
  if (!compression) throw new Error(`${bzImagePath}: unsupported payload compression (magic ${payload.subarray(0, 6).toString('hex')}); only xz, gzip, zstd`)
  // Drop the uncompressed-size trailer so every decompressor sees exactly one stream.
  const elf = await decompress(payload.subarray(0, payload.length - 4), compression)
  if (!isElf(elf) || elfMachine(elf) !== 'x86_64') throw new Error(`${bzImagePath}: payload is not an x86-64 ELF`)
  return { elf, pvh: hasPvhNote(elf), compression }
}

/** True when the ELF has a Xen PHYS32 entry note, which QEMU's -kernel needs to boot an ELF on x86. */
export function hasPvhNote(elf: Buffer): boolean {
  if (!isElf(elf)) return false
  const r = elfReader(elf)
  const [phoff, phentsize, phnum] = r.is64 ? [r.word(0x20), r.u16(0x36), r.u16(0x38)] : [r.word(0x1c), r.u16(0x2a), r.u16(0x2c)]
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize
    if (ph + phentsize > elf.length || r.u32(ph) !== PT_NOTE) continue
    const [off, size] = r.is64 ? [r.word(ph + 0x08), r.word(ph + 0x20)] : [r.word(ph + 0x04), r.word(ph + 0x10)]
    const end = Math.min(off + size, elf.length)
    for (let n = off; n + 12 <= end; ) {
      const namesz = r.u32(n), descsz = r.u32(n + 4), type = r.u32(n + 8)
      if (type === XEN_ELFNOTE_PHYS32_ENTRY && elf.toString('latin1', n + 12, n + 12 + namesz).replace(/\0+$/, '') === 'Xen') return true
      n += 12 + align4(namesz) + align4(descsz)
    }
  }
  return false
}

/** Which compressor produced `data`, judged by its magic at `at`. */
export function sniffCompression(data: Buffer, at = 0): Compression | undefined {
  return MAGICS.find(([, m]) => data.subarray(at, at + m.length).equals(m))?.[0]
}

/** Decompresses with zlib (gzip) or the xz/zstd CLIs, since node has no builtin for those. */
export async function decompress(data: Buffer, kind: Compression): Promise<Buffer> {
  if (kind === 'gzip') return promisify(gunzip)(data)
  return kind === 'xz' ? pipeThrough('xz', ['-dc', '--single-stream'], data) : pipeThrough('zstd', ['-dc'], data)
}

/** Contents of the named section of an ELF file (e.g. a module's .modinfo), if present. */
export function elfSection(elf: Buffer, name: string): Buffer | undefined {
  if (!isElf(elf)) return undefined
  const r = elfReader(elf)
  const [shoff, shentsize, shnum, shstrndx] = r.is64 ? [r.word(0x28), r.u16(0x3a), r.u16(0x3c), r.u16(0x3e)] : [r.word(0x20), r.u16(0x2e), r.u16(0x30), r.u16(0x32)]
  if (!shoff || shstrndx >= shnum || shoff + shnum * shentsize > elf.length) return undefined
  const section = (i: number) => {
    const sh = shoff + i * shentsize
    const [off, size] = r.is64 ? [r.word(sh + 0x18), r.word(sh + 0x20)] : [r.word(sh + 0x10), r.word(sh + 0x14)]
    return { nameOff: r.u32(sh), data: elf.subarray(off, off + size) }
  }
  const strtab = section(shstrndx).data
  for (let i = 0; i < shnum; i++) {
    const s = section(i)
    if (cString(strtab, s.nameOff) === name) return s.data
  }
  return undefined
}

/** Reads at most `bytes` from the start, so huge files cost only what we inspect. */
async function readHead(path: string, bytes: number): Promise<Buffer> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(Math.min(bytes, (await fh.stat()).size))
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}

/** Runs a decompressor CLI with data on stdin and resolves with its stdout. */
function pipeThrough(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = [], err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    child.stdin.on('error', () => {}) // EPIPE if it exits early; the exit code reports the failure
    child.on('error', (e) => reject(new Error(`cannot run ${cmd} to decompress (${e.message}); is it installed?`)))
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${Buffer.concat(err).toString().trim()}`))))
    child.stdin.end(input)
  })
}

/** Endian- and class-aware field readers, so one parser serves LE and BE, 32- and 64-bit ELF. */
function elfReader(b: Buffer) {
  const le = b[5] !== 2, is64 = b[4] === 2
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o))
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o))
  const word = (o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(o))
  return { is64, u16, u32, word }
}

/** Finds the "Linux version X ..." banner that every kernel carries in .rodata. */
function findBanner(data: Buffer): string | undefined {
  const prefix = Buffer.from('Linux version ')
  for (let i = data.indexOf(prefix); i >= 0; i = data.indexOf(prefix, i + 1)) {
    const start = i + prefix.length
    if (data[start] >= 0x30 && data[start] <= 0x39) return cString(data, start).split('\n')[0]
  }
  return undefined
}

/** Names what a non-kernel file looks like, for the error message. */
function describe(b: Buffer): string {
  if (b.length === 0) return 'empty file'
  if (isElf(b)) return `ELF for ${elfMachine(b) ?? 'unknown machine'}`
  const c = sniffCompression(b)
  if (c) return `${c} data`
  const sample = b.subarray(0, 4096)
  if (!sample.some((x) => x < 9 || (x > 13 && x < 32 && x !== 27))) return 'text'
  return 'unknown binary'
}

/** The architecture an ELF file was built for (x86_64, aarch64...); undefined when it is no ELF. */
export function elfArch(b: Buffer): string | undefined {
  return isElf(b) ? elfMachine(b) : undefined
}

/** Architecture name of an ELF's e_machine. */
function elfMachine(b: Buffer): string | undefined {
  if (b.length < 20) return undefined
  const m = elfReader(b).u16(18)
  return ELF_MACHINES[m] ?? `machine ${m}`
}

/** True when the x86 boot protocol "HdrS" signature is present. */
function isBzImage(b: Buffer): boolean {
  return b.length >= 0x250 && b.toString('latin1', HDRS_MAGIC, HDRS_MAGIC + 4) === 'HdrS'
}

/** True when `b` starts with the ELF magic. */
function isElf(b: Buffer): boolean {
  return b.length >= 0x34 && b.readUInt32BE(0) === 0x7f454c46
}

/** The NUL-terminated string at `off`. */
function cString(b: Buffer, off: number): string {
  const end = b.indexOf(0, off)
  return b.toString('latin1', off, end < 0 ? b.length : end)
}

/** ELF note fields are padded to 4 bytes. */
function align4(n: number): number {
  return (n + 3) & ~3
}
