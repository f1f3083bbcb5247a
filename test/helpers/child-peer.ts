/**
 * A peer running as a child process, for end-to-end tests: the plumbing that the gateway
 * (gateway-process.ts), analytics (analytics-process.ts) and mesh-node (mesh-process.ts) helpers
 * build on.
 *
 *   class GatewayProcess extends HttpPeer { ... }      // a peer with an HTTP server
 *   const p = new GatewayProcess(options)              // spawns `node <script> <args>`
 *   await p.untilReady()                               // its `{"event":"ready",...}` line
 *   await p.stop()                                     // SIGTERM, SIGKILL after a bound
 *
 * The child's stdout is read as JSON lines: each goes first to {@link ChildPeer.onJsonLine} (a
 * subclass takes the lines that answer its commands there), the others are kept in `events`;
 * lines that are not JSON are kept in `garbage`. Its stderr (pino logs) is kept: every failure
 * message names the process (its label and peer id) and quotes the tail of its stderr. Every child
 * is killed with SIGKILL if the test process exits first. Every wait is bounded.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import { settlesWithin } from '@edge-mesh/service'

/** Where a process registers its stop: an ava `t`, or anything with the same `teardown`. */
export type TeardownHost = Pick<ExecutionContext, 'teardown'>

/** The `edge-mesh` command line (gateway, analytics). */
export const EDGE_MESH_SCRIPT = fileURLToPath(new URL('../../peers/edge-mesh.ts', import.meta.url))

/** How a child exited. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** The ready line of a peer: `{"event":"ready","peerId","addrs":[…]}`. */
export interface ReadyLine {
  event: 'ready'
  peerId: string
  addrs: string[]
}

/** The ready line of a peer with an HTTP server: also `"http":"http://127.0.0.1:PORT"`. */
export interface HttpReadyLine extends ReadyLine {
  http: string
}

/** An HTTP reply of a peer: status, headers and the body parsed as JSON when it is JSON. */
export interface HttpReply<T = unknown> {
  status: number
  headers: Headers
  /** The parsed body if the content type is JSON, else the text. */
  body: T
  text: string
}

/** Bound on the wait for the ready line. */
const DEFAULT_READY_TIMEOUT_MS = 30_000
/** Bound on the wait for an exit after a stop was asked, before SIGKILL. */
const DEFAULT_STOP_TIMEOUT_MS = 15_000
/** Bound on the wait for an exit after a signal other than SIGKILL sent by `kill`. */
const SIGNAL_EXIT_TIMEOUT_MS = 15_000
/** Bound on the wait for an exit after SIGKILL. */
export const KILL_TIMEOUT_MS = 5000
/** Bound on one HTTP request to a peer. */
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
/** How much of stderr (its end) is quoted in error messages. */
const STDERR_TAIL = 4000

/** The end of `s`, for error messages. */
export const tail = (s: string): string => s.length > STDERR_TAIL ? '…' + s.slice(-STDERR_TAIL) : s

// ------------------------------------------------------------------ safety net

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** Keeps `child` in the safety net until it is gone; resolves then. */
function track (child: ChildProcess): Promise<void> {
  live.add(child)
  const gone = new Promise<void>(resolve => {
    child.once('close', () => { resolve() })
    child.once('error', () => { resolve() })
  })
  void gone.then(() => { live.delete(child) })
  return gone
}

/** Children tracked together, so that a test file can make sure none outlives it. */
export class ChildGroup {
  private readonly members = new Map<ChildProcess, Promise<void>>()

  /** Tracks `child` until it is gone (it is also SIGKILLed if the test process exits first). */
  add (child: ChildProcess): void {
    const gone = track(child)
    this.members.set(child, gone)
    void gone.then(() => { this.members.delete(child) })
  }

  /** SIGKILLs every child still running and waits for each to be gone; rejects after `timeoutMs`. */
  async killAll (timeoutMs: number = KILL_TIMEOUT_MS): Promise<void> {
    const entries = [...this.members]
    for (const [child] of entries) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    if (!await settlesWithin(Promise.all(entries.map(async ([, gone]) => { await gone })), timeoutMs)) {
      const left = [...this.members.keys()].map(c => String(c.pid))
      throw new Error(`children still running ${timeoutMs} ms after SIGKILL: pid ${left.join(', ')}`)
    }
  }
}

// ------------------------------------------------------------------ the peer

/** The options of every peer helper's `start`. */
export interface PeerProcessOptions {
  /** A name for error messages (A, B, ...). */
  name: string
  /** Bound on the wait for the ready line. @default 30000 */
  readyTimeoutMs?: number
  /** Bound on the wait for an exit in `stop` (and in the teardown) before SIGKILL. @default 15000 */
  stopTimeoutMs?: number
  /** Environment variables set for the child, over this process's environment. */
  env?: Record<string, string>
}

export interface ChildPeerInit extends PeerProcessOptions {
  /** What the peer is, the first word of its label: `gateway`, `analytics`, `mesh-node`. */
  kind: string
  /** The arguments of `node`: the script, then its arguments. */
  argv: string[]
  /** Keep stdin open, for a peer driven over it. @default false (stdin is closed at once) */
  keepStdin?: boolean
  /** A group the child is tracked in, besides the safety net. */
  group?: ChildGroup
}

/** A peer process, spawned by the constructor; a subclass's `start` hands it to {@link ChildPeer.launch}. */
export class ChildPeer {
  readonly name: string
  readonly child: ChildProcessWithoutNullStreams
  /** Resolves when the child has exited and its streams are closed. */
  readonly exited: Promise<Exit>
  /** JSON lines of stdout that no subclass took, in order (the ready line first). */
  readonly events: Array<Record<string, unknown>> = []
  /** Lines on stdout that were not JSON. */
  readonly garbage: string[] = []
  peerId = ''
  addrs: string[] = []
  private readonly kind: string
  private readonly readyTimeoutMs: number
  private readonly stopTimeoutMs: number
  private stderrText = ''
  private partial = ''
  private exitStatus: Exit | undefined
  /** The first ready line. */
  private readonly readyLine: Promise<Record<string, unknown>>
  private sawReady: (line: Record<string, unknown>) => void = () => {}

  protected constructor (init: ChildPeerInit) {
    this.kind = init.kind
    this.name = init.name
    this.readyTimeoutMs = init.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS
    this.stopTimeoutMs = init.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS
    this.readyLine = new Promise(resolve => { this.sawReady = resolve })
    const env = init.env !== undefined ? { ...process.env, ...init.env } : undefined
    this.child = spawn(process.execPath, init.argv, { stdio: ['pipe', 'pipe', 'pipe'], env })
    if (init.group !== undefined) init.group.add(this.child)
    else void track(this.child)
    // Writing to a child that just died is an EPIPE on stdin: what it means shows in the exit.
    this.child.stdin.on('error', () => {})
    if (init.keepStdin !== true) this.child.stdin.end()
    this.child.stderr.setEncoding('utf8').on('data', (c: string) => { this.stderrText += c })
    this.child.stdout.setEncoding('utf8').on('data', (c: string) => { this.onStdout(c) })
    this.exited = new Promise<Exit>(resolve => {
      const exited = (exit: Exit): void => {
        if (this.exitStatus !== undefined) return
        this.exitStatus = exit
        this.onExit(exit)
        resolve(exit)
      }
      this.child.once('error', err => {
        this.stderrText += `\n[spawn error: ${err.message}]`
        exited({ code: null, signal: null })
      })
      this.child.once('close', (code, signal) => { exited({ code, signal }) })
    })
  }

  /**
   * Resolves with `p` once it is ready ({@link untilReady}). With `t`, registers a teardown that
   * stops it (see {@link stop}) if it still runs when the test ends.
   */
  protected static async launch<P extends ChildPeer> (p: P, t?: TeardownHost): Promise<P> {
    if (t !== undefined) t.teardown(async () => { await p.stop() })
    await p.untilReady()
    return p
  }

  /**
   * Resolves once the child printed its ready line (and takes its peer id and addresses from it).
   * Rejects, naming the process and quoting its stderr, if it exits first, if the line lacks a
   * field, or after the ready timeout; the child is then killed.
   */
  protected async untilReady (): Promise<void> {
    const timeoutMs = this.readyTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    type Outcome = { kind: 'ready', line: Record<string, unknown> } | { kind: 'exit', exit: Exit } | { kind: 'timeout' }
    try {
      const outcome = await Promise.race<Outcome>([
        this.readyLine.then(line => ({ kind: 'ready', line })),
        this.exited.then(exit => ({ kind: 'exit', exit })),
        new Promise<Outcome>(resolve => { timer = setTimeout(() => { resolve({ kind: 'timeout' }) }, timeoutMs) })
      ])
      clearTimeout(timer)
      if (outcome.kind === 'exit') {
        const { code, signal } = outcome.exit
        throw new Error(`${this.label()}: exited before ready (code ${String(code)}, signal ${String(signal)})${this.diagnostics()}`)
      }
      if (outcome.kind === 'timeout') throw new Error(`${this.label()}: no ready line within ${timeoutMs} ms${this.diagnostics()}`)
      const missing = this.takeReady(outcome.line)
      if (missing !== undefined) throw new Error(`${this.label()}: ready line without ${missing}: ${JSON.stringify(outcome.line)}${this.diagnostics()}`)
    } catch (err) {
      // The error above says what went wrong; a child that outlives SIGKILL too is left to the safety net.
      clearTimeout(timer)
      await this.kill('SIGKILL').catch(() => {})
      throw err
    }
  }

  /** Takes what the peer needs from its ready line; returns the name of a missing field, if any. */
  protected takeReady (line: Record<string, unknown>): string | undefined {
    if (typeof line.peerId !== 'string') return 'peerId'
    if (!Array.isArray(line.addrs) || !line.addrs.every(a => typeof a === 'string')) return 'addrs'
    this.peerId = line.peerId
    this.addrs = line.addrs as string[]
    return undefined
  }

  /**
   * Called with each JSON line of stdout, in order. Returns true if it took the line (an answer
   * to a command, say); the lines it does not take are events. The base takes none.
   */
  protected onJsonLine (_line: Record<string, unknown>): boolean {
    return false
  }

  /** Called once, when the child has exited (before {@link exited} resolves). */
  protected onExit (_exit: Exit): void {}

  /** Asks the process to stop, at the start of {@link stop}. The base sends SIGTERM. */
  protected requestStop (_timeoutMs: number): void {
    this.child.kill('SIGTERM')
  }

  /** How the child exited, once it has. */
  protected get exit (): Exit | undefined {
    return this.exitStatus
  }

  /** The child's stderr so far (pino JSON lines). */
  get stderr (): string {
    return this.stderrText
  }

  get running (): boolean {
    return this.exitStatus === undefined
  }

  /** The first mesh address (with /p2p/<id>), for --bootstrap. */
  get addr (): string {
    if (this.addrs.length === 0) throw new Error(`${this.label()}: no mesh address in its ready line`)
    return this.addrs[0]
  }

  /** The mesh listen address of {@link addr} without /p2p/<id>, to restart on the same port. */
  get listenAddr (): string {
    return this.addr.replace(/\/p2p\/[^/]+$/, '')
  }

  label (): string {
    return this.peerId === '' ? `${this.kind} ${this.name}` : `${this.kind} ${this.name} (${this.peerId})`
  }

  /** What failure messages append: non-JSON stdout and the tail of stderr. */
  diagnostics (): string {
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
      let msg: unknown
      try {
        msg = JSON.parse(line)
      } catch {
        this.garbage.push(line)
        continue
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
        this.garbage.push(line)
        continue
      }
      const record = msg as Record<string, unknown>
      if (this.onJsonLine(record)) continue
      this.events.push(record)
      if (record.event === 'ready') this.sawReady(record)
    }
  }

  /**
   * Asks the process to stop ({@link requestStop}) and waits for the exit; SIGKILLs the process if
   * it has not exited within `timeoutMs`. Resolves with how it exited (`code` 0: a clean shutdown).
   */
  async stop (timeoutMs: number = this.stopTimeoutMs): Promise<Exit> {
    if (this.exitStatus !== undefined) return this.exitStatus
    this.requestStop(timeoutMs)
    if (await settlesWithin(this.exited, timeoutMs)) return await this.exited
    this.child.kill('SIGKILL')
    await settlesWithin(this.exited, KILL_TIMEOUT_MS)
    return this.exitStatus ?? { code: null, signal: null }
  }

  /**
   * Waits for the process to exit by itself (e.g. after a signal sent with `child.kill`); rejects
   * if it still runs after `timeoutMs`. Sends nothing: a second SIGTERM would abort a shutdown.
   */
  async waitForExit (timeoutMs: number = this.stopTimeoutMs): Promise<Exit> {
    if (!await settlesWithin(this.exited, timeoutMs)) {
      throw new Error(`${this.label()}: still running after ${timeoutMs} ms${this.diagnostics()}`)
    }
    return await this.exited
  }

  /** Sends `signal` (SIGKILL by default) and waits (bounded) for the process to be gone. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.exitStatus === undefined) this.child.kill(signal)
    const bound = signal === 'SIGKILL' ? KILL_TIMEOUT_MS : SIGNAL_EXIT_TIMEOUT_MS
    if (!await settlesWithin(this.exited, bound)) {
      throw new Error(`${this.label()}: still running ${bound} ms after ${signal}${this.diagnostics()}`)
    }
    return await this.exited
  }
}

/** A peer with an HTTP server, whose ready line names it (`"http":"http://127.0.0.1:PORT"`). */
export class HttpPeer extends ChildPeer {
  /** `http://127.0.0.1:PORT` */
  url = ''

  /** `ws://127.0.0.1:PORT` */
  get wsUrl (): string {
    return this.url.replace(/^http:/, 'ws:')
  }

  protected override takeReady (line: Record<string, unknown>): string | undefined {
    if (typeof line.http !== 'string') return 'http'
    const missing = super.takeReady(line)
    if (missing === undefined) this.url = line.http
    return missing
  }

  /**
   * An HTTP request to the peer (`path` starts with '/'). A `body` that is not a string is sent
   * as JSON with `content-type: application/json` unless `headers` set one. Rejects (naming the
   * process, with its stderr) on a network error or after `timeoutMs`; any status resolves.
   */
  async request<T = unknown> (method: string, path: string, opts: { body?: unknown, headers?: Record<string, string>, timeoutMs?: number } = {}): Promise<HttpReply<T>> {
    const headers: Record<string, string> = { ...opts.headers }
    let body: string | undefined
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string') {
        body = opts.body
      } else {
        body = JSON.stringify(opts.body)
        if (!Object.keys(headers).some(h => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
      }
    }
    let res: Response
    let text: string
    try {
      res = await fetch(this.url + path, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS) })
      text = await res.text()
    } catch (err) {
      const why = err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err)
      throw new Error(`${this.label()}: ${method} ${path} failed: ${why}${this.diagnostics()}`, { cause: err })
    }
    let parsed: unknown = text
    if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') {
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = text
      }
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text }
  }

  async get<T = unknown> (path: string): Promise<HttpReply<T>> {
    return await this.request<T>('GET', path)
  }

  async post<T = unknown> (path: string, body: unknown, headers?: Record<string, string>): Promise<HttpReply<T>> {
    return await this.request<T>('POST', path, { body, headers })
  }
}
