// Helpers shared by the runner e2e tests.

import { readFileSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { qemuProcesses } from '../utils/vm-env.js'
import { fixtures, type CliRun } from './run-cli.js'

/** QEMU of a fixture run: its command line names the fixture dir (shared at /mnt/vmtest). */
export async function qemuLeftAfter(fixture: string): Promise<number[]> {
  const needle = resolve(fixtures, fixture)
  // Guests get a bounded power-off after the run; wait it out, then look.
  for (let i = 0; i < 50 && qemuProcesses(needle).length > 0; i++) await new Promise((r) => setTimeout(r, 200))
  return qemuProcesses(needle)
}

export function outcome(run: CliRun, file: string, title: string) {
  const found = run.tests.find((t) => t.file === file && t.title === title)
  if (!found) throw new Error(`no test "${title}" in ${file}; report:\n${JSON.stringify(run.tests, null, 2)}\n${run.stderr}`)
  return found
}

/** The boot ids the fixture's files recorded: file name -> boot id. */
export const boots = (out: string): Record<string, string> =>
  Object.fromEntries(readdirSync(out).filter((f) => f.endsWith('.boot')).map((f) => [f.replace(/\.boot$/, ''), readFileSync(join(out, f), 'utf8').trim()]))

/** Polls `ready` every 250 ms; the error quotes what the process said so far. */
export async function waitFor(what: string, ready: () => boolean, ms: number, said: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the runner said:\n${said()}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
