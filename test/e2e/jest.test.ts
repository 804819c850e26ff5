// The Jest environment end to end: the real `jest` CLI (--json) on fixture
// projects that boot real guests, with several workers and in band.

import { spawn } from 'node:child_process'
import { existsSync, readFileSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { otherKernel, qemuProcesses, testKernel, vmSkipReason } from '../utils/vm-env.js'
import { boots, expectDaemonReaped, expectPanicVerdicts, expectSplatVerdicts, outcome, qemuLeftAfter, waitFor } from './helpers.js'
import { e2eEnv, fixtureKernel, fixtures, jestBin, outDir, removeOutDirs, runJest, type CliRun } from './run-cli.js'

describe.skipIf(vmSkipReason)('jest environment', () => {
  afterAll(removeOutDirs)

  test.each([
    { mode: '2 workers', args: ['--maxWorkers=2'], maxBoots: 2 },
    { mode: 'in band', args: ['--runInBand'], maxBoots: 1 },
  ])('4 files, $mode: guests are reused (at most $maxBoots boots) and no file sees another one\'s writes', async ({ args, maxBoots }) => {
    const run = await runJest('jest-reuse', { args })
    expect(run.tests.map((t) => `${t.file}: ${t.status} ${t.message}`).sort()).toEqual([1, 2, 3, 4].map((i) => `f${i}.test.js: passed `))
    const ids = boots(run.out)
    expect(Object.keys(ids).sort()).toEqual([1, 2, 3, 4].map((i) => `f${i}.test.js`))
    expect(new Set(Object.values(ids)).size).toBeLessThanOrEqual(maxBoots)
    expect(run.exitCode).toBe(0)
    expect(await qemuLeftAfter('jest-reuse')).toEqual([])
  })

  test('kernelMatrix: every file runs once per kernel, and each PASS line names the kernel', async () => {
    expect(otherKernel, 'a second kernel: run `npm run setup -- --kernel newest`').toBeTruthy()
    const out = outDir()
    const run = await runJest('jest-matrix', { env: e2eEnv(out, { VMTEST_E2E_MATRIX: `${testKernel}:${otherKernel}` }), args: ['--maxWorkers=2'] })
    expect(run.tests.map((t) => `${t.file}: ${t.status} ${t.message}`).sort()).toEqual(['a.test.js: passed ', 'a.test.js: passed ', 'b.test.js: passed ', 'b.test.js: passed '])
    const releases = [testKernel!, otherKernel!].map((k) => k.replace(/^.*vmlinuz-/, ''))
    // Each file recorded, by the guest's uname -r, that it ran on each kernel.
    expect(Object.keys(boots(out)).sort()).toEqual(releases.flatMap((r) => [`${r}-a.test.js`, `${r}-b.test.js`]).sort())
    for (const release of releases) {
      for (const file of ['a', 'b']) expect(run.stderr).toMatch(new RegExp(`PASS +kernel ${release.replace(/[.+]/g, '\\$&')} +test/${file}\\.test\\.js`))
    }
    expect(run.exitCode).toBe(0)
    expect(await qemuLeftAfter('jest-matrix')).toEqual([])
  })

  describe.each([
    ['2 workers', ['--maxWorkers=2']],
    ['in band', ['--runInBand']],
  ])('per-test kernel verdicts, %s', (_name, args) => {
    let run: CliRun
    test('runs', async () => {
      fixtureKernel('jest-kernel', 'bzImage.img')
      run = await runJest('jest-kernel', { args })
      expect(run.exitCode).toBe(1)
      expect(await qemuLeftAfter('jest-kernel')).toEqual([])
    })

    test('a WARNING written to /dev/kmsg fails only its test; an allowed one does not', () => {
      expectSplatVerdicts(run, 'splat.test.js', 'jest-kernel')
    })

    test('a panic fails only its test, with the panic text; the next test gets a fresh guest', () => {
      expectPanicVerdicts(run, 'panic.test.js', 'jest-kernel')
    })

    test('a daemon a test forks is killed when the test ends; one from beforeAll lives on', () => {
      expectDaemonReaped(run, 'daemon.test.js')
    })

    test('@vmtest-kernel and @vmtest-kernel-args pragmas are honoured', () => {
      expect(outcome(run, 'docblock.test.js', 'boots the docblock kernel with its arguments')).toMatchObject({ status: 'passed', message: '' })
    })

    test('a missing docblock kernel fails its file with the path and the pragma, within seconds', () => {
      const file = run.files.find((f) => f.file === 'missing-kernel.test.js')!
      const path = join(fixtures, 'jest-kernel/test/no-such-bzImage')
      expect(file.message).toContain(`Kernel image not found: ${path} (from \`kernel\` in @vmtest-kernel in ${join(fixtures, 'jest-kernel/test/missing-kernel.test.js')})`)
      expect(file.durationMs).toBeLessThan(20_000)
    })

    test('a file that does not use the guest passes', () => {
      expect(outcome(run, 'plain.test.js', 'needs no guest').status).toBe('passed')
    })
  })

  test('setup() boots nothing for a file that does not use the guest', async () => {
    let sawQemu = false
    const watch = setInterval(() => (sawQemu ||= qemuProcesses(join(fixtures, 'jest-kernel')).length > 0), 100)
    const run = await runJest('jest-kernel', { args: ['test/plain.test.js'] }).finally(() => clearInterval(watch))
    expect(run.tests.map((t) => t.status)).toEqual(['passed'])
    expect(run.stderr).not.toContain('vmtest: booting')
    expect(sawQemu).toBe(false)
  })

  test('watch recipe (--watchAll + plugin): rebuilding a kernel reruns exactly the files that boot it, on a new guest; Ctrl-C leaves nothing', async () => {
    const project = 'jest-watch'
    const kernel = fixtureKernel(project, 'bzImage.img')
    fixtureKernel(project, 'other.img')
    const out = outDir()
    const jest = spawn(process.execPath, [jestBin, '--watchAll'], {
      cwd: join(fixtures, project),
      env: { ...process.env, ...e2eEnv(out), CI: '', FORCE_COLOR: '0' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // its own process group, so "Ctrl-C" reaches all of it
    })
    let output = ''
    jest.stdout.on('data', (c: Buffer) => (output += c))
    jest.stderr.on('data', (c: Buffer) => (output += c))
    const lines = (file: string) => (existsSync(join(out, file)) ? readFileSync(join(out, file), 'utf8').trim().split('\n') : [])
    const rebuild = () => {
      const now = new Date()
      utimesSync(kernel, now, now)
    }
    const settled = () => /Ran all test suites/.test(output)
    try {
      await waitFor('the first run', () => settled() && lines('other.test.js.boots').length === 1, 240_000, () => output)
      const before = { a: lines('uses-a.test.js.boots').length, b: lines('uses-b.test.js.boots').length, other: lines('other.test.js.boots').length }
      for (const round of [1, 2]) {
        output = ''
        rebuild()
        await waitFor(`rerun ${round}`, () => settled() && lines('uses-a.test.js.boots').length === before.a + round && lines('uses-b.test.js.boots').length === before.b + round, 240_000, () => output)
      }
      await new Promise((r) => setTimeout(r, 3000)) // room for a wrong rerun to show
      expect(lines('other.test.js.boots')).toHaveLength(before.other)
      const [a1, a2] = lines('uses-a.test.js.boots').slice(-2)
      const [b1, b2] = lines('uses-b.test.js.boots').slice(-2)
      expect(a2).not.toBe(a1)
      expect(b2).not.toBe(b1)
    } finally {
      process.kill(-jest.pid!, 'SIGINT')
      await new Promise((r) => jest.once('exit', r))
    }
    expect(await qemuLeftAfter(project)).toEqual([])
  })
})
