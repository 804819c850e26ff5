// Runs the real `vitest` or `jest` CLI on a fixture project and reads its JSON
// report (Vitest's json reporter writes Jest's format).

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { testKernel } from '../utils/vm-env.js'

const here = dirname(fileURLToPath(import.meta.url))
export const fixtures = join(here, 'fixtures')
export const vitestBin = resolve(here, '../../node_modules/vitest/vitest.mjs')
export const jestBin = resolve(here, '../../node_modules/jest/bin/jest.js')

export interface TestOutcome {
  file: string
  title: string
  status: 'passed' | 'failed' | 'skipped' | 'pending' | 'todo'
  message: string
  durationMs: number
}

export interface CliRun {
  exitCode: number | undefined
  tests: TestOutcome[]
  /** Per file: the error that failed it outside a test (e.g. a bad option), and how long it took. */
  files: Array<{ file: string; message: string; durationMs: number }>
  stdout: string
  stderr: string
  /** What the fixture's tests wrote to VMTEST_E2E_OUT. */
  out: string
  wallMs: number
}

export function kernelModules(): string {
  // .../boot/vmlinuz-R -> .../lib/modules/R
  const release = testKernel!.replace(/^.*vmlinuz-/, '')
  return resolve(dirname(testKernel!), '..', 'lib', 'modules', release)
}

/** Puts a copy of the test kernel at <fixture>/kernels/bzImage (a file a test may rebuild, i.e. touch). */
export function fixtureKernel(fixture: string, name = 'bzImage'): string {
  const path = resolve(fixtures, fixture, 'kernels', name)
  mkdirSync(dirname(path), { recursive: true })
  cpSync(testKernel!, path)
  return path
}

export function e2eEnv(out: string, extra: Record<string, string> = {}): Record<string, string> {
  return { VMTEST_E2E_KERNEL: testKernel!, VMTEST_E2E_MODULES: kernelModules(), VMTEST_E2E_OUT: out, ...extra }
}

const outDirs = new Set<string>()

/** A temp dir for what a fixture's tests write; removeOutDirs() removes every one made, whatever happened. */
export function outDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmtest-e2e-out-'))
  outDirs.add(dir)
  return dir
}

/** Projects run, whose .vmtest/results (failing tests' logs) removeOutDirs() removes too. */
const projectsRun = new Set<string>()

export function removeOutDirs(): void {
  for (const dir of outDirs) rmSync(dir, { recursive: true, force: true })
  outDirs.clear()
  for (const project of projectsRun) rmSync(join(project, '.vmtest'), { recursive: true, force: true })
  projectsRun.clear()
}

interface RunOptions {
  env?: Record<string, string>
  args?: string[]
}

/** `project`: a fixture's name, or a path (an example). */
export function runVitest(project: string, options: RunOptions = {}): Promise<CliRun> {
  return runCli(project, options, (report) => [vitestBin, 'run', '--reporter=json', `--outputFile=${report}`])
}

export function runJest(project: string, options: RunOptions = {}): Promise<CliRun> {
  return runCli(project, options, (report) => [jestBin, '--json', `--outputFile=${report}`])
}

async function runCli(project: string, options: RunOptions, command: (report: string) => string[]): Promise<CliRun> {
  const out = options.env?.VMTEST_E2E_OUT ?? outDir()
  const report = join(out, 'report.json')
  const started = Date.now()
  const cwd = resolve(fixtures, project)
  projectsRun.add(cwd)
  const result = await execa(process.execPath, [...command(report), ...(options.args ?? [])], {
    cwd,
    env: { ...e2eEnv(out), ...options.env, CI: '' , FORCE_COLOR: '0' },
    reject: false,
    timeout: 600_000,
  })
  const wallMs = Date.now() - started
  let json: { testResults: Array<{ name: string; message?: string; startTime: number; endTime: number; assertionResults: Array<{ title: string; status: TestOutcome['status']; failureMessages: string[]; duration?: number }> }> }
  try {
    json = JSON.parse(readFileSync(report, 'utf8'))
  } catch {
    throw new Error(`${project}: no report (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`)
  }
  const tests = json.testResults.flatMap((file) =>
    file.assertionResults.map((t) => ({ file: file.name.replace(/^.*\//, ''), title: t.title, status: t.status, message: t.failureMessages.join('\n'), durationMs: t.duration ?? 0 })),
  )
  const files = json.testResults.map((f) => ({ file: f.name.replace(/^.*\//, ''), message: f.message ?? '', durationMs: f.endTime - f.startTime }))
  return { exitCode: result.exitCode, tests, files, stdout: result.stdout, stderr: result.stderr, out, wallMs }
}

