// Load held by one guest: many sequential commands and a large stream through
// a slow reader (64 concurrent commands are in test/vm/exec.test.ts). Not part
// of `npm test` (minutes under TCG): run `npm run test:load`; each test prints
// its figures. VMTEST_LOAD_EXECS and VMTEST_LOAD_STREAM_MIB scale it down.

import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { bootGuest, type Guest } from '@vmtest/core'
import { testKernel, vmSkipReason } from '../utils/vm-env.js'

const EXECS = Number(process.env.VMTEST_LOAD_EXECS) || 10_000
const STREAM_MIB = Number(process.env.VMTEST_LOAD_STREAM_MIB) || 1024
const MiB = 1 << 20

const hostFds = () => readdirSync('/proc/self/fd').length
const hostRssMiB = () => process.memoryUsage().rss / MiB

describe.skipIf(vmSkipReason)('load on one guest', () => {
  let guest: Guest
  let agentPid: string
  const agent = async () => {
    const { stdout } = await guest.exec(`grep VmRSS /proc/${agentPid}/status | tr -s ' ' | cut -d' ' -f2; ls /proc/${agentPid}/fd | wc -l`)
    const [rssKiB, fds] = stdout.trim().split('\n').map(Number)
    return { rssMiB: rssKiB / 1024, fds }
  }

  beforeAll(async () => {
    guest = await bootGuest({ kernel: testKernel })
    agentPid = (await guest.exec('echo $PPID')).stdout.trim()
  })
  afterAll(() => guest?.close())

  test(`${EXECS} sequential exec('true'): host and agent memory and fds stay flat`, async () => {
    for (let i = 0; i < 200; i++) await guest.exec('true') // warm both sides up first
    globalThis.gc?.()
    const start = { host: { rssMiB: hostRssMiB(), fds: hostFds() }, agent: await agent() }
    const started = Date.now()
    for (let i = 0; i < EXECS; i++) await guest.exec('true')
    const ms = Date.now() - started
    globalThis.gc?.()
    const end = { host: { rssMiB: hostRssMiB(), fds: hostFds() }, agent: await agent() }
    console.log(`${EXECS} execs in ${(ms / 1000).toFixed(1)} s (${(ms / EXECS).toFixed(1)} ms each); start ${JSON.stringify(start)}; end ${JSON.stringify(end)}`)
    expect(end.host.fds).toBe(start.host.fds)
    expect(end.agent.fds).toBe(start.agent.fds)
    expect(end.host.rssMiB - start.host.rssMiB).toBeLessThan(40)
    expect(end.agent.rssMiB - start.agent.rssMiB).toBeLessThan(40)
  })

  test(`${STREAM_MIB} MiB through spawn() to a slow reader: bytes exact, host memory bounded`, async () => {
    // 1 KiB lines "<line number padded to 1023 chars>\n": what the host must see, hashed as it goes.
    const command = `awk 'BEGIN { for (i = 0; i < ${STREAM_MIB * 1024}; i++) printf "%01023d\\n", i }'`
    const expected = createHash('sha256')
    for (let i = 0; i < STREAM_MIB * 1024; i++) expected.update(`${String(i).padStart(1023, '0')}\n`)
    const child = guest.spawn(command)
    const got = createHash('sha256')
    let bytes = 0
    let peakRss = hostRssMiB()
    const baseRss = peakRss
    const started = Date.now()
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      got.update(chunk)
      bytes += chunk.length
      // Slow reader: a 20 ms stall after every 8 MiB.
      if (Math.floor(bytes / (8 * MiB)) !== Math.floor((bytes - chunk.length) / (8 * MiB))) {
        peakRss = Math.max(peakRss, hostRssMiB())
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    await child
    const s = (Date.now() - started) / 1000
    console.log(`${STREAM_MIB} MiB in ${s.toFixed(1)} s (${(bytes / MiB / s).toFixed(1)} MiB/s); host RSS ${baseRss.toFixed(0)} -> peak ${peakRss.toFixed(0)} MiB`)
    expect(bytes).toBe(STREAM_MIB * MiB)
    expect(got.digest('hex')).toBe(expected.digest('hex'))
    expect(peakRss - baseRss).toBeLessThan(128)
  })
})
