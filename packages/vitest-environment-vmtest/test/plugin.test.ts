import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import vmtest, { kernelMatrix } from '../src/plugin.js'

type ConfigHook = (config: Record<string, unknown>) => { test: Record<string, unknown> }

describe('the plugin', () => {
  const config = vmtest().config as unknown as ConfigHook

  test('sets the environment only when the user did not', () => {
    expect(config({}).test.environment).toBe('vmtest')
    expect(config({ test: {} }).test.environment).toBe('vmtest')
    expect(config({ test: { environment: 'node' } }).test).not.toHaveProperty('environment')
  })

  test('adds its setup file and global setup as absolute paths', () => {
    const { setupFiles, globalSetup } = config({}).test as { setupFiles: string[]; globalSetup: string[] }
    expect(setupFiles).toEqual([expect.stringMatching(/^\/.*\/setup-file\.js$/)])
    expect(globalSetup).toEqual([expect.stringMatching(/^\/.*\/global-setup\.js$/)])
  })
})

describe('kernelMatrix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmtest-matrix-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  /** A file with a bzImage header whose version string says `release`. */
  const bzImage = (name: string, release: string) => {
    const head = Buffer.alloc(0x1000)
    head.write('HdrS', 0x202, 'latin1')
    head.writeUInt16LE(0x206, 0x206) // boot protocol 2.06
    head.writeUInt16LE(0x400 - 0x200, 0x20e) // version string at 0x400
    head.write(`${release} (builder@host) #1 SMP\0`, 0x400, 'latin1')
    head[0x1fe] = 0x55
    head[0x1ff] = 0xaa
    writeFileSync(join(dir, name), head)
    return join(dir, name)
  }
  const k61 = bzImage('vmlinuz-a', '6.1.0-57-amd64')
  const k612 = bzImage('vmlinuz-b', '6.12.118+deb12-amd64')

  test('one project per kernel, named by its release, extending the root config, keeping the other vmtest options', () => {
    const projects = kernelMatrix([k61, { kernel: k612, name: 'newest' }], { test: { include: ['t/**'], environmentOptions: { vmtest: { memory: '1G' } } } })
    expect(projects).toEqual([
      { extends: true, test: { include: ['t/**'], name: 'kernel 6.1.0-57-amd64', environmentOptions: { vmtest: { memory: '1G', kernel: k61 } } } },
      { extends: true, test: { include: ['t/**'], name: 'newest', environmentOptions: { vmtest: { memory: '1G', kernel: k612 } } } },
    ])
  })

  test('bad entries are errors that say what is wrong', () => {
    expect(() => kernelMatrix([])).toThrow('kernelMatrix: expected a non-empty array of kernel image paths (or { kernel, name } objects).')
    expect(() => kernelMatrix([join(dir, 'nope')])).toThrow(`kernelMatrix: kernel image not found: ${join(dir, 'nope')} (entry 0).`)
    expect(() => kernelMatrix([dir])).toThrow(`kernelMatrix: ${dir} (entry 0) is not a file.`)
    expect(() => kernelMatrix([k61, k61])).toThrow('kernelMatrix: two kernels are both named "kernel 6.1.0-57-amd64": give them distinct names with { kernel, name }.')
    expect(() => kernelMatrix([{ name: 'x' } as never])).toThrow('kernelMatrix: entry 0 is {"name":"x"}: expected a kernel image path or { kernel: path, name?: string }.')
  })
})
