// The guest API against one real guest (default root mode: overlay).

import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, isVmtestError, type Guest } from '@vmtest/core'
import { hostProbeDir, testKernel, vmSkipReason } from '../utils/vm-env.js'
import { prng } from '../../packages/core/test/helpers/prng.js'

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

describe.skipIf(vmSkipReason)('exec in a real guest', () => {
  let guest: Guest
  const progress: string[] = []

  beforeAll(async () => {
    guest = await bootGuest({ kernel: testKernel, onProgress: (line) => progress.push(line) })
  })
  afterAll(async () => {
    await guest?.close()
  })

  test('a boot reports its progress', () => {
    expect(progress[0]).toMatch(/^booting [\w.-]+ with (kvm|tcg)/)
    expect(progress).toContainEqual(expect.stringMatching(/^guest: root mounted \([\d.]+ s after kernel start\)$/))
    expect(progress).toContainEqual(expect.stringMatching(/^guest: starting the agent/))
  })

  test('info describes the booted kernel', () => {
    expect(guest.info.kernel).toBe(testKernel)
    expect(guest.info.release).toMatch(/^\d+\.\d+/)
    expect(guest.info.arch).toBe('x86_64')
    expect(['kvm', 'tcg']).toContain(guest.info.accel)
    expect(guest.info.bootMs).toBeGreaterThan(0)
  })

  test('runs in the guest kernel, not the host one', async () => {
    const { stdout } = await guest.exec('uname -r')
    expect(stdout.trim()).toBe(guest.info.release)
    const bootId = (await guest.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim()
    expect(bootId).toBe(guest.info.bootId)
    expect(bootId).not.toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim())
  })

  test('exit codes, stderr and the failure message', async () => {
    const ok = await guest.exec('exit 3', { reject: false })
    expect(ok).toMatchObject({ exitCode: 3, signal: null, timedOut: false })
    const error = await guest.exec('echo to-stderr >&2; exit 7').catch((e) => e)
    expect(isVmtestError(error)).toBe(true)
    expect(error.code).toBe('VMTEST_COMMAND_FAILED')
    expect(error.exitCode).toBe(7)
    expect(error.message).toContain('Command failed with exit code 7 in the guest: echo to-stderr >&2; exit 7')
    expect(error.message).toContain('| to-stderr')
  })

  test('a signal is reported as the signal', async () => {
    const result = await guest.exec('kill -USR1 $$', { reject: false })
    expect(result).toMatchObject({ exitCode: null, signal: 'SIGUSR1' })
  })

  test('env is merged over the guest defaults, cwd is honoured', async () => {
    const { stdout } = await guest.exec('echo "$FOO:$HOME:$PATH"; pwd', { env: { FOO: 'bar baz' }, cwd: '/sys/kernel' })
    const [vars, cwd] = stdout.trim().split('\n')
    expect(vars).toBe('bar baz:/root:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    expect(cwd).toBe('/sys/kernel')
    expect((await guest.exec('pwd')).stdout.trim()).toBe(process.cwd())
  })

  test('a cwd missing in the guest is a clear error, and a spawn that never started ends its streams', async () => {
    const error = await guest.exec('true', { cwd: '/no/such/dir' }).catch((e) => e)
    expect(error.message).toContain('the working directory /no/such/dir does not exist in the guest')
    const child = guest.spawn('echo never', { cwd: '/no/such/dir' })
    const ended = new Promise((resolve) => child.stdout.on('end', resolve).resume())
    expect((await child.then(() => 'resolved', (e) => e)).message).toContain('does not exist in the guest')
    await ended
  })

  test('the project dir is at its host path even where the guest mounts its own /tmp', async () => {
    const project = mkdtempSync('/tmp/vmtest-project-probe-') // hidden by the guest's tmpfs /tmp
    const other = await bootGuest({ kernel: testKernel, shared: project, cwd: project })
    try {
      expect((await other.exec('pwd')).stdout.trim()).toBe(project)
      await other.exec('echo seen > written-in-guest')
      expect(readFileSync(`${project}/written-in-guest`, 'utf8')).toBe('seen\n')
    } finally {
      await other.close()
      rmSync(project, { recursive: true, force: true })
    }
  })

  test('stdin from input', async () => {
    const { stdout } = await guest.exec('tr a-z A-Z', { input: 'hello guest\n' })
    expect(stdout).toBe('HELLO GUEST\n')
  })

  test('64 concurrent commands keep their output apart, each exact', async () => {
    const runs = Array.from({ length: 64 }, (_, i) => guest.exec(`for n in 1 2 3 4 5 6 7 8 9 10; do echo cmd${i}-$n; echo err${i}-$n >&2; done`))
    const results = await Promise.all(runs)
    results.forEach((r, i) => {
      expect(r.stdout).toBe(Array.from({ length: 10 }, (_, n) => `cmd${i}-${n + 1}\n`).join(''))
      expect(r.stderr).toBe(Array.from({ length: 10 }, (_, n) => `err${i}-${n + 1}\n`).join(''))
    })
  })

  test('8 MB of random bytes out and back, exactly', async () => {
    const data = randomBytes(8 * 1024 * 1024)
    await guest.writeFile('/tmp/random.bin', data)
    const guestSum = (await guest.exec('sha256sum /tmp/random.bin')).stdout.split(' ')[0]
    expect(guestSum).toBe(sha256(data))
    expect(sha256(await guest.readFile('/tmp/random.bin'))).toBe(sha256(data))
    const viaStdout = await guest.exec('cat /tmp/random.bin', { encoding: 'buffer' })
    expect(sha256(viaStdout.stdout)).toBe(sha256(data))
    const viaStdin = await guest.exec('sha256sum', { input: data })
    expect(viaStdin.stdout.split(' ')[0]).toBe(sha256(data))
  })

  test('a file that does not exist is a clear error', async () => {
    const error = await guest.readFile('/no/such/file').catch((e) => e)
    expect(error.message).toContain('Cannot read /no/such/file in the guest')
    expect(error.message).toContain('ENOENT')
  })

  test('a timeout kills the command in the guest', async () => {
    const started = Date.now()
    const result = await guest.exec('sleep 600 & sleep 600; echo never', { timeout: 500, reject: false })
    expect(result.timedOut).toBe(true)
    expect(result.signal).toBe('SIGTERM')
    expect(Date.now() - started).toBeLessThan(10_000)
    const error = await guest.exec('echo partial; sleep 600', { timeout: 300 }).catch((e) => e)
    expect(error.message).toMatch(/^Command timed out after 300 ms and was killed \(SIGTERM\) in the guest: echo partial; sleep 600/)
    expect(error.message).toContain('| partial')
    // The whole process group went, the background sleep included.
    expect((await guest.exec('ps -o args | grep -c "^sleep 600" || true')).stdout.trim()).toBe('0')
  })

  test('an AbortSignal kills the command in the guest', async () => {
    const controller = new AbortController()
    const running = guest.exec('sleep 600', { signal: controller.signal, reject: false })
    setTimeout(() => controller.abort(), 300)
    const result = await running
    expect(result).toMatchObject({ isCanceled: true, signal: 'SIGKILL' })
  })

  test('the $ template passes each value as one escaped argument', async () => {
    const tricky = `it's "quoted" $HOME \`id\` \\ * ~\nnewline`
    const { stdout } = await guest.$`printf %s ${tricky}`
    expect(stdout).toBe(tricky)
    const list = await guest.$`printf "<%s>" ${['a b', 'c']}`
    expect(list.stdout).toBe('<a b><c>')
  })

  test('the $ template, fuzzed: 300 random strings (quotes, $, backticks, newlines, any code point) reach the guest exactly; NUL is refused', async () => {
    const rand = prng(7)
    const alphabet = [...`'"$\`\\ \n\t*?~!#&;|<>(){}[]=%`, 'é', '☃', '\u{1F600}', '\x01', '\x7f']
    const pick = () => (rand() < 0.5 ? alphabet[Math.floor(rand() * alphabet.length)] : String.fromCodePoint(1 + Math.floor(rand() * 0xd7ff)))
    const values = ['', "'", "''", ...Array.from({ length: 300 }, () => Array.from({ length: Math.floor(rand() * 24) }, pick).join(''))]
    // NUL ends each argument in the output: no value contains one.
    const { stdout } = await guest.$`printf '%s\\0' ${values}`
    expect(stdout.split('\0').slice(0, -1)).toEqual(values)
    expect(() => guest.$`printf %s ${'a\0b'}`).toThrow('guest.$: an argument contains a NUL byte, which no command line can carry: "a\\u0000b"')
  })

  test('spawn streams stdout and takes stdin', async () => {
    const child = guest.spawn('while read line; do echo "got $line"; done')
    const seen: string[] = []
    child.stdout.on('data', (chunk: Buffer) => seen.push(chunk.toString()))
    child.stdin.write('one\n')
    child.stdin.end('two\n')
    const result = await child
    expect(result.exitCode).toBe(0)
    expect(seen.join('')).toBe('got one\ngot two\n')
  })

  test('spawn kill signals the command', async () => {
    const child = guest.spawn('echo ready; sleep 600', { reject: false })
    await new Promise((resolve) => child.stdout.once('data', resolve))
    // SIGTERM, not SIGINT: `sh -c` catches SIGINT, and one that lands between
    // the echo and the fork of sleep is acted on only after sleep ends.
    child.kill('SIGTERM')
    expect((await child).signal).toBe('SIGTERM')
  })

  test('kernel log lines printed meanwhile travel with the result', async () => {
    const mark = guest.markKernelLog()
    const result = await guest.exec('echo "<4>vmtest: hello from a test" > /dev/kmsg')
    expect(result.kernelLog.map((r) => r.text)).toEqual(['vmtest: hello from a test'])
    expect(result.kernelLog[0].level).toBe(4)
    expect(guest.kernelLog(mark)).toEqual(['vmtest: hello from a test'])
    const failing = await guest.exec('echo "<3>vmtest: it broke" > /dev/kmsg; exit 1').catch((e) => e)
    expect(failing.message).toContain('kernel log while it ran:\n  | vmtest: it broke')
  })

  test('the taint mask is read from the guest', async () => {
    const { tainted } = await guest.syncKernelLog()
    expect(tainted).toBe(Number((await guest.exec('cat /proc/sys/kernel/tainted')).stdout))
  })

  test('the mounts a test expects are there', async () => {
    const mounts = (await guest.exec('cat /proc/mounts')).stdout
    for (const [type, point] of [
      ['proc', '/proc'], ['sysfs', '/sys'], ['devtmpfs', '/dev'], ['tmpfs', '/tmp'], ['tmpfs', '/run'], ['tmpfs', '/dev/shm'],
      ['devpts', '/dev/pts'], ['debugfs', '/sys/kernel/debug'], ['tracefs', '/sys/kernel/tracing'], ['cgroup2', '/sys/fs/cgroup'],
      ['overlay', '/'], ['9p', '/mnt/vmtest'],
    ]) {
      expect(mounts).toMatch(new RegExp(`^\\S+ ${point.replaceAll('/', '\\/')} ${type} `, 'm'))
    }
    expect((await guest.exec('readlink /dev/fd')).stdout.trim()).toBe('/proc/self/fd')
  })

  test('overlay root: guest writes to host paths never reach the host', async () => {
    const dir = hostProbeDir()
    try {
      writeFileSync(`${dir}/keep`, 'host data\n')
      await guest.exec(`echo x > ${dir}/new; rm ${dir}/keep; mkdir ${dir}/sub; echo x > /etc/vmtest-probe; mkdir /var/vmtest-probe`)
      expect((await guest.exec(`cat ${dir}/new; ls ${dir}`)).stdout).toBe('x\nnew\nsub\n')
      expect(readdirSync(dir)).toEqual(['keep'])
      expect(readFileSync(`${dir}/keep`, 'utf8')).toBe('host data\n')
      expect(existsSync('/etc/vmtest-probe')).toBe(false)
      expect(existsSync('/var/vmtest-probe')).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the project dir is shared writable at /mnt/vmtest', async () => {
    const name = `vmtest-shared-probe-${process.pid}`
    try {
      await guest.exec(`echo from-guest > /mnt/vmtest/${name}`)
      expect(readFileSync(`${process.cwd()}/${name}`, 'utf8')).toBe('from-guest\n')
    } finally {
      rmSync(`${process.cwd()}/${name}`, { force: true })
    }
  })
})
