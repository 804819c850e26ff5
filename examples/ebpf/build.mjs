#!/usr/bin/env node
// Builds the example's BPF objects with clang (-target bpf) and its small
// libbpf loader with gcc, on the host. The guest runs the host's userspace,
// so it runs the loader (and bpftool) the host has.
//
//   node examples/ebpf/build.mjs [--force]
//
// Needs clang, gcc, libbpf-dev and bpftool. Missing ones are installed with
// apt-get when run as root on Debian/Ubuntu; otherwise the apt command is
// printed. Skips what is newer than its source.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, 'build')
const force = process.argv.includes('--force')
const log = (line) => console.log(`ebpf: ${line}`)

/** What each tool is for and the Debian package that has it. */
const TOOLS = [
  { test: () => has('clang'), pkg: 'clang', why: 'compiles the BPF programs' },
  { test: () => has('gcc'), pkg: 'gcc', why: 'compiles the loader' },
  { test: () => existsSync('/usr/include/bpf/libbpf.h'), pkg: 'libbpf-dev', why: "libbpf's headers and library" },
  { test: () => has('bpftool') || existsSync('/usr/sbin/bpftool'), pkg: 'bpftool', why: 'reads the maps in the guest' },
]

function main() {
  installMissing()
  mkdirSync(out, { recursive: true })
  // <asm/types.h> lives in the multiarch include dir, which clang -target bpf does not search.
  const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout.trim()
  for (const source of readdirSync(join(here, 'bpf')).filter((f) => f.endsWith('.bpf.c'))) {
    build(join(here, 'bpf', source), join(out, source.replace(/\.c$/, '.o')), [
      'clang', '-O2', '-g', '-Wall', '-target', 'bpf', ...(multiarch ? [`-I/usr/include/${multiarch}`] : []), '-c',
    ])
  }
  build(join(here, 'loader', 'bpf-attach.c'), join(out, 'bpf-attach'), ['gcc', '-O2', '-Wall'], ['-lbpf'])
}

function build(source, target, compiler, libs = []) {
  if (!force && existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) return
  const [command, ...flags] = compiler
  const args = [...flags, source, '-o', target, ...libs]
  log(`${command} ${args.join(' ')}`)
  const r = spawnSync(command, args, { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`${command} failed on ${source} (exit ${r.status ?? r.signal}); see its output above`)
}

function installMissing() {
  const missing = TOOLS.filter((t) => !t.test())
  if (missing.length === 0) return
  const packages = missing.map((t) => t.pkg)
  const what = missing.map((t) => `${t.pkg} (${t.why})`).join(', ')
  if (process.getuid?.() !== 0 || !has('apt-get')) {
    throw new Error(`missing ${what}. Install them, e.g.:\n  sudo apt-get install -y --no-install-recommends ${packages.join(' ')}`)
  }
  log(`installing ${what}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env })
  if (r.status !== 0) {
    // A fresh machine may not have package lists yet.
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env })
  }
  if (r.status !== 0) throw new Error(`apt-get install ${packages.join(' ')} failed; see its output above`)
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

try {
  main()
} catch (error) {
  console.error(`ebpf: ${error.message}`)
  process.exitCode = 1
}
