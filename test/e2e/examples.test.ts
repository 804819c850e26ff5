// The examples, run as a user runs them: each is a real Vitest project.

import { resolve } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { vmSkipReason } from '../utils/vm-env.js'
import { removeOutDirs, runJest, runVitest, type CliRun } from './run-cli.js'

const example = (name: string) => resolve(import.meta.dirname, '../../examples', name)

describe.skipIf(vmSkipReason)('examples', () => {
  afterAll(removeOutDirs)
  const summary = (run: CliRun) => run.tests.map((t) => `${t.file} > ${t.title}: ${t.status}${t.message ? `\n${t.message}` : ''}`)

  test('vitest-basic passes', async () => {
    const run = await runVitest(example('vitest-basic'))
    expect(summary(run).sort()).toEqual([
      'filesystem.test.ts > writes to the root stay in the guest: passed',
      'filesystem.test.ts > the project is shared at its own path: passed',
      'kernel.test.ts > runs in the guest kernel: passed',
      'kernel.test.ts > execa-style template, arguments escaped: passed',
      'kernel.test.ts > a failing command rejects with its exit code and stderr: passed',
    ].sort())
    expect(run.exitCode).toBe(0)
  })

  test('kernel-module passes, and its WARN_ON and Oops tests fail with the kernel report', async () => {
    const green = await runVitest(example('kernel-module'))
    expect(green.tests.map((t) => `${t.title}: ${t.status}`)).toEqual([
      'loads with its parameter, shows it in sysfs and logs it: passed',
      'the parameter is read-only: passed',
      'unloads cleanly: passed',
      'an expected WARNING can be allowed: passed',
    ])
    expect(green.exitCode).toBe(0)

    const red = await runVitest(example('kernel-module'), { env: { VMTEST_SHOW_FAILURE: '1' } })
    const find = (title: string) => red.tests.find((t) => t.title === title)!
    const warns = find('a module that hits WARN_ON fails the test that loaded it')
    const next = find('the next test is judged on its own window')
    expect(warns.status).toBe('failed')
    expect(warns.message).toMatch(/^VmtestError: The guest kernel \(\S+\) reported a problem while this test ran:\nwarning: WARNING: CPU: \d+ PID: \d+ at \S+vmtest_demo\.c:\d+ vmtest_demo_init\+/)
    expect(next).toMatchObject({ status: 'passed' })
    // A real Oops (a NULL dereference in the module's init): insmod is killed, the report fails the test, the kernel lives on.
    const oops = find('a module that oopses fails the test that loaded it')
    expect(oops.status).toBe('failed')
    expect(oops.message).toMatch(/^VmtestError: Command failed with exit code 137 in the guest: insmod \S+vmtest_demo\.ko oops=1\n/)
    expect(oops.message).toMatch(/VmtestError: The guest kernel \(\S+\) reported a problem while this test ran:\noops: BUG: kernel NULL pointer dereference, address: 0+\n/)
    expect(oops.message).toMatch(/RIP: 0010:vmtest_demo_init\+/)
    expect(find('the kernel survives the Oops: the next test runs').status).toBe('passed')
    expect(red.exitCode).toBe(1)
  })

  test('ebpf passes: a clang-built program counts execs in the guest, and a verifier rejection says why', async () => {
    const run = await runVitest(example('ebpf'))
    expect(summary(run)).toEqual([
      'exec-count.test.ts > the program counts exec()s per command name: passed',
      'exec-count.test.ts > detaching stops the counting: passed',
      'exec-count.test.ts > the verifier rejects a map value used without a NULL check, and says why: passed',
    ])
    expect(run.exitCode).toBe(0)
  })

  test('jest-basic passes', async () => {
    const run = await runJest(example('jest-basic'))
    expect(summary(run).sort()).toEqual([
      'filesystem.test.js > the project is shared at its own path: passed',
      'filesystem.test.js > writes to the root stay in the guest: passed',
      'kernel.test.js > an expected kernel warning can be allowed: passed',
      'kernel.test.js > execa-style template, arguments escaped: passed',
      'kernel.test.js > runs in the guest kernel: passed',
    ])
    expect(run.exitCode).toBe(0)
  })
})
