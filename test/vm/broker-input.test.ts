// A fake client feeding the broker bad input: garbage, oversize lengths,
// truncated frames, well-framed nonsense. Each connection is dropped (or
// answered with an error); the broker stays up and serves the next client.

import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { leaseGuest, startBroker, stopBroker } from '@vmtest/core/runner'
import { isVmtestError } from '@vmtest/core'
import { encodeData, encodeJson } from '../../packages/core/src/protocol/framing.js'
import { prng } from '../../packages/core/test/helpers/prng.js'
import { vmSkipReason } from '../utils/vm-env.js'

// An anchor of our own (this process): the broker is this file's alone.
const anchor = process.pid
const socketPath = join(tmpdir(), `vmtest-${anchor}-broker-${process.getuid?.() ?? 0}`, 'broker.sock')

/** Sends `bytes` (then optionally half-closes) and resolves with what came back once the broker hangs up or 2 s pass. */
function send(bytes: Buffer, { end = false } = {}): Promise<{ reply: Buffer; closedByBroker: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(socketPath)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ reply: Buffer.concat(chunks), closedByBroker: false })
    }, 2000)
    socket.on('data', (c) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ reply: Buffer.concat(chunks), closedByBroker: true })
    })
    socket.once('connect', () => (end ? socket.end(bytes) : socket.write(bytes)))
    socket.once('error', reject)
  })
}

/** The broker still answers a real lease: one for a kernel that does not exist fails fast with that error. */
async function stillServes(): Promise<void> {
  const error = await leaseGuest({ options: { kernel: '/nonexistent/vmlinuz' } }).catch((e: unknown) => e)
  expect(isVmtestError(error) && error.code).toBe('VMTEST_KERNEL_NOT_FOUND')
}

describe.skipIf(vmSkipReason)('the broker under bad input', () => {
  beforeAll(async () => {
    process.env.VMTEST_BROKER_ANCHOR = String(anchor)
    await startBroker({ anchor })
  })
  afterAll(async () => {
    await stopBroker(anchor)
    delete process.env.VMTEST_BROKER_ANCHOR
  })

  test('an oversize length (0xffffffff), a zero length, an unknown kind: dropped at once', async () => {
    for (const bytes of [Buffer.from([0xff, 0xff, 0xff, 0xff, 0]), Buffer.from([0, 0, 0, 0]), Buffer.from([0, 0, 0, 2, 9, 9])]) {
      const { closedByBroker, reply } = await send(bytes)
      expect(closedByBroker).toBe(true)
      expect(reply.length).toBe(0)
    }
    await stillServes()
  })

  test('100 connections of random bytes, and 100 truncated frames: the broker lives on', async () => {
    const rand = prng(99)
    for (let i = 0; i < 100; i++) await send(randomBytes(1 + Math.floor(rand() * 4096)), { end: true })
    const frame = encodeJson({ t: 'call', id: 1, method: 'broker.lease', params: { options: {} } })
    for (let i = 0; i < 100; i++) await send(frame.subarray(0, Math.floor(rand() * (frame.length - 1))), { end: true })
    await stillServes()
  })

  test('well-framed nonsense: a data frame before any lease, a message that is no call, an unknown method', async () => {
    expect((await send(encodeData(7, Buffer.from('data for nobody')))).closedByBroker).toBe(false) // dropped, like data for a finished command
    for (const bytes of [encodeJson({ hello: 'world' }), encodeJson([1, 2, 3])]) expect((await send(bytes)).closedByBroker).toBe(true)
    const unknown = await send(encodeJson({ t: 'call', id: 5, method: 'broker.format-disk', params: {} }), { end: true })
    expect(unknown.reply.toString('utf8')).toContain('unknown-method')
    await stillServes()
  })
})
