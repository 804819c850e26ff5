// A Jest watch plugin for `jest --watchAll`: when a run was set off by a
// rebuilt kernel image, only the test files that boot that image (their
// `@vmtest-kernel`) run, plus any test file that changed itself. Any other
// change runs everything, as --watchAll does. (`jest --watch` cannot do this:
// it picks tests from what git reports as changed, and a built kernel is
// normally ignored by git.) Jest only notices files whose extension is in
// `moduleFileExtensions`: give the image one, e.g. kernels/bzImage.img.

import { readFileSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

const KERNEL = /@vmtest-kernel\s+(\S+)/

interface JestHooks {
  onFileChange(listener: (change: { projects: Array<{ testPaths: string[] }> }) => void): void
  shouldRunTestSuite(decide: (suite: { testPath: string }) => boolean): void
  onTestRunComplete(listener: () => void): void
}

class VmtestWatchPlugin {
  private testPaths: string[] = []
  /** mtime of each test file and kernel when the last run started. */
  private readonly seen = new Map<string, number>()
  /** This run's choice, made at its first suite: 'all' or the test files to run. */
  private choice?: 'all' | Set<string>

  apply(hooks: JestHooks): void {
    hooks.onFileChange(({ projects }) => (this.testPaths = projects.flatMap((p) => p.testPaths)))
    hooks.onTestRunComplete(() => (this.choice = undefined))
    hooks.shouldRunTestSuite(({ testPath }) => {
      this.choice ??= this.choose()
      return this.choice === 'all' || this.choice.has(testPath)
    })
  }

  private choose(): 'all' | Set<string> {
    const kernels = new Map(this.testPaths.map((test) => [test, kernelOf(test)]))
    const changed = new Set<string>()
    const firstRun = this.seen.size === 0
    for (const file of new Set([...this.testPaths, ...kernels.values()].filter((f): f is string => !!f))) {
      const mtime = mtimeOf(file)
      if (this.seen.has(file) && this.seen.get(file) !== mtime) changed.add(file)
      this.seen.set(file, mtime)
    }
    const byKernel = this.testPaths.filter((test) => changed.has(kernels.get(test) ?? ''))
    if (firstRun || byKernel.length === 0) return 'all'
    return new Set([...byKernel, ...this.testPaths.filter((test) => changed.has(test))])
  }
}

function kernelOf(testPath: string): string | undefined {
  try {
    const match = KERNEL.exec(readFileSync(testPath, 'utf8'))
    return match ? resolve(dirname(testPath), match[1].replace(/\*\/$/, '')) : undefined
  } catch {
    return undefined
  }
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs
  } catch {
    return -1
  }
}

export = VmtestWatchPlugin
