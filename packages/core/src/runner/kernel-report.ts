// The verdict on one test's kernel log window: splats and new taints that fail
// the test, each with the report text a user needs to act on it.

import { findSplats, taintFlags, type Splat, type SplatKind } from '../host/console/splat.js'
import { tail, VmtestError, withoutStack } from '../host/errors.js'

/** Taint flags that mean the kernel hit a defect (include/linux/panic.h): B bad
 * page, D died (oops/BUG), L soft lockup, M machine check, W warning. O and E
 * (an out-of-tree or unsigned module was loaded) are what module tests do, not failures. */
const DEFECT_TAINTS = new Set(['B', 'D', 'L', 'M', 'W'])
/** Lines of the window quoted under a report. */
const WINDOW_LINES = 40

export interface KernelWindow {
  lines: readonly string[]
  taintBefore?: number
  taintAfter?: number
  release: string
  /** Splat kinds that fail a test: true = all. */
  failOn: boolean | readonly SplatKind[]
  allowed: readonly RegExp[]
}

/** The error that fails the test, or undefined when its kernel log is clean. */
export function kernelVerdict(w: KernelWindow): VmtestError | undefined {
  const failOn = w.failOn
  if (failOn === false) return undefined
  const splats = findSplats(w.lines)
  const failing = splats.filter((s) => (failOn === true || failOn.includes(s.kind)) && !isAllowed(s, w.lines, w.allowed))
  if (failing.length > 0) {
    const reports = failing.map((s) => `${s.kind}: ${s.title}\n${tail(s.lines, 60)}`).join('\n\n')
    return withoutStack(new VmtestError(
      'VMTEST_KERNEL_SPLAT',
      'command',
      `The guest kernel (${w.release}) reported ${failing.length === 1 ? 'a problem' : `${failing.length} problems`} while this test ran:\n${reports}\n` +
        'If the test expects it, accept it with guest.allowKernelLog(/pattern/).',
    ))
  }
  if (w.failOn !== true || splats.length > 0 || w.taintBefore === undefined || w.taintAfter === undefined) return undefined
  // A taint with no report in the window: the report was lost or rate-limited, the defect was not.
  const added = taintFlags(w.taintAfter).filter((f) => DEFECT_TAINTS.has(f) && !taintFlags(w.taintBefore!).includes(f))
  if (added.length === 0) return undefined
  return withoutStack(new VmtestError(
    'VMTEST_KERNEL_TAINTED',
    'command',
    `The guest kernel (${w.release}) became tainted (${added.join('')}) while this test ran, with no report in its log.\n` +
      (w.lines.length > 0 ? `Kernel log while it ran:\n${tail(w.lines, WINDOW_LINES)}` : 'The kernel printed nothing meanwhile.'),
  ))
}

/** The window of a test that failed anyway, to read next to its error. */
export function kernelLogNote(lines: readonly string[]): Error | undefined {
  if (lines.length === 0) return undefined
  const note = new Error(`Kernel log while this test ran${lines.length > WINDOW_LINES ? ` (last ${WINDOW_LINES} lines)` : ''}:\n${tail(lines, WINDOW_LINES)}`)
  note.name = 'VmtestKernelLog'
  return withoutStack(note)
}

/** Lines before a report's header that belong to it: WARN()'s own message and the "cut here" rule. */
const LEAD_IN_LINES = 2

function isAllowed(splat: Splat, lines: readonly string[], allowed: readonly RegExp[]): boolean {
  const report = lines.slice(Math.max(0, splat.index - LEAD_IN_LINES), splat.index + splat.lines.length)
  return allowed.some((pattern) => report.some((line) => pattern.test(line)))
}
