/**
 * Kept out of the green run: what a kernel Oops during a test looks like. The
 * Oops kills insmod and leaves the module half loaded, so this file gets a
 * guest of its own, powered off afterwards.
 * @vmtest-isolate reboot
 */
import { test } from 'vitest'
import { guest } from 'vitest-environment-vmtest'

const ko = new URL('../module/vmtest_demo.ko', import.meta.url).pathname

test('a module that oopses fails the test that loaded it', async () => {
  await guest.exec(`insmod ${ko} oops=1`)
})

test('the kernel survives the Oops: the next test runs', async () => {
  await guest.exec('true')
})
