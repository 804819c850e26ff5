#!/usr/bin/env node
// Builds module/vmtest_demo.ko against the headers of the kernel the tests
// boot (not the host's kernel), so the guest can insmod it.
//
//   node examples/kernel-module/build.mjs [release | path/to/vmlinuz-<release>] [--force]
//
// The release is, in order: the argument; the release of VMTEST_KERNEL; the
// newest default kernel in the vmtest cache (VMTEST_CACHE_DIR, else
// $XDG_CACHE_HOME/vmtest or ~/.cache/vmtest). Its headers must be at
// /usr/src/linux-headers-<release>; when they are not, this installs Debian's
// linux-headers-<release> with apt-get (as root on Debian/Ubuntu), or prints
// the command to run. Skips the build when the .ko is newer than its sources
// and was built for that release.

import { spawnSync } from 'node:child_process'
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const moduleDir = join(here, 'module')
const ko = join(moduleDir, 'vmtest_demo.ko')
const sources = ['vmtest_demo.c', 'Kbuild', 'Makefile'].map((f) => join(moduleDir, f))

class BuildError extends Error {}
const log = (line) => console.log(`kernel-module: ${line}`)

function main() {
  const args = process.argv.slice(2)
  if (args.includes('-h') || args.includes('--help')) {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 14).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'))
    return
  }
  const force = args.includes('--force')
  const positional = args.filter((a) => !a.startsWith('--'))
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--force')
  if (unknown.length > 0 || positional.length > 1) throw new BuildError(`usage: node build.mjs [release | path/to/vmlinuz-<release>] [--force] (got ${args.join(' ')})`)

  const { release, source } = chooseRelease(positional[0])
  log(`kernel release ${release} (${source})`)

  const headers = `/usr/src/linux-headers-${release}`
  ensureTools(release, headers)

  if (!force && upToDate(release)) {
    log(`${ko} is up to date (built for ${release}); --force rebuilds it`)
    return
  }
  const built = existsSync(ko) ? vermagicOf(ko) : undefined
  if (built !== undefined && releaseOf(built) !== release) {
    log(`${basename(ko)} was built for ${releaseOf(built) || 'an unknown release'}: cleaning first`)
    run('make', ['-C', headers, `M=${moduleDir}`, 'clean'], { quiet: true })
  }
  log(`make -C ${headers} M=${moduleDir} modules`)
  const status = run('make', ['-C', headers, `M=${moduleDir}`, 'modules'])
  if (status !== 0) throw new BuildError(`the build failed (make exited ${status}); see its output above`)
  if (!existsSync(ko)) throw new BuildError(`make succeeded but left no ${ko}`)
  const vermagic = vermagicOf(ko)
  if (releaseOf(vermagic) !== release) throw new BuildError(`${ko} has vermagic "${vermagic}", expected release ${release}: are ${headers} the right headers?`)
  log(`built ${ko} (vermagic: ${vermagic})`)
}

// --- which kernel ---------------------------------------------------------

function chooseRelease(arg) {
  if (arg) {
    if (arg.includes('/') || arg.startsWith('vmlinuz')) return { release: releaseOfImage(arg, 'the argument'), source: `from the argument ${arg}` }
    return { release: checkedRelease(arg, 'the argument'), source: 'from the argument' }
  }
  if (process.env.VMTEST_KERNEL) {
    const path = process.env.VMTEST_KERNEL
    return { release: releaseOfImage(path, 'VMTEST_KERNEL'), source: `from VMTEST_KERNEL=${path}` }
  }
  const cache = process.env.VMTEST_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmtest')
  const kernels = cachedKernels(cache)
  if (kernels.length === 0) {
    throw new BuildError(
      `no kernel named and none in the vmtest cache (looked at ${join(cache, 'kernels', '*', 'boot', 'vmlinuz-*')}).\n` +
        'Run `npm run setup` to fetch the default kernel, or pass a release (node build.mjs 6.1.0-57-amd64) or set VMTEST_KERNEL.',
    )
  }
  return { release: releaseOfImage(kernels[0], 'the vmtest cache'), source: `the default kernel ${kernels[0]}` }
}

/** Same order as the engine's default kernel: newest (modified) first. */
function cachedKernels(cache) {
  const root = join(cache, 'kernels')
  if (!existsSync(root)) return []
  return readdirSync(root)
    .flatMap((pkg) => {
      const boot = join(root, pkg, 'boot')
      return existsSync(boot) ? readdirSync(boot).filter((f) => f.startsWith('vmlinuz-')).map((f) => join(boot, f)) : []
    })
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
}

/** The release in the name vmlinuz-<release>, else the version string in the bzImage header. */
function releaseOfImage(path, from) {
  if (!existsSync(path)) throw new BuildError(`kernel image not found: ${path} (${from})`)
  const named = /^vmlinuz-(.+)$/.exec(basename(path))?.[1]
  if (named) return checkedRelease(named, from)
  const fromHeader = bzImageRelease(path)
  if (fromHeader) return checkedRelease(fromHeader, from)
  throw new BuildError(`cannot tell the kernel release of ${path} (${from}): it is not named vmlinuz-<release> and is not a readable bzImage. Pass the release: node build.mjs <release>`)
}

/** bzImage boot protocol: "HdrS" at 0x202, and at 0x20e the offset (minus 0x200) of "<release> (builder) #1 ...". */
function bzImageRelease(path) {
  let fd
  try {
    fd = openSync(path, 'r')
    const head = Buffer.alloc(0x1000)
    readSync(fd, head, 0, head.length, 0)
    if (head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined
    const at = head.readUInt16LE(0x20e) + 0x200
    const text = Buffer.alloc(256)
    readSync(fd, text, 0, text.length, at)
    return /^\S+/.exec(text.toString('latin1'))?.[0]
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

function checkedRelease(release, from) {
  if (!/^[0-9][\w.+~-]*$/.test(release)) throw new BuildError(`"${release}" (${from}) does not look like a kernel release such as 6.1.0-57-amd64`)
  return release
}

// --- headers and tools ----------------------------------------------------

function ensureTools(release, headers) {
  const headerPkg = `linux-headers-${release}`
  const needed = []
  if (!existsSync(join(headers, 'Makefile'))) needed.push(headerPkg)
  if (!which('make')) needed.push('make')
  if (!which('gcc')) needed.push('gcc')
  // The guest's root is the host's /, so the guest's insmod is the host's.
  const wanted = which('insmod') ? [] : ['kmod']
  if (needed.length === 0 && wanted.length === 0) return

  const canApt = process.getuid?.() === 0 && which('apt-get') && isDebianLike()
  if (!canApt) {
    if (wanted.length > 0) log('note: no insmod on this host, so none in the guest either: install kmod, or use `busybox insmod` in the guest')
    if (needed.length === 0) return
    const why = needed.includes(headerPkg) ? `${headers} is missing` : `missing ${needed.join(', ')}`
    const command = isDebianLike() ? `sudo apt-get install -y --no-install-recommends ${[...needed, ...wanted].join(' ')}` : `install the kernel headers for ${release} into ${headers}, and make and gcc`
    throw new BuildError(`${why}. Run:\n  ${command}\nthen run this again.`)
  }

  const packages = [...needed, ...wanted]
  if (!aptKnows(packages)) {
    log('apt-get update (apt does not know all of these packages yet)')
    if (run('apt-get', ['update', '-qq']) !== 0) throw new BuildError('apt-get update failed; see its output above')
  }
  const unknown = packages.filter((p) => !aptKnows([p]))
  if (unknown.length > 0) {
    throw new BuildError(
      `apt has no ${unknown.join(', ')}.` +
        (unknown.includes(headerPkg)
          ? ` Debian keeps the headers of current kernels only: if ${release} is older than the archive's, fetch the test kernel again (npm run setup after clearing the cache's kernels/) or get the headers from snapshot.debian.org.`
          : ''),
    )
  }
  log(`apt-get install -y --no-install-recommends ${packages.join(' ')}`)
  const status = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  if (status !== 0) throw new BuildError(`apt-get install failed (exit ${status}); see its output above`)
  if (!existsSync(join(headers, 'Makefile'))) throw new BuildError(`${headerPkg} is installed but ${headers}/Makefile is still missing`)
}

function aptKnows(packages) {
  const r = spawnSync('apt-cache', ['show', '--no-all-versions', ...packages], { encoding: 'utf8' })
  return r.status === 0 && packages.every((p) => r.stdout.includes(`Package: ${p}\n`))
}

function isDebianLike() {
  if (existsSync('/etc/debian_version')) return true
  try {
    return /^ID(_LIKE)?=.*\b(debian|ubuntu)\b/m.test(readFileSync('/etc/os-release', 'utf8'))
  } catch {
    return false
  }
}

function which(name) {
  for (const dir of (process.env.PATH || '/usr/bin:/bin').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {
      // next
    }
  }
  return undefined
}

// --- up to date? ----------------------------------------------------------

function upToDate(release) {
  if (!existsSync(ko)) return false
  const koTime = statSync(ko).mtimeMs
  if (sources.some((s) => statSync(s).mtimeMs > koTime)) return false
  return releaseOf(vermagicOf(ko)) === release
}

/** The .modinfo "vermagic=" string, read from the .ko itself (modinfo(8) may not be installed). */
function vermagicOf(path) {
  const data = readFileSync(path)
  const at = data.indexOf('vermagic=')
  if (at < 0) return ''
  const end = data.indexOf(0, at)
  return data.toString('latin1', at + 'vermagic='.length, end < 0 ? undefined : end)
}

/** vermagic is "<release> SMP preempt mod_unload modversions ...". */
function releaseOf(vermagic) {
  return vermagic.split(' ')[0]
}

function run(command, args, { quiet = false, env } = {}) {
  const r = spawnSync(command, args, { stdio: quiet ? 'ignore' : 'inherit', env })
  if (r.error) throw new BuildError(`could not run ${command}: ${r.error.message}`)
  return r.status ?? 1
}

try {
  main()
} catch (error) {
  console.error(`kernel-module: ${error instanceof BuildError ? '' : 'unexpected error: '}${error.message}`)
  process.exitCode = 1
}
