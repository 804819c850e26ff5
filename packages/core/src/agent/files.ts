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

/** Registers the channel before anything is awaited: its data follows the call at once. */
export function fileWrite(peer: Peer, params: { path: string; channel: number; mode?: number }): Promise<{ size: number }> {
  const opened = open(params.path, 'w', params.mode ?? 0o644)
  let chain: Promise<unknown> = opened
  let size = 0
  return new Promise((resolve, reject) => {
    peer.receiveChannel(params.channel, {
      data: (chunk) => {
        chain = chain.then(async () => {
          await (await opened).write(chunk)
          size += chunk.length
          peer.ack(params.channel, chunk.length)
        })
      },
      end: (error) => {
        chain = chain.then(async () => {
          await (await opened).close()
          if (error) throw error
          resolve({ size })
        })
        chain.catch(reject)
      },
    })
    opened.catch((error) => {
      peer.cancelChannel(params.channel)
      reject(error)
    })
  })
}
