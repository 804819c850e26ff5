// The Vitest environment end to end: the real `vitest` CLI on fixture
// projects that boot real guests, read through its JSON report.

import { spawn } from 'node:child_process'
import { existsSync, readFileSync, utimesSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { otherKernel, testKernel, vmSkipReason } from '../utils/vm-env.js'
import { boots, expectDaemonReaped, expectPanicVerdicts, expectSplatVerdicts, outcome, qemuLeftAfter, waitFor } from './helpers.js'
import { e2eEnv, fixtureKernel, fixtures, outDir, removeOutDirs, runVitest, type CliRun } from './run-cli.js'

describe.skipIf(vmSkipReason)('vitest environment', () => {
  afterAll(removeOutDirs)

  test('6 files on 2 workers boot at most 2 guests, and no file sees another one\'s writes', async () => {
    const run = await runVitest('vitest-reuse')
    expect(run.tests.map((t) => `${t.file}: ${t.status} ${t.message}`)).toEqual([1, 2, 3, 4, 5, 6].map((i) => `f${i}.test.ts: passed `).sort())
    const bootIds = boots(run.out)
    expect(Object.keys(bootIds).sort()).toEqual([1, 2, 3, 4, 5, 6].map((i) => `f${i}.test.ts`))
    expect(new Set(Object.values(bootIds)).size).toBeLessThanOrEqual(2)
    expect(run.exitCode).toBe(0)
    expect(await qemuLeftAfter('vitest-reuse')).toEqual([])
  })

  test('kernelMatrix: every file runs once per kernel, and each report line names the kernel it ran on', async () => {
    expect(otherKernel, 'a second kernel: run `npm run setup -- --kernel newest`').toBeTruthy()
    const out = outDir()
    const run = await runVitest('vitest-matrix', { env: e2eEnv(out, { VMTEST_E2E_MATRIX: `${testKernel}:${otherKernel}`, NO_COLOR: '1' }), args: ['--reporter=verbose'] })
    expect(run.tests.map((t) => `${t.file}: ${t.status} ${t.message}`).sort()).toEqual(['a.test.ts: passed ', 'a.test.ts: passed ', 'b.test.ts: passed ', 'b.test.ts: passed '])
    const releases = [testKernel!, otherKernel!].map((k) => k.replace(/^.*vmlinuz-/, ''))
    expect(releases[0]).not.toBe(releases[1])
    // Vitest prefixes each line with the project: the test ran on that kernel (the test itself checks uname -r).
    for (const release of releases) {
      for (const file of ['a', 'b']) expect(run.stdout).toMatch(new RegExp(`✓ \\|kernel ${release.replace(/[.+]/g, '\\$&')}\\| test/${file}\\.test\\.ts > runs on the kernel its project is named after`))
    }
    // A guest runs one kernel: no boot id is shared across kernels.
    const ids = boots(out)
    const guestsOf = (release: string) => new Set([ids[`${release}-a.test.ts`], ids[`${release}-b.test.ts`]])
    expect([...guestsOf(releases[0])].filter((id) => guestsOf(releases[1]).has(id))).toEqual([])
    expect(run.exitCode).toBe(0)
    expect(await qemuLeftAfter('vitest-matrix')).toEqual([])
  })

  describe.each([
    ['with the plugin', '1'],
    ['without the plugin', '0'],
  ])('per-test kernel verdicts %s', (_name, plugin) => {
    let run: CliRun
    test('runs', async () => {
      fixtureKernel('vitest-kernel')
      run = await runVitest('vitest-kernel', { env: { ...e2eEnv(outDir()), VMTEST_E2E_PLUGIN: plugin } })
      expect(run.exitCode).toBe(1)
      expect(await qemuLeftAfter('vitest-kernel')).toEqual([])
    })

    test('a WARNING written to /dev/kmsg fails only its test; an allowed one does not', () => {
      expectSplatVerdicts(run, 'splat.test.ts', 'vitest-kernel')
    })

    test('a panic fails only its test, with the panic text; the next test gets a fresh guest', () => {
      expectPanicVerdicts(run, 'panic.test.ts', 'vitest-kernel')
    })

    test('a daemon a test forks is killed when the test ends; one from beforeAll lives on', () => {
      expectDaemonReaped(run, 'daemon.test.ts')
    })

    test('@vmtest-kernel and @vmtest-kernel-args are honoured', () => {
      const docblock = outcome(run, 'docblock.test.ts', 'boots the docblock kernel with its arguments')
      expect(docblock.message).toBe('')
      expect(docblock.status).toBe('passed')
    })

    test('@vmtest-target boots the vmtest.toml target; an unknown one lists the known', () => {
      expect(outcome(run, 'target.test.ts', 'boots the vmtest.toml target')).toMatchObject({ status: 'passed', message: '' })
      const file = run.files.find((f) => f.file === 'unknown-target.test.ts')!
      const messages = [file.message, outcome(run, 'unknown-target.test.ts', 'never runs a command').message].join('\n')
      expect(messages).toContain(`Unknown target "no-such-target" (@vmtest-target in ${resolve(fixtures, 'vitest-kernel/test/unknown-target.test.ts')}). ${resolve(fixtures, 'vitest-kernel/vmtest.toml')} defines "e2e".`)
    })

    test('a missing docblock kernel is named, with the directive, within seconds', () => {
      const file = run.files.find((f) => f.file === 'missing-kernel.test.ts')!
      const messages = [file.message, outcome(run, 'missing-kernel.test.ts', 'never runs a command').message].join('\n')
      const path = resolve(fixtures, 'vitest-kernel/test/no-such-bzImage')
      expect(messages).toContain(`Kernel image not found: ${path} (from \`kernel\` in @vmtest-kernel in ${resolve(fixtures, 'vitest-kernel/test/missing-kernel.test.ts')})`)
      expect(file.durationMs).toBeLessThan(20_000)
    })
  })

  test('watch mode: rebuilding a kernel reruns exactly the files that boot it, on a new guest; Ctrl-C leaves nothing', async () => {
    const kernel = fixtureKernel('vitest-watch')
    const out = outDir()
    const vitest = spawn(process.execPath, [resolve('node_modules/vitest/vitest.mjs'), '--watch'], {
      cwd: join(fixtures, 'vitest-watch'),
      env: { ...process.env, ...e2eEnv(out), CI: '', FORCE_COLOR: '0' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // its own process group, so "Ctrl-C" reaches all of it
    })
    let output = ''
    vitest.stdout.on('data', (c: Buffer) => (output += c))
    vitest.stderr.on('data', (c: Buffer) => (output += c))
    const lines = (file: string) => (existsSync(join(out, file)) ? readFileSync(join(out, file), 'utf8').trim().split('\n') : [])
    try {
      await waitFor('the first run', () => ['uses-a', 'uses-b', 'other'].every((f) => lines(`${f}.test.ts.boots`).length === 1) && /Waiting for file changes/.test(output), 240_000, () => output)
      const now = new Date()
      utimesSync(kernel, now, now) // a rebuild, as far as anyone can tell
      await waitFor('the rerun', () => lines('uses-a.test.ts.boots').length === 2 && lines('uses-b.test.ts.boots').length === 2, 240_000, () => output)
      await new Promise((r) => setTimeout(r, 3000)) // room for a wrong rerun to show
      expect(lines('other.test.ts.boots')).toHaveLength(1)
      const [a1, a2] = lines('uses-a.test.ts.boots')
      const [b1, b2] = lines('uses-b.test.ts.boots')
      expect(a2).not.toBe(a1)
      expect(b2).not.toBe(b1)
      expect(a2).toBe(b2) // one fresh guest of the new image, reused by both files (one worker)
    } finally {
      process.kill(-vitest.pid!, 'SIGINT')
      await new Promise((r) => vitest.once('exit', r))
    }
    expect(await qemuLeftAfter('vitest-watch')).toEqual([])
  })
})
