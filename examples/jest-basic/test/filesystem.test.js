const { readFileSync } = require('node:fs')
const { guest } = require('jest-environment-vmtest')

test('writes to the root stay in the guest', async () => {
  await guest.exec('echo guest > /etc/vmtest-example')
  expect((await guest.readFile('/etc/vmtest-example')).toString()).toBe('guest\n')
})

test('the project is shared at its own path', async () => {
  const { stdout } = await guest.exec(`cat ${__filename}`)
  expect(stdout).toBe(readFileSync(__filename, 'utf8'))
})
