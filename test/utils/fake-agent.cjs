// Stands in for the guest agent: says hello with a protocol version no host
// speaks, then idles. Booted through `vmtest_node=` pointing at a wrapper.
const fs = require('node:fs')

const base = '/sys/class/virtio-ports'
const port = fs.readdirSync(base).find((p) => fs.readFileSync(`${base}/${p}/name`, 'utf8').trim() === 'org.vmtest.agent.0')
const hello = { t: 'event', name: 'agent.hello', params: { version: 99, pid: process.pid, node: process.version, release: 'fake', bootId: 'fake', uptimeMs: 0 } }
const json = Buffer.from(JSON.stringify(hello))
const frame = Buffer.alloc(5 + json.length)
frame.writeUInt32BE(json.length + 1, 0) // the length counts the kind byte and the JSON
frame.writeUInt8(0, 4) // kind 0: a JSON message
json.copy(frame, 5)
fs.writeFileSync(`/dev/${port}`, frame)
setInterval(() => {}, 60_000)
