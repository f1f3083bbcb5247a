/**
 * Spawns `edge-mesh analytics --json` (peers/edge-mesh.ts) as a child process, for end-to-end
 * tests, the way test/helpers/gateway-process.ts spawns gateways.
 *
 *   const an = await AnalyticsProcess.start(t, { name: 'analytics', data: dir, bootstrap: [a.addr, b.addr], control: true })
 *   const regions = await an.get('/v1/regions')
 *   await an.partition([a.peerId])                // needs control: true (EDGE_MESH_TEST_CONTROL=1)
 *   const stream = an.stream('/v1/stream?events=reading')
 *   await stream.next(e => e.event === 'reading')
 *   await an.stop()                               // SIGTERM, SIGKILL after a bound
 *
 * `start` resolves once the child printed `{"event":"ready","peerId","addrs","http"}`. HTTP listens
 * on a free loopback port and the mesh on `/ip4/127.0.0.1/tcp/0` unless told otherwise. The child's
 * stderr (pino logs) is kept, and every failure message names the process and quotes its tail.
 * Each process is stopped in `t.teardown`, and killed with SIGKILL if the test process exits first.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'

/** Where a process registers its stop: an ava `t`, or anything with the same `teardown`. */
export type TeardownHost = Pick<ExecutionContext, 'teardown'>

export const EDGE_MESH_SCRIPT = fileURLToPath(new URL('../../peers/edge-mesh.ts', import.meta.url))

const DEFAULT_READY_TIMEOUT_MS = 30_000
const DEFAULT_STOP_TIMEOUT_MS = 15_000
const KILL_TIMEOUT_MS = 5000
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
const STDERR_TAIL = 4000
/** Most events a stream reader keeps (the oldest are dropped). */
const MAX_STREAM_EVENTS = 100_000

const tail = (s: string): string => s.length > STDERR_TAIL ? '…' + s.slice(-STDERR_TAIL) : s

/** Flags of `edge-mesh analytics`. */
export interface AnalyticsFlags {
  /** --data (required) */
  data: string
  /** --bootstrap, repeated. */
  bootstrap?: string[]
  /** --listen, repeated. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** --http @default '127.0.0.1:0' */
  http?: string
  /** --psk */
  psk?: string
  /** --retention (a duration such as 7d) */
  retention?: string
  /** --anomaly-threshold */
  anomalyThreshold?: number
  /** --writer <region>=<id>, repeated. */
  writers?: Record<string, string[]>
  /** --sync-interval, ms. @default 1000 (quick anti-entropy for tests) */
  syncIntervalMs?: number
  /** --log-level @default 'info' */
  logLevel?: string
  /** Appended as they are. */
  extraArgs?: string[]
}

/** The command-line arguments after `edge-mesh` for `flags` (always with --json). */
export function analyticsArgs (flags: AnalyticsFlags): string[] {
  const args = ['analytics', '--json', '--data', flags.data]
  for (const b of flags.bootstrap ?? []) args.push('--bootstrap', b)
  for (const l of flags.listen ?? ['/ip4/127.0.0.1/tcp/0']) args.push('--listen', l)
  args.push('--http', flags.http ?? '127.0.0.1:0')
  if (flags.psk !== undefined) args.push('--psk', flags.psk)
  if (flags.retention !== undefined) args.push('--retention', flags.retention)
  if (flags.anomalyThreshold !== undefined) args.push('--anomaly-threshold', String(flags.anomalyThreshold))
  for (const [region, ids] of Object.entries(flags.writers ?? {})) for (const id of ids) args.push('--writer', `${region}=${id}`)
  args.push('--sync-interval', String(flags.syncIntervalMs ?? 1000))
  args.push('--log-level', flags.logLevel ?? 'info')
  args.push(...(flags.extraArgs ?? []))
  return args
}

export interface AnalyticsProcessOptions extends AnalyticsFlags {
  /** A label used in error messages. */
  name: string
  /** Turn on the test-only partition control (EDGE_MESH_TEST_CONTROL=1). @default false */
  control?: boolean
  /** @default 30000 */
  readyTimeoutMs?: number
  /** Bound on the SIGTERM wait of {@link AnalyticsProcess.stop} (and of the teardown). @default 15000 */
  stopTimeoutMs?: number
  /** Environment variables set for the child, over this process's environment. */
  env?: Record<string, string>
}

export interface AnalyticsReady {
  event: 'ready'
  peerId: string
  addrs: string[]
  http: string
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** An HTTP reply: status, headers and the body parsed as JSON when it is JSON. */
export interface Reply<T = unknown> {
  status: number
  headers: Headers
  body: T
  text: string
}

/** One Server-Sent Event. */
export interface StreamEventMessage {
  event: string
  data: unknown
}

/**
 * A reader of an SSE stream: events are parsed as they come (data as JSON) and kept in `events`
 * (bounded); `next(pred)` waits, bounded, for the first event from the current position on that
 * passes `pred`.
 */
export class StreamReader {
  readonly events: StreamEventMessage[] = []
  /** Resolves when the stream ends (closed by either side, or failed). */
  readonly ended: Promise<void>
  private readonly controller = new AbortController()
  private readonly label: string
  private position = 0
  private status = 0
  private error: unknown
  private wake: (() => void) | undefined

  constructor (url: string, label: string) {
    this.label = label
    this.ended = this.read(url).catch((err: unknown) => { this.error = err }).finally(() => { this.wake?.() })
  }

  private async read (url: string): Promise<void> {
    const res = await fetch(url, { signal: this.controller.signal, headers: { accept: 'text/event-stream' } })
    this.status = res.status
    if (res.body === null) return
    const decoder = new TextDecoder()
    let buf = ''
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true })
      let i: number
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i)
        buf = buf.slice(i + 2)
        let event = 'message'
        const data: string[] = []
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7)
          else if (line.startsWith('data: ')) data.push(line.slice(6))
        }
        if (data.length === 0) continue
        let parsed: unknown = data.join('\n')
        try {
          parsed = JSON.parse(parsed as string)
        } catch {}
        this.events.push({ event, data: parsed })
        if (this.events.length > MAX_STREAM_EVENTS) {
          this.events.shift()
          this.position = Math.max(0, this.position - 1)
        }
        this.wake?.()
      }
    }
  }

  /** Waits for the next event passing `pred` (after those already returned by `next`); rejects after `timeoutMs`. */
  async next (pred: (e: StreamEventMessage) => boolean, what: string = 'an event', timeoutMs: number = 30_000): Promise<StreamEventMessage> {
    const end = Date.now() + timeoutMs
    for (;;) {
      while (this.position < this.events.length) {
        const e = this.events[this.position++]
        if (pred(e)) return e
      }
      const left = end - Date.now()
      if (left <= 0) throw new Error(`${this.label}: no ${what} on the stream within ${timeoutMs} ms (HTTP ${this.status}, ${this.events.length} events${this.error !== undefined ? `, error ${String(this.error)}` : ''})`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this.wake = () => { clearTimeout(timer); resolve() }
      })
      this.wake = undefined
    }
  }

  close (): void {
    this.controller.abort()
  }
}

const live = new Set<ChildProcessWithoutNullStreams>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** A running `edge-mesh analytics` child. Create with {@link AnalyticsProcess.start}. */
export class AnalyticsProcess {
  readonly name: string
  readonly options: AnalyticsProcessOptions
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<Exit>
  /** JSON lines of stdout, in order (the ready line first). */
  readonly events: Array<Record<string, unknown>> = []
  readonly garbage: string[] = []
  peerId = ''
  addrs: string[] = []
  url = ''
  private stderrText = ''
  private partial = ''
  private exit: Exit | undefined
  private onReady: ((ready: AnalyticsReady) => void) | undefined
  private readonly streams = new Set<StreamReader>()

  private constructor (options: AnalyticsProcessOptions) {
    this.name = options.name
    this.options = options
    const env = { ...process.env, ...options.env, ...(options.control === true ? { EDGE_MESH_TEST_CONTROL: '1' } : {}) }
    this.child = spawn(process.execPath, [EDGE_MESH_SCRIPT, ...analyticsArgs(options)], { stdio: ['pipe', 'pipe', 'pipe'], env })
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

  /** Spawns the peer and resolves once it printed its ready line; its stop is registered on `t`. */
  static async start (t: TeardownHost, options: AnalyticsProcessOptions): Promise<AnalyticsProcess> {
    const p = new AnalyticsProcess(options)
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

  get stderr (): string {
    return this.stderrText
  }

  get running (): boolean {
    return this.exit === undefined
  }

  get addr (): string {
    if (this.addrs.length === 0) throw new Error(`${this.label()}: no mesh address in its ready line`)
    return this.addrs[0]
  }

  label (): string {
    return this.peerId === '' ? `analytics ${this.name}` : `analytics ${this.name} (${this.peerId})`
  }

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
        onReady(msg as unknown as AnalyticsReady)
      }
    }
  }

  /** An HTTP request (`path` starts with '/'); any status resolves, a network error or timeout rejects. */
  async request<T = unknown> (method: string, path: string, opts: { body?: unknown, headers?: Record<string, string>, timeoutMs?: number } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...opts.headers }
    let body: string | undefined
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body)
      if (typeof opts.body !== 'string' && !Object.keys(headers).some(h => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
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
      } catch {}
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text }
  }

  async get<T = unknown> (path: string): Promise<Reply<T>> {
    return await this.request<T>('GET', path)
  }

  async post<T = unknown> (path: string, body: unknown): Promise<Reply<T>> {
    return await this.request<T>('POST', path, { body })
  }

  /**
   * The test-only partition control (the process must run with `control: true`): refuses the
   * mesh connections to and from `deny` and closes the open ones; `[]` heals.
   */
  async partition (deny: string[]): Promise<{ deny: string[], closed: number, redialed: number }> {
    const r = await this.post<{ deny: string[], closed: number, redialed: number }>('/_test/partition', { deny })
    if (r.status !== 200) throw new Error(`${this.label()}: POST /_test/partition answered ${r.status}: ${r.text}`)
    return r.body
  }

  /** Opens an SSE stream (closed at stop). */
  stream (path: string = '/v1/stream'): StreamReader {
    const s = new StreamReader(this.url + path, `${this.label()} ${path}`)
    this.streams.add(s)
    return s
  }

  /** SIGTERM, wait; SIGKILL after `timeoutMs`. Resolves with how it exited (`code` 0: a clean shutdown). */
  async stop (timeoutMs: number = this.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS): Promise<Exit> {
    for (const s of this.streams) s.close()
    if (this.exit !== undefined) return this.exit
    this.child.kill('SIGTERM')
    if (await settlesWithin(this.exited, timeoutMs)) return await this.exited
    this.child.kill('SIGKILL')
    await settlesWithin(this.exited, KILL_TIMEOUT_MS)
    return this.exit ?? { code: null, signal: null }
  }

  /** Sends `signal` (SIGKILL by default) and waits (bounded) for the process to be gone. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    for (const s of this.streams) s.close()
    if (this.exit === undefined) this.child.kill(signal)
    const bound = signal === 'SIGKILL' ? KILL_TIMEOUT_MS : DEFAULT_STOP_TIMEOUT_MS
    if (!await settlesWithin(this.exited, bound)) throw new Error(`${this.label()}: still running ${bound} ms after ${signal}${this.diagnostics()}`)
    return await this.exited
  }
}

async function settlesWithin (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, ms) })
  try {
    return await Promise.race([p.then(() => true, () => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}
