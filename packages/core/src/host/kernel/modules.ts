import { existsSync, realpathSync, statSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { decompress, elfSection, sniffCompression } from './inspect.js'

export interface ModulePlan {
  /** absolute paths in load order, dependencies first, each once */
  files: string[]
  /** requested names found in modules.builtin */
  builtin: string[]
  /** requested or depended-on names found neither as a file nor builtin */
  missing: string[]
}

const MODULE_FILE = /\.ko(\.(xz|zst|gz))?$/
const TREE_SUBDIRS = ['updates', 'extra', 'kernel'] // depmod's default priority: updates/ overrides the distro's modules

/** Locates the modules matching the kernel, preferring the user's choice, then the kernel's own package. */
export function findModuleDir(opts: { kernelPath: string; release: string; explicit?: string }): { dir?: string; looked: string[] } {
  const { kernelPath, release, explicit } = opts
  if (explicit !== undefined) {
    if (!isDir(explicit)) throw new Error(`modules directory ${explicit} does not exist or is not a directory`)
    // Accept either the parent of the release directory (e.g. .../lib/modules) or the release directory itself.
    const candidates = [join(explicit, release), ...(basename(resolve(explicit)) === release ? [explicit] : [])]
    const dir = candidates.find(isDir)
    if (!dir) throw new Error(`modules directory ${explicit} has no ${release}/ subdirectory for kernel ${release}`)
    return { dir, looked: [dir] }
  }
  const looked = new Set<string>()
  for (const kernel of [realpathOr(kernelPath), resolve(kernelPath)]) {
    if (basename(dirname(kernel)) !== 'boot') continue
    const root = dirname(dirname(kernel))
    looked.add(join(root, 'lib/modules', release)).add(join(root, 'usr/lib/modules', release))
  }
  looked.add(join('/lib/modules', release))
  return { dir: [...looked].find(isModuleTree), looked: [...looked] }
}

/** A directory with modules in it: installing a kernel's headers alone makes
 * /lib/modules/<release> with nothing but its build/source links. */
function isModuleTree(dir: string): boolean {
  return isDir(dir) && ['kernel', 'modules.order', 'modules.dep', 'modules.builtin'].some((entry) => existsSync(join(dir, entry)))
}

/** Reads a module's own dependency list, for trees where depmod never ran. */
export async function readModinfo(file: string): Promise<{ name: string; depends: string[]; softdeps?: string[] }> {
  const section = elfSection(await readModuleBytes(file), '.modinfo')
  if (!section) throw new Error(`${file}: no .modinfo section (not a kernel module?)`)
  const fields = section.toString('latin1').split('\0').filter((kv) => kv.includes('='))
  const get = (key: string) => fields.filter((kv) => kv.startsWith(`${key}=`)).map((kv) => kv.slice(key.length + 1))
  const depends = (get('depends')[0] ?? '').split(',').filter(Boolean)
  // softdep=pre: a b post: c — the words not ending in ':' are module names.
  const softdeps = get('softdep').flatMap((v) => v.split(/\s+/).filter((w) => w && !w.endsWith(':')))
  return { name: get('name')[0] ?? moduleName(file), depends, ...(softdeps.length ? { softdeps } : {}) }
}

/** Resolves requested modules and their dependencies to files in a loadable order. */
export async function planModules(dir: string, names: readonly string[]): Promise<ModulePlan> {
  // modules.order names every module of kernel/ in one small file: reading it
  // instead of walking the ≈4000-file tree takes a distro kernel's plan from
  // ≈200 ms to a few ms on every boot. A name it cannot place on disk falls back
  // to the walk, so both find the same files.
  const quick = await indexFromOrder(dir)
  let walked: Map<string, string> | undefined
  const locate = async (key: string): Promise<string | undefined> => {
    const listed = existingVariant(quick?.get(key))
    if (listed) return listed
    walked ??= await indexTree(dir, TREE_SUBDIRS)
    return walked.get(key)
  }
  const builtins = new Set((await readLines(join(dir, 'modules.builtin')))?.map(moduleName))
  const depmod = await readModulesDep(dir)
  const plan: ModulePlan = { files: [], builtin: [], missing: [] }
  const seen = new Set<string>()
  const visit = async (name: string, requested: boolean): Promise<void> => {
    const key = normalize(name)
    if (seen.has(key)) return
    seen.add(key) // marked before recursing, so a dependency cycle cannot loop forever
    if (builtins.has(key)) {
      if (requested) plan.builtin.push(name)
      return
    }
    const file = await locate(key)
    if (!file) {
      plan.missing.push(name)
    } else {
      for (const dep of depmod?.get(key) ?? (await readModinfo(file)).depends) await visit(dep, false)
      plan.files.push(file)
    }
  }
  for (const name of names) await visit(name, true)
  return plan
}

/** Returns raw .ko bytes, because busybox insmod cannot load compressed modules. */
export async function readModuleBytes(file: string): Promise<Buffer> {
  const data = await readFile(file)
  const compression = sniffCompression(data)
  return compression ? decompress(data, compression) : data
}

/** Maps module name to file for the trees under `subdirs`, walked once; earlier subdirs win. */
async function indexTree(dir: string, subdirs: readonly string[]): Promise<Map<string, string>> {
  const index = new Map<string, string>()
  for (const sub of subdirs) {
    const root = join(dir, sub)
    if (!isDir(root)) continue
    for (const rel of (await readdir(root, { recursive: true })).sort()) {
      if (!MODULE_FILE.test(rel)) continue
      const name = moduleName(rel)
      if (!index.has(name)) index.set(name, resolve(root, rel))
    }
  }
  return index
}

/** updates/ and extra/ walked (they override kernel/), kernel/ as modules.order
 * lists it (paths as built, maybe without the compression suffix); undefined
 * without a modules.order. */
async function indexFromOrder(dir: string): Promise<Map<string, string> | undefined> {
  const order = await readLines(join(dir, 'modules.order'))
  if (!order) return undefined
  const index = await indexTree(dir, TREE_SUBDIRS.filter((sub) => sub !== 'kernel'))
  for (const rel of order) {
    const name = moduleName(rel)
    if (!index.has(name)) index.set(name, resolve(dir, rel.trim()))
  }
  return index
}

/** The file on disk for a listed module path: as listed, or compressed. */
function existingVariant(path: string | undefined): string | undefined {
  if (!path) return undefined
  return ['', '.xz', '.zst', '.gz'].map((suffix) => path + suffix).find((file) => statSync(file, { throwIfNoEntry: false })?.isFile())
}

/** Parses modules.dep ("path: dep-path dep-path") into name → dependency names, if depmod ran. */
async function readModulesDep(dir: string): Promise<Map<string, string[]> | undefined> {
  const lines = await readLines(join(dir, 'modules.dep'))
  if (!lines) return undefined
  const deps = new Map<string, string[]>()
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    deps.set(moduleName(line.slice(0, colon)), line.slice(colon + 1).split(/\s+/).filter(Boolean).map(moduleName))
  }
  return deps
}

/** Non-empty lines of a text file, or undefined when it does not exist. */
async function readLines(file: string): Promise<string[] | undefined> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim())
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

/** Module name of a path like kernel/net/9p/9pnet_virtio.ko.xz, with '-' folded to '_' as the kernel does. */
function moduleName(path: string): string {
  return normalize(basename(path.trim()).replace(MODULE_FILE, ''))
}

/** Module names treat '-' and '_' alike. */
function normalize(name: string): string {
  return name.replace(/-/g, '_')
}

/** True for an existing directory (following symlinks). */
function isDir(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false
}

/** The symlink-free path, or the plain absolute path when it cannot be resolved. */
function realpathOr(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return resolve(path)
  }
}
