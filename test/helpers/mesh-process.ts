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
 * in `test.after.always` so that no child outlives the test file. The process plumbing (stdout
 * lines, stop/kill, the SIGKILL of every child if the test process exits first) is
 * test/helpers/child-peer.ts; the command answers are taken from stdout in `onJsonLine`.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ChildGroup, ChildPeer, tail, type Exit, type ReadyLine } from './child-peer.ts'

export type { Exit } from './child-peer.ts'

export const MESH_NODE_SCRIPT = fileURLToPath(new URL('../../peers/mesh-node.ts', import.meta.url))

const DEFAULT_COMMAND_TIMEOUT_MS = 10_000
/** Bound on the wait for an exit after `stop`, before SIGKILL. */
const DEFAULT_EXIT_TIMEOUT_MS = 10_000
/** Bound on a one-shot run: a start of Node and of the peer's modules, on a loaded machine. */
const DEFAULT_RUN_TIMEOUT_MS = 30_000

/** Every mesh-node child started here, for {@link killAllMeshProcesses}. */
const meshChildren = new ChildGroup()

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
export async function runMeshNode (args: string[], timeoutMs: number = DEFAULT_RUN_TIMEOUT_MS): Promise<MeshNodeRun> {
  const child = spawn(process.execPath, [MESH_NODE_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  meshChildren.add(child)
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

/** SIGKILLs every mesh-node child still running and waits (bounded) for each to be gone. For `test.after.always`. */
export async function killAllMeshProcesses (): Promise<void> {
  await meshChildren.killAll()
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

export type ReadyEvent = ReadyLine

export interface MeshProcessOptions extends MeshNodeFlags {
  /** A label used in error messages (A, B, ...). */
  name: string
  /** Bound on the wait for the ready line. @default 30000 */
  readyTimeoutMs?: number
  /** Bound on the wait for the answer to a command. @default 10000 */
  commandTimeoutMs?: number
}

interface Pending {
  what: string
  resolve: (answer: Record<string, unknown>) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
}

/** A running mesh-node child with --control. Create with {@link MeshProcess.start}. */
export class MeshProcess extends ChildPeer {
  readonly options: MeshProcessOptions
  /** Answers whose id was no longer awaited (they came after their command timed out). */
  readonly lateAnswers: Array<Record<string, unknown>> = []
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly commandTimeoutMs: number

  private constructor (options: MeshProcessOptions) {
    super({
      name: options.name,
      kind: 'mesh-node',
      argv: [MESH_NODE_SCRIPT, ...meshNodeArgs({ ...options, control: options.control ?? true })],
      keepStdin: true,
      readyTimeoutMs: options.readyTimeoutMs,
      stopTimeoutMs: DEFAULT_EXIT_TIMEOUT_MS,
      group: meshChildren
    })
    this.options = options
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  }

  /** Spawns mesh-node with `options` and resolves once it printed its ready line. */
  static async start (options: MeshProcessOptions): Promise<MeshProcess> {
    return await MeshProcess.launch(new MeshProcess(options))
  }

  /** Takes the answers to commands (lines with an id); the lines without one are events. */
  protected override onJsonLine (msg: Record<string, unknown>): boolean {
    if (typeof msg.id === 'number' && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id) as Pending
      this.pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok === true) p.resolve(msg)
      else p.reject(new Error(`${this.label()}: ${p.what} failed: ${String(msg.error)} (code ${String(msg.code)})`))
      return true
    }
    if (msg.id !== undefined) {
      this.lateAnswers.push(msg)
      return true
    }
    return false
  }

  /** Rejects the commands still waiting for an answer. */
  protected override onExit (exit: Exit): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id)
      clearTimeout(p.timer)
      p.reject(new Error(`${this.label()}: ${p.what} got no answer: the process exited (code ${String(exit.code)}, signal ${String(exit.signal)})${this.diagnostics()}`))
    }
  }

  /** Asks with the `stop` command; its answer may race with the exit: the exit is what counts. */
  protected override requestStop (timeoutMs: number): void {
    this.command('stop', {}, timeoutMs).catch(() => {})
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
    const exit = this.exit
    if (exit !== undefined) {
      const what = cmds.map(([cmd]) => cmd).join(', ')
      throw new Error(`${this.label()}: cannot send ${what}: the process exited (code ${String(exit.code)}, signal ${String(exit.signal)})${this.diagnostics()}`)
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
}
