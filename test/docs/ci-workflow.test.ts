// The CI workflow users copy (examples/ci/github-actions.yml) must keep
// mirroring this repository's CI script and the product's defaults.

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, test } from 'vitest'
import { parse } from 'yaml'
import { DEFAULT_RESULTS_DIR } from '../../packages/core/src/config/merge.js'

const root = resolve(import.meta.dirname, '../..')
const workflow = parse(readFileSync(resolve(root, 'examples/ci/github-actions.yml'), 'utf8'))
const job = workflow.jobs.test
const steps: Array<{ name?: string; run?: string; uses?: string; with?: Record<string, unknown>; if?: string }> = job.steps
const runs = steps.map((s) => s.run ?? '').join('\n')
/** The packages an `apt-get install` line in `text` names. */
const aptPackages = (text: string) => (/apt-get install[^\n]*/.exec(text)?.[0] ?? '').split(/\s+/).filter((w) => /^[a-z0-9][a-z0-9.+-]+$/.test(w) && !['apt-get', 'install'].includes(w))

describe('examples/ci/github-actions.yml', () => {
  test("installs the product's host packages, as .ci/run does", () => {
    const product = ['qemu-system-x86', 'busybox-static', 'qemu-guest-agent', 'xz-utils']
    expect(aptPackages(readFileSync(resolve(root, '.ci/run'), 'utf8'))).toEqual(expect.arrayContaining(product))
    expect(aptPackages(runs)).toEqual(expect.arrayContaining(product))
  })

  test('switches KVM on only where /dev/kvm exists, and warns when it does not', () => {
    expect(runs).toMatch(/if \[ -e \/dev\/kvm \]; then[^]*udevadm trigger --name-match=kvm[^]*else[^]*::warning::[^\n]*TCG/)
  })

  test('caches the whole vmtest cache (kernel, vmlinux, initramfs) keyed on the kernel package version', () => {
    const cache = steps.find((s) => s.uses?.startsWith('actions/cache@'))!
    expect(cache.with).toEqual({ path: '~/.cache/vmtest', key: expect.stringContaining('${{ steps.kernel.outputs.version }}') })
    expect(steps.findIndex((s) => s.uses?.startsWith('actions/cache@'))).toBeLessThan(steps.findIndex((s) => s.run === 'npx vmtest setup'))
  })

  test('runs one shard per matrix entry, and the shard count matches the matrix', () => {
    expect(job.env.SHARDS).toBe(job.strategy.matrix.shard.length)
    expect(job.strategy.matrix.shard).toEqual(Array.from({ length: job.env.SHARDS }, (_, i) => i + 1))
    expect(runs).toContain('npx vitest run --shard=${{ matrix.shard }}/${{ env.SHARDS }}')
  })

  test("uploads the failing tests' logs from where vmtest writes them", () => {
    const upload = steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'))!
    expect(upload.if).toBe('failure()')
    expect(upload.with?.path).toBe(`${DEFAULT_RESULTS_DIR}/`)
  })
})
