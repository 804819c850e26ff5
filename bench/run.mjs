// The vmtest benchmark: our figures beside their references, measured side by
// side in one run, each the median of --runs runs (default 3).
//
//   npm run bench                      # builds, then every row
//   node bench/run.mjs --runs 5 --only floor,boot
//
// Rows (names for --only): floor, boot, vmtest, exec, memory, throughput,
// lease, suite, jest-suite, overhead (the last three drive the real `vitest`
// and `jest` CLIs on the projects in bench/fixtures/). Prints a table and
// writes bench/results/latest.json. Not part of the tests.

import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { bootGuest } from '@vmtest/core'

const dist = (path) => import(new URL(`../packages/core/dist/${path}`, import.meta.url).href)
const { cacheDir } = await dist('host/paths.js')
const { chooseKernel } = await dist('host/kernel/resolve.js')
const { inspectKernel } = await dist('host/kernel/inspect.js')
const { fastBootImage } = await dist('host/kernel/fast-boot.js')
const { findModuleDir, planModules } = await dist('host/kernel/modules.js')
const { writeCpio } = await dist('host/initramfs/cpio.js')
const { initramfsEntries } = await dist('host/initramfs/build.js')
const { findExecutable, findQemu } = await dist('host/qemu/binary.js')
const { chooseAccel } = await dist('host/qemu/accel.js')
const { buildQemuArgs } = await dist('host/qemu/args.js')
const { QemuProcess } = await dist('host/qemu/process.js')
const { AGENT_PORT_NAME } = await dist('protocol/methods.js')

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))
/** The modules our boot loads (boot.ts: REQUIRED_MODULES + overlay). */
const MODULES = ['virtio_pci', 'virtio_console', '9pnet_virtio', '9p', 'overlay']
/** 9p options of the root in init.sh (overlay and ro modes). */
const P9_ROOT = 'trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro'
/** Our guest's size (options.ts defaults), used for every reference boot too. */
const MEMORY_MIB = 1024
const CPUS = 1
const BOOT_TIMEOUT_MS = 180_000
const MARKER = 'VMTEST-BENCH-ROOT-MOUNTED'
const QGA_PORT = 'org.qemu.guest_agent.0'
const RAW_PORT = 'org.vmtest.raw'
const MiB = 1024 * 1024

// ---------------------------------------------------------------- arguments

const ROW_NAMES = ['floor', 'boot', 'vmtest', 'exec', 'memory', 'throughput', 'lease', 'suite', 'jest-suite', 'overhead']

function parseArgs(argv) {
  const opts = { runs: 3, only: ROW_NAMES }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s)
    const value = () => inline ?? argv[++i]
    if (flag === '--runs') opts.runs = Number(value())
    else if (flag === '--only') opts.only = value().split(',').map((s) => s.trim()).filter(Boolean)
    else throw new Error(`unknown argument ${argv[i]} (known: --runs N, --only ${ROW_NAMES.join(',')})`)
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 3) throw new Error('--runs must be an integer >= 3 (every figure is a median of at least 3 runs)')
  const unknown = opts.only.filter((n) => !ROW_NAMES.includes(n))
  if (unknown.length) throw new Error(`--only: unknown row ${unknown.join(', ')} (known: ${ROW_NAMES.join(', ')})`)
  return opts
}

// ---------------------------------------------------------------- small helpers

const median = (xs) => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const now = () => performance.now()
const progress = (msg) => process.stderr.write(`bench: ${msg}\n`)
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d

/** Temp dirs of this run: removed in finally blocks, and at exit as a last resort. */
const tempDirs = new Set()
function makeTempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'vmtest-bench-'))
  tempDirs.add(dir)
  return dir
}
function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}
process.on('exit', () => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130)) // 'exit' runs, execa's cleanup kills QEMU

/** Every QEMU this process starts itself (reference boots), checked dead at the end. */
const qemuPids = new Set()

function vmRssMiB(pid) {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return Number(kb) / 1024
}

/** A unix-socket listener standing in for our agent's host end, so reference
 * boots keep the exact QEMU argv of ours (QEMU connects to it as a client). */
async function listenUnix(path) {
  const server = createServer((s) => s.on('error', () => {}))
  const sockets = new Set()
  server.on('connection', (s) => sockets.add(s))
  await new Promise((ok, fail) => server.once('error', fail).listen(path, ok))
  return { close: () => (sockets.forEach((s) => s.destroy()), new Promise((ok) => server.close(() => ok()))) }
}

/** Connects to a QEMU server-mode chardev, retrying until QEMU has created it. */
async function connectUnix(path, { exited, timeoutMs = 30_000 } = {}) {
  const deadline = Date.now() + timeoutMs
  let dead = false
  exited?.then(() => (dead = true))
  for (;;) {
    try {
      return await new Promise((ok, fail) => {
        const s = connect(path)
        s.once('connect', () => (s.removeListener('error', fail), ok(s)))
        s.once('error', fail)
      })
    } catch (error) {
      if (dead) throw new Error(`QEMU exited before ${path} accepted a connection`)
      if (Date.now() > deadline) throw new Error(`cannot connect to ${path}: ${error.message}`)
      await sleep(5)
    }
  }
}

// ---------------------------------------------------------------- reference guests

/** Host facts every row shares: kernel, images, modules, QEMU, accel. */
async function prepareContext() {
  const cache = cacheDir()
  const chosen = chooseKernel(undefined, '', cache)
  const kernel = await inspectKernel(chosen.path)
  const qemu = findQemu(kernel.arch, undefined, '')
  const fast = await fastBootImage(kernel, cache)
  const accel = await chooseAccel('auto', qemu, fast.image, cache)
  const moduleDir = findModuleDir({ kernelPath: chosen.path, release: kernel.release }).dir
  if (!moduleDir) throw new Error(`no modules found for ${kernel.release}`)
  const plan = await planModules(moduleDir, MODULES)
  const busybox = findExecutable('busybox')
  if (!busybox) throw new Error('busybox not found on PATH')
  const qemuVersion = execFileSync(qemu, ['--version'], { encoding: 'utf8' }).split('\n')[0]
  const append = await ourKernelCommandLine()
  return { cache, bzImage: chosen.path, kernel, qemu, qemuVersion, vmlinux: fast.image, pvh: fast.pvh, accel, moduleDir, modules: plan.files, missingModules: plan.missing, busybox, append }
}

/** The kernel command line bootGuest gives this kernel (boot.ts does not export
 * it), so the reference boots get the same parameters as ours: bootGuest is run
 * with a stand-in QEMU that records its argv and fails. The vmtest_* settings,
 * which only our init reads, are dropped. */
async function ourKernelCommandLine() {
  const dir = makeTempDir()
  try {
    const argvFile = join(dir, 'argv')
    const fakeQemu = join(dir, 'qemu-argv')
    writeFileSync(fakeQemu, `#!/bin/sh\nprintf '%s\\0' "$@" > '${argvFile}'\necho 'argv recorded for the bench' >&2\nexit 1\n`, { mode: 0o755 })
    let failure
    await bootGuest({ qemu: fakeQemu, accel: 'tcg' }).then(
      (guest) => guest.close().then(() => Promise.reject(new Error('the stand-in QEMU booted a guest?'))),
      (error) => (failure = error), // expected: "QEMU exited with code 1"
    )
    if (!existsSync(argvFile)) throw new Error(`bootGuest failed before it started QEMU: ${failure?.message}`)
    const argv = readFileSync(argvFile, 'utf8').split('\0')
    const append = argv[argv.indexOf('-append') + 1]
    if (!append || !append.includes('rdinit=/init')) throw new Error(`unexpected kernel command line from bootGuest: ${append}`)
    return append.split(' ').filter((p) => !p.startsWith('vmtest_')).join(' ')
  } finally {
    removeTempDir(dir)
  }
}

const INIT_HEAD = `#!/bin/sh
export PATH=/bin
fail() { echo "bench-init: FAILED: $*"; echo o > /proc/sysrq-trigger; sleep 10; }
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sys /sys || fail "mount /sys"
mount -t devtmpfs dev /dev || fail "mount /dev"
while read -r ko; do insmod "$ko" || fail "insmod $ko"; done </vmtest/modules
mkdir -p /newroot
mount -t 9p -o ${P9_ROOT} vmtest-root /newroot || fail "mount the host root over 9p"
`

/** Floor init: modules, the 9p root, a marker, power off. */
const FLOOR_INIT = `${INIT_HEAD}echo ${MARKER}
echo o > /proc/sysrq-trigger
sleep 10
`

/** vmtest-style init: the same, then the host's qemu-ga chrooted into the 9p root. */
const QGA_INIT = `${INIT_HEAD}R=/newroot
mount -t proc proc $R/proc || fail "mount proc in the root"
mount -t sysfs sys $R/sys || fail "mount sys in the root"
mount -t devtmpfs dev $R/dev || fail "mount dev in the root"
mount -t tmpfs tmpfs $R/run || fail "mount /run"   # qemu-ga's state dir must be writable
mount -t tmpfs tmpfs $R/tmp || fail "mount /tmp"
if [ ! -d /dev/virtio-ports ]; then                 # no udev: make its by-name links
  mkdir -p /dev/virtio-ports
  for p in /sys/class/virtio-ports/*; do ln -sf "../\${p##*/}" "/dev/virtio-ports/$(cat "$p/name")"; done
fi
chroot $R /usr/sbin/qemu-ga -m virtio-serial -p /dev/virtio-ports/${QGA_PORT} -t /run &
wait $!
fail "qemu-ga exited"
`

/** Our initramfs (busybox + the planned modules, built by the project's own
 * code) with `init` as /init instead of ours and no agent. */
async function buildReferenceInitramfs(ctx, dir, name, init) {
  const entries = await initramfsEntries({ busybox: ctx.busybox, modules: ctx.modules, init: Buffer.from(init) })
  const file = join(dir, `${name}.cpio`)
  writeFileSync(file, writeCpio(entries))
  return file
}

/** QEMU argv as bootGuest builds it (machine, cpu, console, agent port, 9p
 * root, kernel command line), with the reference initramfs and `extraArgs`. The accel is the one
 * our guests get: `-accel tcg` on top would clash with buildQemuArgs'
 * `-machine q35,accel=tcg` ("options are incompatible"), so it goes there. */
function referenceArgs(ctx, { kernel, initramfs, agentSocket, extraArgs = [] }) {
  return buildQemuArgs({
    arch: ctx.kernel.arch,
    accel: ctx.accel.accel,
    kernel,
    initramfs,
    append: ctx.append,
    memoryMiB: MEMORY_MIB,
    cpus: CPUS,
    agentSocket,
    agentPortName: AGENT_PORT_NAME,
    shares: [{ tag: 'vmtest-root', path: '/', readonly: true }],
    extraArgs,
  })
}

/** Starts QEMU (console logged to `consoleLog`), hands it to `use(qemu, spawnedAt)`, and always kills it. */
async function withQemu(ctx, args, consoleLog, use) {
  const spawnedAt = now()
  const qemu = new QemuProcess(ctx.qemu, args, consoleLog)
  qemuPids.add(qemu.pid)
  try {
    return await use(qemu, spawnedAt)
  } finally {
    await qemu.kill()
  }
}

/** Resolves with the time `line` appears on the console; rejects if QEMU exits or time runs out. */
function waitForLine(qemu, text, timeoutMs = BOOT_TIMEOUT_MS) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no "${text}" on the console within ${timeoutMs} ms:\n${qemu.consoleTail.slice(-15).join('\n')}`)), timeoutMs)
    qemu.onLine((line) => {
      if (line.includes(text)) (clearTimeout(timer), ok(now()))
    })
    qemu.exited.then((exit) => (clearTimeout(timer), fail(new Error(`QEMU exited (${exit.exitCode ?? exit.signal}) before "${text}": ${exit.stderr}\n${qemu.consoleTail.slice(-15).join('\n')}`))))
  })
}

// ---------------------------------------------------------------- row 1: boot floor

/** The least any boot of this kernel can cost here: QEMU spawn → modules
 * loaded and the host root mounted over 9p, with our QEMU flags; PVH vmlinux
 * (what we boot) and, for reference, the compressed bzImage. */
async function rowFloor(ctx, runs) {
  const dir = makeTempDir()
  try {
    const initramfs = await buildReferenceInitramfs(ctx, dir, 'floor', FLOOR_INIT)
    const bootOnce = async (kernel, n) => {
      const agent = await listenUnix(join(dir, `agent-${n}.sock`))
      try {
        return await withQemu(ctx, referenceArgs(ctx, { kernel, initramfs, agentSocket: join(dir, `agent-${n}.sock`) }), join(dir, `console-${n}.log`), async (qemu, t0) => {
          const ms = (await waitForLine(qemu, MARKER)) - t0
          await qemu.stop(5000) // let the sysrq power-off finish; not timed
          return ms
        })
      } finally {
        await agent.close()
      }
    }
    const pvh = [], bz = []
    for (let r = 0; r < runs; r++) {
      pvh.push(await bootOnce(ctx.vmlinux, `pvh${r}`)) // interleaved, so drift in host load hits both
      bz.push(await bootOnce(ctx.bzImage, `bz${r}`))
      progress(`floor run ${r + 1}/${runs}: PVH ${pvh.at(-1).toFixed(0)} ms, bzImage ${bz.at(-1).toFixed(0)} ms`)
    }
    return { pvhMs: pvh, bzImageMs: bz }
  } finally {
    removeTempDir(dir)
  }
}

// ---------------------------------------------------------------- row 2: boot to ready

/** bootGuest, with its QEMU recorded for the end-of-run check. */
async function boot(options = {}) {
  const guest = await bootGuest({ bootTimeout: BOOT_TIMEOUT_MS, ...options })
  qemuPids.add(guest.info.qemuPid)
  return guest
}

/** What a test waits for: bootGuest() → the first exec('true') result, wall time. */
async function rowBoot(ctx, runs) {
  const total = [], hello = []
  let info
  for (let r = 0; r < runs; r++) {
    const t0 = now()
    const guest = await boot()
    try {
      await guest.exec('true')
      total.push(now() - t0)
      hello.push(guest.info.bootMs)
      info = guest.info
    } finally {
      await guest.close()
    }
    progress(`boot run ${r + 1}/${runs}: ready in ${total.at(-1).toFixed(0)} ms (agent hello at ${hello.at(-1)} ms)`)
  }
  return { readyMs: total, helloMs: hello, accel: info.accel, release: info.release }
}

// ---------------------------------------------------------------- row 3: vmtest's mechanism

/** A QGA client: newline-delimited JSON, one request at a time. */
class Qga {
  constructor(socket) {
    this.socket = socket
    this.buffer = ''
    this.messages = []
    this.waiters = []
    socket.setEncoding('utf8')
    socket.on('data', (text) => {
      this.buffer += text
      let nl
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).replace(/^[\s\xff]+/, '').trim()
        this.buffer = this.buffer.slice(nl + 1)
        if (line) this.push(JSON.parse(line))
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => this.push({ closed: true }))
  }
  push(message) {
    const waiter = this.waiters.shift()
    if (waiter) waiter(message)
    else this.messages.push(message)
  }
  /** The next message, or undefined after `timeoutMs`. */
  next(timeoutMs = 60_000) {
    if (this.messages.length) return Promise.resolve(this.messages.shift())
    return new Promise((ok) => {
      const waiter = (m) => (clearTimeout(timer), ok(m))
      const timer = setTimeout(() => ((this.waiters = this.waiters.filter((w) => w !== waiter)), ok(undefined)), timeoutMs)
      this.waiters.push(waiter)
    })
  }
  send(execute, args) {
    this.socket.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n')
  }
  async call(execute, args) {
    this.send(execute, args)
    const reply = await this.next()
    if (!reply || reply.closed) throw new Error(`qemu-ga gave no answer to ${execute}`)
    if (reply.error) throw new Error(`${execute}: ${reply.error.desc}`)
    return reply.return
  }
  /** guest-sync until qemu-ga answers with our id (stale answers skipped); the
   * first request waits in QEMU until qemu-ga opens its port. */
  async sync(isDead) {
    for (let id = 1; ; id++) {
      this.send('guest-sync', { id })
      const until = Date.now() + 5000
      while (Date.now() < until) {
        const reply = await this.next(until - Date.now())
        if (reply?.closed || isDead()) throw new Error('qemu-ga connection closed before guest-sync answered')
        if (reply?.return === id) return
      }
    }
  }
}

/** vmtest's command path: guest-exec, then guest-exec-status polled at once and
 * then after 200, 400, 800, … ms until the command has exited. */
async function qgaExec(qga, path, arg) {
  const { pid } = await qga.call('guest-exec', { path, arg, 'capture-output': true })
  for (let delay = 200; ; delay *= 2) {
    const status = await qga.call('guest-exec-status', { pid })
    if (status.exited) {
      if (status.exitcode !== 0) throw new Error(`guest-exec ${path} ${arg.join(' ')} exited ${status.exitcode}`)
      return status
    }
    await sleep(delay)
  }
}

/** vmtest's mechanism on the same kernel, initramfs approach and QEMU flags:
 * qemu-ga from the 9p root on a virtio-serial port. First command = spawn →
 * first `/bin/sh -c true` result; per-command = median of 10 more. */
/** qemu-guest-agent in the guest, driven as vmtest drives it. Measured twice:
 * on our fast boot path (the mechanism's own cost) and booting the bzImage, as
 * vmtest does (it never extracts the vmlinux). */
async function rowVmtest(ctx, runs) {
  const dir = makeTempDir()
  try {
    const initramfs = await buildReferenceInitramfs(ctx, dir, 'qga', QGA_INIT)
    const first = [], perCommand = [], firstBzImage = []
    for (let r = 0; r < runs; r++) {
      const fast = await qgaBoot(ctx, dir, initramfs, ctx.vmlinux, `pvh-${r}`)
      first.push(fast.firstMs)
      perCommand.push(fast.perCommandMs)
      firstBzImage.push((await qgaBoot(ctx, dir, initramfs, ctx.bzImage, `bz-${r}`)).firstMs)
      progress(`vmtest run ${r + 1}/${runs}: first command ${first.at(-1).toFixed(0)} ms (bzImage ${firstBzImage.at(-1).toFixed(0)} ms), per command ${perCommand.at(-1).toFixed(1)} ms`)
    }
    return { firstCommandMs: first, firstCommandBzImageMs: firstBzImage, perCommandMs: perCommand }
  } finally {
    removeTempDir(dir)
  }
}

async function qgaBoot(ctx, dir, initramfs, kernel, tag) {
  const agentSocket = join(dir, `agent-${tag}.sock`)
  const qgaSocket = join(dir, `qga-${tag}.sock`)
  const agent = await listenUnix(agentSocket)
  let firstMs, perCommandMs
  try {
    const extraArgs = ['-chardev', `socket,id=qga,path=${qgaSocket},server=on,wait=off`, '-device', `virtserialport,chardev=qga,name=${QGA_PORT}`]
    await withQemu(ctx, referenceArgs(ctx, { kernel, initramfs, agentSocket, extraArgs }), join(dir, `console-${tag}.log`), async (qemu, t0) => {
      let dead = false
      const exited = qemu.exited.then(() => (dead = true))
      const socket = await connectUnix(qgaSocket, { exited })
      try {
        const qga = new Qga(socket)
        await Promise.race([
          qga.sync(() => dead).then(() => qgaExec(qga, '/bin/sh', ['-c', 'true'])),
          exited.then(() => Promise.reject(new Error(`QEMU exited during the qemu-ga boot:\n${qemu.consoleTail.slice(-15).join('\n')}`))),
          sleep(BOOT_TIMEOUT_MS).then(() => Promise.reject(new Error(`qemu-ga did not answer within ${BOOT_TIMEOUT_MS} ms:\n${qemu.consoleTail.slice(-15).join('\n')}`))),
        ])
        firstMs = now() - t0
        const each = []
        for (let i = 0; i < 10; i++) {
          const t = now()
          await qgaExec(qga, '/bin/sh', ['-c', 'true'])
          each.push(now() - t)
        }
        perCommandMs = median(each)
      } finally {
        socket.destroy()
      }
    })
  } finally {
    await agent.close()
  }
  return { firstMs, perCommandMs }
}

// ---------------------------------------------------------------- row 4: exec round trip

const EXEC_COUNT = 30
/** Our commands and the in-guest loop of the same work: the agent runs each as
 * `/bin/sh -c <command>`, so the in-guest equivalent of exec(X) is `sh -c X`. */
const EXEC_CASES = [
  { label: "exec('true')", command: 'true', inGuest: 'sh -c true' },
  { label: "exec('sh -c true')", command: 'sh -c true', inGuest: "sh -c 'sh -c true'" },
  { label: "exec(':')", command: ':', inGuest: 'sh -c :' },
]
/** The brief's literal in-guest loops, kept as information. */
const LITERAL_LOOPS = ['sh -c true', '/bin/true', ':']

/** One shell script timing N iterations of each command with date +%s%N; prints "<index> <ns per iteration>". */
function inGuestLoopScript(commands) {
  return commands
    .map((cmd, i) => `t0=$(date +%s%N); i=0; while [ $i -lt ${EXEC_COUNT} ]; do ${cmd}; i=$((i+1)); done; t1=$(date +%s%N); echo "${i} $(( (t1 - t0) / ${EXEC_COUNT} ))"`)
    .join('\n')
}

/** Host → guest → host cost of one command on a booted guest (median of 30),
 * beside what the same work costs inside the guest, timed there. */
async function rowExec(ctx, runs) {
  const loops = [...new Set([...EXEC_CASES.map((c) => c.inGuest), ...LITERAL_LOOPS])]
  const ours = Object.fromEntries(EXEC_CASES.map((c) => [c.label, []]))
  const inGuest = Object.fromEntries(loops.map((l) => [l, []]))
  for (let r = 0; r < runs; r++) {
    const guest = await boot()
    try {
      // The steady state: for its first seconds a guest also gets its next lease
      // ready (see the lease row), which slows commands by ≈30 ms under TCG.
      await sleep(LEASE_PAUSE_MS)
      for (let i = 0; i < 3; i++) await guest.exec('sh -c true') // warm the guest's page cache
      for (const c of EXEC_CASES) {
        const times = []
        for (let i = 0; i < EXEC_COUNT; i++) {
          const t = now()
          await guest.exec(c.command)
          times.push(now() - t)
        }
        ours[c.label].push(median(times))
      }
      const { stdout } = await guest.exec(inGuestLoopScript(loops))
      for (const line of stdout.trim().split('\n')) {
        const [i, ns] = line.split(' ').map(Number)
        inGuest[loops[i]].push(ns / 1e6)
      }
    } finally {
      await guest.close()
    }
    progress(`exec run ${r + 1}/${runs}: ${EXEC_CASES.map((c) => `${c.label} ${ours[c.label].at(-1).toFixed(1)} ms vs ${inGuest[c.inGuest].at(-1).toFixed(1)}`).join(', ')}`)
  }
  return { oursMs: ours, inGuestMs: inGuest }
}

// ---------------------------------------------------------------- row 7: lease renewal

/** How long the idle guest gets between a renewal and the next one, for the
 * next lease to get ready (it takes ≈2 s of guest CPU under TCG). */
const LEASE_PAUSE_MS = 6000

/** renewLease(): once the next lease had time to get ready (the usual case
 * between two test files), against one right after the last renewal, when the
 * next lease starts from nothing (what every renewal cost before standbys). */
async function rowLease(ctx, runs) {
  const ready = [], cold = []
  const guest = await boot()
  try {
    await guest.renewLease()
    for (let r = 0; r < runs; r++) {
      await sleep(LEASE_PAUSE_MS)
      ready.push((await guest.renewLease()).ms)
      cold.push((await guest.renewLease()).ms)
      progress(`lease run ${r + 1}/${runs}: ready ${ready.at(-1)} ms, from nothing ${cold.at(-1)} ms`)
    }
  } finally {
    await guest.close()
  }
  return { readyMs: ready, coldMs: cold }
}

// ---------------------------------------------------------------- row 5: throughput

/** stdout bandwidth through our agent vs the raw virtio-serial port of the
 * same guest kernel (a second port, bytes counted on the host), once the guest
 * is idle (its standby lease ready); as information, 10 MiB through a pipe in
 * the guest alone (`head | cat`, timed inside), the path every command's output
 * takes before the agent reads it; and the host process's RSS around a 100 MiB buffered exec. */
async function rowThroughput(ctx, runs) {
  const small = 10 * MiB, big = 100 * MiB
  const ours10 = [], ours100 = [], raw10 = [], pipe10 = [], rssBefore = [], rssAfter = []
  for (let r = 0; r < runs; r++) {
    const dir = makeTempDir()
    try {
      const rawSocket = join(dir, 'raw.sock')
      const guest = await boot({
        extraArgs: ['-chardev', `socket,id=raw,path=${rawSocket},server=on,wait=off`, '-device', `virtserialport,chardev=raw,name=${RAW_PORT}`],
      })
      let raw
      try {
        raw = await connectUnix(rawSocket)
        let received = 0, target = Infinity, lastByte = 0, arrived = () => {}
        raw.on('data', (chunk) => {
          received += chunk.length
          if (received >= target) (lastByte = now(), arrived())
        })
        const port = (await guest.exec(`for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = ${RAW_PORT} ] && echo \${p##*/}; done`)).stdout.trim()
        if (!port) throw new Error(`no virtio port named ${RAW_PORT} in the guest`)

        const timedStdout = async (bytes) => {
          const t = now()
          const result = await guest.exec(`head -c ${bytes} /dev/zero`, { encoding: 'buffer' })
          const ms = now() - t
          if (result.stdout.length !== bytes) throw new Error(`exec returned ${result.stdout.length} bytes, expected ${bytes}`)
          return bytes / MiB / (ms / 1000)
        }
        await sleep(LEASE_PAUSE_MS)
        await guest.exec('head -c 1048576 /dev/zero | cat >/dev/null') // warm: head, cat and their libraries in the page cache

        ours10.push(await timedStdout(small))

        received = 0
        target = small
        const allArrived = new Promise((ok) => (arrived = ok))
        const t = now()
        await Promise.all([guest.exec(`head -c ${small} /dev/zero > /dev/${port}`), allArrived])
        if (received !== small) throw new Error(`raw port delivered ${received} bytes, expected ${small}`)
        raw10.push(small / MiB / ((lastByte - t) / 1000))

        const { stdout: pipeNs } = await guest.exec(`t0=$(date +%s%N); head -c ${small} /dev/zero | cat >/dev/null; t1=$(date +%s%N); echo $((t1 - t0))`)
        pipe10.push(small / MiB / (Number(pipeNs) / 1e9))

        rssBefore.push(process.memoryUsage().rss / MiB)
        ours100.push(await timedStdout(big))
        rssAfter.push(process.memoryUsage().rss / MiB)
      } finally {
        raw?.destroy()
        await guest.close()
      }
    } finally {
      removeTempDir(dir)
    }
    progress(`throughput run ${r + 1}/${runs}: ours 10 MiB ${ours10.at(-1).toFixed(1)} MiB/s, 100 MiB ${ours100.at(-1).toFixed(1)} MiB/s, raw 10 MiB ${raw10.at(-1).toFixed(1)} MiB/s, in-guest pipe 10 MiB ${pipe10.at(-1).toFixed(1)} MiB/s; RSS ${rssBefore.at(-1).toFixed(0)} → ${rssAfter.at(-1).toFixed(0)} MiB`)
  }
  return { ours10MiBps: ours10, ours100MiBps: ours100, raw10MiBps: raw10, pipe10MiBps: pipe10, rssBeforeMiB: rssBefore, rssAfterMiB: rssAfter }
}

// ---------------------------------------------------------------- row 6: host memory

/** What one more guest costs the host: the node process's RSS growth across a
 * boot + first exec, and QEMU's own resident set. Runs before the throughput
 * row, whose 100 MiB buffers would blur the node figure. */
async function rowMemory(ctx, runs) {
  const nodeDelta = [], qemuRss = []
  for (let r = 0; r < runs; r++) {
    const before = process.memoryUsage().rss
    const guest = await boot()
    try {
      await guest.exec('true')
      nodeDelta.push((process.memoryUsage().rss - before) / MiB)
      qemuRss.push(vmRssMiB(guest.info.qemuPid))
    } finally {
      await guest.close()
    }
    progress(`memory run ${r + 1}/${runs}: node +${nodeDelta.at(-1).toFixed(1)} MiB, QEMU ${qemuRss.at(-1).toFixed(0)} MiB`)
  }
  return { nodeRssDeltaMiB: nodeDelta, qemuRssMiB: qemuRss }
}

// ---------------------------------------------------------------- rows 7-8: the real vitest CLI

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url))
const VITEST_BIN = join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs')
const JEST_BIN = join(REPO_ROOT, 'node_modules', 'jest', 'bin', 'jest.js')
/** The runner's command line for one run of `fixture`, with a JSON report (Vitest's has Jest's shape). */
const RUNNER_ARGS = {
  vitest: (fixture, report) => [VITEST_BIN, 'run', '--root', fixture, '--reporter=json', `--outputFile=${report}`],
  jest: (fixture, report) => [JEST_BIN, '--rootDir', fixture, '--json', `--outputFile=${report}`],
}
/** The fixture projects; their QEMUs are told apart by this path, which the
 * environment shares into the guest (`shared` defaults to the project root). */
const fixtureDir = (name) => realpathSync(fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url))).replace(/\/$/, '')
const RUNNER_TIMEOUT_MS = 600_000
/** How long QEMU may outlive its vitest run (the broker's bounded power-off). */
const LEFTOVER_GRACE_MS = 10_000
const SUITE_FILES = 10
const OVERHEAD_TESTS = 30

/** `pgrep -af qemu-system` lines naming `fixture`, plus this run's broker if `anchor` is given. */
function fixtureProcesses(fixture, anchor) {
  const lines = (pattern) => {
    try {
      return execFileSync('pgrep', ['-af', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)
    } catch {
      return [] // exit 1: no match
    }
  }
  const names = new RegExp(`${fixture.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[,\\s]|$)`) // the path itself, not a longer one
  const qemu = lines('qemu-system').filter((l) => names.test(l))
  const broker = anchor ? lines(`broker/main.js --anchor ${anchor}( |$)`) : []
  return { qemu, broker }
}

/** Fails loudly if QEMU of `fixture` (or the run's broker) is still alive
 * LEFTOVER_GRACE_MS after its vitest run ended; such leftovers are killed by pid. */
async function checkNoLeftovers(fixture, anchor, what) {
  const deadline = now() + LEFTOVER_GRACE_MS
  let left
  for (;;) {
    left = fixtureProcesses(fixture, anchor)
    if (left.qemu.length + left.broker.length === 0) return
    if (now() > deadline) break
    await sleep(200)
  }
  const all = [...left.qemu, ...left.broker]
  for (const line of all) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`LEFTOVER PROCESSES ${LEFTOVER_GRACE_MS / 1000} s after ${what} (killed now):\n${all.map((l) => `  ${l.slice(0, 300)}`).join('\n')}`)
}

/** One run of `runner` (vitest or jest) on the fixture `name` with a JSON report,
 * as a user runs it; wall time from spawn to exit. Samples the fixture's QEMUs once a second,
 * so the leftover check afterwards is known to look for the right command line. */
async function runRunnerCli(name, env, runner = 'vitest') {
  const fixture = fixtureDir(name)
  const out = makeTempDir()
  const report = join(out, 'report.json')
  const before = fixtureProcesses(fixture)
  if (before.qemu.length) throw new Error(`QEMU of ${fixture} is already running before the run:\n${before.qemu.join('\n')}`)
  const t0 = now()
  const child = spawn(process.execPath, RUNNER_ARGS[runner](fixture, report), {
    cwd: fixture,
    env: { ...process.env, ...env, VMTEST_BENCH_OUT: out, CI: '', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = '', stderr = '', maxQemu = 0
  child.stdout.on('data', (c) => (stdout += c))
  child.stderr.on('data', (c) => (stderr += c))
  const sampler = setInterval(() => (maxQemu = Math.max(maxQemu, fixtureProcesses(fixture).qemu.length)), 1000)
  const timer = setTimeout(() => child.kill('SIGKILL'), RUNNER_TIMEOUT_MS)
  const exit = await new Promise((ok) => child.on('close', (code, signal) => ok(signal ?? code)))
  const wallMs = now() - t0
  clearInterval(sampler)
  clearTimeout(timer)
  const tail = () => `\n--- stdout (tail)\n${stdout.slice(-3000)}\n--- stderr (tail)\n${stderr.slice(-3000)}`
  await checkNoLeftovers(fixture, child.pid, `${runner} run of ${name} (${JSON.stringify(env)})`)
  if (maxQemu === 0) throw new Error(`no QEMU with ${fixture} in its command line was seen during the run: the leftover check would look for nothing${tail()}`)
  if (exit !== 0) throw new Error(`${runner} on ${name} exited ${exit} (${JSON.stringify(env)})${tail()}`)
  let json
  try {
    json = JSON.parse(readFileSync(report, 'utf8'))
  } catch {
    throw new Error(`${runner} wrote no report for ${name}${tail()}`)
  }
  const tests = json.testResults.flatMap((f) => f.assertionResults.map((t) => ({ file: basename(f.name), title: t.title, status: t.status, durationMs: t.duration ?? NaN })))
  const failed = tests.filter((t) => t.status !== 'passed')
  if (failed.length) throw new Error(`${runner} on ${name}: not passed: ${failed.map((t) => `${t.file} ${t.title} (${t.status})`).join(', ')}${tail()}`)
  return { wallMs, out, tests, maxQemu }
}

/** A 10-file suite on 2 workers through the real `vitest` or `jest` CLI, with the pool
 * (isolate 'lease', the default) and with one boot per file (isolate
 * 'reboot', vmtest's model); the modes alternate which goes first. Boots are
 * counted from the boot_ids the files record. */
async function rowSuite(ctx, runs, runner = 'vitest') {
  const fixture = runner === 'jest' ? 'suite-jest' : 'suite'
  const modes = ['lease', 'reboot']
  const wall = { lease: [], reboot: [] }, boots = { lease: [], reboot: [] }, qemuSeen = { lease: [], reboot: [] }
  for (let r = 0; r < runs; r++) {
    for (const mode of r % 2 ? [...modes].reverse() : modes) {
      const run = await runRunnerCli(fixture, { VMTEST_BENCH_ISOLATE: mode }, runner)
      try {
        const files = readdirSync(run.out).filter((f) => f.endsWith('.boot'))
        if (files.length !== SUITE_FILES) throw new Error(`suite (${mode}): ${files.length} files recorded a boot_id, expected ${SUITE_FILES}`)
        wall[mode].push(run.wallMs)
        boots[mode].push(new Set(files.map((f) => readFileSync(join(run.out, f), 'utf8').trim())).size)
        qemuSeen[mode].push(run.maxQemu)
      } finally {
        removeTempDir(run.out)
      }
    }
    progress(`suite run ${r + 1}/${runs} (${r % 2 ? 'reboot first' : 'pool first'}): pool ${wall.lease.at(-1).toFixed(0)} ms (${boots.lease.at(-1)} boots), reboot ${wall.reboot.at(-1).toFixed(0)} ms (${boots.reboot.at(-1)} boots)`)
  }
  return { poolWallMs: wall.lease, rebootWallMs: wall.reboot, poolBoots: boots.lease, rebootBoots: boots.reboot, poolMaxQemuSeen: qemuSeen.lease, rebootMaxQemuSeen: qemuSeen.reboot }
}

/** The environment's per-test cost: 30 tests of one exec('true') each (Vitest's
 * durations, JSON report) beside 30 exec('true') in one test timed with
 * performance.now() inside it, run before and after the 30 tests (the bare
 * figure is the median of both). The fixture's own beforeEach/afterEach stamps
 * split a test's duration into its body and the rest (the plugin's
 * onTestFinished: kernel log sync and verdict). */
async function rowOverhead(ctx, runs) {
  const per = { durationMs: [], bareMs: [], bodyMs: [], pairedMs: [], hooksMs: [], intervalMs: [] }
  const raw = []
  for (let r = 0; r < runs; r++) {
    const run = await runRunnerCli('overhead', {})
    try {
      const o = JSON.parse(readFileSync(join(run.out, 'overhead.json'), 'utf8'))
      const durations = Array.from({ length: OVERHEAD_TESTS }, (_, i) => run.tests.find((t) => t.title === `exec('true') #${i + 1}`)?.durationMs)
      const bare = [...o.bareMs.before, ...o.bareMs.after]
      if (durations.some((d) => !Number.isFinite(d)) || bare.length !== 2 * OVERHEAD_TESTS || o.bodyMs.length !== OVERHEAD_TESTS) {
        throw new Error(`overhead: incomplete numbers (durations ${durations.filter(Number.isFinite).length}, bodies ${o.bodyMs.length} of ${OVERHEAD_TESTS}; bare ${bare.length} of ${2 * OVERHEAD_TESTS})`)
      }
      const hooks = durations.map((d, i) => d - (o.afterEachAt[i] - o.beforeEachAt[i]))
      const intervals = o.beforeEachAt.slice(1).map((t, i) => t - o.beforeEachAt[i])
      per.durationMs.push(median(durations))
      per.bareMs.push(median(bare))
      per.bodyMs.push(median(o.bodyMs))
      per.pairedMs.push(median(durations.map((d, i) => d - o.bodyMs[i])))
      per.hooksMs.push(median(hooks))
      per.intervalMs.push(median(intervals))
      raw.push({ durationsMs: durations, bareBeforeMs: o.bareMs.before, bareAfterMs: o.bareMs.after, bodyMs: o.bodyMs, hooksMs: hooks, intervalsMs: intervals, wallMs: run.wallMs })
      progress(`overhead run ${r + 1}/${runs}: per-test duration ${per.durationMs.at(-1).toFixed(1)} ms, bare exec ${per.bareMs.at(-1).toFixed(1)} ms (before ${median(o.bareMs.before).toFixed(1)}, after ${median(o.bareMs.after).toFixed(1)}): ${overhead(per.durationMs.at(-1), per.bareMs.at(-1))}; its exec ${per.bodyMs.at(-1).toFixed(1)} ms, duration - its exec ${per.pairedMs.at(-1).toFixed(1)} ms, rest of its duration ${per.hooksMs.at(-1).toFixed(1)} ms, start to next start ${per.intervalMs.at(-1).toFixed(1)} ms`)
    } finally {
      removeTempDir(run.out)
    }
  }
  return { ...per, raw }
}

// ---------------------------------------------------------------- table

/** One table row: medians, ratio ours/reference, and the goal judged from the
 * numbers. `goal.note` adds what the goal is stated in (an overhead, a speed-up). */
function row(name, unit, ours, reference, goal) {
  const o = median(ours ?? []), ref = median(reference ?? [])
  const both = Number.isFinite(o) && Number.isFinite(ref)
  const ratio = both && ref !== 0 ? o / ref : NaN
  return {
    name, unit,
    ours: Number.isFinite(o) ? o : null, oursSamples: ours ?? null,
    reference: Number.isFinite(ref) ? ref : null, referenceSamples: reference ?? null,
    ratio: Number.isFinite(ratio) ? ratio : null,
    note: both && goal?.note ? goal.note(o, ref) : null,
    goal: goal?.text ?? null,
    status: !goal?.met ? null : both ? (goal.met(o, ref, ratio) ? 'MET' : 'NOT MET') : 'n/a (its inputs were not measured)',
  }
}

const overhead = (o, r) => `${o - r >= 0 ? '+' : ''}${(o - r).toFixed(1)} ms`
const speedup = (o, r) => (r >= o ? `${(r / o).toFixed(1)}x faster` : `${(o / r).toFixed(1)}x slower`)

function buildRows(m) {
  const rows = []
  if (m.floor) rows.push(row('1 boot floor PVH (ref: bzImage)', 'ms', m.floor.pvhMs, m.floor.bzImageMs))
  if (m.boot) rows.push(row('2 boot to ready (ref: PVH floor)', 'ms', m.boot.readyMs, m.floor?.pvhMs, { text: '<= 1.5x floor', met: (o, r) => o <= 1.5 * r }))
  if (m.vmtest) {
    rows.push(row('3 boot to ready (ref: qemu-ga 1st cmd, same PVH boot)', 'ms', m.boot?.readyMs, m.vmtest.firstCommandMs, { note: speedup }))
    rows.push(row('3 boot to ready (ref: vmtest 1st cmd, bzImage as vmtest boots)', 'ms', m.boot?.readyMs, m.vmtest.firstCommandBzImageMs, { text: '>= 2.5x faster', met: (o, r) => r / o >= 2.5, note: speedup }))
    rows.push(row("3 exec('true') (ref: vmtest per cmd)", 'ms', m.exec?.oursMs["exec('true')"], m.vmtest.perCommandMs, { text: '>= 10x faster', met: (o, r) => r / o >= 10, note: speedup }))
  }
  if (m.exec) {
    for (const c of EXEC_CASES) {
      rows.push(row(`4 ${c.label} (ref: in-guest ${c.inGuest})`, 'ms', m.exec.oursMs[c.label], m.exec.inGuestMs[c.inGuest], { text: '<= in-guest + 5 ms', met: (o, r) => o - r <= 5, note: overhead }))
    }
    for (const l of LITERAL_LOOPS) rows.push(row(`4 in-guest ${l} (info)`, 'ms', undefined, m.exec.inGuestMs[l]))
  }
  if (m.throughput) {
    const t = m.throughput
    rows.push(row('5 stdout 10 MiB (ref: raw port 10 MiB)', 'MiB/s', t.ours10MiBps, t.raw10MiBps, { text: '>= 0.8x raw', met: (o, r, x) => x >= 0.8 }))
    rows.push(row('5 stdout 100 MiB (ref: raw port 10 MiB)', 'MiB/s', t.ours100MiBps, t.raw10MiBps, { text: '>= 0.8x raw', met: (o, r, x) => x >= 0.8 }))
    rows.push(row('5 in-guest pipe alone, head | cat, 10 MiB (ref: raw port 10 MiB; info)', 'MiB/s', t.pipe10MiBps, t.raw10MiBps))
    rows.push(row('5 host RSS after 100 MiB (ref: before)', 'MiB', t.rssAfterMiB, t.rssBeforeMiB))
  }
  if (m.memory) {
    rows.push(row('6 host node RSS per guest (delta)', 'MiB', m.memory.nodeRssDeltaMiB, undefined))
    rows.push(row('6 QEMU RSS per guest', 'MiB', m.memory.qemuRssMiB, undefined))
  }
  if (m.lease) rows.push(row('7 renewLease, next lease ready (ref: right after the last, from nothing)', 'ms', m.lease.readyMs, m.lease.coldMs, { note: speedup }))
  for (const [name, label] of [['suite', 'suite'], ['jest-suite', 'Jest suite']]) {
    const s = m[name]
    if (!s) continue
    rows.push(row(`7 ${label} ${SUITE_FILES} files, 2 workers: pool (ref: isolate reboot)`, 'ms', s.poolWallMs, s.rebootWallMs, { note: (o, r) => `reboot/pool ${(r / o).toFixed(2)}x` }))
    rows.push(row(`7 ${label} boots: pool (ref: isolate reboot)`, 'boots', s.poolBoots, s.rebootBoots))
  }
  if (m.overhead) {
    const o = m.overhead
    rows.push(row(`8 per-test duration, test = exec('true') (ref: bare exec('true'))`, 'ms', o.durationMs, o.bareMs, { note: overhead }))
    rows.push(row(`8 per-test duration - its own exec('true'), paired per test`, 'ms', o.pairedMs, undefined))
    rows.push(row(`8 per-test: its exec('true') (ref: bare exec('true'))`, 'ms', o.bodyMs, o.bareMs, { note: overhead }))
    rows.push(row('8 per-test: rest of its duration (onTestFinished: kernel log sync + verdict)', 'ms', o.hooksMs, undefined))
    rows.push(row(`8 per-test: start to next start (ref: bare exec('true'))`, 'ms', o.intervalMs, o.bareMs, { note: overhead }))
  }
  return rows
}

function formatValue(x, unit) {
  if (x === null) return '—'
  const digits = (unit === 'ms' && x >= 100) || unit === 'boots' ? 0 : 1
  return `${x.toFixed(digits)} ${unit}`
}

function printTable(rows) {
  const cells = rows.map((r) => {
    const ratio = r.ratio === null ? '—' : `${r.ratio.toFixed(2)}x${r.note ? ` (${r.note})` : ''}`
    return [r.name, formatValue(r.ours, r.unit), formatValue(r.reference, r.unit), ratio, r.goal ? `${r.goal}: ${r.status}` : '—']
  })
  const header = ['name', 'ours (median)', 'reference (median)', 'ratio', 'goal']
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c) => c.map((v, i) => v.padEnd(widths[i])).join(' | ')
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'))
  for (const c of cells) console.log(line(c))
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const ctx = await prepareContext()
  const load = [loadavg()[0]]
  console.log(`vmtest bench — ${new Date().toISOString()}, ${opts.runs} runs per figure`)
  console.log(`kernel ${ctx.kernel.release} (${ctx.bzImage}); PVH image: ${ctx.pvh ? ctx.vmlinux : 'none'}`)
  console.log(`accel: ${ctx.accel.accel}${ctx.accel.fallbackReason ? ` (KVM unusable: ${ctx.accel.fallbackReason})` : ''}; ${ctx.qemuVersion}`)
  console.log(`kernel command line (ours and the references'): ${ctx.append}`)
  console.log(`modules: ${ctx.modules.map((f) => basename(f)).join(' ')}${ctx.missingModules.length ? ` (missing: ${ctx.missingModules.join(', ')})` : ''}`)

  // Execution order; memory runs before throughput (see rowMemory).
  const rows = { floor: rowFloor, boot: rowBoot, vmtest: rowVmtest, exec: rowExec, memory: rowMemory, throughput: rowThroughput, lease: rowLease, suite: rowSuite, 'jest-suite': (ctx, runs) => rowSuite(ctx, runs, 'jest'), overhead: rowOverhead }
  const measured = {}
  const errors = {}
  for (const name of ROW_NAMES) {
    if (!opts.only.includes(name)) continue
    progress(`— ${name}`)
    try {
      measured[name] = await rows[name](ctx, opts.runs)
    } catch (error) {
      errors[name] = error.stack ?? String(error)
      progress(`${name} FAILED: ${errors[name]}`)
    }
  }
  load.push(loadavg()[0])

  const table = buildRows(measured)
  console.log('')
  printTable(table)
  for (const [name, error] of Object.entries(errors)) console.log(`ERROR in ${name}: ${error.split('\n')[0]}`)
  if (measured.exec) console.log(`in-guest loops: each figure includes 1/${EXEC_COUNT} of a \`date\` spawn and the loop's own cost, i.e. about the \`:\` row (${median(measured.exec.inGuestMs[':']).toFixed(1)} ms)`)
  if (measured.boot) console.log(`boot: agent hello at ${median(measured.boot.helloMs).toFixed(0)} ms (median); guest kernel ${measured.boot.release}, accel ${measured.boot.accel}`)
  for (const [name, cli] of [['suite', 'vitest run'], ['jest-suite', 'jest']]) {
    const s = measured[name]
    if (s) console.log(`${name}: real \`${cli}\` wall time, spawn to exit; boots per run: pool ${s.poolBoots.join(' ')}, reboot ${s.rebootBoots.join(' ')}; most QEMUs seen at once: pool ${s.poolMaxQemuSeen.join(' ')}, reboot ${s.rebootMaxQemuSeen.join(' ')}`)
  }
  if (measured.overhead) {
    const o = measured.overhead
    console.log(`overhead: per run, test duration - bare exec: ${o.durationMs.map((d, i) => `${(d - o.bareMs[i]).toFixed(1)}`).join(' ')} ms; per run ${OVERHEAD_TESTS} tests, and ${OVERHEAD_TESTS} bare calls in one test before them and again after; raw numbers in measured.overhead.raw`)
  }
  console.log(`host load average (1 min): ${load.map((l) => l.toFixed(2)).join(' → ')}`)

  const alive = [...qemuPids].filter((pid) => {
    try {
      return process.kill(pid, 0)
    } catch {
      return false
    }
  })
  let pgrep = ''
  try {
    pgrep = execFileSync('pgrep', ['-a', 'qemu-system'], { encoding: 'utf8' }).trim()
  } catch {
    // exit 1: no match
  }
  console.log(`QEMUs left by this run: ${alive.length ? alive.join(' ') : 'none'}; \`pgrep qemu-system\`: ${pgrep ? pgrep.split('\n').map((l) => l.split(' ')[0]).join(' ') + ' (not started by this run)' : 'empty'}`)

  mkdirSync(RESULTS_DIR, { recursive: true })
  const out = join(RESULTS_DIR, 'latest.json')
  writeFileSync(out, JSON.stringify({
    date: new Date().toISOString(),
    runs: opts.runs,
    only: opts.only,
    accel: ctx.accel,
    kernelRelease: ctx.kernel.release,
    kernel: ctx.bzImage,
    vmlinux: ctx.vmlinux,
    qemu: ctx.qemuVersion,
    loadAverage: load,
    rows: table,
    measured,
    errors,
  }, null, 2) + '\n')
  console.log(`wrote ${out}`)
  if (Object.keys(errors).length || alive.length) process.exitCode = 1
}

await main()
