/**
 * Recognises kernel "splats" — the reports the Linux kernel prints when it
 * panics, oopses, hits BUG()/WARN(), or when a sanitizer, lockdep or a
 * watchdog fires — in console/dmesg text. Pure: no I/O, no node: imports.
 *
 * Every header is matched at the start of the message (after the optional
 * timestamp / caller-id prefix), exactly as the kernel prints it. That keeps
 * ordinary prose out: "RETBleed: WARNING: ...", "Spectre V2 : WARNING:
 * Unprivileged eBPF is enabled ..." (boot-time CPU-bug advisories from
 * arch/x86/kernel/cpu/bugs.c, not reports of a kernel defect; they don't
 * taint), "MDS CPU bug present ...", "NMI watchdog: Perf NMI watchdog
 * permanently disabled", "workqueue: ... hogged CPU ..." are not splats.
 */

export type SplatKind =
  | 'panic'
  | 'oops'
  | 'bug'
  | 'warning'
  | 'kasan'
  | 'kmsan'
  | 'kcsan'
  | 'ubsan'
  | 'lockdep'
  | 'hung_task'
  | 'soft_lockup'
  | 'hard_lockup'
  | 'rcu_stall'

export const SPLAT_KINDS: readonly SplatKind[] = Object.freeze([
  'panic', 'oops', 'bug', 'warning', 'kasan', 'kmsan', 'kcsan', 'ubsan',
  'lockdep', 'hung_task', 'soft_lockup', 'hard_lockup', 'rcu_stall',
] as const)

// First match wins, so specific headers come before the generic "BUG:" / "WARNING:".
const HEADERS: ReadonlyArray<{ kind: SplatKind; pattern: RegExp }> = [
  // kernel/panic.c: panic()
  { kind: 'panic', pattern: /^Kernel panic - not syncing/ },
  // mm/kasan/report.c, mm/kmsan/report.c, kernel/kcsan/report.c
  { kind: 'kasan', pattern: /^BUG: KASAN: / },
  { kind: 'kmsan', pattern: /^BUG: KMSAN: / },
  { kind: 'kcsan', pattern: /^BUG: KCSAN: / },
  // lib/ubsan.c: ubsan_prologue()
  { kind: 'ubsan', pattern: /^UBSAN: / },
  // kernel/locking/lockdep.c (print_*_bug, lockdep_rcu_suspicious); older kernels said "INFO:"
  {
    kind: 'lockdep',
    pattern: /^(?:WARNING|INFO): (?:possible (?:circular|recursive) locking|possible irq lock inversion|inconsistent lock state|suspicious RCU usage|bad unlock balance|held lock freed|\S+-safe -> \S+-unsafe lock order|lock held when returning to user space|Nested lock was not taken|bad contention detected|\S+\/\d+ still has locks held)/,
  },
  // kernel/watchdog.c: watchdog_timer_fn()
  { kind: 'soft_lockup', pattern: /^(?:watchdog: )?BUG: soft lockup\b/ },
  // kernel/watchdog_hld.c (perf NMI detector), kernel/watchdog_buddy.c (6.6+)
  { kind: 'hard_lockup', pattern: /^(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP/ },
  // kernel/hung_task.c: check_hung_task()
  { kind: 'hung_task', pattern: /^INFO: task .+:\d+ blocked for more than \d+ seconds/ },
  // kernel/rcu/tree_stall.h, tree_exp.h, tasks.h
  { kind: 'rcu_stall', pattern: /^(?:rcu: )?INFO: \w+ (?:self-detected stall|detected (?:expedited )?stalls?) on / },
  // arch/x86/mm/fault.c, arch/x86/kernel/{dumpstack,traps}.c, arch/arm64/mm/fault.c
  {
    kind: 'oops',
    pattern: /^(?:Oops: |BUG: [Uu]nable to handle |BUG: [Kk]ernel NULL pointer dereference|general protection fault\b|Unable to handle kernel )/,
  },
  // lib/bug.c: report_bug(); any other "BUG:" (sleeping function called from invalid context, bad page state, ...)
  { kind: 'bug', pattern: /^(?:[Kk]ernel BUG at |BUG: )/ },
  // kernel/panic.c: __warn(); "file:line at" is the 6.19+ spelling. "cut here" is not a start.
  { kind: 'warning', pattern: /^WARNING: (?:CPU: \d+ PID: \d+ at |at |\S+:\d+ at )/ },
]

// "<4>" syslog level, "[    1.234567]" timestamp, "[    T1]" / "[ C1]" caller id (CONFIG_PRINTK_CALLER).
const PREFIX = /^(?:<\d+>)?(?:\[\s*\d+\.\d+\] ?)?(?:\[\s*[TC]\d+\] ?)?/

// "---[ end trace 0000000000000000 ]---" (oops/BUG/WARN), "---[ end Kernel panic - not syncing: ... ]---".
const END_MARKER = /^---\[ end (?:trace|Kernel panic)/
// KASAN/KMSAN/KCSAN/UBSAN reports are framed by a row of '='.
const SANITIZER_RULE = /^={20,}\s*$/
// The "</TASK>" closing a stack dump ends reports that have no end marker (hung task, lockdep, lockups, ...).
const STACK_END = /^\s*<\/TASK>\s*$/
const SANITIZERS: ReadonlySet<SplatKind> = new Set<SplatKind>(['kasan', 'kmsan', 'kcsan', 'ubsan'])

/** A report that never reaches its end is cut at this many lines (or at the next splat). */
const MAX_LINES = 60
/** How far to look for a report's end; long KASAN/lockdep reports legitimately exceed MAX_LINES. */
const MAX_SEARCH = 200
/** A same-kind header this close to the start is the report's own die header ("BUG: kernel NULL..." then "Oops: 0002 [#1]"). */
const DIE_HEADER_WINDOW = 8
/** After "</TASK>", an oops/WARN/panic still prints "Modules linked in", "CR2", "Kernel Offset" before its end marker. */
const END_MARKER_LOOKAHEAD = 4

function message(line: string): string {
  return line.replace(PREFIX, '')
}

/** The kind of splat whose report starts at this line, or undefined. `line` is one kernel log line's text, possibly with a console timestamp prefix like "[    1.234567] " or a kmsg-style prefix already stripped. */
export function classifyLine(line: string): SplatKind | undefined {
  const msg = message(line)
  return HEADERS.find((h) => h.pattern.test(msg))?.kind
}

export interface Splat {
  kind: SplatKind
  /** The first line, trimmed, timestamp removed. */
  title: string
  /** The report, verbatim from the input: the first line plus following lines up to its end marker, or up to MAX_LINES / the next unrelated splat start. */
  lines: string[]
  /** Index in the input array of the first line. */
  index: number
}

/** Finds every splat in a list of log lines, in order. */
export function findSplats(lines: readonly string[]): Splat[] {
  const splats: Splat[] = []
  for (let i = 0; i < lines.length; ) {
    const kind = classifyLine(lines[i])
    if (kind === undefined) {
      i++
      continue
    }
    const end = reportEnd(lines, i, kind)
    splats.push({ kind, title: message(lines[i]).trim(), lines: lines.slice(i, end), index: i })
    i = end
  }
  return splats
}

/** Exclusive end index of the report of `kind` starting at `start`. */
function reportEnd(lines: readonly string[], start: number, kind: SplatKind): number {
  const cap = Math.min(lines.length, start + MAX_LINES)
  const stop = Math.min(lines.length, start + MAX_SEARCH)
  for (let j = start + 1; j < stop; j++) {
    const msg = message(lines[j])
    if (END_MARKER.test(msg)) return j + 1
    if (SANITIZERS.has(kind)) {
      if (SANITIZER_RULE.test(msg)) return j + 1
    } else if (STACK_END.test(msg) && !endMarkerFollows(lines, j + 1)) {
      return j + 1
    }
    const next = classifyLine(lines[j])
    if (next !== undefined && (next !== kind || j - start >= DIE_HEADER_WINDOW)) return Math.min(j, cap)
  }
  return cap
}

function endMarkerFollows(lines: readonly string[], from: number): boolean {
  for (let k = from; k < Math.min(lines.length, from + END_MARKER_LOOKAHEAD); k++) {
    if (END_MARKER.test(message(lines[k]))) return true
    if (classifyLine(lines[k]) !== undefined) return false
  }
  return false
}

// include/linux/panic.h TAINT_* bit order; print_tainted() letters from kernel/panic.c.
const TAINT_LETTERS = 'PFSRMBUDAWCIOELKXTNJ'

/** Decodes /proc/sys/kernel/tainted into flag letters, e.g. 512 -> ['W'] ; 4096 -> ['O'] (use the kernel's table: P F S R M B U D A W C I O E L K X T N J). Bits beyond the table are ignored. */
export function taintFlags(value: number): string[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`invalid kernel taint value: ${value}`)
  const flags: string[] = []
  for (let bit = 0; bit < TAINT_LETTERS.length; bit++) {
    if (Math.floor(value / 2 ** bit) % 2 === 1) flags.push(TAINT_LETTERS[bit])
  }
  return flags
}
