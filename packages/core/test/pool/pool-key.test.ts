import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { poolKey } from '../../src/host/pool/pool.js'

describe('poolKey', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pool-key-'))
  const kernel = join(dir, 'bzImage')
  writeFileSync(kernel, 'kernel bytes')
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('equal options in any order, progress callbacks and sources aside, share a key', () => {
    const a = poolKey({ kernel, memory: '1G', cpus: 2, onProgress: () => {}, sources: { kernel: 'a.test.ts' } })
    const b = poolKey({ cpus: 2, memory: '1G', kernel })
    expect(a).toBe(b)
  })

  test('a relative and an absolute path to the same kernel share a key', () => {
    mkdirSync('test-results', { recursive: true })
    const local = mkdtempSync(join('test-results', 'pool-key-'))
    try {
      writeFileSync(join(local, 'bzImage'), 'kernel bytes')
      expect(poolKey({ kernel: join(local, 'bzImage') })).toBe(poolKey({ kernel: resolve(local, 'bzImage') }))
    } finally {
      rmSync(local, { recursive: true, force: true })
    }
  })

  test('other options, or a rebuilt kernel file, give another key', () => {
    const before = poolKey({ kernel })
    expect(poolKey({ kernel, memory: '512M' })).not.toBe(before)
    utimesSync(kernel, new Date(), new Date(Date.now() + 5000))
    expect(poolKey({ kernel })).not.toBe(before)
  })
})
