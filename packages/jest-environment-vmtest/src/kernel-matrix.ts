// `jest-environment-vmtest/kernel-matrix`: one Jest project per kernel, for
// `projects` in an async Jest config. Each project's displayName is
// "kernel <release>" (or the entry's `name`), which Jest prints on every
// PASS/FAIL line.

import type { Config } from '@jest/types'
import type { MatrixEntry } from '@vmtest/core/runner'

type ProjectConfig = Config.InitialProjectOptions

/**
 * `project` is the whole project config (Jest projects do not inherit the root config); its
 * `testEnvironmentOptions.vmtest` gets each kernel. Relative paths resolve against the working directory.
 */
export async function kernelMatrix(kernels: MatrixEntry[], project: ProjectConfig = {}): Promise<ProjectConfig[]> {
  const { matrixKernels } = await import('@vmtest/core/runner')
  const environmentOptions = project.testEnvironmentOptions ?? {}
  const vmtestOptions = (environmentOptions.vmtest ?? {}) as Record<string, unknown>
  return matrixKernels(kernels, process.cwd(), 'kernelMatrix').map(({ name, kernel }) => ({
    testEnvironment: 'jest-environment-vmtest',
    ...project,
    displayName: name,
    testEnvironmentOptions: { ...environmentOptions, vmtest: { ...vmtestOptions, kernel } },
  }))
}
