const { guest } = require('jest-environment-vmtest')

test('runs in the guest kernel', async () => {
  const { stdout } = await guest.exec('uname -r')
  expect(stdout.trim()).toBe(guest.info.release)
})

test('execa-style template, arguments escaped', async () => {
  const file = '/tmp/a file with spaces'
  await guest.$`touch ${file}`
  expect((await guest.$`ls ${file}`).stdout.trim()).toBe(file)
})

test('an expected kernel warning can be allowed', async () => {
  guest.allowKernelLog(/example_probe/)
  await guest.exec("echo '<4>WARNING: CPU: 0 PID: 1 at drivers/example.c:1 example_probe+0x0/0x10' > /dev/kmsg")
  expect(guest.kernelLog().some((line) => line.includes('example_probe'))).toBe(true)
})
