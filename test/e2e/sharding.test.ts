// `--shard=i/n` with the guest pool: each shard is a run of its own (its own
// broker and guests), every file runs exactly once, guests are reused inside a shard.

import { afterAll, describe, expect, test } from 'vitest'
import { vmSkipReason } from '../utils/vm-env.js'
import { boots, qemuLeftAfter } from './helpers.js'
import { removeOutDirs, runJest, runVitest } from './run-cli.js'

describe.skipIf(vmSkipReason)('sharding', () => {
  afterAll(removeOutDirs)

  test.each([
    { runner: 'vitest', fixture: 'vitest-reuse', files: 6, run: runVitest },
    { runner: 'jest', fixture: 'jest-reuse', files: 4, run: runJest },
  ])('$runner --shard=1/2 and 2/2: every file once, guests reused within each shard', async ({ fixture, files, run }) => {
    // Both shards at once, as on two CI machines (each has its own broker and guests).
    const shards = await Promise.all(['1/2', '2/2'].map((shard) => run(fixture, { args: [`--shard=${shard}`] })))
    for (const result of shards) expect(result.exitCode).toBe(0)
    expect(await qemuLeftAfter(fixture)).toEqual([])
    const ran = shards.flatMap((s) => s.tests.map((t) => `${t.file}: ${t.status}`))
    expect(ran.sort()).toEqual(Array.from({ length: files }, (_, i) => `f${i + 1}.test.${fixture.startsWith('jest') ? 'js' : 'ts'}: passed`))
    for (const shard of shards) {
      const ids = boots(shard.out)
      expect(Object.keys(ids)).toHaveLength(shard.tests.length) // each file recorded its boot
      expect(new Set(Object.values(ids)).size).toBeLessThanOrEqual(Math.min(2, shard.tests.length))
    }
  })
})
