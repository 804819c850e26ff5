import { afterEach, expect, test } from 'vitest'
import { guest } from 'vitest-environment-vmtest'

const ko = new URL('../module/vmtest_demo.ko', import.meta.url).pathname

// Loaded modules are kernel state: they outlive a test (and, on a reused guest, a file).
afterEach(() => guest.exec('rmmod vmtest_demo 2>/dev/null || true'))

test('loads with its parameter, shows it in sysfs and logs it', async () => {
  await guest.exec(`insmod ${ko} answer=7`)
  const answer = await guest.readFile('/sys/module/vmtest_demo/parameters/answer')
  expect(answer.toString().trim()).toBe('7')
  expect(guest.kernelLog()).toContain('vmtest_demo: loaded answer=7')
})

test('the parameter is read-only', async () => {
  await guest.exec(`insmod ${ko}`)
  const write = await guest.exec('echo 1 > /sys/module/vmtest_demo/parameters/answer', { reject: false })
  expect(write.exitCode).not.toBe(0)
  expect(write.stderr).toMatch(/Permission denied/)
})

test('unloads cleanly', async () => {
  await guest.exec(`insmod ${ko}`)
  await guest.exec('rmmod vmtest_demo')
  expect(guest.kernelLog()).toContain('vmtest_demo: unloaded')
  expect((await guest.exec('grep -c ^vmtest_demo /proc/modules || true')).stdout.trim()).toBe('0')
})

test('an expected WARNING can be allowed', async () => {
  guest.allowKernelLog(/vmtest_demo: asked to warn/)
  await guest.exec(`insmod ${ko} warn=1`)
  expect(guest.kernelLog().some((line) => line.startsWith('WARNING: CPU:'))).toBe(true)
})
