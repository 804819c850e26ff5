// The wire contract between the host and the guest agent, declared once for
// both sides. Methods are `noun.verb`; the host calls, the agent answers.

/** Bumped on any incompatible change; the host refuses an agent that differs. */
export const PROTOCOL_VERSION = 1

/** Name of the virtserialport the agent talks on (/sys/class/virtio-ports/<port>/name). */
export const AGENT_PORT_NAME = 'org.vmtest.agent.0'

export interface ExecStartParams {
  /** Channel numbers: stdin = id*4, stdout = id*4+1, stderr = id*4+2. */
  id: number
  command: string
  cwd: string
  env: Record<string, string>
  /** Whether the host will send stdin on channel id*4 (otherwise /dev/null). */
  stdin: boolean
  /** Kill the process group after this long (SIGTERM, then SIGKILL after killGraceMs). */
  timeoutMs?: number
  killGraceMs: number
}

export interface ExecExit {
  exitCode: number | null
  signal: string | null
  timedOut: boolean
}

export interface KmsgRecord {
  /** Syslog level 0 (emerg) .. 7 (debug). */
  level: number
  seq: number
  /** Microseconds since boot. */
  usec: number
  text: string
}

export interface HostToAgent {
  'exec.start': { params: ExecStartParams; result: ExecExit }
  'exec.signal': { params: { id: number; signal: string }; result: { delivered: boolean } }
  'file.read': { params: { path: string; channel: number }; result: { size: number } }
  'file.write': { params: { path: string; channel: number; mode?: number }; result: { size: number } }
  /** Forward every pending kernel log record now; answer with the taint mask.
   * `reap`: first kill what was started since processes.mark (the test's leftovers). */
  'kernel.sync': { params: { reap?: boolean }; result: { tainted: number; reaped?: string[] } }
  /** A test starts: the processes alive now are kept by the next kernel.sync's reap. */
  'processes.mark': { params: Record<string, never>; result: Record<string, never> }
  'agent.shutdown': { params: Record<string, never>; result: Record<string, never> }
  /** End this lease: every process it started is killed and the next agent
   * starts with a fresh root layer, /tmp and /run, then says hello again. */
  'lease.end': { params: Record<string, never>; result: Record<string, never> }
}

export interface AgentHello {
  version: number
  pid: number
  node: string
  release: string
  bootId: string
  /** Milliseconds since the guest kernel started, when the agent said hello. */
  uptimeMs: number
}

export interface AgentEvents {
  'agent.hello': AgentHello
  kmsg: { records: KmsgRecord[] }
}

/** Events either side may send. */
export interface ChannelEvents {
  /** The receiver consumed `bytes` of `channel`: the sender may send that much more. */
  'channel.ack': { channel: number; bytes: number }
  /** The receiver will not read `channel` any more: the sender should stop. */
  'channel.cancel': { channel: number }
}

export type MethodName = keyof HostToAgent

/** Wire error codes, so a caller can tell a transport failure from the remote side saying no. */
export const WireErrorCode = {
  /** The method threw: `message` is the remote error message, `errno` its code if any. */
  Remote: 'remote',
  UnknownMethod: 'unknown-method',
  /** The connection closed or broke while the call was pending. */
  Closed: 'closed',
  Timeout: 'timeout',
} as const

export type Message =
  | { t: 'call'; id: number; method: string; params: unknown }
  | { t: 'result'; id: number; value: unknown }
  | { t: 'error'; id: number; error: { code: string; message: string; errno?: string } }
  | { t: 'event'; name: string; params: unknown }

/** Each side's flow-control window per channel: unacknowledged bytes in flight. */
export const CHANNEL_WINDOW_BYTES = 1024 * 1024
