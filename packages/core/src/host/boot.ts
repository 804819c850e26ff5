// bootGuest(): from options to a running guest whose agent said hello.
// Each step fails with an error that names the value and how to fix it.

import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { resolve } from 'node:path'
import { readFileSync } from 'node:fs'
import { AGENT_PORT_NAME, PROTOCOL_VERSION, type AgentHello, type KmsgRecord } from '../protocol/methods.js'
import { Peer } from '../protocol/rpc.js'
import { copyingWriter, FrameSplitter } from '../protocol/framing.js'
import { VmtestError, isVmtestError, tail } from './errors.js'
import { Guest, type GuestInfo, type GuestLink } from './guest.js'
import { KernelLog } from './console/kernel-log.js'
import { resolveOptions, SHARED_MOUNT, type GuestOptions, type ResolvedOptions, type RootMode } from './options.js'
import { cacheDir, keepCrashLog, makeGuestTempDir, removeGuestTempDir } from './paths.js'
import { chooseKernel, type ChosenKernel } from './kernel/resolve.js'
import { elfArch, inspectKernel, KernelFormatError, type KernelInfo } from './kernel/inspect.js'
import { fastBootImage } from './kernel/fast-boot.js'
import { findModuleDir, planModules } from './kernel/modules.js'
import { AGENT_BUNDLE, buildInitramfs, INIT_SCRIPT, isStaticElf } from './initramfs/build.js'
import { findExecutable, findQemu } from './qemu/binary.js'
import { chooseAccel, type AccelChoice } from './qemu/accel.js'
import { buildQemuArgs } from './qemu/args.js'
import { chooseFirmware, imageFormat } from './image/image.js'
import { Qga, QGA_PORT_NAME } from './image/qga.js'
import { startQgaAgent, type AgentStream, type Share } from './image/qga-agent.js'
import { archProfile, hostArch } from './qemu/arch.js'
import { busyboxesIn, chooseRoot, type GuestRoot } from './rootfs.js'
import { QemuProcess, type QemuExit } from './qemu/process.js'

/** Boot bounds: a Debian kernel reaches the agent in ≈4–5 s under TCG here and
 * ≈1 s under KVM; the defaults leave room for a loaded CI machine. */
const DEFAULT_BOOT_TIMEOUT_TCG_MS = 60_000
const DEFAULT_BOOT_TIMEOUT_KVM_MS = 20_000
/** lease.end is answered at once; a longer wait means a wedged agent. */
const LEASE_END_TIMEOUT_MS = 10_000
/** close(): how long the guest gets to power off before QEMU is killed. */
const POWEROFF_TIMEOUT_MS = 3000
/** Console lines quoted in boot and crash errors. */
const CONSOLE_TAIL_IN_ERRORS = 40

/** Modules a distro kernel needs to reach the agent: virtio's transport (PCI, or channel I/O on s390x), the serial port, 9p. */
export function requiredModules(arch: string): string[] {
  return [archProfile(arch)?.bus === 'ccw' ? 'virtio_ccw' : 'virtio_pci', 'virtio_console', '9pnet_virtio', '9p']
}
/** Wanted for the default root mode; without it the root is read-only. */
export const OVERLAY_MODULE = 'overlay'


let accelWarningShown = false

export async function bootGuest(options: GuestOptions = {}): Promise<Guest> {
  const started = Date.now()
  const o = resolveOptions(options)
  const cache = cacheDir()
  const plan = o.image ? await planImage(o, o.image, cache) : await planKernel(o, cache)
  if (plan.accel.fallbackReason && !accelWarningShown) {
    accelWarningShown = true
    process.stderr.write(`vmtest: KVM is unusable here (${plan.accel.fallbackReason}); using TCG software emulation: expect boots and commands 5-10x slower.\n`)
  }
  const { accel, qemu, arch } = plan
  o.onProgress(plan.describe)

  const tempDir = makeGuestTempDir()
  const socketPath = `${tempDir}/agent.sock`
  const server = createServer()
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(socketPath, ok))
  const shares = plan.kind === 'kernel' ? [{ tag: 'vmtest-root', path: plan.guestRoot.path, readonly: plan.root.mode !== 'rw' }] : []
  if (o.shared) shares.push({ tag: 'vmtest-shared', path: o.shared.path, readonly: !o.shared.writable })
  o.mounts.forEach((m, i) => shares.push({ tag: `vmtest-m${i}`, path: m.hostPath, readonly: !m.writable }))

  let args: string[]
  try {
    args = buildQemuArgs({
      arch,
      accel: accel.accel,
      ...(plan.kind === 'kernel'
        ? { kernel: plan.bootImage, initramfs: plan.root.initramfs, append: commandLine(plan.kernel, o, plan.root, plan.guestRoot) }
        : { disk: { file: plan.image, format: plan.format, firmware: chooseFirmware(o, tempDir) } }),
      memoryMiB: o.memoryMiB,
      cpus: o.cpus,
      agentSocket: socketPath,
      agentPortName: plan.kind === 'kernel' ? AGENT_PORT_NAME : QGA_PORT_NAME,
      shares,
      extraArgs: o.extraArgs,
    })
  } catch (error) {
    server.close()
    removeGuestTempDir(tempDir)
    throw error
  }
  const qemuProcess = new QemuProcess(qemu, args, o.consoleLog ?? `${tempDir}/console.log`)
  const log = new KernelLog()
  const running = new Map<number, string>()
  let booted = false
  const panic = watchForPanic(qemuProcess)
  const progress = (line: string) => {
    const step = /^vmtest-init: ([\d.]+) (.*)$/.exec(line)
    if (step && !booted) o.onProgress(`guest: ${step[2]} (${step[1]} s after kernel start)`)
  }
  qemuProcess.onLine(progress)

  let link: AgentLink | undefined
  let closing = false
  let renewing = false
  const cleanup = async () => {
    await qemuProcess.kill()
    server.close()
    removeGuestTempDir(tempDir)
  }

  // An image boots firmware, a bootloader and its own init first: twice the bound.
  const bootTimeoutMs = o.bootTimeoutMs ?? (accel.accel === 'kvm' ? DEFAULT_BOOT_TIMEOUT_KVM_MS : DEFAULT_BOOT_TIMEOUT_TCG_MS) * (plan.kind === 'image' ? 2 : 1)
  let hello: AgentHello
  try {
    const connected = new Promise<Socket>((ok) => server.once('connection', ok))
    hello = await bounded(
      connected.then(async (socket) => {
        if (plan.kind === 'kernel') {
          link = attach(socket, log, qemuProcess)
          return helloOn(link.peer)
        }
        // An image: its qemu-guest-agent answers once the image's own boot has started it.
        const qga = new Qga(socket)
        await qga.sync()
        o.onProgress(`guest: qemu-guest-agent answered (${((Date.now() - started) / 1000).toFixed(1)} s)`)
        const agent = startQgaAgent(qga, { shares: imageShares(o), onConsoleLine: (listener) => qemuProcess.onLine(listener) })
        link = attach(agent.stream, log, qemuProcess)
        const hello = helloOn(link.peer)
        hello.catch(() => {}) // when the mounts fail, that is the error reported
        await agent.ready.catch((error: Error) => {
          throw new VmtestError('VMTEST_GUEST_AGENT', 'boot', `The image ${plan.image} booted, but ${error.message}\n${consoleTail(qemuProcess)}`)
        })
        return hello
      }),
      bootTimeoutMs,
      () => bootTimeout(bootTimeoutMs, o, qemuProcess, plan),
      // Only an exit during the boot is a boot failure; a later one is handled below.
      qemuProcess.exited.then((exit) => (booted ? new Promise<never>(() => {}) : Promise.reject(bootFailure(exit, qemuProcess, panic, plan)))),
    )
    booted = true
    if (hello.version !== PROTOCOL_VERSION) {
      throw new VmtestError('VMTEST_PROTOCOL', 'handshake', `The guest agent speaks protocol version ${hello.version}, this host speaks ${PROTOCOL_VERSION}: the guest runs an agent from another vmtest version.`)
    }
  } catch (error) {
    if (isVmtestError(error) && error.code === 'VMTEST_BOOT_TIMEOUT') {
      await qemuProcess.kill()
      error.message += `\nFull console log: ${keepCrashLog(qemuProcess.consoleLog)}`
    }
    await cleanup()
    throw error
  }

  const info: GuestInfo = {
    kernel: plan.kind === 'kernel' ? plan.chosen.path : plan.image,
    ...(plan.kind === 'image' ? { image: plan.image } : {}),
    release: hello.release,
    arch,
    accel: accel.accel,
    accelReason: accel.fallbackReason,
    bootMs: Date.now() - started,
    bootId: hello.bootId,
    qemuPid: qemuProcess.pid!,
    qemuCommand: [qemu, ...args],
    consoleLog: qemuProcess.consoleLog,
  }
  const agent = link!
  qemuProcess.exited.then(async (exit) => {
    if (closing) return agent.peer.close(new VmtestError('VMTEST_GUEST_CLOSED', 'teardown', 'The guest was closed.'))
    agent.peer.close(crashError(exit, qemuProcess, panic, running, info, started))
    await cleanup() // nothing of a dead guest is worth keeping on disk
  })
  const guestLink: GuestLink = {
    peer: agent.peer,
    log,
    info,
    cwd: o.cwd,
    running,
    async shutdown() {
      closing = true
      if (plan.kind === 'image') {
        // Its writes went to a throw-away overlay and the shares are uncached 9p: nothing to flush.
        await qemuProcess.kill()
      } else {
        // Between leases no agent listens: nothing to sync, QEMU is stopped at once.
        if (!renewing) await agent.peer.call('agent.shutdown', {}, { timeoutMs: POWEROFF_TIMEOUT_MS }).catch(() => {})
        await qemuProcess.stop(POWEROFF_TIMEOUT_MS)
      }
      await cleanup()
    },
    async renewLease() {
      const ended = new VmtestError('VMTEST_GUEST_CLOSED', 'command', 'The lease ended (guest.renewLease()) while this call was pending.')
      renewing = true
      try {
        await agent.peer.call('lease.end', {}, { timeoutMs: LEASE_END_TIMEOUT_MS })
        const next = agent.renew(ended)
        guestLink.peer = next
        return await bounded(helloOn(next), bootTimeoutMs, () =>
          new VmtestError('VMTEST_BOOT_TIMEOUT', 'boot', `The guest's agent did not come back within ${bootTimeoutMs} ms after its lease ended.\n${consoleTail(qemuProcess)}`),
        )
      } finally {
        renewing = false
      }
    },
  }
  const guest = new Guest(guestLink)
  relays.set(guest, (toClient) => agent.relay(toClient))
  return guest
}

/** A guest's agent link lent to a client that speaks the agent protocol itself
 * (a test worker, through the broker): frames pass through whole, both ways. */
export interface GuestRelay {
  /** Passes one whole frame from the client to the agent. */
  toAgent(frame: Buffer): void
  /** Settles with the error that ended this lease's session (a crash, a shutdown). */
  closed: Promise<Error>
  /** Takes the link back: frames from the agent reach this host again. */
  detach(): void
}

const relays = new WeakMap<Guest, (toClient: (frame: Buffer) => void) => GuestRelay>()

/** Lends `guest`'s current lease to `toClient` until detach(); then renewLease() it. */
export function relayGuest(guest: Guest, toClient: (frame: Buffer) => void): GuestRelay {
  const relay = relays.get(guest)
  if (!relay) throw new Error('relayGuest: not a guest booted by bootGuest()')
  return relay(toClient)
}

type BootPlan = KernelPlan | ImagePlan

interface KernelPlan {
  kind: 'kernel'
  arch: string
  qemu: string
  accel: AccelChoice
  describe: string
  chosen: ChosenKernel
  kernel: KernelInfo
  guestRoot: GuestRoot
  /** What QEMU loads: the bzImage, or its vmlinux for a fast boot. */
  bootImage: string
  root: RootPlan
}

interface ImagePlan {
  kind: 'image'
  arch: string
  qemu: string
  accel: AccelChoice
  describe: string
  image: string
  format: string
}

async function planKernel(o: ResolvedOptions, cache: string): Promise<KernelPlan> {
  const chosen = chooseKernel(o.kernel && resolve(o.kernel), o.source('kernel'), cache, o.arch)
  const kernel = await inspect(chosen.path, chosen.source)
  if (o.arch && kernel.arch !== o.arch) {
    throw new VmtestError('VMTEST_OPTION_INVALID', 'config', `Kernel ${chosen.path} (${chosen.source}) is an ${kernel.arch} kernel, but \`arch\` (${o.source('arch')}) asks for ${o.arch}. Name an ${o.arch} kernel, or drop \`arch\`.`)
  }
  if (!archProfile(kernel.arch)) throw new VmtestError('VMTEST_KERNEL_INVALID', 'config', `Kernel ${chosen.path} (${chosen.source}) is for ${kernel.arch}, which vmtest cannot boot (it boots x86_64, aarch64, riscv64 and s390x).`)
  const guestRoot = chooseRoot(o, kernel.arch, cache)
  const qemu = findQemu(kernel.arch, o.qemu, o.source('qemu'))
  const { image } = await fastBootImage(kernel, cache)
  const accel = await chooseGuestAccel(o, kernel.arch, qemu, image, cache)
  const root = await planRoot(kernel, chosen.path, guestRoot, o, cache)
  const describe = `booting ${kernel.release ?? chosen.path}${guestRoot.path === '/' ? '' : ` on root ${guestRoot.path}`} with ${accel.accel}${root.initramfs ? ' (initramfs with modules)' : ''}`
  return { kind: 'kernel', arch: kernel.arch, qemu, accel, describe, chosen, kernel, guestRoot, bootImage: image, root }
}

async function planImage(o: ResolvedOptions, image: string, cache: string): Promise<ImagePlan> {
  const format = imageFormat(image, o.source('image'))
  const qemu = findQemu('x86_64', o.qemu, o.source('qemu'))
  // The KVM probe boots a kernel: the default one, when there is one.
  let probeKernel: string | undefined
  try {
    probeKernel = chooseKernel(undefined, '', cache).path
  } catch {
    // none here: decided without a probe below
  }
  const accel: AccelChoice = probeKernel ? await chooseAccel(o.accel, qemu, (await fastBootImage(await inspectKernel(probeKernel), cache)).image, cache) : { accel: o.accel === 'kvm' ? 'kvm' : 'tcg' }
  const describe = `booting image ${image} (${format}, ${o.uefi ? 'UEFI' : 'BIOS'}) with ${accel.accel}`
  return { kind: 'image', arch: 'x86_64', qemu, accel, describe, image, format }
}

/** Where an image guest mounts the 9p shares: the project at /mnt/vmtest, the `mounts` at their paths. */
function imageShares(o: ResolvedOptions): Share[] {
  return [
    ...(o.shared ? [{ tag: 'vmtest-shared', guestPath: SHARED_MOUNT, readonly: !o.shared.writable }] : []),
    ...o.mounts.map((m, i) => ({ tag: `vmtest-m${i}`, guestPath: m.guestPath, readonly: !m.writable })),
  ]
}

/** KVM runs guests of the host's architecture only: any other one runs under TCG, without a probe. */
async function chooseGuestAccel(o: ResolvedOptions, arch: string, qemu: string, image: string, cache: string): Promise<AccelChoice> {
  if (arch === hostArch()) return chooseAccel(o.accel, qemu, image, cache)
  if (o.accel === 'kvm') {
    throw new VmtestError('VMTEST_OPTION_INVALID', 'config', `accel 'kvm' (${o.source('accel')}) cannot run an ${arch} guest on this ${hostArch()} host: KVM runs guests of the host's architecture only. Use 'auto' or 'tcg'.`)
  }
  return { accel: 'tcg' }
}

/** inspectKernel with the user's error: the file, who named it, what it looks like instead. */
export async function inspect(path: string, source: string): Promise<KernelInfo> {
  try {
    return await inspectKernel(path)
  } catch (error) {
    if (!(error instanceof KernelFormatError)) throw error
    const hint = /gzip|xz|zstd/.test(error.found)
      ? ' It looks like a compressed file: decompress it, or name the bzImage (arch/x86/boot/bzImage) instead.'
      : error.found === 'text'
        ? ' It is a text file (a config or System.map?): name the bzImage or vmlinux instead.'
        : ''
    throw new VmtestError('VMTEST_KERNEL_INVALID', 'config', `${path} (${source}) is not a bootable kernel: expected a bzImage or an ELF vmlinux, found ${error.found}.${hint}`, { cause: error })
  }
}

interface RootPlan {
  mode: RootMode
  /** The initramfs that loads the modules; undefined when 9p is built in. */
  initramfs?: string
  /** Where modules were looked for, when none were found (for the error if 9p is not built in). */
  lookedForModules?: string[]
}

/** Modules, initramfs and root mode for this kernel. */
async function planRoot(kernel: KernelInfo, kernelPath: string, guestRoot: GuestRoot, o: ResolvedOptions, cache: string): Promise<RootPlan> {
  const found = kernel.release ? findModuleDir({ kernelPath, release: kernel.release, explicit: o.modules }) : { dir: undefined, looked: [] }
  if (!found.dir) {
    // No modules anywhere: boot straight into the 9p root, as for a kernel with 9p built in.
    return { mode: o.rootMode ?? 'overlay', lookedForModules: found.looked }
  }
  const plan = await planModules(found.dir, [...requiredModules(kernel.arch), OVERLAY_MODULE])
  const missing = plan.missing.filter((m) => m !== OVERLAY_MODULE)
  if (missing.length > 0) {
    throw new VmtestError(
      'VMTEST_MODULES_NOT_FOUND',
      'config',
      `The modules of kernel ${kernel.release} in ${found.dir} lack ${missing.join(', ')}: the guest needs virtio PCI, virtio console and 9p (as modules or built in).`,
    )
  }
  const hasOverlay = !plan.missing.includes(OVERLAY_MODULE)
  if (o.rootMode === 'overlay' && !hasOverlay) {
    throw new VmtestError('VMTEST_OPTION_INVALID', 'config', `rootMode 'overlay' (${o.source('rootMode')}) needs overlayfs, which kernel ${kernel.release} has neither built in nor as a module in ${found.dir}. Use rootMode 'ro'.`)
  }
  const mode = o.rootMode ?? (hasOverlay ? 'overlay' : 'ro')
  if (plan.files.length === 0) return { mode }
  const initramfs = await buildInitramfs({ busybox: findBusybox(kernel, guestRoot), modules: plan.files }, `${cache}/initramfs`)
  return { mode, initramfs }
}

/** A static busybox that runs in the guest: the root filesystem's own, else the host's (same architecture only). */
function findBusybox(kernel: KernelInfo, guestRoot: GuestRoot): string {
  const why = `Kernel ${kernel.release} has its 9p/virtio drivers as modules, which the guest loads from an initramfs with a static busybox as its shell`
  const fromRoot = busyboxesIn(guestRoot).find((file) => {
    const bytes = readFileSync(file)
    return isStaticElf(bytes) && elfArch(bytes) === kernel.arch
  })
  if (fromRoot) return fromRoot
  if (kernel.arch !== hostArch()) {
    throw new VmtestError(
      'VMTEST_BUSYBOX_NOT_FOUND',
      'config',
      `${why}, built for ${kernel.arch}: the root filesystem ${guestRoot.path} has none (looked at /bin/busybox, /usr/bin/busybox, /sbin/busybox).\nInstall one there (Debian: busybox-static for ${archProfile(kernel.arch)!.debian}); \`vmtest setup --arch ${kernel.arch}\` does.`,
    )
  }
  const install = 'Install it: Debian/Ubuntu `apt-get install busybox-static`, Fedora `dnf install busybox`, or put a static busybox on PATH.'
  const busybox = findExecutable('busybox')
  if (!busybox) throw new VmtestError('VMTEST_BUSYBOX_NOT_FOUND', 'config', `${why}, but \`busybox\` was not found on PATH.\n${install}`)
  if (!isStaticElf(readFileSync(busybox))) {
    throw new VmtestError('VMTEST_BUSYBOX_NOT_FOUND', 'config', `${why}, but ${busybox} is dynamically linked and cannot run there.\n${install}`)
  }
  return busybox
}

/** The kernel command line; every flag has a reason. */
function commandLine(kernel: KernelInfo, o: ResolvedOptions, root: RootPlan, guestRoot: GuestRoot): string {
  const args = [
    `console=${archProfile(kernel.arch)!.console}`,
    // Warnings and worse reach the console (splats, panics); chattier levels
    // cost boot time under emulation and arrive through /dev/kmsg anyway.
    'loglevel=5',
    // Reboot at once on panic; with QEMU's -no-reboot that ends QEMU, so a panic is seen, not hung on.
    'panic=-1',
    // Boot-time work a test guest does not need (≈0.5–1 s under TCG, measured):
    // trust QEMU's TSC instead of watching it, probe one UART and no PS/2
    // controller, skip the crypto self-tests. kernelArgs can undo any of them.
    ...(kernel.arch === 'x86_64' ? ['tsc=reliable', 'no_timer_check', 'i8042.noaux', 'i8042.nomux', 'i8042.nopnp', 'i8042.dumbkbd', '8250.nr_uarts=1'] : []),
    'cryptomgr.notests',
  ]
  if (root.initramfs) args.push('rdinit=/init')
  else args.push('root=vmtest-root', 'rootfstype=9p', 'rootflags=trans=virtio,version=9p2000.L,cache=loose', 'ro', `init=${INIT_SCRIPT}`, `vmtest_agent=${AGENT_BUNDLE}`)
  // vmtest_* reach init as environment variables (unknown parameters without a dot).
  args.push(`vmtest_mode=${root.mode}`, `vmtest_node=${guestRoot.node}`)
  if (o.shared) args.push(`vmtest_shared=${o.shared.writable ? 'rw' : 'ro'}`)
  // A path with blanks or quotes cannot travel on the command line; such a dir is at /mnt/vmtest only.
  if (o.shared && /^[^\s"']+$/.test(o.shared.path)) args.push(`vmtest_shared_path=${o.shared.path}`)
  if (o.mounts.length > 0) args.push(`vmtest_mounts=${o.mounts.map((m, i) => `vmtest-m${i}:${m.guestPath}:${m.writable ? 'rw' : 'ro'}`).join(';')}`)
  if (o.kernelArgs) args.push(o.kernelArgs)
  return args.join(' ')
}

/** After the agent's connection drops, how long QEMU gets to exit before we call
 * it a dead agent: a panic drops the connection a moment before QEMU exits, and
 * the panic, not the dropped connection, is what the user must be told. */
const EXIT_AFTER_DISCONNECT_MS = 3000

/** Our calls on the agent link are numbered from here, above any a relayed
 * client will use, so a late answer to the client is never taken for ours. */
const HOST_FIRST_CALL_ID = 2 ** 30

/** The agent's connection: one socket for the guest's life, one Peer per
 * lease (a new agent speaks a new session on the same port). */
interface AgentLink {
  peer: Peer
  /** Starts a new session; the old Peer is closed with `reason`. */
  renew(reason: Error): Peer
  relay(toClient: (frame: Buffer) => void): GuestRelay
}

function attach(socket: AgentStream, log: KernelLog, qemu: QemuProcess): AgentLink {
  const newPeer = () => {
    const peer = new Peer(copyingWriter(socket), { firstCallId: HOST_FIRST_CALL_ID })
    peer.on('kmsg', ({ records }: { records: KmsgRecord[] }) => log.add(records))
    return peer
  }
  // Frames, not bytes, are routed, so the link can change hands between two frames.
  const splitter = new FrameSplitter()
  let relayTo: ((frame: Buffer) => void) | undefined
  const link: AgentLink = {
    peer: newPeer(),
    renew(reason) {
      link.peer.close(reason)
      link.peer = newPeer()
      return link.peer
    },
    relay(toClient) {
      relayTo = toClient
      const peer = link.peer
      return {
        toAgent: (frame) => void (relayTo === toClient && socket.write(frame)),
        closed: new Promise<Error>((resolve) => peer.onClose(resolve)),
        detach: () => void (relayTo === toClient && (relayTo = undefined)),
      }
    },
  }
  socket.on('data', (chunk) => {
    let frames: Buffer[]
    try {
      frames = splitter.push(chunk)
    } catch (error) {
      link.peer.close(error as Error)
      socket.destroy()
      return
    }
    for (const frame of frames) (relayTo ?? ((f: Buffer) => link.peer.receive(f)))(frame)
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    const timer = setTimeout(() => {
      link.peer.close(new VmtestError('VMTEST_GUEST_EXITED', 'command', `The guest agent's connection closed while QEMU kept running (the agent died?).\n${consoleTail(qemu)}`))
    }, EXIT_AFTER_DISCONNECT_MS)
    qemu.exited.then(() => clearTimeout(timer))
  })
  return link
}

/** Resolves with the agent's hello on `peer`, rejecting if the session closes first. */
function helloOn(peer: Peer): Promise<AgentHello> {
  return new Promise<AgentHello>((ok, fail) => {
    peer.on('agent.hello', ok)
    peer.onClose(fail)
  })
}

interface PanicWatch {
  /** The "Kernel panic - not syncing: …" line, once seen. */
  line?: string
  /** The "VFS: Unable to mount root fs" line: a kernel without 9p built in, booted without modules. */
  noRoot?: boolean
  initFailure?: string
}

function watchForPanic(qemu: QemuProcess): PanicWatch {
  const watch: PanicWatch = {}
  qemu.onLine((line) => {
    if (!watch.line && /Kernel panic - not syncing/.test(line)) watch.line = line.replace(/^\[[^\]]*\]\s*/, '')
    if (/VFS: Unable to mount root fs|VFS: Cannot open root device/.test(line)) watch.noRoot = true
    const init = /vmtest-init: FAILED: (.*)/.exec(line)
    if (init) watch.initFailure = init[1]
  })
  return watch
}

/** The console's last lines for an error, and where the whole log is (kept
 * out of the temp dir once QEMU has exited, since that dir goes with the guest). */
function consoleTail(qemu: QemuProcess): string {
  const lines = qemu.consoleTail.length > 0 ? `Last console lines:\n${tail(qemu.consoleTail, CONSOLE_TAIL_IN_ERRORS)}` : 'The console printed nothing.'
  if (qemu.running) return lines
  let log = qemu.consoleLog
  if (log.startsWith(tmpdir())) {
    try {
      log = keepCrashLog(log)
    } catch {
      return lines
    }
  }
  return `${lines}\nFull console log: ${log}`
}

function bootFailure(exit: QemuExit, qemu: QemuProcess, panic: PanicWatch, plan: BootPlan): VmtestError {
  if (plan.kind === 'kernel' && panic.noRoot && plan.root.lookedForModules) {
    return new VmtestError(
      'VMTEST_MODULES_NOT_FOUND',
      'boot',
      `Kernel ${plan.chosen.path} could not mount the host root: it has no 9p built in, and no modules for it were found (looked in ${plan.root.lookedForModules.join(', ') || 'no place: its release is unknown'}).\n` +
        'Point the `modules` option at its lib/modules/<release> directory, or build 9p, virtio PCI and virtio console into the kernel.\n' +
        consoleTail(qemu),
    )
  }
  if (panic.line) return new VmtestError('VMTEST_GUEST_PANIC', 'boot', `The guest kernel panicked while booting: ${panic.line}\n${consoleTail(qemu)}`)
  if (panic.initFailure) return new VmtestError('VMTEST_GUEST_EXITED', 'boot', `The guest's init failed: ${panic.initFailure}.\n${consoleTail(qemu)}`)
  if (exit.exitCode !== 0 && exit.stderr) {
    // QEMU built without seccomp refuses -sandbox; every distro's QEMU has it.
    const hint = /sandbox|seccomp/i.test(exit.stderr) ? '\nThis QEMU lacks seccomp support, which vmtest runs it with (-sandbox on): use a distribution QEMU, or one configured with --enable-seccomp.' : ''
    return new VmtestError('VMTEST_QEMU_FAILED', 'launch', `QEMU exited with code ${exit.exitCode} before the guest came up:\n${tail(exit.stderr.split('\n'), 20)}${hint}`)
  }
  return new VmtestError('VMTEST_GUEST_EXITED', 'boot', `The guest stopped (QEMU exit ${exit.exitCode ?? exit.signal}) before its agent came up.\n${consoleTail(qemu)}`)
}

function bootTimeout(ms: number, o: ResolvedOptions, qemu: QemuProcess, plan: BootPlan): VmtestError {
  const last = qemu.consoleTail.findLast((l) => l.trim())
  if (plan.kind === 'image') {
    return new VmtestError(
      'VMTEST_BOOT_TIMEOUT',
      'boot',
      `qemu-guest-agent in the image ${plan.image} did not answer within ${ms} ms (bootTimeout${o.source('bootTimeout').replace(/^from \`bootTimeout\`/, '')})${last ? `; the console last said: ${last.trim()}` : ''}.\n` +
        `Image targets run commands through qemu-guest-agent on the virtio-serial port ${QGA_PORT_NAME}: install it in the image (Debian/Ubuntu: qemu-guest-agent) and have it start at boot. ` +
        'If the console shows the image still booting, raise bootTimeout.\n' +
        consoleTail(qemu),
    )
  }
  return new VmtestError(
    'VMTEST_BOOT_TIMEOUT',
    'boot',
    `The guest did not come up within ${ms} ms (bootTimeout${o.source('bootTimeout').replace(/^from `bootTimeout`/, '')})${last ? `; the console last said: ${last.trim()}` : ''}.\n` +
      `Under TCG a boot takes several seconds: raise bootTimeout if the console shows progress.\n${consoleTail(qemu)}`,
  )
}

function crashError(exit: QemuExit, qemu: QemuProcess, panic: PanicWatch, running: Map<number, string>, info: GuestInfo, started: number): VmtestError {
  const when = `${((Date.now() - started) / 1000).toFixed(1)} s after boot`
  const during = running.size > 0 ? ` while running ${[...running.values()].map((c) => `\`${c}\``).join(', ')}` : ''
  if (panic.line) {
    return new VmtestError('VMTEST_GUEST_PANIC', 'command', `Guest kernel panicked${during} (${info.release}, ${when}): ${panic.line}\n${consoleTail(qemu)}`)
  }
  const how = exit.signal ? `QEMU was killed by ${exit.signal}` : `QEMU exited with code ${exit.exitCode}`
  return new VmtestError('VMTEST_GUEST_EXITED', 'command', `The guest stopped${during} (${how}, ${when}).\n${consoleTail(qemu)}`)
}

/** Resolves with `work`, or rejects with `onTimeout()` after `ms`, or with the error of any of `failures`. */
async function bounded<T>(work: Promise<T>, ms: number, onTimeout: () => Error, ...failures: Promise<never>[]): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms)))
  try {
    return await Promise.race([work, timeout, ...failures])
  } finally {
    clearTimeout(timer)
  }
}

