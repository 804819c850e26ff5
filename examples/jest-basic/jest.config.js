/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'vmtest',
  // No `kernel`: VMTEST_KERNEL, the host's own kernel, or the one `npm run setup` fetched.
  testEnvironmentOptions: { vmtest: { memory: '1G' } },
  // The guest is booted in the environment's setup(), so tests only pay for their commands.
  testTimeout: 30_000,
}
