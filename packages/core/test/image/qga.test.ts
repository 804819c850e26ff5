// The QGA client against a scripted agent on a socket pair: syncing past
// stale bytes, one command at a time, errors, a closed channel.
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { describe, expect, test } from 'vitest'
import { Qga, QgaError } from '../../src/host/image/qga.js'

/** A socket whose writes go to `agent`, which answers through `reply`. */
function fakeSocket(agent: (line: string, reply: (bytes: string | Buffer) => void) => void) {
  const socket = new EventEmitter() as EventEmitter & { written: string[]; write(data: string | Buffer): boolean; destroy(): void }
  socket.written = []
  const reply = (bytes: string | Buffer) => setImmediate(() => socket.emit('data', Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)))
  socket.write = (data) => {
    const text = Buffer.from(data).toString('latin1')
    socket.written.push(text)
    for (const line of text.split('\n').filter(Boolean)) agent(line.replace(/^\xff/, ''), reply)
    return true
  }
  socket.destroy = () => socket.emit('close')
  return socket
}

const syncId = (line: string) => JSON.parse(line).arguments.id as number

describe('Qga', () => {
  test('sync: only the newest sync\'s answer counts, after the 0xFF marker; stale bytes are skipped', async () => {
    let syncs = 0
    const socket = fakeSocket((line, reply) => {
      const command = JSON.parse(line)
      if (command.execute === 'guest-sync-delimited') {
        // The first sync goes unanswered (the guest is still booting); garbage precedes the second's answer.
        if (++syncs === 1) return
        reply(Buffer.concat([Buffer.from('{"return": 1}\ngarbage'), Buffer.from([0xff]), Buffer.from(`{"return": ${syncId(line)}}\n`)]))
      }
      if (command.execute === 'guest-ping') reply('{"return": {}}\n')
    })
    const qga = new Qga(socket as unknown as Socket)
    await qga.sync(20)
    expect(syncs).toBeGreaterThanOrEqual(2)
    expect(socket.written[0].charCodeAt(0)).toBe(0xff) // resets QGA's parser first
    await expect(qga.execute('guest-ping')).resolves.toEqual({})
  })

  test('commands run one at a time, answers in order; an error answer rejects with its class', async () => {
    let inFlight = 0
    let maxInFlight = 0
    const socket = fakeSocket((line, reply) => {
      const command = JSON.parse(line)
      if (command.execute === 'guest-sync-delimited') return reply(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${syncId(line)}}\n`)]))
      maxInFlight = Math.max(maxInFlight, ++inFlight)
      setTimeout(() => {
        inFlight--
        if (command.execute === 'guest-file-open') reply('{"error": {"class": "GenericError", "desc": "failed to open file \'/nope\' (mode: \'r\'): No such file or directory"}}\n')
        else reply(`{"return": ${JSON.stringify(command.arguments?.n ?? null)}}\n`)
      }, 5)
    })
    const qga = new Qga(socket as unknown as Socket)
    await qga.sync()
    const results = await Promise.all([1, 2, 3].map((n) => qga.execute('echo', { n })))
    expect(results).toEqual([1, 2, 3])
    expect(maxInFlight).toBe(1)
    const error = await qga.execute('guest-file-open', { path: '/nope', mode: 'r' }).catch((e: QgaError) => e)
    expect(error).toBeInstanceOf(QgaError)
    expect(error).toMatchObject({ qgaClass: 'GenericError', message: expect.stringContaining('No such file or directory') })
  })

  test('a closed channel rejects the pending command and every later one', async () => {
    const socket = fakeSocket((line, reply) => {
      if (JSON.parse(line).execute === 'guest-sync-delimited') reply(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${syncId(line)}}\n`)]))
    })
    const qga = new Qga(socket as unknown as Socket)
    await qga.sync()
    const pending = qga.execute('guest-exec-status', { pid: 1 })
    socket.destroy()
    await expect(pending).rejects.toThrow('the qemu-guest-agent channel closed')
    await expect(qga.execute('guest-ping')).rejects.toThrow('the qemu-guest-agent channel closed')
    await expect(qga.sync()).rejects.toThrow('the qemu-guest-agent channel closed')
  })
})
