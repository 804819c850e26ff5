import { describe, expect, test } from 'vitest'
import { DATA_CHUNK_BYTES, encodeData, encodeJson, FRAME_DATA, FrameDecoder, ProtocolError } from '../../src/protocol/framing.js'
import { CHANNEL_WINDOW_BYTES } from '../../src/protocol/methods.js'
import { Peer, RpcError, type ChannelSink } from '../../src/protocol/rpc.js'

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Two peers back to back: each one's writes reach the other on a later
 * macrotask, in order, like bytes through a transport. */
function link() {
  let inFlight = 0
  const written = { host: 0, agent: 0 }
  const deliver = (to: () => Peer, frame: Buffer) => {
    inFlight++
    setImmediate(() => {
      inFlight--
      to().receive(frame)
    })
  }
  const host: Peer = new Peer((...pieces) => {
    written.host++
    deliver(() => agent, Buffer.concat(pieces))
  })
  const agent: Peer = new Peer((...pieces) => {
    written.agent++
    deliver(() => host, Buffer.concat(pieces))
  })
  /** Resolves once nothing is in flight (and handlers have had their microtasks). */
  const idle = async () => {
    do await tick()
    while (inFlight > 0)
    await tick()
    if (inFlight > 0) await idle()
  }
  return { host, agent, idle, written }
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state = { settled: false, value: undefined as T | undefined }
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    () => (state.settled = true),
  )
  return state
}

/** A sink that collects bytes; it acks them only if told to. */
function collector(peer: Peer, channel: number, options: { ack: boolean }) {
  const chunks: Buffer[] = []
  let received = 0
  let resolveEnd!: (error: Error | undefined) => void
  const ended = new Promise<Error | undefined>((resolve) => (resolveEnd = resolve))
  const sink: ChannelSink = {
    data(chunk) {
      chunks.push(chunk)
      received += chunk.length
      if (options.ack) peer.ack(channel, chunk.length)
    },
    end: (error) => resolveEnd(error),
  }
  peer.receiveChannel(channel, sink)
  return {
    ended,
    chunks,
    get received() {
      return received
    },
    bytes: () => Buffer.concat(chunks),
  }
}

function pattern(length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = (i * 7 + (i >>> 8) * 13 + (i >>> 16)) & 0xff
  return out
}

describe('calls', () => {
  test('a call reaches the handler with its params and resolves with its result', async () => {
    const { host, agent } = link()
    agent.handle('math.add', ({ a, b }: { a: number; b: number }) => ({ sum: a + b }))
    agent.handle('math.slowAdd', async ({ a, b }: { a: number; b: number }) => {
      await tick()
      return a + b
    })
    await expect(host.call('math.add', { a: 2, b: 3 })).resolves.toEqual({ sum: 5 })
    await expect(host.call('math.slowAdd', { a: 40, b: 2 })).resolves.toBe(42)
  })

  test('concurrent calls each get their own answer, in either direction', async () => {
    const { host, agent } = link()
    agent.handle('echo', async (params: { n: number; delay: number }) => {
      for (let i = 0; i < params.delay; i++) await tick()
      return params.n
    })
    host.handle('whoami', () => 'host')
    const answers = await Promise.all([3, 0, 2, 1].map((delay, n) => host.call('echo', { n, delay })))
    expect(answers).toEqual([0, 1, 2, 3])
    await expect(agent.call('whoami', {})).resolves.toBe('host')
  })

  test('a handler that returns nothing answers {}', async () => {
    const { host, agent } = link()
    agent.handle('agent.shutdown', () => undefined)
    await expect(host.call('agent.shutdown', {})).resolves.toEqual({})
  })

  test('a handler that throws gives an RpcError with code remote, the message and the errno', async () => {
    const { host, agent } = link()
    agent.handle('file.read', ({ path }: { path: string }) => {
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' })
    })
    const error = await host.call('file.read', { path: '/nope' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RpcError)
    expect(error).toMatchObject({ name: 'RpcError', code: 'remote', message: "ENOENT: no such file or directory, open '/nope'", errno: 'ENOENT' })
  })

  test('a handler that rejects asynchronously, or throws a non-Error, is reported the same way', async () => {
    const { host, agent } = link()
    agent.handle('async.fail', async () => {
      await tick()
      throw new Error('went wrong later')
    })
    agent.handle('string.fail', () => {
      throw 'a bare string'
    })
    const later = (await host.call('async.fail', {}).catch((e: unknown) => e)) as RpcError
    expect([later.code, later.message, later.errno]).toEqual(['remote', 'went wrong later', undefined])
    const bare = (await host.call('string.fail', {}).catch((e: unknown) => e)) as RpcError
    expect([bare.code, bare.message]).toEqual(['remote', 'a bare string'])
  })

  test('an unknown method gives code unknown-method', async () => {
    const { host } = link()
    const error = await host.call('no.such', {}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RpcError)
    expect(error).toMatchObject({ code: 'unknown-method', message: 'unknown method no.such' })
  })

  test('a call without an answer in time rejects with code timeout naming the method; a late answer is ignored', async () => {
    const { host, agent, idle } = link()
    let answer!: (value: unknown) => void
    agent.handle('kernel.sync', () => new Promise((resolve) => (answer = resolve)))
    agent.handle('ping', () => 'pong')
    const error = await host.call('kernel.sync', {}, { timeoutMs: 30 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RpcError)
    expect(error).toMatchObject({ code: 'timeout', message: 'kernel.sync got no answer within 30 ms' })
    answer({ tainted: 0 })
    await idle()
    expect(host.closed).toBeUndefined()
    await expect(host.call('ping', {}, { timeoutMs: 1000 })).resolves.toBe('pong')
  })

  test('events reach every handler of their name', async () => {
    const { host, agent, idle } = link()
    const seen: unknown[] = []
    host.on('kmsg', (params) => seen.push(['first', params]))
    host.on('kmsg', (params) => seen.push(['second', params]))
    host.on('other', (params) => seen.push(['other', params]))
    agent.emit('kmsg', { records: [] })
    await idle()
    expect(seen).toEqual([
      ['first', { records: [] }],
      ['second', { records: [] }],
    ])
  })
})

describe('close', () => {
  test('close(error) rejects every pending call with that very error object', async () => {
    const { host, agent, idle } = link()
    agent.handle('exec.start', () => new Promise(() => {}))
    const first = host.call('exec.start', { id: 1 })
    const second = host.call('exec.start', { id: 2 }, { timeoutMs: 60_000 })
    await idle()
    const panic = new Error('Kernel panic - not syncing: Fatal exception')
    const notified: Error[] = []
    host.onClose((error) => notified.push(error))
    host.close(panic)
    await expect(first).rejects.toBe(panic)
    await expect(second).rejects.toBe(panic)
    expect(host.closed).toBe(panic)
    expect(notified).toEqual([panic])
    expect(notified[0]).toBe(panic)
    host.close(new Error('a second close is ignored'))
    expect(host.closed).toBe(panic)
  })

  test('calls after close reject at once with the close error and write nothing', async () => {
    const { host, written } = link()
    const gone = new Error('QEMU exited')
    host.close(gone)
    const before = written.host
    const call = host.call('kernel.sync', {})
    const state = { rejectedWith: undefined as unknown }
    call.catch((error) => (state.rejectedWith = error))
    await Promise.resolve()
    await Promise.resolve()
    expect(state.rejectedWith).toBe(gone)
    expect(written.host).toBe(before)
    host.emit('kmsg', {})
    expect(written.host).toBe(before)
    await expect(host.sendData(1, Buffer.from('x'))).rejects.toBe(gone)
    const late: Error[] = []
    host.onClose((error) => late.push(error))
    expect(late).toEqual([gone])
  })

  test('close ends the receiving channels with the error and fails a stalled sendData', async () => {
    const { host, agent, idle } = link()
    const sink = collector(agent, 8, { ack: false })
    const sending = host.sendData(8, Buffer.alloc(CHANNEL_WINDOW_BYTES + 1))
    await idle()
    const broken = new Error('link broken')
    agent.close(broken)
    expect(await sink.ended).toBe(broken)
    host.close(broken)
    await expect(sending).rejects.toBe(broken)
  })

  test('garbage from the transport closes the peer with a ProtocolError', async () => {
    const peer = new Peer(() => {})
    const pending = peer.call('kernel.sync', {})
    peer.receive(Buffer.from([0, 0, 0, 0]))
    const error = await pending.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProtocolError)
    expect(peer.closed).toBe(error)
  })

  test('a well-framed message that is not a protocol message closes the peer', () => {
    const peer = new Peer(() => {})
    peer.receive(encodeJson({ hello: 'there' }))
    expect(peer.closed).toBeInstanceOf(ProtocolError)
    expect(peer.closed?.message).toMatchInlineSnapshot(`"unexpected message {"hello":"there"}"`)
  })
})

describe('channels', () => {
  test('a 5 MiB transfer arrives byte-exact, in chunks no larger than DATA_CHUNK_BYTES', async () => {
    const { host, agent } = link()
    const payload = pattern(5 * 1024 * 1024)
    const sink = collector(agent, 9, { ack: true })
    await expect(host.sendData(9, payload)).resolves.toBe(true)
    await expect(host.sendData(9, Buffer.alloc(0))).resolves.toBe(true)
    expect(await sink.ended).toBeUndefined()
    expect(sink.received).toBe(payload.length)
    expect(sink.bytes().equals(payload)).toBe(true)
    expect(Math.max(...sink.chunks.map((c) => c.length))).toBeLessThanOrEqual(DATA_CHUNK_BYTES)
  })

  test('the sender stalls after CHANNEL_WINDOW_BYTES unacknowledged bytes and resumes on ack', async () => {
    const { host, agent, idle } = link()
    const payload = pattern(3 * CHANNEL_WINDOW_BYTES)
    const sink = collector(agent, 3, { ack: false })
    const sending = track(host.sendData(3, payload))
    await idle()
    expect(sink.received).toBe(CHANNEL_WINDOW_BYTES)
    expect(sending.settled).toBe(false)
    expect(host.windowOf(3)).toBe(0)

    // A small ack releases exactly that many bytes.
    agent.ack(3, 1000)
    await idle()
    expect(sink.received).toBe(CHANNEL_WINDOW_BYTES + 1000)
    expect(sending.settled).toBe(false)

    agent.ack(3, CHANNEL_WINDOW_BYTES - 1000)
    await idle()
    expect(sink.received).toBe(2 * CHANNEL_WINDOW_BYTES)
    expect(sending.settled).toBe(false)

    agent.ack(3, 2 * CHANNEL_WINDOW_BYTES) // more than needed: the rest stays as window
    await idle()
    expect(sending).toEqual({ settled: true, value: true })
    expect(sink.bytes().equals(payload)).toBe(true)
    expect(host.windowOf(3)).toBe(CHANNEL_WINDOW_BYTES)
  })

  test('cancelChannel makes a stalled sendData resolve false, and the end marker too', async () => {
    const { host, agent, idle } = link()
    const sink = collector(agent, 4, { ack: false })
    const sending = track(host.sendData(4, Buffer.alloc(2 * CHANNEL_WINDOW_BYTES)))
    await idle()
    expect(sending.settled).toBe(false)
    agent.cancelChannel(4)
    await idle()
    expect(sending).toEqual({ settled: true, value: false })
    expect(sink.received).toBe(CHANNEL_WINDOW_BYTES)
    await expect(host.sendData(4, Buffer.alloc(0))).resolves.toBe(false)
  })

  test('data for a channel nobody receives is dropped without closing the peer', async () => {
    const { host, agent, idle } = link()
    await host.sendData(77, Buffer.from('nobody listens'))
    await idle()
    expect(agent.closed).toBeUndefined()
  })

  test('a handler that registers a channel synchronously gets the data frames that came in the same chunk as the call', async () => {
    const writes: Buffer[] = []
    const agent = new Peer((...pieces) => writes.push(Buffer.concat(pieces)))
    agent.handle('file.write', ({ channel }: { channel: number }) => {
      const parts: Buffer[] = []
      return new Promise((resolve) => {
        agent.receiveChannel(channel, {
          data: (chunk) => {
            parts.push(chunk)
            agent.ack(channel, chunk.length)
          },
          end: () => resolve({ text: Buffer.concat(parts).toString() }),
        })
      })
    })
    agent.receive(
      Buffer.concat([
        encodeJson({ t: 'call', id: 1, method: 'file.write', params: { path: '/tmp/x', channel: 5 } }),
        encodeData(5, Buffer.from('hello ')),
        encodeData(5, Buffer.from('world')),
        encodeData(5, Buffer.alloc(0)),
      ]),
    )
    await tick()
    const decoder = new FrameDecoder()
    const messages = writes.flatMap((w) => decoder.push(w)).map((f) => (f.kind === FRAME_DATA ? f : f.message))
    expect(messages).toEqual([
      { t: 'event', name: 'channel.ack', params: { channel: 5, bytes: 6 } },
      { t: 'event', name: 'channel.ack', params: { channel: 5, bytes: 5 } },
      { t: 'result', id: 1, value: { text: 'hello world' } },
    ])
  })
})
