/**
 * Spawns `edge-mesh gateway --json` (peers/edge-mesh.ts) as a child process, for end-to-end tests.
 *
 *   const a = await GatewayProcess.start(t, { name: 'A', regions: ['plant-1'], data: dirA })
 *   const res = await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
 *   const b = await GatewayProcess.start(t, { name: 'B', regions: ['plant-1'], data: dirB, bootstrap: [a.addr] })
 *   await a.kill('SIGKILL')                        // or a.stop(): SIGTERM, SIGKILL after a bound
 *
 * `start` resolves once the child printed its ready line
 * `{"event":"ready","peerId","addrs":[…],"http":"http://127.0.0.1:PORT"}` on stdout. HTTP listens on
 * a free loopback port (`--http 127.0.0.1:0`) and the mesh on `/ip4/127.0.0.1/tcp/0` unless told
 * otherwise. The child's stderr (pino logs) is kept: every failure message names the process (its
 * label and peer id) and quotes the tail of its stderr. Each process is stopped in `t.teardown`
 * (SIGTERM, SIGKILL after a bound), and killed with SIGKILL if the test process exits first.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'

/** Where a process registers its stop: an ava `t`, or anything with the same `teardown`. */
export type TeardownHost = Pick<ExecutionContext, 'teardown'>

export const EDGE_MESH_SCRIPT = fileURLToPath(new URL('../../peers/edge-mesh.ts', import.meta.url))

const DEFAULT_READY_TIMEOUT_MS = 30_000
/** Bound on the wait for an exit after SIGTERM, before SIGKILL. */
const DEFAULT_STOP_TIMEOUT_MS = 15_000
/** Bound on the wait for an exit after SIGKILL. */
const KILL_TIMEOUT_MS = 5000
/** Bound on one HTTP request to a gateway. */
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
/** How much of stderr (its end) is quoted in error messages. */
const STDERR_TAIL = 4000

const tail = (s: string): string => s.length > STDERR_TAIL ? '…' + s.slice(-STDERR_TAIL) : s

/** Flags of `edge-mesh gateway`. */
export interface GatewayFlags {
  /** --region, repeated (at least one). */
  regions: string[]
  /** --data */
  data?: string
  /** --listen, repeated. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** --bootstrap, repeated (multiaddrs with /p2p/<id>). */
  bootstrap?: string[]
  /** --http @default '127.0.0.1:0' */
  http?: string
  /** --mqtt */
  mqtt?: string
  /** --psk */
  psk?: string
  /** --sync-interval, ms. @default 1000 (quick anti-entropy for tests) */
  syncIntervalMs?: number
  /** --log-level @default 'info' */
  logLevel?: string
  /** --body-limit (bytes, or with a k/m suffix) */
  bodyLimit?: string
  /** Appended as they are. */
  extraArgs?: string[]
}

/** The command-line arguments after `edge-mesh` for `flags` (always with --json). */
export function gatewayArgs (flags: GatewayFlags): string[] {
  const args = ['gateway', '--json']
  for (const r of flags.regions) args.push('--region', r)
  if (flags.data !== undefined) args.push('--data', flags.data)
  for (const l of flags.listen ?? ['/ip4/127.0.0.1/tcp/0']) args.push('--listen', l)
  for (const b of flags.bootstrap ?? []) args.push('--bootstrap', b)
  args.push('--http', flags.http ?? '127.0.0.1:0')
  if (flags.mqtt !== undefined) args.push('--mqtt', flags.mqtt)
  if (flags.psk !== undefined) args.push('--psk', flags.psk)
  args.push('--sync-interval', String(flags.syncIntervalMs ?? 1000))
  args.push('--log-level', flags.logLevel ?? 'info')
  if (flags.bodyLimit !== undefined) args.push('--body-limit', flags.bodyLimit)
  args.push(...(flags.extraArgs ?? []))
  return args
}

export interface GatewayProcessOptions extends GatewayFlags {
  /** A label used in error messages (A, B, ...). */
  name: string
  /** @default 30000 */
  readyTimeoutMs?: number
  /** Bound on the SIGTERM wait of {@link GatewayProcess.stop} (and of the teardown). @default 15000 */
  stopTimeoutMs?: number
  /** Environment variables set for the child, over this process's environment. */
  env?: Record<string, string>
}

export interface GatewayReady {
  event: 'ready'
  peerId: string
  addrs: string[]
  http: string
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** An HTTP reply of a gateway: status, headers and the body parsed as JSON when it is JSON. */
export interface GatewayReply<T = unknown> {
  status: number
  headers: Headers
  /** The parsed body if the content type is JSON, else the text. */
  body: T
  text: string
}

// ------------------------------------------------------------------ safety net

const live = new Set<ChildProcessWithoutNullStreams>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** A running `edge-mesh gateway` child. Create with {@link GatewayProcess.start}. */
export class GatewayProcess {
  readonly name: string
  readonly options: GatewayProcessOptions
  readonly child: ChildProcessWithoutNullStreams
  /** Resolves when the child has exited and its streams are closed. */
  readonly exited: Promise<Exit>
  /** JSON lines of stdout, in order (the ready line first). */
  readonly events: Array<Record<string, unknown>> = []
  /** Lines on stdout that were not JSON. */
  readonly garbage: string[] = []
  peerId = ''
  addrs: string[] = []
  /** `http://127.0.0.1:PORT` */
  url = ''
  private stderrText = ''
  private partial = ''
  private exit: Exit | undefined
  private onReady: ((ready: GatewayReady) => void) | undefined

  private constructor (options: GatewayProcessOptions) {
    this.name = options.name
    this.options = options
    const env = options.env !== undefined ? { ...process.env, ...options.env } : undefined
    this.child = spawn(process.execPath, [EDGE_MESH_SCRIPT, ...gatewayArgs(options)], { stdio: ['pipe', 'pipe', 'pipe'], env })
    live.add(this.child)
    this.child.stdin.on('error', () => {})
    this.child.stdin.end()
    this.child.stderr.setEncoding('utf8').on('data', (c: string) => { this.stderrText += c })
    this.child.stdout.setEncoding('utf8').on('data', (c: string) => { this.onStdout(c) })
    this.exited = new Promise<Exit>(resolve => {
      this.child.once('error', err => {
        this.stderrText += `\n[spawn error: ${err.message}]`
        this.exit = { code: null, signal: null }
        live.delete(this.child)
        resolve(this.exit)
      })
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal }
        live.delete(this.child)
        resolve(this.exit)
      })
    })
  }

  /**
   * Spawns the gateway and resolves once it printed its ready line. Registers a teardown on `t`
   * that stops it (SIGTERM, then SIGKILL after a bound) if it still runs when the test ends.
   */
  static async start (t: TeardownHost, options: GatewayProcessOptions): Promise<GatewayProcess> {
    const p = new GatewayProcess(options)
    t.teardown(async () => { await p.stop() })
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
          p.url = ready.http
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

  /** The child's stderr so far (pino JSON lines). */
  get stderr (): string {
    return this.stderrText
  }

  get running (): boolean {
    return this.exit === undefined
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

  /** `ws://127.0.0.1:PORT` */
  get wsUrl (): string {
    return this.url.replace(/^http:/, 'ws:')
  }

  label (): string {
    return this.peerId === '' ? `gateway ${this.name}` : `gateway ${this.name} (${this.peerId})`
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
      let msg: Record<string, unknown>
      try {
        msg = JSON.parse(line) as Record<string, unknown>
      } catch {
        this.garbage.push(line)
        continue
      }
      this.events.push(msg)
      if (msg.event === 'ready' && this.onReady !== undefined) {
        const onReady = this.onReady
        this.onReady = undefined
        onReady(msg as unknown as GatewayReady)
      }
    }
  }

  /**
   * An HTTP request to the gateway (`path` starts with '/'). A JSON `body` that is not a string
   * is serialised with `content-type: application/json` unless `headers` set one. Rejects (naming
   * the process, with its stderr) on a network error or after `timeoutMs`; any status resolves.
   */
  async request<T = unknown> (method: string, path: string, opts: { body?: unknown, headers?: Record<string, string>, timeoutMs?: number } = {}): Promise<GatewayReply<T>> {
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
    const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    let res: Response
    let text: string
    try {
      res = await fetch(this.url + path, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) })
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

  async get<T = unknown> (path: string): Promise<GatewayReply<T>> {
    return await this.request<T>('GET', path)
  }

  async post<T = unknown> (path: string, body: unknown, headers?: Record<string, string>): Promise<GatewayReply<T>> {
    return await this.request<T>('POST', path, { body, headers })
  }

  /**
   * Sends SIGTERM and waits for the exit; SIGKILLs the process if it has not exited within
   * `timeoutMs`. Resolves with how it exited (check `code` 0 for a clean shutdown).
   */
  async stop (timeoutMs: number = this.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS): Promise<Exit> {
    if (this.exit !== undefined) return this.exit
    this.child.kill('SIGTERM')
    if (await settlesWithin(this.exited, timeoutMs)) return await this.exited
    this.child.kill('SIGKILL')
    await settlesWithin(this.exited, KILL_TIMEOUT_MS)
    return this.exit ?? { code: null, signal: null }
  }

  /**
   * Waits for the process to exit by itself (e.g. after a signal sent with `child.kill`); rejects
   * if it still runs after `timeoutMs`. Sends nothing: a second SIGTERM would abort a shutdown.
   */
  async waitForExit (timeoutMs: number = this.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS): Promise<Exit> {
    if (!await settlesWithin(this.exited, timeoutMs)) {
      throw new Error(`${this.label()}: still running after ${timeoutMs} ms${this.diagnostics()}`)
    }
    return await this.exited
  }

  /** Sends `signal` (SIGKILL by default) and waits (bounded) for the process to be gone. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.exit === undefined) this.child.kill(signal)
    if (!await settlesWithin(this.exited, signal === 'SIGKILL' ? KILL_TIMEOUT_MS : DEFAULT_STOP_TIMEOUT_MS)) {
      throw new Error(`${this.label()}: still running ${signal === 'SIGKILL' ? KILL_TIMEOUT_MS : DEFAULT_STOP_TIMEOUT_MS} ms after ${signal}${this.diagnostics()}`)
    }
    return await this.exited
  }
}

/** True if `p` settles within `ms`. */
async function settlesWithin (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, ms) })
  try {
    return await Promise.race([p.then(() => true, () => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}
