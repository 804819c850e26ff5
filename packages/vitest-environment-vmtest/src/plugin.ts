// `vitest-environment-vmtest/plugin`: sets the environment (when the config
// does not), leases each file's guest before its tests, starts the guest broker
// with the run, and makes watch mode kernel-aware: a test file depends on the
// kernel image it boots, so rebuilding that image reruns exactly its files.

import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'
import type { Plugin } from 'vite'
import type { TestProjectInlineConfiguration } from 'vitest/config'
import { cacheDir, chooseKernel, matrixKernels, mergeFileOptions, parseDocblock, type MatrixEntry } from '@vmtest/core/runner'

export interface VmtestPluginOptions {
  /** Watch the kernel images test files use and rerun them when one changes (default true). */
  watchKernels?: boolean
}

const here = dirname(fileURLToPath(import.meta.url))
const SETUP_FILE = resolve(here, 'setup-file.js')
const GLOBAL_SETUP = resolve(here, 'global-setup.js')
/** A test file that uses vmtest: it imports the guest or names a vmtest directive. */
const USES_VMTEST = /vitest-environment-vmtest|@vmtest-/

export default function vmtest(options: VmtestPluginOptions = {}): Plugin {
  let root = process.cwd()
  let configOptions: Record<string, unknown> | undefined
  return {
    name: 'vitest-environment-vmtest',
    config(userConfig) {
      const test = (userConfig as { test?: { environment?: string } }).test
      // A scalar from a plugin overrides the user's, so only fill a gap.
      return {
        test: {
          ...(test?.environment ? {} : { environment: 'vmtest' }),
          setupFiles: [SETUP_FILE],
          globalSetup: [GLOBAL_SETUP],
        },
      } as Record<string, unknown>
    },
    configResolved(config) {
      root = config.root
      const test = (config as unknown as { test?: { environmentOptions?: Record<string, unknown> } }).test
      configOptions = test?.environmentOptions?.vmtest as Record<string, unknown> | undefined
    },
    transform(code, id) {
      if (options.watchKernels === false || id.includes('/node_modules/') || !USES_VMTEST.test(code)) return
      const kernel = kernelOf(code, id.split('?')[0], root, configOptions)
      if (kernel) this.addWatchFile(kernel)
    },
  }
}

/**
 * One Vitest project per kernel, for `test.projects`: the same tests (from `project`, which
 * extends the root config by default) run once on each kernel. Each project is named
 * "kernel <release>" (or the entry's `name`), and Vitest prints that name on every report line.
 * Relative paths resolve against the working directory. A file's @vmtest-kernel still wins.
 */
export function kernelMatrix(kernels: MatrixEntry[], project: TestProjectInlineConfiguration = {}): TestProjectInlineConfiguration[] {
  const test = project.test ?? {}
  const vmtestOptions = (test.environmentOptions?.vmtest ?? {}) as Record<string, unknown>
  return matrixKernels(kernels, process.cwd(), 'kernelMatrix').map(({ name, kernel }) => ({
    extends: true,
    ...project,
    test: { ...test, name, environmentOptions: { ...test.environmentOptions, vmtest: { ...vmtestOptions, kernel } } },
  }))
}

/** The kernel image a test file boots, as the environment will choose it; undefined if that cannot be told. */
function kernelOf(code: string, file: string, root: string, configOptions: Record<string, unknown> | undefined): string | undefined {
  try {
    const { guest } = mergeFileOptions({ file, directives: parseDocblock(code, file), rootDir: root, config: { source: 'environmentOptions.vmtest of the Vitest config', options: configOptions } })
    return guest.kernel ? resolve(guest.kernel) : chooseKernel(undefined, '', cacheDir()).path
  } catch {
    return undefined // the environment reports a bad option when the file runs
  }
}
