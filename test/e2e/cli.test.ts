// The `vmtest` command end to end: the real bin on real guests.

import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, cpSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { execa } from 'execa'
import { afterAll, describe, expect, test } from 'vitest'
import { qemuProcesses, testKernel, vmSkipReason } from '../utils/vm-env.js'
import { kernelModules } from './run-cli.js'

const bin = resolve(import.meta.dirname, '../../packages/cli/dist/main.js')
const vmtest = (args: string[], cwd: string) => execa(process.execPath, [bin, ...args], { cwd, reject: false, env: { CI: '', NO_COLOR: '1' }, timeout: 300_000 })

/** A project dir with a kernel laid out as a package (boot/vmlinuz-R next to lib/modules/R), named relative to its vmtest.toml. */
function project(toml: (kernel: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmtest-cli-e2e-'))
  const release = basename(testKernel!).replace(/^vmlinuz-/, '')
  mkdirSync(join(dir, 'kernel/boot'), { recursive: true })
  mkdirSync(join(dir, 'kernel/lib/modules'), { recursive: true })
  cpSync(testKernel!, join(dir, 'kernel/boot', basename(testKernel!)))
  symlinkSync(kernelModules(), join(dir, 'kernel/lib/modules', release))
  writeFileSync(join(dir, 'vmtest.toml'), toml(`kernel/boot/${basename(testKernel!)}`))
  return dir
}

describe.skipIf(vmSkipReason)('vmtest CLI', () => {
  const dirs: string[] = []
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

  test('one-liner: output streams as it comes, our lines on stderr, the exit status is the command\'s', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'vmtest-cli-e2e-'))
    dirs.push(cwd)
    const child = spawn(process.execPath, [bin, '-k', testKernel!, 'echo out; echo err >&2; sleep 3; echo late; exit 3'], { cwd, env: { ...process.env, CI: '', NO_COLOR: '1' } })
    const seen: Record<string, number> = {}
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => {
      stdout += c
      for (const word of ['out', 'late']) if (new RegExp(`^${word}$`, 'm').test(stdout)) seen[word] ??= Date.now()
    })
    child.stderr.on('data', (c: Buffer) => (stderr += c))
    const code = await new Promise((r) => child.on('exit', r))
    expect(code).toBe(3)
    expect(stdout).toBe('out\nlate\n')
    expect(stderr).toContain(`=> ${basename(testKernel!)}\n===> Booting\n`)
    expect(stderr).toContain('===> Running command\nerr\nCommand failed with exit code: 3\nFAILED\n')
    expect(seen.late - seen.out).toBeGreaterThan(2000) // streamed, not collected at the end
    expect(qemuProcesses(cwd)).toEqual([])
  })

  test('config: two targets, one failing; /mnt/vmtest, relative paths, read-only and writable mounts', async () => {
    const dir = project((kernel) => `
[[target]]
name = "passes"
kernel = "${kernel}"
kernel_args = "vmtest_cli_marker=1"
command = "pwd && test -f /mnt/vmtest/vmtest.toml && grep -o vmtest_cli_marker=1 /proc/cmdline && echo written > /mnt/rw/out.txt && ! touch /mnt/ro/denied 2>/dev/null && cat /mnt/ro/in.txt"
vm.memory = "512M"
vm.mounts."/mnt/ro" = { host_path = "ro", writable = false }
vm.mounts."/mnt/rw" = { host_path = "rw", writable = true }

[[target]]
name = "fails"
kernel = "${kernel}"
command = "echo failing; exit 3"
vm.memory = "512M"
`)
    dirs.push(dir)
    mkdirSync(join(dir, 'ro'))
    mkdirSync(join(dir, 'rw'))
    writeFileSync(join(dir, 'ro/in.txt'), 'from the host\n')
    const run = await vmtest([], dir)
    expect(run.exitCode).toBe(1)
    expect(run.stdout).toMatch(/=> passes\n===> Booting\n[\s\S]*===> Running command\n\/mnt\/vmtest\nvmtest_cli_marker=1\nfrom the host\nPASS(\n|$)/)
    expect(run.stdout).toMatch(/=> fails\n===> Booting\n[\s\S]*===> Running command\nfailing\nCommand failed with exit code: 3\nFAILED(\n|$)/)
    expect(readFileSync(join(dir, 'rw/out.txt'), 'utf8')).toBe('written\n')
    expect(qemuProcesses(dir)).toEqual([])

    const filtered = await vmtest(['-f', '^pass'], dir)
    expect(filtered.exitCode).toBe(0)
    expect(filtered.stdout).toContain('=> passes')
    expect(filtered.stdout).not.toContain('=> fails')
  })

  test('config errors: the file, line and column, or the key and a did-you-mean', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmtest-cli-e2e-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'vmtest.toml'), '[[target]]\nname = "a"\ncommand = "true"\nkernel = \n')
    const syntax = await vmtest([], dir)
    expect(syntax.exitCode).toBe(1)
    expect(syntax.stderr).toMatch(new RegExp(`${join(dir, 'vmtest.toml').replaceAll('/', '\\/')}.*line 4, column \\d+`))
    writeFileSync(join(dir, 'vmtest.toml'), '[[target]]\nname = "a"\ncommand = "true"\nkernal = "bz"\n')
    const unknown = await vmtest([], dir)
    expect(unknown.exitCode).toBe(1)
    expect(unknown.stderr).toContain('kernal')
    expect(unknown.stderr).toContain('did you mean `kernel`')
    const missing = await vmtest(['-c', join(dir, 'nope.toml')], dir)
    expect(missing.exitCode).toBe(1)
    expect(missing.stderr).toContain(join(dir, 'nope.toml'))
  })

  test('setup, on a host already set up, says what it found and changes nothing', async () => {
    const run = await vmtest(['setup'], tmpdir())
    expect(run.exitCode).toBe(0)
    expect(run.stdout + run.stderr).toMatch(/^vmtest setup: default kernel \/\S+vmlinuz-\S+$/m)
    expect(run.stdout + run.stderr).toMatch(/^vmtest setup: KVM (unusable \(.+\)|works)/m)
  })

  test('doctor says KVM is unusable here and why, and that the rest works', async () => {
    const run = await vmtest(['doctor'], tmpdir())
    expect(run.stdout).toMatch(/^warn +accel: KVM is unusable here/m)
    expect(run.exitCode).toBe(0)
    // Its own -k: the kernel to check.
    const bad = await vmtest(['doctor', '-k', '/etc/passwd'], tmpdir())
    expect(bad.stdout).toContain('FAIL kernel: /etc/passwd (from the --kernel option) is not a bootable kernel: expected a bzImage or an ELF vmlinux, found text. It is a text file')
    expect(bad.exitCode).toBe(1)
  })

  test('`-` without a terminal says so, before booting anything', async () => {
    const run = await vmtest(['-k', testKernel!, '-'], tmpdir())
    expect(run.exitCode).toBe(2)
    expect(run.stderr).toBe('vmtest: `-` starts an interactive shell, which needs a terminal on stdin and stdout.')
  })

  test('`-`: an interactive shell on a terminal; Ctrl-C reaches the guest; exiting it ends the guest', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'vmtest-cli-e2e-'))
    dirs.push(cwd)
    // script(1) gives the CLI a pseudo-terminal, as a user's terminal would.
    const child = spawn('script', ['-qfec', `${process.execPath} ${bin} -k ${testKernel} -`, '/dev/null'], { cwd, env: { ...process.env, CI: '', NO_COLOR: '1', TERM: 'dumb' } })
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c))
    const waitFor = async (pattern: RegExp) => {
      for (let i = 0; i < 600 && !pattern.test(output); i++) await new Promise((r) => setTimeout(r, 200))
      expect(output).toMatch(pattern)
    }
    await waitFor(/# $|\$ $/m) // the guest shell's prompt
    child.stdin.write('echo h""i-from-guest; uname -r\r')
    await waitFor(/hi-from-guest/)
    // Ctrl-C interrupts the guest's foreground command, not the shell and not us.
    child.stdin.write('sleep 100\r')
    await new Promise((r) => setTimeout(r, 1500))
    const interrupted = Date.now()
    child.stdin.write('\x03')
    child.stdin.write('echo still-t""here\r')
    await waitFor(/still-there/)
    expect(Date.now() - interrupted).toBeLessThan(30_000) // sleep 100 was cut short
    child.stdin.write('exit 7\r')
    const code = await new Promise((r) => child.on('exit', r))
    expect(code).toBe(7)
    expect(qemuProcesses(cwd)).toEqual([])
  })
})
