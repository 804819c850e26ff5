import { afterEach, beforeAll, expect, test } from 'vitest'
import { guest } from 'vitest-environment-vmtest'

const build = new URL('../build/', import.meta.url).pathname
const attach = `${build}bpf-attach`
/** Where this file's links and maps are pinned; removing it detaches them. */
const pins = '/sys/fs/bpf/vmtest-example'

/** The exec counts in the pinned map, by command name (bpftool prints the BTF-formatted entries). */
async function execCounts(): Promise<Record<string, number>> {
  const { stdout } = await guest.exec(`bpftool --json map dump pinned ${pins}/exec_count`)
  const entries = JSON.parse(stdout) as Array<{ formatted: { key: string; value: number } }>
  return Object.fromEntries(entries.map((e) => [e.formatted.key, e.formatted.value]))
}

beforeAll(() => guest.exec('mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf'))

// Pinned programs are kernel state: they outlive a test (and, on a reused guest, a file).
afterEach(() => guest.exec(`rm -rf ${pins}`))

test('the program counts exec()s per command name', async () => {
  await guest.$`mkdir ${pins}`
  await guest.$`${attach} ${`${build}exec_count.bpf.o`} ${pins}`
  await guest.exec('for i in 1 2 3 4 5; do /bin/true; done; /bin/echo hi >/dev/null')
  const counts = await execCounts()
  expect(counts.true).toBe(5)
  expect(counts.echo).toBe(1)
})

test('detaching stops the counting', async () => {
  await guest.$`mkdir ${pins}`
  await guest.$`${attach} ${`${build}exec_count.bpf.o`} ${pins}`
  await guest.exec(`rm ${pins}/link_count_exec`)
  await guest.exec('/bin/true')
  expect((await execCounts()).true).toBeUndefined()
})

test('the verifier rejects a map value used without a NULL check, and says why', async () => {
  await guest.$`mkdir ${pins}`
  const load = guest.$`${attach} ${`${build}null_deref.bpf.o`} ${pins}`
  await expect(load).rejects.toThrow(/R0 invalid mem access 'map_value_or_null'/)
  // The loader stopped before pinning anything: nothing was attached.
  expect((await guest.$`ls -A ${pins}`).stdout).toBe('')
})
