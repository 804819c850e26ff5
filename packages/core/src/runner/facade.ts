// The `guest` object tests import: the same in Vitest and Jest. Each member
// finds the running file's session (its runner says which), leases the guest
// on first use, and passes the call on.

import { PassThrough } from 'node:stream'
import { GuestProcess, type ExecOptions, type ExecResult, type Guest, type GuestInfo } from '../host/guest.js'
import { templateToCommand } from '../host/command.js'
import type { FileSession } from './session.js'

export interface GuestFacade {
  /** Runs `command` with /bin/sh -c in the guest. */
  exec(command: string, options?: ExecOptions & { encoding?: 'utf8' }): Promise<ExecResult<string>>
  exec(command: string, options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>
  /** execa-style template: each interpolated value is one escaped argument. */
  $(strings: TemplateStringsArray, ...values: unknown[]): Promise<ExecResult<string>>
  /** Streaming form: stdout/stderr Readables, stdin Writable, kill(), awaitable. */
  spawn(command: string, options?: ExecOptions): GuestProcess
  readFile(path: string): Promise<Buffer>
  writeFile(path: string, data: string | Uint8Array, options?: { mode?: number }): Promise<void>
  /** Kernel log lines printed since the current test started. */
  kernelLog(): string[]
  /** The current test expects a kernel report matching `pattern`: it does not fail the test. */
  allowKernelLog(pattern: RegExp | string): void
  /** The guest's kernel, release, arch, accel and boot time; the guest must be up (see ready()). */
  readonly info: GuestInfo
  /** Leases the guest now if not yet done; resolves with its info. */
  ready(): Promise<GuestInfo>
}

export interface FacadeHost {
  /** The session of the file running now; throws a clear error outside one. */
  session(): FileSession
  /** Called on every use, so a runner without per-test hooks can watch the test (Vitest without the plugin). */
  used?(session: FileSession): void
}

export function createGuestFacade(host: FacadeHost): GuestFacade {
  const use = () => {
    const session = host.session()
    host.used?.(session)
    return session
  }
  const withGuest = async <T>(run: (guest: Guest, session: FileSession) => Promise<T>): Promise<T> => {
    const session = use()
    return run(await session.guest(), session)
  }
  const exec = (command: string, options: ExecOptions = {}) =>
    withGuest((guest, session) => {
      const verbose = session.runner.verbose
      if (verbose) console.log(`$ ${command}`)
      return guest.exec(command, (verbose ? { ...options, onOutput: echoChunk } : options) as ExecOptions & { encoding?: 'utf8' })
    })
  return {
    exec: exec as GuestFacade['exec'],
    $: (strings, ...values) => exec(templateToCommand(strings, values)) as Promise<ExecResult<string>>,
    spawn(command, options = {}) {
      const session = use()
      const guest = session.current
      const child = guest ? guest.spawn(command, options) : spawnWhenUp(session, command, options)
      if (session.runner.verbose) echo(command, child)
      return child
    },
    readFile: (path) => withGuest((guest) => guest.readFile(path)),
    writeFile: (path, data, options) => withGuest((guest) => guest.writeFile(path, data, options)),
    kernelLog: () => use().kernelLog(),
    allowKernelLog: (pattern) => use().allowKernelLog(pattern),
    get info(): GuestInfo {
      const guest = use().current
      if (!guest) throw new Error('vmtest: guest.info is known once the guest is up: `await guest.ready()` first (the vitest plugin leases it before the tests).')
      return guest.info
    },
    ready: () => withGuest(async (guest) => guest.info),
  }
}

/** spawn() before the guest is up: streams now, the command once it is. */
function spawnWhenUp(session: FileSession, command: string, options: ExecOptions): GuestProcess {
  const stdin = new PassThrough()
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let pendingSignal: string | undefined
  let kill = (signal = 'SIGTERM'): void => void (pendingSignal = signal)
  // Wrapped: a GuestProcess is a thenable, which a promise would adopt.
  const started = session.guest().then((guest) => {
    const child = guest.spawn(command, options)
    stdin.pipe(child.stdin)
    child.stdout.pipe(stdout)
    child.stderr.pipe(stderr)
    kill = child.kill
    if (pendingSignal) kill(pendingSignal)
    return { child }
  })
  started.catch(() => {
    stdout.end()
    stderr.end()
  })
  return new GuestProcess(stdin, stdout, stderr, (signal) => kill(signal), started.then(({ child }) => Promise.resolve(child)))
}

/** `verbose`: the command and its output go to the test's console output as they come. */
function echo(command: string, child: GuestProcess): void {
  console.log(`$ ${command}`)
  child.stdout.on('data', (chunk: Buffer) => echoChunk('stdout', chunk))
  child.stderr.on('data', (chunk: Buffer) => echoChunk('stderr', chunk))
}

function echoChunk(stream: 'stdout' | 'stderr', chunk: Buffer): void {
  const text = chunk.toString('utf8').replace(/\n$/, '')
  if (stream === 'stdout') console.log(text)
  else console.error(text)
}
