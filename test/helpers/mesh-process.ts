/**
 * Spawns peers/mesh-node.ts as a child process and talks to it over its JSON control channel.
 *
 *   const a = await MeshProcess.start({ name: 'A', regions: ['r'], data: dirA, syncIntervalMs: 1000 })
 *   const reading = await a.put('r', 's1', 42)     // answered once the write is durable
 *   const view = await a.dump('r')                 // [[sensor, t, writer], ...] sorted
 *   await a.kill('SIGKILL')                        // or a.stop()
 *
 * Every failure message names the process (its label and peer id), the command, and carries the
 * tail of the child's stderr. Every process started is tracked: call {@link killAllMeshProcesses}
 * in `test.after.always` so that no child outlives the test file.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const MESH_NODE_SCRIPT = fileURLToPath(new URL('../../peers/mesh-node.ts', import.meta.url))

const DEFAULT_READY_TIMEOUT_MS = 15_000
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000
const DEFAULT_EXIT_TIMEOUT_MS = 10_000
/** How much of stderr (its end) is quoted in error messages. */
const STDERR_TAIL = 4000

export interface MeshNodeFlags {
  /** --region, repeated. */
  regions?: string[]
  /** --data */
  data?: string
  /** --listen, repeated. */
  listen?: string[]
  /** --bootstrap, repeated (multiaddrs with /p2p/<id>). */
  bootstrap?: string[]
  /** --psk (path of a swarm.key file) */
  psk?: string
  /** --read-only */
  readOnly?: boolean
  /** --sync-interval */
  syncIntervalMs?: number
  /** --control @default true for {@link MeshProcess.start} */
  control?: boolean
  /** Appended as they are (for flag-parsing tests). */
  extraArgs?: string[]
}

/** The command-line arguments of mesh-node for `flags`. */
export function meshNodeArgs (flags: MeshNodeFlags): string[] {
  const args: string[] = []
  for (const r of flags.regions ?? []) args.push('--region', r)
  if (flags.data !== undefined) args.push('--data', flags.data)
  for (const l of flags.listen ?? []) args.push('--listen', l)
  for (const b of flags.bootstrap ?? []) args.push('--bootstrap', b)
  if (flags.psk !== undefined) args.push('--psk', flags.psk)
  if (flags.readOnly === true) args.push('--read-only')
  if (flags.syncIntervalMs !== undefined) args.push('--sync-interval', String(flags.syncIntervalMs))
  if (flags.control === true) args.push('--control')
  args.push(...(flags.extraArgs ?? []))
  return args
}

const tail = (s: string): string => s.length > STDERR_TAIL ? '…' + s.slice(-STDERR_TAIL) : s

// ------------------------------------------------------------------ one-shot runs

export interface MeshNodeRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Runs mesh-node with `args` (stdin closed) until it exits, for flag-parsing tests. Rejects if it
 * has not exited within `timeoutMs` (and kills it).
 */
export async function runMeshNode (args: string[], timeoutMs: number = DEFAULT_EXIT_TIMEOUT_MS): Promise<MeshNodeRun> {
  const child = spawn(process.execPath, [MESH_NODE_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  track(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  return await new Promise<MeshNodeRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`mesh-node ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr:\n${tail(stderr)}`))
    }, timeoutMs)
    child.on('error', err => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

// ------------------------------------------------------------------ tracking for teardown

const live = new Set<{ child: { exitCode: number | null, signalCode: NodeJS.Signals | null, kill: (s: NodeJS.Signals) => boolean }, closed: Promise<void> }>()

function track (child: ReturnType<typeof spawn>): Promise<void> {
  const closed = new Promise<void>(resolve => {
    child.once('close', () => { resolve() })
    child.once('error', () => { resolve() })
  })
  const entry = { child, closed }
  live.add(entry)
  void closed.then(() => { live.delete(entry) })
  return closed
}

/** SIGKILLs every mesh-node child still running and waits for each to be gone. For `test.after.always`. */
export async function killAllMeshProcesses (): Promise<void> {
  const entries = [...live]
  for (const e of entries) {
    if (e.child.exitCode === null && e.child.signalCode === null) e.child.kill('SIGKILL')
  }
  await Promise.all(entries.map(async e => e.closed))
}

// ------------------------------------------------------------------ controlled processes

/** A reading as answered by `put` (see @edge-mesh/region-state). */
export interface PutReading {
  sensor: string
  value: unknown
  t: string
  writer: string
  deleted: boolean
}

/** One entry of a `dump` answer: [sensor, t, writer]. */
export type ViewEntry = [sensor: string, t: string, writer: string]

export interface ReadyEvent {
  event: 'ready'
  peerId: string
  addrs: string[]
}

export interface MeshProcessOptions extends MeshNodeFlags {
  /** A label used in error messages (A, B, ...). */
  name: string
  readyTimeoutMs?: number
  commandTimeoutMs?: number
}

interface Pending {
  what: string
  resolve: (answer: Record<string, unknown>) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A running mesh-node child with --control. Create with {@link MeshProcess.start}. */
export class MeshProcess {
  readonly name: string
  readonly options: MeshProcessOptions
  readonly child: ChildProcessWithoutNullStreams
  /** Resolves when the child has exited and its streams are closed. */
  readonly exited: Promise<Exit>
  /** Event lines (those without an id), in order, the ready line first. */
  readonly events: Array<Record<string, unknown>> = []
  /** Lines on stdout that were not JSON. */
  readonly garbage: string[] = []
  /** Answers whose id was no longer awaited (they came after their command timed out). */
  readonly lateAnswers: Array<Record<string, unknown>> = []
  peerId = ''
  addrs: string[] = []
  private stderrText = ''
  private partial = ''
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private exit: Exit | undefined
  private readonly commandTimeoutMs: number
  private onReady: ((ready: ReadyEvent) => void) | undefined

  private constructor (options: MeshProcessOptions) {
    this.name = options.name
    this.options = options
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
    const args = meshNodeArgs({ ...options, control: options.control ?? true })
    this.child = spawn(process.execPath, [MESH_NODE_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    track(this.child)
    // Writing to a child that just died is an EPIPE on stdin: it is reported through the pending
    // commands (rejected on exit), not as an uncaught error.
    this.child.stdin.on('error', () => {})
    this.child.stderr.setEncoding('utf8').on('data', (c: string) => { this.stderrText += c })
    this.child.stdout.setEncoding('utf8').on('data', (c: string) => { this.onStdout(c) })
    this.exited = new Promise<Exit>(resolve => {
      this.child.once('error', err => {
        this.stderrText += `\n[spawn error: ${err.message}]`
        this.exit = { code: null, signal: null }
        this.failPending()
        resolve(this.exit)
      })
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal }
        this.failPending()
        resolve(this.exit)
      })
    })
  }

  /** Spawns mesh-node with `options` and resolves once it printed its ready line. */
  static async start (options: MeshProcessOptions): Promise<MeshProcess> {
    const p = new MeshProcess(options)
    const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`${p.label()}: no ready line within ${timeoutMs} ms${p.diagnostics()}`))
        }, timeoutMs)
        p.onReady = ready => {
          clearTimeout(timer)
          p.peerId = ready.peerId
          p.addrs = ready.addrs
          resolve()
        }
        void p.exited.then(exit => {
          clearTimeout(timer)
          reject(new Error(`${p.label()}: exited before ready (code ${String(exit.code)}, signal ${String(exit.signal)})${p.diagnostics()}`))
        })
      })
    } catch (err) {
      await p.kill('SIGKILL')
      throw err
    }
    return p
  }

  /** The child's stderr so far. */
  get stderr (): string {
    return this.stderrText
  }

  get running (): boolean {
    return this.exit === undefined
  }

  /** The first listen address (with /p2p/<id>), for --bootstrap. */
  get addr (): string {
    if (this.addrs.length === 0) throw new Error(`${this.label()}: no listen address in its ready line`)
    return this.addrs[0]
  }

  label (): string {
    return this.peerId === '' ? `mesh-node ${this.name}` : `mesh-node ${this.name} (${this.peerId})`
  }

  private diagnostics (): string {
    const parts: string[] = []
    if (this.garbage.length > 0) parts.push(`non-JSON stdout:\n${tail(this.garbage.join('\n'))}`)
    parts.push(this.stderrText === '' ? 'stderr: (empty)' : `stderr:\n${tail(this.stderrText)}`)
    return '; ' + parts.join('\n')
  }

  private onStdout (chunk: string): void {
    const lines = (this.partial + chunk).split('\n')
    this.partial = lines.pop() as string
    for (const line of lines) {
      if (line.trim() === '') continue
      let msg: Record<string, unknown>
      try {
        msg = JSON.parse(line) as Record<string, unknown>
      } catch {
        this.garbage.push(line)
        continue
      }
      if (typeof msg.id === 'number' && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id) as Pending
        this.pending.delete(msg.id)
        clearTimeout(p.timer)
        if (msg.ok === true) p.resolve(msg)
        else p.reject(new Error(`${this.label()}: ${p.what} failed: ${String(msg.error)} (code ${String(msg.code)})`))
        continue
      }
      if (msg.id !== undefined) {
        this.lateAnswers.push(msg)
        continue
      }
      this.events.push(msg)
      if (msg.event === 'ready' && this.onReady !== undefined) {
        const onReady = this.onReady
        this.onReady = undefined
        onReady(msg as unknown as ReadyEvent)
      }
    }
  }

  private failPending (): void {
    const exit = this.exit as Exit
    for (const [id, p] of this.pending) {
      this.pending.delete(id)
      clearTimeout(p.timer)
      p.reject(new Error(`${this.label()}: ${p.what} got no answer: the process exited (code ${String(exit.code)}, signal ${String(exit.signal)})${this.diagnostics()}`))
    }
  }

  /**
   * Sends `{id, cmd, ...fields}` and resolves with the answer carrying the same id. Rejects if the
   * answer has ok:false, if the process exits first, or after `timeoutMs`, naming the command.
   */
  async command (cmd: string, fields: Record<string, unknown> = {}, timeoutMs: number = this.commandTimeoutMs): Promise<Record<string, unknown>> {
    return (await this.commands([[cmd, fields]], timeoutMs))[0]
  }

  /**
   * Sends several commands in one write to stdin, so that mesh-node reads them in one chunk and
   * handles the synchronous ones (get, dump, stats) back to back, with no network event between
   * them. Resolves with the answers in the order of `cmds`.
   */
  async commands (cmds: Array<[cmd: string, fields?: Record<string, unknown>]>, timeoutMs: number = this.commandTimeoutMs): Promise<Array<Record<string, unknown>>> {
    if (this.exit !== undefined) {
      const what = cmds.map(([cmd]) => cmd).join(', ')
      throw new Error(`${this.label()}: cannot send ${what}: the process exited (code ${String(this.exit.code)}, signal ${String(this.exit.signal)})${this.diagnostics()}`)
    }
    const lines: string[] = []
    const answers = cmds.map(async ([cmd, fields]) => {
      const id = this.nextId++
      const line = JSON.stringify({ id, cmd, ...fields })
      const what = `command ${cmd} #${id} ${line}`
      lines.push(line)
      return await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id)
          reject(new Error(`${this.label()}: ${what} got no answer within ${timeoutMs} ms${this.diagnostics()}`))
        }, timeoutMs)
        this.pending.set(id, { what, resolve, reject, timer })
      })
    })
    this.child.stdin.write(lines.map(l => l + '\n').join(''))
    return await Promise.all(answers)
  }

  /** Writes a reading; resolves with it once it is durable. */
  async put (region: string, sensor: string, value: unknown): Promise<PutReading> {
    return (await this.command('put', { region, sensor, value })).reading as PutReading
  }

  async get (region: string, sensor: string): Promise<{ value: unknown, t: string, writer: string } | null> {
    return (await this.command('get', { region, sensor })).value as { value: unknown, t: string, writer: string } | null
  }

  /** Live sensors of a region, sorted, each with its winner's t and writer. */
  async dump (region: string): Promise<ViewEntry[]> {
    return (await this.command('dump', { region })).view as ViewEntry[]
  }

  async stats (): Promise<{ stats: Record<string, unknown>, peers: string[] }> {
    const a = await this.command('stats')
    return { stats: a.stats as Record<string, unknown>, peers: a.peers as string[] }
  }

  /** A sync round with every connected peer; resolves with the number of rounds that succeeded. */
  async sync (): Promise<number> {
    return (await this.command('sync')).rounds as number
  }

  /** Asks the process to stop and waits for it to exit; SIGKILLs it if it has not within `timeoutMs`. */
  async stop (timeoutMs: number = DEFAULT_EXIT_TIMEOUT_MS): Promise<Exit> {
    if (this.exit !== undefined) return this.exit
    // The answer may race with the exit: the exit is what counts.
    this.command('stop', {}, timeoutMs).catch(() => {})
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, timeoutMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** Sends `signal` (SIGKILL by default) and waits for the process to be gone. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.exit === undefined) this.child.kill(signal)
    return await this.exited
  }
}
