import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { chooseFirmware, imageFormat } from '../../src/host/image/image.js'

const dir = mkdtempSync(join(tmpdir(), 'vmtest-image-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, head: string, size = 4096) => {
  const path = join(dir, name)
  writeFileSync(path, Buffer.concat([Buffer.from(head, 'latin1'), Buffer.alloc(size - head.length)]))
  return path
}
const error = (fn: () => unknown) => {
  try {
    fn()
  } catch (e) {
    return e as Error & { code: string }
  }
  throw new Error('did not throw')
}

describe('imageFormat', () => {
  test('named by its magic, raw otherwise', () => {
    expect(imageFormat(file('a.qcow2', 'QFI\xfb\0\0\0\x03'), 'test')).toBe('qcow2')
    expect(imageFormat(file('a.vmdk', 'KDMV'), 'test')).toBe('vmdk')
    expect(imageFormat(file('a.vhdx', 'vhdxfile'), 'test')).toBe('vhdx')
    expect(imageFormat(file('a.img', '\xeb\x63\x90'), 'test')).toBe('raw')
  })

  test('a missing, tiny or non-file image is a clear error naming where it came from', () => {
    expect(error(() => imageFormat(join(dir, 'nope.raw'), 'from `image` in vmtest.toml'))).toMatchObject({ code: 'VMTEST_IMAGE_NOT_FOUND', message: `Disk image not found: ${join(dir, 'nope.raw')} (from \`image\` in vmtest.toml).` })
    expect(error(() => imageFormat(file('tiny.raw', 'x', 100), 'test')).message).toBe(`The disk image ${join(dir, 'tiny.raw')} (test) is 100 bytes: too small to hold a boot sector.`)
    expect(error(() => imageFormat(dir, 'test')).message).toBe(`The disk image ${dir} (test) is not a file.`)
  })
})

describe('chooseFirmware', () => {
  const source = (key: string) => `from \`${key}\``
  test('BIOS needs none; a named firmware file must exist', () => {
    expect(chooseFirmware({ uefi: false, source }, dir)).toEqual({ kind: 'bios' })
    expect(chooseFirmware({ uefi: true, bios: file('OVMF.fd', ''), source }, dir)).toEqual({ kind: 'file', path: join(dir, 'OVMF.fd') })
    expect(error(() => chooseFirmware({ uefi: true, bios: '/nope/OVMF.fd', source }, dir))).toMatchObject({ code: 'VMTEST_FIRMWARE_NOT_FOUND', message: 'UEFI firmware not found: /nope/OVMF.fd (from `bios`).' })
  })
})
