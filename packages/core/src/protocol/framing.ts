// Length-prefixed frames over a byte stream (the virtio-serial port). Shared by
// the host and the guest agent: imports nothing but Buffer.
//
//   frame   = u32 BE length of body, body
//   body    = u8 kind, payload
//   kind 0  = a JSON message (UTF-8)
//   kind 1  = data: u32 BE channel, bytes (zero bytes = end of that channel)

export const FRAME_JSON = 0
export const FRAME_DATA = 1

/** Largest body accepted. Data is sent in chunks far below this; a larger
 * length means a corrupt or hostile peer, and must not make us allocate it. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024

/** Data chunks are cut to this size so one busy channel cannot starve others. */
export const DATA_CHUNK_BYTES = 64 * 1024

export type Frame = { kind: typeof FRAME_JSON; message: unknown } | { kind: typeof FRAME_DATA; channel: number; data: Buffer }

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ProtocolError'
  }
}

export function encodeJson(message: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8')
  if (json.length + 1 > MAX_FRAME_BYTES) throw new ProtocolError(`message of ${json.length} bytes exceeds the frame limit`)
  const head = Buffer.allocUnsafe(5)
  head.writeUInt32BE(json.length + 1, 0)
  head.writeUInt8(FRAME_JSON, 4)
  return Buffer.concat([head, json])
}

/** Writes one frame, given in order as one or more pieces: a data frame's
 * header and its payload, so the payload need not be copied next to the header. */
export type FrameWriter = (...pieces: Buffer[]) => void

/** The header of a data frame of `length` bytes on `channel`: the frame is this, then the bytes. */
export function encodeDataHeader(channel: number, length: number): Buffer {
  if (length + 5 > MAX_FRAME_BYTES) throw new ProtocolError(`data chunk of ${length} bytes exceeds the frame limit`)
  const head = Buffer.allocUnsafe(9)
  head.writeUInt32BE(length + 5, 0)
  head.writeUInt8(FRAME_DATA, 4)
  head.writeUInt32BE(channel >>> 0, 5)
  return head
}

export function encodeData(channel: number, data: Uint8Array): Buffer {
  return Buffer.concat([encodeDataHeader(channel, data.length), data])
}

/** A FrameWriter for a stream that may keep the pieces until they are written
 * (a payload nobody reuses): the pieces of a frame leave in one writev. */
export function corkedWriter(stream: { cork(): void; uncork(): void; write(chunk: Buffer): unknown }): FrameWriter {
  return (...pieces) => {
    stream.cork()
    for (const piece of pieces) stream.write(piece)
    stream.uncork()
  }
}

/** A FrameWriter for a stream whose payloads may be reused by their owner once
 * sent (a host caller's stdin chunks): each frame is copied into one buffer. */
export function copyingWriter(stream: { write(chunk: Buffer): unknown }): FrameWriter {
  return (...pieces) => void stream.write(pieces.length === 1 ? pieces[0] : Buffer.concat(pieces))
}

/** Cuts a byte stream into whole frames (length header included) without
 * decoding them: what a relay needs to pass frames on and to switch
 * destinations between two frames, never inside one. Throws ProtocolError on a
 * bad length; after that the stream is unusable. */
export class FrameSplitter {
  private chunks: Buffer[] = []
  private buffered = 0

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    const frames: Buffer[] = []
    while (this.buffered >= 4) {
      const length = this.peekLength()
      if (length < 1 || length > MAX_FRAME_BYTES) {
        throw new ProtocolError(`frame length ${length} is outside 1..${MAX_FRAME_BYTES}: the peer is not speaking the vmtest protocol`)
      }
      if (this.buffered < 4 + length) break
      frames.push(this.take(4 + length))
    }
    return frames
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pending(): number {
    return this.buffered
  }

  private peekLength(): number {
    if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0].readUInt32BE(0)
  }

  private take(n: number): Buffer {
    let out: Buffer
    if (this.chunks[0].length >= n) {
      out = this.chunks[0].subarray(0, n)
      this.chunks[0] = this.chunks[0].subarray(n)
      if (this.chunks[0].length === 0) this.chunks.shift()
    } else {
      const all = Buffer.concat(this.chunks)
      out = all.subarray(0, n)
      this.chunks = all.length > n ? [all.subarray(n)] : []
    }
    this.buffered -= n
    return out
  }
}

/** Reassembles frames from chunks of any size. Throws ProtocolError on a bad
 * length or kind; after that the stream is unusable. */
export class FrameDecoder {
  private readonly splitter = new FrameSplitter()

  push(chunk: Buffer): Frame[] {
    return this.splitter.push(chunk).map((frame) => decodeBody(frame.subarray(4)))
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pending(): number {
    return this.splitter.pending
  }
}

function decodeBody(body: Buffer): Frame {
  const kind = body[0]
  if (kind === FRAME_JSON) {
    let message: unknown
    try {
      message = JSON.parse(body.subarray(1).toString('utf8'))
    } catch {
      throw new ProtocolError('a JSON frame did not contain valid JSON')
    }
    return { kind: FRAME_JSON, message }
  }
  if (kind === FRAME_DATA) {
    if (body.length < 5) throw new ProtocolError('a data frame is shorter than its channel header')
    // Copy: the body is a view into a buffer that may be reused by the stream.
    return { kind: FRAME_DATA, channel: body.readUInt32BE(1), data: Buffer.from(body.subarray(5)) }
  }
  throw new ProtocolError(`unknown frame kind ${kind}`)
}
