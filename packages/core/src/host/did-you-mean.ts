// "Did you mean …?" for misspelt names: option keys, docblock directives, vmtest.toml fields.

/** Edit distance (insertions, deletions, substitutions) between two strings. */
export function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]
}

// Case, '_' and '-' are ignored first, so `kernelArgs` finds `kernel_args` and `kernel-args` finds `kernelArgs`.
const normal = (name: string) => name.toLowerCase().replace(/[-_]/g, '')

/** The known name `name` was most likely meant to be, or undefined when none is close (2 edits, more for long names). */
export function didYouMean(name: string, known: Iterable<string>): string | undefined {
  const names = [...known]
  const same = names.find((k) => normal(k) === normal(name))
  if (same !== undefined) return same
  let best: string | undefined
  // Long names tolerate more: "vmtest-isolation" is 3 edits from "vmtest-isolate".
  let bestDistance = Math.max(2, Math.floor(normal(name).length / 5)) + 1
  for (const k of names) {
    const distance = levenshtein(normal(k), normal(name))
    if (distance < bestDistance) [best, bestDistance] = [k, distance]
  }
  // A clipped name: "warn" for "warning", "mem" for "memory".
  return best ?? (normal(name).length >= 3 ? names.find((k) => normal(k).startsWith(normal(name))) : undefined)
}
