import { PassThrough } from 'node:stream'
import { describe, expect, test, vi } from 'vitest'
import {
  copyingWriter,
  corkedWriter,
  DATA_CHUNK_BYTES,
  encodeData,
  encodeDataHeader,
  encodeJson,
  FRAME_DATA,
  FRAME_JSON,
  FrameDecoder,
  MAX_FRAME_BYTES,
  ProtocolError,
  type Frame,
} from '../../src/protocol/framing.js'
import { prng } from '../helpers/prng.js'

const randInt = (rand: () => number, min: number, max: number) => min + Math.floor(rand() * (max - min + 1))

function randomBytes(rand: () => number, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(rand() * 256)
  return out
}

/** Splits `stream` into chunks of random sizes from 1 to `maxChunk`. */
function chunk(stream: Buffer, rand: () => number, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < stream.length; ) {
    const size = randInt(rand, 1, maxChunk)
    chunks.push(stream.subarray(offset, offset + size))
    offset += size
  }
  return chunks
}

function encode(frame: Frame): Buffer {
  return frame.kind === FRAME_JSON ? encodeJson(frame.message) : encodeData(frame.channel, frame.data)
}

/** A header (u32 length + kind) followed by `body`, written by hand. */
function rawFrame(length: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(4)
  head.writeUInt32BE(length >>> 0, 0)
  return Buffer.concat([head, body])
}

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

const frames: Frame[] = [
  { kind: FRAME_JSON, message: { t: 'call', id: 1, method: 'exec.start', params: { command: 'echo hi', env: { A: 'b' } } } },
  { kind: FRAME_DATA, channel: 5, data: Buffer.from('hello\n') },
  { kind: FRAME_DATA, channel: 5, data: Buffer.alloc(0) }, // end marker
  { kind: FRAME_JSON, message: 'just a string with "quotes", \\ and ünïcødé 🐧' },
  { kind: FRAME_DATA, channel: 0, data: allBytes },
  { kind: FRAME_JSON, message: null },
  { kind: FRAME_JSON, message: [1, -2.5, true, false, null, {}, []] },
  { kind: FRAME_DATA, channel: 0xffffffff, data: Buffer.concat([allBytes, allBytes.reverse()]) },
  { kind: FRAME_JSON, message: 0 },
  { kind: FRAME_DATA, channel: 7, data: randomBytes(prng(1), DATA_CHUNK_BYTES) },
  { kind: FRAME_DATA, channel: 7, data: Buffer.from([0]) },
  { kind: FRAME_DATA, channel: 7, data: Buffer.alloc(0) },
  { kind: FRAME_JSON, message: { nested: { deep: { array: ['\u0000', '\n', '\u2028'] } } } },
]
const stream = Buffer.concat(frames.map(encode))

/** Frames with data as hex: comparing Buffers element by element is slow in toEqual. */
function comparable(list: Frame[]): unknown[] {
  return list.map((f) => (f.kind === FRAME_DATA ? { kind: f.kind, channel: f.channel, hex: f.data.toString('hex') } : f))
}

function decodeAll(chunks: Buffer[]): { decoded: unknown[]; decoder: FrameDecoder } {
  const decoder = new FrameDecoder()
  const decoded: Frame[] = []
  for (const c of chunks) decoded.push(...decoder.push(c))
  for (const f of decoded) if (f.kind === FRAME_DATA) expect(Buffer.isBuffer(f.data)).toBe(true)
  return { decoded: comparable(decoded), decoder }
}
const expected = comparable(frames)

describe('encode and decode', () => {
  test('the stream decodes to the same frames when fed whole', () => {
    const { decoded, decoder } = decodeAll([stream])
    expect(decoded).toEqual(expected)
    expect(decoder.pending).toBe(0)
  })

  test('the stream decodes to the same frames when fed one byte at a time', () => {
    const { decoded, decoder } = decodeAll(chunk(stream, () => 0, 1))
    expect(decoded).toEqual(expected)
    expect(decoder.pending).toBe(0)
  })

  test('the stream decodes to the same frames when re-fed in random chunk sizes', () => {
    const rand = prng(0x5eed)
    for (let iteration = 0; iteration < 180; iteration++) {
      // Mostly small chunks (header splits), sometimes anything up to the whole stream.
      const maxChunk = [2, 5, 9, 64, 1000, stream.length][iteration % 6]
      const { decoded, decoder } = decodeAll(chunk(stream, rand, maxChunk))
      expect(decoded, `iteration ${iteration}`).toEqual(expected)
      expect(decoder.pending).toBe(0)
    }
  })

  test('data frames are copies, not views into the fed buffer', () => {
    const input = encodeData(3, Buffer.from('abc'))
    const [frame] = new FrameDecoder().push(input)
    input.fill(0)
    expect(frame).toEqual({ kind: FRAME_DATA, channel: 3, data: Buffer.from('abc') })
  })

  test('a frame written in pieces: corked, the pieces leave as one write; copying, as one buffer the caller may reuse', async () => {
    const payload = Buffer.from('payload')
    const corked = new PassThrough()
    const writev = vi.fn()
    corked._writev = (chunks, done) => (writev(chunks.map((c) => Buffer.from(c.chunk))), done())
    corkedWriter(corked)(encodeDataHeader(4, payload.length), payload)
    await new Promise((resolve) => setImmediate(resolve))
    expect(writev).toHaveBeenCalledTimes(1)
    expect(new FrameDecoder().push(Buffer.concat(writev.mock.calls[0][0]))).toEqual([{ kind: FRAME_DATA, channel: 4, data: payload }])

    const written: Buffer[] = []
    const reused = Buffer.from('first')
    copyingWriter({ write: (chunk: Buffer) => written.push(chunk) })(encodeDataHeader(2, reused.length), reused)
    reused.write('later')
    expect(written).toHaveLength(1)
    expect(new FrameDecoder().push(written[0])).toEqual([{ kind: FRAME_DATA, channel: 2, data: Buffer.from('first') }])
  })

  test('pending counts the bytes of an incomplete frame', () => {
    const decoder = new FrameDecoder()
    const frame = encodeJson({ hello: 'world' })
    expect(decoder.push(frame.subarray(0, 7))).toEqual([])
    expect(decoder.pending).toBe(7)
    expect(decoder.push(frame.subarray(7))).toEqual([{ kind: FRAME_JSON, message: { hello: 'world' } }])
    expect(decoder.pending).toBe(0)
  })

  test('a frame of exactly MAX_FRAME_BYTES is accepted; one byte more is refused by the encoder', () => {
    const largest = Buffer.alloc(MAX_FRAME_BYTES - 5, 0xab)
    const decoder = new FrameDecoder()
    const [frame] = decoder.push(encodeData(1, largest))
    expect(frame.kind === FRAME_DATA && frame.channel === 1 && frame.data.equals(largest)).toBe(true)
    expect(decoder.pending).toBe(0)
    expect(() => encodeData(1, Buffer.alloc(MAX_FRAME_BYTES - 4))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: data chunk of 4194300 bytes exceeds the frame limit]`,
    )
    expect(() => encodeJson('x'.repeat(MAX_FRAME_BYTES))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: message of 4194306 bytes exceeds the frame limit]`,
    )
  })
})

describe('malformed input', () => {
  test('a length of 0', () => {
    expect(() => new FrameDecoder().push(rawFrame(0))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: frame length 0 is outside 1..4194304: the peer is not speaking the vmtest protocol]`,
    )
  })

  test('a length over MAX_FRAME_BYTES throws as soon as the length is readable, without buffering the body', () => {
    const decoder = new FrameDecoder()
    const header = rawFrame(MAX_FRAME_BYTES + 1)
    expect(decoder.push(header.subarray(0, 3))).toEqual([])
    expect(decoder.pending).toBe(3)
    expect(() => decoder.push(header.subarray(3))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: frame length 4194305 is outside 1..4194304: the peer is not speaking the vmtest protocol]`,
    )
    expect(decoder.pending).toBeLessThanOrEqual(4)
  })

  test('a huge length (0xffffffff) followed by a little body throws at once', () => {
    const decoder = new FrameDecoder()
    expect(() => decoder.push(rawFrame(0xffffffff, Buffer.from([FRAME_DATA, 1, 2, 3])))).toThrow(ProtocolError)
    expect(decoder.pending).toBeLessThanOrEqual(8)
  })

  test('an unknown kind', () => {
    expect(() => new FrameDecoder().push(rawFrame(3, Buffer.from([2, 0, 0])))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: unknown frame kind 2]`,
    )
    expect(() => new FrameDecoder().push(rawFrame(1, Buffer.from([255])))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: unknown frame kind 255]`,
    )
  })

  test('invalid JSON', () => {
    const body = Buffer.concat([Buffer.from([FRAME_JSON]), Buffer.from('{"t":"call",')])
    expect(() => new FrameDecoder().push(rawFrame(body.length, body))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: a JSON frame did not contain valid JSON]`,
    )
  })

  test('a JSON frame with an empty body is invalid JSON', () => {
    expect(() => new FrameDecoder().push(rawFrame(1, Buffer.from([FRAME_JSON])))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: a JSON frame did not contain valid JSON]`,
    )
  })

  test('a data frame shorter than its channel header', () => {
    for (const length of [1, 2, 3, 4]) {
      const body = Buffer.concat([Buffer.from([FRAME_DATA]), Buffer.alloc(length - 1)])
      expect(() => new FrameDecoder().push(rawFrame(length, body))).toThrowError(
        new ProtocolError('a data frame is shorter than its channel header'),
      )
    }
    expect(() => new FrameDecoder().push(rawFrame(4, Buffer.from([FRAME_DATA, 0, 0, 0])))).toThrowErrorMatchingInlineSnapshot(
      `[ProtocolError: a data frame is shorter than its channel header]`,
    )
  })

  test('a good frame followed by a bad one in the same chunk: the push throws (the stream is unusable)', () => {
    const decoder = new FrameDecoder()
    expect(() => decoder.push(Buffer.concat([encodeJson({ ok: true }), rawFrame(0)]))).toThrow(ProtocolError)
  })
})

describe('fuzz', () => {
  /** Garbage that is sometimes close to valid: plausible lengths and kinds with random bodies. */
  function garbage(rand: () => number): Buffer {
    const parts: Buffer[] = []
    const count = randInt(rand, 1, 8)
    for (let i = 0; i < count; i++) {
      const style = rand()
      if (style < 0.1) {
        const frame = encode(frames[randInt(rand, 0, frames.length - 1)])
        parts.push(frame.subarray(0, randInt(rand, 1, frame.length - 1))) // truncated
      } else if (style < 0.3) {
        parts.push(randomBytes(rand, randInt(rand, 1, 64)))
      } else if (style < 0.5) {
        parts.push(encode(frames[randInt(rand, 0, frames.length - 1)]))
      } else {
        const length = randInt(rand, 0, 40)
        const kind = rand() < 0.8 ? randInt(rand, 0, 1) : randInt(rand, 0, 255)
        const body = kind === FRAME_JSON && rand() < 0.5 ? Buffer.from(JSON.stringify(rand())) : randomBytes(rand, length)
        parts.push(rawFrame(rand() < 0.9 ? body.length + 1 : randInt(rand, 0, 0xffffffff), Buffer.concat([Buffer.from([kind]), body])))
      }
    }
    return Buffer.concat(parts)
  }

  test('random garbage either decodes or throws ProtocolError, never another error', () => {
    const rand = prng(42)
    const outcomes = { decoded: 0, protocolError: 0, waiting: 0 }
    const started = Date.now()
    for (let iteration = 0; iteration < 3000; iteration++) {
      const input = garbage(rand)
      const decoder = new FrameDecoder()
      try {
        for (const c of chunk(input, rand, randInt(rand, 1, input.length))) {
          for (const frame of decoder.push(c)) expect([FRAME_JSON, FRAME_DATA]).toContain(frame.kind)
        }
        if (decoder.pending > 0) outcomes.waiting++
        else outcomes.decoded++
        expect(decoder.pending).toBeLessThanOrEqual(input.length)
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw new Error(`iteration ${iteration}: ${String(error)}`, { cause: error })
        outcomes.protocolError++
      }
    }
    expect(Date.now() - started).toBeLessThan(4000) // never hangs or crawls
    // The generator must exercise every outcome, or the fuzz proves little.
    expect(outcomes.decoded).toBeGreaterThan(100)
    expect(outcomes.protocolError).toBeGreaterThan(100)
    expect(outcomes.waiting).toBeGreaterThan(10)
  })
})
