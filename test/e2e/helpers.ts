// Helpers shared by the runner e2e tests.

import { readFileSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { qemuProcesses } from '../utils/vm-env.js'
import { expect } from 'vitest'
import { fixtures, type CliRun } from './run-cli.js'

/** QEMU of a fixture run: its command line names the fixture dir (shared at /mnt/vmtest). */
export async function qemuLeftAfter(fixture: string): Promise<number[]> {
  const needle = resolve(fixtures, fixture)
  // Guests get a bounded power-off after the run; wait it out, then look.
  for (let i = 0; i < 50 && qemuProcesses(needle).length > 0; i++) await new Promise((r) => setTimeout(r, 200))
  return qemuProcesses(needle)
}

export function outcome(run: CliRun, file: string, title: string) {
  const found = run.tests.find((t) => t.file === file && t.title === title)
  if (!found) throw new Error(`no test "${title}" in ${file}; report:\n${JSON.stringify(run.tests, null, 2)}\n${run.stderr}`)
  return found
}

/** The boot ids the fixture's files recorded: file name -> boot id. */
export const boots = (out: string): Record<string, string> =>
  Object.fromEntries(readdirSync(out).filter((f) => f.endsWith('.boot')).map((f) => [f.replace(/\.boot$/, ''), readFileSync(join(out, f), 'utf8').trim()]))

/** Polls `ready` every 250 ms; the error quotes what the process said so far. */
export async function waitFor(what: string, ready: () => boolean, ms: number, said: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the runner said:\n${said()}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** The splat fixture (splat.test.*): a WARNING written to /dev/kmsg fails only its test; an allowed one does not. */
export function expectSplatVerdicts(run: CliRun, file: string, project: string): void {
  expect(outcome(run, file, 'clean before').status).toBe('passed')
  const warns = outcome(run, file, 'warns')
  expect(warns.status).toBe('failed')
  expect(warns.message).toMatch(/The guest kernel \(\S+\) reported a problem while this test ran:\nwarning: WARNING: CPU: 0 PID: 1 at drivers\/vmtest\/e2e\.c:12 e2e_probe\+0x1c\/0x40\n/)
  expect(warns.message).toContain('guest.allowKernelLog(/pattern/)')
  const log = expectFailureLog(warns.message, project, `test/${file}`, 'warns')
  expect(log).toContain('== Kernel log while the test ran')
  expect(log).toMatch(/\nWARNING: CPU: 0 PID: 1 at drivers\/vmtest\/e2e\.c:12 e2e_probe/)
  expect(outcome(run, file, 'warns but allows it').status).toBe('passed')
  expect(outcome(run, file, 'clean after').status).toBe('passed')
}

/** The panic fixture (panic.test.*): the panic fails only its test, with the panic text; the next test gets a fresh guest. */
export function expectPanicVerdicts(run: CliRun, file: string, project: string): void {
  expect(outcome(run, file, 'before the panic').status).toBe('passed')
  const panic = outcome(run, file, 'panics')
  expect(panic.status).toBe('failed')
  expect(panic.message).toMatch(/Guest kernel panicked \(\S+, [\d.]+ s after boot\): Kernel panic - not syncing: sysrq triggered crash \(while running `echo c > \/proc\/sysrq-trigger`\)/)
  // Read from the guest's temp dir, or, once that is gone with the guest, from where the crash kept it.
  expect(expectFailureLog(panic.message, project, `test/${file}`, 'panics')).toMatch(/== The guest's whole console \(\S+\) ==\n[^]*Kernel panic - not syncing: sysrq triggered crash/)
  expect(outcome(run, file, 'after the panic').status).toBe('passed')
  const ids = boots(run.out)
  expect(ids['panic-after']).toBeTruthy()
  expect(ids['panic-after']).not.toBe(ids['panic-before'])
}

/** A failed test's report names its failure log at .vmtest/results/<file>/<test>.log under the project;
 * the log has the test, QEMU's command line and the guest's console. Returns the log. */
export function expectFailureLog(message: string, project: string, file: string, test: string): string {
  const named = /Console log and QEMU command line: (\S+)/.exec(message)?.[1]
  expect(named).toBe(`.vmtest/results/${file}/${test}.log`)
  const log = readFileSync(resolve(fixtures, project, named!), 'utf8')
  expect(log).toMatch(new RegExp(`^test: +${test}\n`))
  expect(log).toMatch(/\nqemu: +\S*qemu-system-x86_64 .*-kernel \S+/)
  expect(log).toMatch(/== The guest's whole console[^]*vmtest-init: [\d.]+ root mounted/)
  return log
}

/** The daemon fixture (daemon.test.*): what a test forks is killed when it ends; what beforeAll started is not. */
export function expectDaemonReaped(run: CliRun, file: string): void {
  expect(outcome(run, file, 'forks a daemon')).toMatchObject({ status: 'passed', message: '' })
  expect(outcome(run, file, "the previous test's daemon was killed when it ended; the beforeAll one runs on")).toMatchObject({ status: 'passed', message: '' })
}
