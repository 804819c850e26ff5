// Kept out of the green run: this is what a kernel WARNING during a test looks
// like. Every command exits 0, yet the test fails with the kernel's report.
import { test } from 'vitest'
import { guest } from 'vitest-environment-vmtest'

const ko = new URL('../module/vmtest_demo.ko', import.meta.url).pathname

test('a module that hits WARN_ON fails the test that loaded it', async () => {
  await guest.exec(`insmod ${ko} warn=1`)
})

test('the next test is judged on its own window', async () => {
  await guest.exec('rmmod vmtest_demo')
})
