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
 * on a free loopback port and the mesh on `/ip4/127.0.0.1/tcp/0` unless told otherwise. Each
 * process is stopped in `t.teardown`. The process plumbing (stderr in failure messages, stop/kill,
 * HTTP requests, the SIGKILL of every child if the test process exits first) is
 * test/helpers/child-peer.ts.
 */
import { EDGE_MESH_SCRIPT, HttpPeer, type Exit, type HttpReadyLine, type HttpReply, type PeerProcessOptions, type TeardownHost } from './child-peer.ts'

export { EDGE_MESH_SCRIPT }
export type { Exit, TeardownHost } from './child-peer.ts'

/** Most events a stream reader keeps (the oldest are dropped). */
const MAX_STREAM_EVENTS = 100_000

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

export interface AnalyticsProcessOptions extends AnalyticsFlags, PeerProcessOptions {
  /** Turn on the test-only partition control (EDGE_MESH_TEST_CONTROL=1). @default false */
  control?: boolean
}

export type AnalyticsReady = HttpReadyLine

/** An HTTP reply: status, headers and the body parsed as JSON when it is JSON. */
export type Reply<T = unknown> = HttpReply<T>

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
    return await this.waitFor(() => {
      while (this.position < this.events.length) {
        const e = this.events[this.position++]
        if (pred(e)) return e
      }
      return undefined
    }, what, timeoutMs)
  }

  /**
   * Waits for an event passing `pred` among all the events the stream has carried, in any order
   * (does not move the position of {@link next}); rejects after `timeoutMs`.
   */
  async find (pred: (e: StreamEventMessage) => boolean, what: string = 'an event', timeoutMs: number = 30_000): Promise<StreamEventMessage> {
    let seen = 0
    return await this.waitFor(() => {
      for (; seen < this.events.length; seen++) if (pred(this.events[seen])) return this.events[seen]
      return undefined
    }, what, timeoutMs)
  }

  /** Calls `take` on every new event batch until it returns an event; rejects after `timeoutMs`. */
  private async waitFor (take: () => StreamEventMessage | undefined, what: string, timeoutMs: number): Promise<StreamEventMessage> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const e = take()
      if (e !== undefined) return e
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

/** A running `edge-mesh analytics` child. Create with {@link AnalyticsProcess.start}. */
export class AnalyticsProcess extends HttpPeer {
  readonly options: AnalyticsProcessOptions
  private readonly streams = new Set<StreamReader>()

  private constructor (options: AnalyticsProcessOptions) {
    super({
      ...options,
      kind: 'analytics',
      argv: [EDGE_MESH_SCRIPT, ...analyticsArgs(options)],
      env: { ...options.env, ...(options.control === true ? { EDGE_MESH_TEST_CONTROL: '1' } : {}) }
    })
    this.options = options
  }

  /** Spawns the peer and resolves once it printed its ready line; its stop is registered on `t`. */
  static async start (t: TeardownHost, options: AnalyticsProcessOptions): Promise<AnalyticsProcess> {
    return await AnalyticsProcess.launch(new AnalyticsProcess(options), t)
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

  /** Closes the streams, then as {@link HttpPeer.stop}: SIGTERM, wait; SIGKILL after `timeoutMs`. */
  override async stop (timeoutMs?: number): Promise<Exit> {
    this.closeStreams()
    return await super.stop(timeoutMs)
  }

  /** Closes the streams, then sends `signal` (SIGKILL by default) and waits (bounded) for the exit. */
  override async kill (signal?: NodeJS.Signals): Promise<Exit> {
    this.closeStreams()
    return await super.kill(signal)
  }

  private closeStreams (): void {
    for (const s of this.streams) s.close()
  }
}
