// Layers a test file's options (vmtest.toml target < runner config < docblocks) into guest and runner options.

import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { SPLAT_KINDS, type SplatKind } from '../host/console/splat.js'
import { didYouMean } from '../host/did-you-mean.js'
import { VmtestError } from '../host/errors.js'
import type { GuestOptions } from '../host/options.js'
import type { FileDirectives } from './docblock.js'
import { findTarget, loadVmtestToml, targetToGuestOptions } from './vmtest-toml.js'

export interface RunnerOptions {
  /** 'lease' reuses a booted guest with a fresh writable layer; 'reboot' boots a fresh guest per file. */
  isolate: 'lease' | 'reboot'
  verbose: boolean
  /** Which kernel splats fail a test: all (true), none (false), or these kinds. */
  failOnKernel: boolean | SplatKind[]
  /** Where a failing test's console log and QEMU command line are written: the base folder, or false for nowhere. */
  resultsDir: string | false
  /** This file's folder under resultsDir (set by mergeFileOptions). */
  failureLogDir?: string
}

export interface OptionLayer {
  /** Where the options came from, for messages: "vitest.config environmentOptions.vmtest", "@vmtest-kernel in /abs/a.test.ts". */
  source: string
  /** Relative paths in this layer resolve against it. */
  baseDir: string
  options?: Record<string, unknown>
  /** Per-key sources when one layer's keys come from different places (one docblock directive each). */
  sources?: Record<string, string>
}

export interface MergedOptions {
  guest: GuestOptions
  runner: RunnerOptions
}

// Every GuestOptions key, checked by the compiler against the interface, so the unknown-key check cannot drift.
const GUEST_KEYS: Record<Exclude<keyof GuestOptions, 'sources'>, true> = {
  kernel: true, kernelArgs: true, arch: true, rootfs: true, image: true, uefi: true, bios: true, modules: true, memory: true, cpus: true, accel: true, qemu: true, rootMode: true,
  shared: true, mounts: true, bootTimeout: true, extraArgs: true, cwd: true, consoleLog: true, onProgress: true,
}
const RUNNER_KEYS = ['target', 'config', 'isolate', 'verbose', 'failOnKernel', 'resultsDir'] as const
type RunnerKey = (typeof RUNNER_KEYS)[number]
const KNOWN = [...Object.keys(GUEST_KEYS), ...RUNNER_KEYS]

/** Failing tests' logs go to <project root>/.vmtest/results/<test file>/<test>.log unless `resultsDir` says otherwise. */
export const DEFAULT_RESULTS_DIR = '.vmtest/results'

const invalid = (message: string) => new VmtestError('VMTEST_OPTION_INVALID', 'config', message)

/**
 * Later layers override earlier ones key by key. A layer naming a `target` has that vmtest.toml target
 * expanded just below it: the target's options override every lower layer, the layer's own keys override
 * the target's. Only the highest `target` is expanded, so a file's @vmtest-target replaces a configured
 * target whole (its kernel_args do not leak onto another kernel).
 */
export function mergeLayers(layers: OptionLayer[], opts: { rootDir: string }): MergedOptions {
  layers.forEach(check)
  const targetAt = layers.findLastIndex((l) => l.options?.target !== undefined)
  const expanded = targetAt < 0 ? layers : [...layers.slice(0, targetAt), targetLayer(layers, targetAt, opts.rootDir), ...layers.slice(targetAt)]

  const guest: Record<string, unknown> = {}
  const sources: Record<string, string> = {}
  const runner: Partial<Record<RunnerKey, { value: unknown; layer: OptionLayer }>> = {}
  for (const layer of expanded) {
    for (const [key, value] of Object.entries(layer.options ?? {})) {
      if (value === undefined) continue
      if ((RUNNER_KEYS as readonly string[]).includes(key)) {
        runner[key as RunnerKey] = { value, layer }
        continue
      }
      guest[key] = resolvePaths(key, value, layer.baseDir)
      sources[key] = sourceOf(layer, key)
    }
  }

  return {
    guest: { ...(guest as GuestOptions), sources },
    runner: {
      isolate: runnerValue(runner.isolate, 'lease', (v) => v === 'lease' || v === 'reboot', 'isolate', "'lease' or 'reboot'"),
      verbose: runnerValue(runner.verbose, false, (v) => typeof v === 'boolean', 'verbose', 'true or false'),
      failOnKernel: failOnKernel(runner.failOnKernel),
      resultsDir: resultsDir(runner.resultsDir, opts.rootDir),
    },
  }
}

/** Default `.vmtest/results` under the project root; relative paths against the layer that set it. */
function resultsDir(set: { value: unknown; layer: OptionLayer } | undefined, rootDir: string): string | false {
  if (set === undefined) return join(rootDir, DEFAULT_RESULTS_DIR)
  const { value, layer } = set
  if (value === false) return false
  if (typeof value !== 'string' || value === '') throw bad('resultsDir', layer, 'a folder path, or false to write no failure logs', value)
  return resolve(layer.baseDir, value)
}

/** A test file's options in a runner: the runner config's `vmtest` options
 * (relative paths against the project root), then the file's docblocks. The
 * project is shared (at /mnt/vmtest and its own path) unless told otherwise. */
export function mergeFileOptions(o: {
  file: string
  directives: FileDirectives
  rootDir: string
  config: { source: string; options?: Record<string, unknown> }
}): MergedOptions {
  const merged = mergeLayers([{ source: o.config.source, baseDir: o.rootDir, options: o.config.options }, ...fileLayers(o.directives, o.file)], { rootDir: o.rootDir })
  merged.guest.shared ??= o.rootDir
  const { resultsDir } = merged.runner
  // A file outside the root (../x.test.ts) keeps its path below the results folder all the same.
  if (resultsDir) merged.runner.failureLogDir = join(resultsDir, relative(o.rootDir, o.file).replace(/^(\.\.\/)+/, ''))
  return merged
}

/** A test file's docblock layers: @vitest-environment-options (or @jest-…) then the @vmtest-* directives. */
export function fileLayers(directives: FileDirectives, file: string): OptionLayer[] {
  const baseDir = dirname(file)
  const layers: OptionLayer[] = []
  if (directives.environmentOptions) {
    layers.push({ source: `${directives.environmentOptionsDirective ?? '@vitest-environment-options'} in ${file}`, baseDir, options: directives.environmentOptions })
  }
  const names = { kernel: '@vmtest-kernel', target: '@vmtest-target', kernelArgs: '@vmtest-kernel-args', isolate: '@vmtest-isolate' } as const
  const options: Record<string, unknown> = {}
  const sources: Record<string, string> = {}
  for (const key of Object.keys(names) as Array<keyof typeof names>) {
    if (directives[key] === undefined) continue
    options[key] = directives[key]
    sources[key] = `${names[key]} in ${file}`
  }
  if (Object.keys(options).length > 0) layers.push({ source: `the @vmtest-* directives in ${file}`, baseDir, options, sources })
  return layers
}

function check(layer: OptionLayer): void {
  const o = layer.options
  if (o === undefined) return
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalid(`The vmtest options in ${layer.source} must be an object like { kernel: './bzImage' }, got ${describe(o)}.`)
  for (const key of Object.keys(o)) {
    if (KNOWN.includes(key)) continue
    const hint = didYouMean(key, KNOWN)
    throw invalid(`Unknown option \`${key}\` in ${layer.source}${hint ? `: did you mean \`${hint}\`?` : '.'} Known options: ${KNOWN.join(', ')}.`)
  }
  if (o.kernel !== undefined && o.target !== undefined) {
    const both = layer.sources?.kernel || layer.sources?.target ? `${where(layer, 'kernel')} and ${where(layer, 'target')}` : `\`kernel\` and \`target\` in ${layer.source}`
    throw invalid(`${both} conflict: both choose the kernel (a target names its own). Keep one.`)
  }
  if (o.target !== undefined && (typeof o.target !== 'string' || o.target === '')) throw bad('target', layer, 'the name of a [[target]] in vmtest.toml', o.target)
  if (o.config !== undefined && (typeof o.config !== 'string' || o.config === '')) throw bad('config', layer, 'the path of a vmtest.toml', o.config)
}

/** The options of the target named in layers[at], as a layer of their own. */
function targetLayer(layers: OptionLayer[], at: number, rootDir: string): OptionLayer {
  const named = layers[at]
  const configAt = layers.findLastIndex((l) => l.options?.config !== undefined)
  const path = configAt < 0 ? resolve(rootDir, 'vmtest.toml') : resolve(layers[configAt].baseDir, layers[configAt].options!.config as string)
  const from = configAt < 0 ? `the default \`config\`, read because of ${where(named, 'target')}` : where(layers[configAt], 'config')
  const config = loadVmtestToml(path, from)
  const target = findTarget(config, named.options!.target as string, where(named, 'target'))
  const { sources: _, ...options } = targetToGuestOptions(target)
  return { source: `target "${target.name}" in ${config.path}`, baseDir: dirname(config.path), options }
}

function resolvePaths(key: string, value: unknown, baseDir: string): unknown {
  const path = (p: unknown) => (typeof p === 'string' && p !== '' ? resolve(baseDir, p) : p)
  switch (key) {
    case 'kernel':
    case 'rootfs':
    case 'image':
    case 'bios':
    case 'modules':
    case 'consoleLog':
      return path(value)
    case 'qemu':
      // A bare name is looked up on PATH; only a path with a slash is relative to the layer.
      return typeof value === 'string' && value.includes('/') && !isAbsolute(value) ? resolve(baseDir, value) : value
    case 'shared':
      if (typeof value === 'string') return path(value)
      if (isObject(value) && typeof value.path === 'string') return { ...value, path: path(value.path) }
      return value
    case 'mounts':
      if (!isObject(value)) return value
      return Object.fromEntries(
        Object.entries(value).map(([guestPath, m]) => [guestPath, typeof m === 'string' ? path(m) : isObject(m) && typeof m.hostPath === 'string' ? { ...m, hostPath: path(m.hostPath) } : m]),
      )
    default:
      return value
  }
}

function runnerValue<T>(set: { value: unknown; layer: OptionLayer } | undefined, fallback: T, ok: (value: unknown) => boolean, key: RunnerKey, expected: string): T {
  if (set === undefined) return fallback
  if (!ok(set.value)) throw bad(key, set.layer, expected, set.value)
  return set.value as T
}

function failOnKernel(set: { value: unknown; layer: OptionLayer } | undefined): boolean | SplatKind[] {
  if (set === undefined) return true
  const { value, layer } = set
  if (typeof value === 'boolean') return value
  if (!Array.isArray(value)) throw bad('failOnKernel', layer, `true, false or an array of splat kinds (${SPLAT_KINDS.join(', ')})`, value)
  for (const kind of value) {
    if (SPLAT_KINDS.includes(kind as SplatKind)) continue
    const hint = typeof kind === 'string' ? didYouMean(kind, SPLAT_KINDS) : undefined
    throw invalid(`Invalid option \`failOnKernel\` (in ${sourceOf(layer, 'failOnKernel')}): unknown splat kind ${describe(kind)}${hint ? `: did you mean '${hint}'?` : '.'} Known kinds: ${SPLAT_KINDS.join(', ')}.`)
  }
  return [...new Set(value as SplatKind[])]
}

function bad(key: string, layer: OptionLayer, expected: string, value: unknown): VmtestError {
  return invalid(`Invalid option \`${key}\` (in ${sourceOf(layer, key)}): expected ${expected}, got ${describe(value)}.`)
}

const sourceOf = (layer: OptionLayer, key: string) => layer.sources?.[key] ?? layer.source

/** "@vmtest-target in /abs/a.test.ts" for a directive, "`target` in vitest.config environmentOptions.vmtest" otherwise. */
function where(layer: OptionLayer, key: string): string {
  return layer.sources?.[key] ?? `\`${key}\` in ${layer.source}`
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describe(value: unknown): string {
  // String() for numbers: JSON.stringify writes NaN and Infinity as null, and throws on a bigint.
  const text = typeof value === 'number' || typeof value === 'bigint' ? String(value) : JSON.stringify(value)
  return typeof value === 'string' ? `'${value}'` : `${text} (${Array.isArray(value) ? 'array' : typeof value})`
}
