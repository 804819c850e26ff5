import { readFileSync } from 'node:fs'
import { expect, test } from 'vitest'
import { guest } from 'vitest-environment-vmtest'

test('writes to the root stay in the guest', async () => {
  await guest.exec('echo guest > /etc/vmtest-example')
  expect((await guest.readFile('/etc/vmtest-example')).toString()).toBe('guest\n')
})

test('the project is shared at its own path', async () => {
  const { stdout } = await guest.exec(`cat ${import.meta.filename}`)
  expect(stdout).toBe(readFileSync(import.meta.filename, 'utf8'))
})
