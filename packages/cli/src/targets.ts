// Config mode: every [[target]] of vmtest.toml (or those -f matches), each in
// its own guest, in parallel as far as cores and memory allow, each target's
// report printed whole. Exit status 1 if any target failed.

import { availableParallelism, freemem } from 'node:os'
import { dirname } from 'node:path'
import { loadVmtestToml, parseMemory, targetToGuestOptions, type VmtestTarget } from '@vmtest/core/runner'
import type { GuestOptions } from '@vmtest/core'
import { bufferedReport, liveReport } from './report.js'
import { runTarget, type RunnableTarget } from './run-target.js'

/** Guest memory plus QEMU's own, per guest, when sizing the parallelism. */
const QEMU_OVERHEAD_MIB = 256

export async function runConfig(configPath: string, filter: RegExp): Promise<number> {
  const config = loadVmtestToml(configPath, '-c')
  const chosen = config.targets.filter((t) => filter.test(t.name))
  if (chosen.length === 0) {
    process.stderr.write(`vmtest: no target of ${config.path} matches ${filter} (targets: ${config.targets.map((t) => t.name).join(', ')})\n`)
    return 1
  }
  const runnable = chosen.map((t) => toRunnable(t, dirname(config.path)))
  const parallel = Math.max(1, Math.min(runnable.length, availableParallelism(), Math.floor(freemem() / MiB / ((parseMemory(runnable[0].options.memory ?? '1G') ?? 1024) + QEMU_OVERHEAD_MIB))))
  const statuses: number[] = []
  let next = 0
  const worker = async () => {
    while (next < runnable.length) {
      const target = runnable[next++]
      // One at a time streams live; several keep their reports apart.
      const report = parallel === 1 ? liveReport(process.stdout, { stdout: process.stdout, stderr: process.stdout }) : bufferedReport(process.stdout)
      statuses.push(await runTarget(target, report))
      report.flush()
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  return statuses.every((s) => s === 0) ? 0 : 1
}

const MiB = 1024 * 1024

/** vmtest's semantics: the toml's directory is /mnt/vmtest in the guest, and the command runs there. */
function toRunnable(target: VmtestTarget, base: string): RunnableTarget {
  // qemu_command names the QEMU binary here; the test environments refuse it.
  const options: GuestOptions = { ...targetToGuestOptions({ ...target, qemuCommand: undefined }), shared: base }
  if (target.qemuCommand) options.qemu = target.qemuCommand
  return { name: target.name, options, command: target.command, cwd: '/mnt/vmtest' }
}
