// Added to globalSetup by the plugin: starts the run's guest broker in the
// main Vitest process's name before any worker needs it, and powers every
// guest off when the run (or the watch session) ends.

import type { TestProject } from 'vitest/node'
import { startBroker, stopBroker } from '@vmtest/core/runner'

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Workers find the broker by this pid whatever the pool (forks, threads, vmForks).
  process.env.VMTEST_BROKER_ANCHOR = String(process.pid)
  const maxWorkers = (project.vitest.config as { maxWorkers?: number }).maxWorkers
  await startBroker({ anchor: process.pid, maxGuests: maxWorkers })
  return async () => {
    await stopBroker(process.pid)
  }
}
