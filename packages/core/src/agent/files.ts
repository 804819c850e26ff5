// File transfer for the host: a file's bytes on one flow-controlled channel.

import { open } from 'node:fs/promises'
import type { Peer } from '../protocol/rpc.js'
import { pump } from './exec.js'

export async function fileRead(peer: Peer, params: { path: string; channel: number }): Promise<{ size: number }> {
  const handle = await open(params.path, 'r')
  let size = 0
  const stream = handle.createReadStream({ highWaterMark: 64 * 1024 })
  stream.on('data', (chunk) => (size += chunk.length))
  await pump(peer, stream, params.channel).done
  return { size }
}

/** Registers the channel before anything is awaited: its data follows the call at once.
 * A failed open or write (ENOSPC on a full tmpfs, say) cancels the channel and
 * rejects the call; the chunks still in flight are dropped. */
export function fileWrite(peer: Peer, params: { path: string; channel: number; mode?: number }): Promise<{ size: number }> {
  const opened = open(params.path, 'w', params.mode ?? 0o644)
  let chain: Promise<unknown> = opened.catch(() => {}) // a failed open is reported below
  let failed = false
  let size = 0
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      if (failed) return
      failed = true
      peer.cancelChannel(params.channel)
      opened.then((handle) => handle.close()).catch(() => {})
      reject(error)
    }
    const then = (step: () => Promise<void>) => {
      chain = chain.then(() => (failed ? undefined : step())).catch(fail)
    }
    peer.receiveChannel(params.channel, {
      data: (chunk) =>
        then(async () => {
          await (await opened).write(chunk)
          size += chunk.length
          peer.ack(params.channel, chunk.length)
        }),
      end: (error) =>
        then(async () => {
          await (await opened).close()
          if (error) throw error
          resolve({ size })
        }),
    })
    opened.catch(fail)
  })
}
