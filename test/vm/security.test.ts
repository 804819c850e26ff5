// What the guest gets of the host, and nothing more: private sockets and temp
// dirs, no TCP listener, QEMU under seccomp, no network in the guest, and a
// host tree that the guest cannot change in the overlay and ro root modes.

import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, type Guest } from '@vmtest/core'
import { startBroker, stopBroker } from '@vmtest/core/runner'
import { hostProbeDir, testKernel, vmSkipReason } from '../utils/vm-env.js'

/** Every entry under `dir`: path, type, mode, size, mtime and content hash, sorted. */
function treeState(dir: string): string[] {
  const out: string[] = []
  const walk = (path: string) => {
    const stat = lstatSync(path)
    const body = stat.isFile() ? createHash('sha256').update(readFileSync(path)).digest('hex') : stat.isSymbolicLink() ? readlinkSync(path) : ''
    out.push(`${path.slice(dir.length) || '/'} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.size} ${stat.mtimeMs} ${body}`)
    if (stat.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name))
  }
  walk(dir)
  return out
}

/** Inodes of the TCP sockets listening on this machine (state 0A in /proc/net/tcp and tcp6). */
function listeningTcpInodes(): Set<string> {
  const inodes = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields[3] === '0A') inodes.add(fields[9])
    }
  }
  return inodes
}

/** The socket inodes a process holds open. */
function socketInodes(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]].filter((i): i is string => Boolean(i))
    } catch {
      return []
    }
  })
}

/** Each attempt to change the host tree from the guest; all are allowed to fail. */
const ATTEMPTS = [
  'echo more >> file.txt',
  'truncate -s 0 script.sh',
  'rm -f sub/data.bin',
  'chmod 777 file.txt',
  'chown 65534:65534 script.sh',
  'touch -d 2001-01-01 file.txt',
  'mkdir newdir',
  'echo new > new.txt',
  'mv file.txt moved.txt',
  'ln -sf /etc/shadow link',
  'rm -rf sub',
]

describe.skipIf(vmSkipReason)('security', () => {
  let tree: string
  let before: string[]
  const guests: Record<'overlay' | 'ro', Guest> = {} as never

  beforeAll(async () => {
    tree = hostProbeDir()
    writeFileSync(join(tree, 'file.txt'), 'host data\n')
    writeFileSync(join(tree, 'script.sh'), '#!/bin/sh\necho hi\n')
    chmodSync(join(tree, 'script.sh'), 0o755)
    mkdirSync(join(tree, 'sub'))
    writeFileSync(join(tree, 'sub', 'data.bin'), Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251)))
    symlinkSync('file.txt', join(tree, 'link'))
    before = treeState(tree)
    const [overlay, ro] = await Promise.all([bootGuest({ kernel: testKernel }), bootGuest({ kernel: testKernel, rootMode: 'ro', shared: false, cwd: '/' })])
    Object.assign(guests, { overlay, ro })
  })
  afterAll(async () => {
    await Promise.all(Object.values(guests).map((g) => g.close()))
    rmSync(tree, { recursive: true, force: true })
  })

  test('overlay: every change the guest makes to a host tree stays in the guest; the host tree is identical', async () => {
    for (const attempt of ATTEMPTS) await guests.overlay.exec(`cd ${tree} && ${attempt}`)
    // The guest saw its own changes...
    expect((await guests.overlay.exec(`cd ${tree} && ls -A && cat moved.txt`)).stdout).toBe('link\nmoved.txt\nnew.txt\nnewdir\nscript.sh\nhost data\nmore\n')
    // ...the host saw none of them.
    expect(treeState(tree)).toEqual(before)
  })

  test('ro: every change is refused with EROFS; the host tree is identical', async () => {
    for (const attempt of ATTEMPTS) {
      const result = await guests.ro.exec(`cd ${tree} && ${attempt}`, { reject: false })
      expect(result.exitCode, attempt).not.toBe(0)
      expect(result.stderr, attempt).toMatch(/Read-only file system/)
    }
    expect(treeState(tree)).toEqual(before)
  })

  test("the guest's temp dir and agent socket are private (0700), and so is a broker's, which listens on no TCP port", async () => {
    const dir = dirname(guests.overlay.info.consoleLog)
    expect(lstatSync(dir).mode & 0o777).toBe(0o700)
    expect(lstatSync(join(dir, 'agent.sock')).isSocket()).toBe(true)
    const anchor = process.pid
    await startBroker({ anchor })
    try {
      const brokerDir = readdirSync(dirname(dir)).find((name) => name.startsWith(`vmtest-${anchor}-broker-`))!
      expect(lstatSync(join(dirname(dir), brokerDir)).mode & 0o777).toBe(0o700)
      // The broker listens on its Unix socket only.
      const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
      const brokerPid = Number(ps.split('\n').find((l) => l.includes('broker/main.js') && l.includes(`--anchor ${anchor}`))!.trim().split(' ')[0])
      const listening = listeningTcpInodes()
      expect(socketInodes(brokerPid).filter((inode) => listening.has(inode))).toEqual([])
    } finally {
      await stopBroker(anchor)
    }
  })

  test('nothing listens on TCP: not this process, not QEMU', () => {
    const listening = listeningTcpInodes()
    for (const pid of [process.pid, guests.overlay.info.qemuPid, guests.ro.info.qemuPid]) {
      expect(socketInodes(pid).filter((inode) => listening.has(inode)), `pid ${pid}`).toEqual([])
    }
  })

  test('QEMU runs under its seccomp sandbox', () => {
    expect(guests.overlay.info.qemuCommand).toContain('-sandbox')
    expect(readFileSync(`/proc/${guests.overlay.info.qemuPid}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m)
  })

  test('the guest has no network: loopback only', async () => {
    expect((await guests.overlay.exec('ls /sys/class/net')).stdout).toBe('lo\n')
  })
})
