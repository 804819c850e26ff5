// `testEnvironment: 'vmtest'`: jest-environment-node plus a guest. One instance
// per test file: setup() leases the file's guest from the run's broker (only if
// the file uses vmtest), each test gets its kernel log window and verdict
// through handleTestEvent, teardown() gives the guest back.

import { readFileSync } from 'node:fs'
import { TestEnvironment as NodeEnvironment } from 'jest-environment-node'
import type { EnvironmentContext, JestEnvironmentConfig } from '@jest/environment'
import type { Circus } from '@jest/types'
import type * as Runner from '@vmtest/core/runner'
import { GUEST_KEY, type GlobalWithGuest } from './shared.js'

/** A file that uses vmtest: it requires the guest or names a vmtest directive. */
const USES_VMTEST = /jest-environment-vmtest|@vmtest-/

export class VmtestEnvironment extends NodeEnvironment {
  private readonly testPath: string
  private readonly rootDir: string
  private readonly configOptions?: Record<string, unknown>
  private session?: Runner.FileSession
  private tornDown = false

  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context)
    this.testPath = context.testPath
    this.rootDir = config.projectConfig.rootDir
    this.configOptions = (config.projectConfig.testEnvironmentOptions as { vmtest?: Record<string, unknown> }).vmtest
  }

  override async setup(): Promise<void> {
    await super.setup()
    // The engine is ES modules; this package is loaded by Jest's require.
    const runner: typeof Runner = await import('@vmtest/core/runner')
    const source = readFileSync(this.testPath, 'utf8')
    const session = new runner.FileSession({
      file: this.testPath,
      options: () => this.options(runner, source),
      print: (line) => process.stderr.write(`${line}\n`),
    })
    this.session = session
    ;(this.global as unknown as GlobalWithGuest)[GUEST_KEY] = runner.createGuestFacade({ session: () => session })
    // Boot before the tests (a boot must not count against a test's timeout), but only for a file that uses the guest.
    if (USES_VMTEST.test(source)) await session.guest()
  }

  async handleTestEvent(event: Circus.Event): Promise<void> {
    const session = this.session
    if (!session) return
    if (event.name === 'test_start') {
      // After a crash the next test gets a fresh guest, booted here rather than in its body.
      if (session.crashed) await session.guest().catch(() => {})
      session.testStarted(testName(event.test))
    } else if (event.name === 'test_done') {
      const errors = await session.testFinished(event.test.errors.length > 0, event.test.errors)
      event.test.errors.push(...errors)
    }
  }

  override async teardown(): Promise<void> {
    if (this.tornDown) return
    this.tornDown = true
    await this.session?.close()
    this.session = undefined
    await super.teardown()
  }

  /** vmtest.toml target < testEnvironmentOptions.vmtest < @jest-environment-options < @vmtest-* directives. */
  private options(runner: typeof Runner, source: string): Runner.MergedOptions {
    const directives = runner.parseDocblock(source, this.testPath)
    // Jest merges the file's options into testEnvironmentOptions itself; `{"vmtest": {...}}` there means the same as `{...}`.
    const fileOptions = directives.environmentOptions
    if (fileOptions && typeof fileOptions.vmtest === 'object') directives.environmentOptions = fileOptions.vmtest as Record<string, unknown>
    return runner.mergeFileOptions({
      file: this.testPath,
      directives,
      rootDir: this.rootDir,
      config: { source: 'testEnvironmentOptions.vmtest of the Jest config', options: this.configOptions },
    })
  }
}

function testName(test: Circus.TestEntry): string {
  const names = [test.name]
  for (let block: Circus.DescribeBlock | undefined = test.parent; block && block.name !== 'ROOT_DESCRIBE_BLOCK'; block = block.parent) names.unshift(block.name)
  return names.join(' ')
}
