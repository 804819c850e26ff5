// Faults during a real `vitest` run: a killed worker, a killed broker, Ctrl-C
// and SIGTERM to the runner, two runs at once. Each fails what it must, with a
// clear message, and leaves no qemu, socket or temp dir behind.

import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'
import { afterAll, describe, expect, test } from 'vitest'
import { vmSkipReason } from '../utils/vm-env.js'
import { boots, outcome, qemuLeftAfter, waitFor } from './helpers.js'
import { e2eEnv, fixtures, outDir, removeOutDirs, runVitest, vitestBin } from './run-cli.js'

/** vmtest's temp dirs and broker dirs (/tmp/vmtest-<pid>-…) made since `since` and still there. */
async function tempDirsLeftSince(since: number): Promise<string[]> {
  const left = () =>
    readdirSync(tmpdir()).filter((name) => {
      if (!/^vmtest-\d+-/.test(name)) return false
      try {
        return statSync(join(tmpdir(), name)).ctimeMs >= since
      } catch {
        return false
      }
    })
  // A broker cleans up after powering its guests off: give it its bounded time.
  for (let i = 0; i < 50 && left().length > 0; i++) await new Promise((r) => setTimeout(r, 200))
  return left()
}

describe.skipIf(vmSkipReason)('faults during a run', () => {
  afterAll(removeOutDirs)

  test('a killed worker fails only its file, the next file gets the renewed guest without its command; a killed broker fails the running command clearly, the next file gets a new broker and guest', async () => {
    const started = Date.now()
    const out = outDir()
    const run = await runVitest('vitest-faults', { env: e2eEnv(out), args: ['--reporter=default'] })
    expect(stripVTControlCharacters(run.stderr)).toContain('Caused by: Error: Worker exited unexpectedly')
    const ids = boots(out)
    expect(outcome(run, 'b-after-worker.test.ts', "the next file gets a guest without the killed worker's command")).toMatchObject({ status: 'passed' })
    expect(ids['b-after-worker']).toBe(ids['a-kill-worker'])
    expect(readFileSync(join(out, 'b-after-worker.ps'), 'utf8')).toBe('')

    const killed = outcome(run, 'c-kill-broker.test.ts', 'the broker is SIGKILLed while a command runs')
    expect(killed.status).toBe('failed')
    expect(killed.message).toMatch(/^VmtestError: The connection to the vmtest guest broker closed: the test run is ending, or the broker died\.\n/)
    expect(outcome(run, 'd-after-broker.test.ts', 'the next file gets a new broker and a new guest')).toMatchObject({ status: 'passed', message: '' })
    expect(ids['d-after-broker']).toBeTruthy()
    expect(ids['d-after-broker']).not.toBe(ids['c-kill-broker'])

    expect(run.exitCode).toBe(1)
    expect(await qemuLeftAfter('vitest-faults')).toEqual([])
    expect(await tempDirsLeftSince(started)).toEqual([])
  })

  test.each([
    { signal: 'SIGINT', to: 'process group', during: 'a boot' },
    { signal: 'SIGTERM', to: 'runner', during: 'a command' },
  ] as const)('$signal to the $to during $during: the run ends within seconds, leaving nothing', async ({ signal, to, during }) => {
    const started = Date.now()
    const out = outDir()
    const vitest = spawn(process.execPath, [vitestBin, 'run'], {
      cwd: join(fixtures, 'vitest-faults'),
      env: { ...process.env, ...e2eEnv(out), VMTEST_E2E_FILES: 'e-long', CI: '', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, as a terminal's Ctrl-C sees it
    })
    let output = ''
    vitest.stdout.on('data', (c: Buffer) => (output += c))
    vitest.stderr.on('data', (c: Buffer) => (output += c))
    const exited = new Promise<number | string>((ok) => vitest.on('exit', (code, sig) => ok(code ?? sig!)))
    if (during === 'a boot') await waitFor('the boot', () => /vmtest: booting /.test(output), 60_000, () => output)
    else await waitFor('the long command', () => existsSync(join(out, 'e-long.reached')), 120_000, () => output)
    const signalled = Date.now()
    process.kill(to === 'runner' ? vitest.pid! : -vitest.pid!, signal)
    const timer = setTimeout(() => process.kill(-vitest.pid!, 'SIGKILL'), 30_000)
    await exited
    clearTimeout(timer)
    expect(Date.now() - signalled).toBeLessThan(15_000)
    expect(await qemuLeftAfter('vitest-faults')).toEqual([])
    expect(await tempDirsLeftSince(started)).toEqual([])
  })

  test('two runs of one suite at once do not collide: both pass, each with its own guests', async () => {
    const outs = [outDir(), outDir()]
    // Three files on one worker each: two guests in all, one per core.
    const runs = await Promise.all(outs.map((out) => runVitest('vitest-reuse', { env: e2eEnv(out), args: ['--maxWorkers=1', 'f1.test', 'f2.test', 'f3.test'] })))
    for (const run of runs) {
      expect(run.tests.map((t) => `${t.file}: ${t.status} ${t.message}`)).toEqual([1, 2, 3].map((i) => `f${i}.test.ts: passed `))
      expect(run.exitCode).toBe(0)
    }
    const [a, b] = outs.map((out) => new Set(Object.values(boots(out))))
    expect(a.size).toBe(1)
    expect(b.size).toBe(1)
    expect([...a].filter((id) => b.has(id))).toEqual([])
    expect(await qemuLeftAfter('vitest-reuse')).toEqual([])
  })
})
