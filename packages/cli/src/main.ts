#!/usr/bin/env node
// The `vmtest` command. danobi/vmtest's interface, unchanged:
//   vmtest -k KERNEL [--kargs ARGS] "command"   one command in a guest of KERNEL
//   vmtest -k KERNEL -                          an interactive shell there
//   vmtest [-c vmtest.toml] [-f REGEX]          the targets of a config file
// plus `vmtest setup` (install QEMU and busybox, fetch a kernel) and
// `vmtest doctor` (what works here, and what to fix).

import { createRequire } from 'node:module'
import { basename, resolve } from 'node:path'
import { Command, Option } from 'commander'
import { isVmtestError, type GuestOptions } from '@vmtest/core'
import { hostArch, KNOWN_ARCHES } from '@vmtest/core/runner'
import { setupHost } from '@vmtest/core/setup'
import { doctor, formatDoctor } from './doctor.js'
import { runOneLiner, runShell } from './one-liner.js'
import { runConfig } from './targets.js'
import pc from 'picocolors'

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

const program = new Command('vmtest')
  .version(version)
  .description('Run a command, or the targets of vmtest.toml, in a Linux guest booted under QEMU.')
  .argument('[command...]', 'with -k: the command to run in the guest (`-` for an interactive shell)')
  .option('-k, --kernel <path>', 'kernel to boot (bzImage, vmlinux or arm64 Image); without it (and without -a), the targets of the config file run')
  .option('--kargs <args>', 'more kernel command line arguments (with -k)')
  .option('-r, --rootfs <path>', "root filesystem of the guest, a directory (default: the host's /, or for a foreign -a the one `vmtest setup --arch` fetched)")
  .addOption(new Option('-a, --arch <arch>', "guest architecture (default: the kernel's); a foreign one without -k boots the kernel `vmtest setup --arch` fetched").choices(KNOWN_ARCHES))
  .option('-q, --qemu <binary>', 'QEMU binary (with -k; default qemu-system-<arch>)')
  .option('-m, --memory <size>', 'guest memory (with -k)', '1G')
  .option('-c, --config <path>', 'config file', 'vmtest.toml')
  .option('-f, --filter <regex>', 'run only the targets whose name matches', '.*')
  // `vmtest doctor -k X`: options after a subcommand are the subcommand's, not ours.
  .enablePositionalOptions()
  .showHelpAfterError()
  .action(async (command: string[], opts: CliOptions) => {
    process.exitCode = await main(command, opts, program)
  })

program
  .command('setup')
  .description('install QEMU, busybox and qemu-guest-agent (apt, as root) and fetch the default guest kernel')
  .option('-k, --kernel <package>', 'also fetch this kernel package, for a kernel matrix: a name, a version prefix (6.12) or "newest"; repeatable', collect, [])
  .option('-a, --arch <arch>', "also fetch Debian's kernel and a root filesystem (with node and busybox) for this architecture, and its QEMU; repeatable", collect, [])
  .action(async (opts: { kernel: string[]; arch: string[] }) => {
    process.exitCode = (await setupHost({ kernels: opts.kernel, arches: opts.arch })).length > 0 ? 1 : 0
  })

program
  .command('doctor')
  .description('check QEMU, KVM, busybox, a kernel and its modules; print what to fix')
  .option('-k, --kernel <path>', 'the kernel to check (default: the one a boot would pick)')
  .action(async (opts: { kernel?: string }) => {
    const checks = await doctor({ kernel: opts.kernel && resolve(opts.kernel) })
    process.stdout.write(`${formatDoctor(checks, pc.isColorSupported)}\n`)
    process.exitCode = checks.some((c) => !c.ok && c.fatal) ? 1 : 0
  })

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

interface CliOptions {
  kernel?: string
  kargs?: string
  rootfs?: string
  arch?: string
  qemu?: string
  memory: string
  config: string
  filter: string
}

async function main(command: string[], opts: CliOptions, cli: Command): Promise<number> {
  try {
    // A foreign -a alone is a one-liner too: its kernel is the one `vmtest setup --arch` fetched.
    const oneLiner = opts.kernel !== undefined || (opts.arch !== undefined && opts.arch !== hostArch())
    if (!oneLiner) {
      const given = (['kargs', 'qemu', 'rootfs', 'arch'] as const).filter((o) => opts[o] !== undefined)
      if (command.length > 0 || given.length > 0) cli.error(`vmtest: ${command.length > 0 ? 'a command' : `--${given[0]}`} needs -k KERNEL (or put it in a [[target]] of ${opts.config})`)
      return await runConfig(resolve(opts.config), new RegExp(opts.filter))
    }
    if (command.length === 0) cli.error(`vmtest: ${opts.kernel ? '-k' : '-a'} needs a command to run (or \`-\` for a shell)`)
    const options: GuestOptions = {
      kernel: opts.kernel && resolve(opts.kernel),
      kernelArgs: opts.kargs,
      arch: opts.arch,
      rootfs: opts.rootfs && resolve(opts.rootfs),
      qemu: opts.qemu,
      memory: opts.memory,
      sources: { kernel: '-k', kernelArgs: '--kargs', arch: '-a', rootfs: '-r', qemu: '-q', memory: '-m' },
    }
    if (command.length === 1 && command[0] === '-') return await runShell(options)
    return await runOneLiner(options, command.join(' '), basename(opts.kernel ?? opts.arch!))
  } catch (error) {
    process.stderr.write(`${isVmtestError(error) ? error.message : (error as Error).stack}\n`)
    return 1
  }
}

await program.parseAsync()
