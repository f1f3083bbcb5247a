/**
 * The live stream of the analytics peer (`GET /v1/stream`, Server-Sent Events), for the dashboard:
 *
 *   event: reading   data: {"region","sensor","value","unit"?,"ts"?,"t","at","writer"}
 *   event: anomaly   data: {"region","sensor","at","t","writer","value","mean","std","z"}
 *   event: regions   data: {"at","regions":[…]}   (the rows of GET /v1/regions, every second)
 *   : heartbeat      (a comment, every `heartbeatMs`)
 *
 * A client may narrow what it gets with `region`, `prefix` (sensor id prefix) and `events` (a
 * subset of reading, anomaly, regions). Each event is encoded once, whatever the number of
 * clients. Frames are gathered per client and written once per turn of the event loop (so 10k
 * readings/s do not cost 10k socket writes per client). Each client's backlog is bounded: a client
 * whose unsent bytes (its socket buffer plus the frames gathered) would exceed `maxBufferedBytes`
 * is dropped, its stream ended; EventSource reconnects by itself and the dashboard re-reads.
 */
import type { ServerResponse } from 'node:http'

export const STREAM_EVENTS = ['reading', 'anomaly', 'regions'] as const
export type StreamEvent = typeof STREAM_EVENTS[number]

export interface LiveStreamInit {
  /** A client with more unsent bytes than this is dropped. @default 1 MiB */
  maxBufferedBytes?: number
  /** Period of the heartbeat comment, ms. @default 15000 */
  heartbeatMs?: number
  /** Called once per dropped client. */
  onDrop?: (info: { buffered: number }) => void
}

export interface LiveClientFilter {
  /** Only readings and anomalies of this region. */
  region?: string
  /** Only readings and anomalies of sensors whose id starts with this. @default '' */
  prefix?: string
  /** The event types sent. @default all */
  events?: ReadonlySet<StreamEvent>
}

export interface LiveStreamStats {
  clients: number
  /** Events written (one per event and client). */
  events: number
  /** Clients dropped for falling behind. */
  dropped: number
}

interface Client {
  res: ServerResponse
  region: string | undefined
  prefix: string
  events: ReadonlySet<StreamEvent>
  /** Frames gathered since the last write. */
  pending: string[]
  pendingBytes: number
}

const ALL_EVENTS: ReadonlySet<StreamEvent> = new Set(STREAM_EVENTS)

/** The SSE clients and what is sent to them. */
export class LiveStream {
  private readonly clients = new Set<Client>()
  private readonly dirty = new Set<Client>()
  private readonly maxBuffered: number
  private readonly heartbeatMs: number
  private readonly onDrop: ((info: { buffered: number }) => void) | undefined
  private heartbeat: ReturnType<typeof setInterval> | undefined
  private flushing: ReturnType<typeof setImmediate> | undefined
  private events = 0
  private dropped = 0
  private closed = false

  constructor (init: LiveStreamInit = {}) {
    this.maxBuffered = init.maxBufferedBytes ?? 1024 * 1024
    this.heartbeatMs = init.heartbeatMs ?? 15_000
    this.onDrop = init.onDrop
  }

  /** Clients connected now. */
  get size (): number {
    return this.clients.size
  }

  /** Starts streaming to `res` (its headers are written here). Ends at once if the stream is closed. */
  add (res: ServerResponse, filter: LiveClientFilter = {}): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    if (this.closed) {
      res.end()
      return
    }
    res.write(': edge-mesh analytics stream\nretry: 2000\n\n')
    const client: Client = {
      res,
      region: filter.region,
      prefix: filter.prefix ?? '',
      events: filter.events ?? ALL_EVENTS,
      pending: [],
      pendingBytes: 0
    }
    this.clients.add(client)
    res.once('close', () => { this.remove(client) })
    if (this.heartbeat === undefined) {
      this.heartbeat = setInterval(() => { this.beat() }, this.heartbeatMs)
      this.heartbeat.unref()
    }
  }

  private remove (client: Client): void {
    if (!this.clients.delete(client)) return
    this.dirty.delete(client)
    if (this.clients.size === 0 && this.heartbeat !== undefined) {
      clearInterval(this.heartbeat)
      this.heartbeat = undefined
    }
  }

  /** True if some client takes events of type `type` (for this region and sensor, when given). */
  wants (type: StreamEvent, region?: string, sensor?: string): boolean {
    for (const c of this.clients) if (matches(c, type, region, sensor)) return true
    return false
  }

  /** Sends an event to the clients whose filter it passes; `data` is encoded at most once. */
  publish (type: StreamEvent, data: () => object, region?: string, sensor?: string): void {
    let frame: string | undefined
    for (const c of this.clients) {
      if (!matches(c, type, region, sensor)) continue
      frame ??= `event: ${type}\ndata: ${JSON.stringify(data())}\n\n`
      if (this.enqueue(c, frame)) this.events++
    }
  }

  private enqueue (c: Client, frame: string): boolean {
    if (c.res.destroyed) return false
    const buffered = c.res.writableLength + c.pendingBytes + frame.length
    if (buffered > this.maxBuffered) {
      this.drop(c, buffered)
      return false
    }
    c.pending.push(frame)
    c.pendingBytes += frame.length
    this.dirty.add(c)
    this.flushing ??= setImmediate(() => { this.flush() })
    return true
  }

  private drop (c: Client, buffered: number): void {
    this.dropped++
    this.remove(c)
    c.pending = []
    c.pendingBytes = 0
    c.res.destroy()
    this.onDrop?.({ buffered })
  }

  private flush (): void {
    this.flushing = undefined
    for (const c of this.dirty) {
      if (!c.res.destroyed && c.pending.length > 0) c.res.write(c.pending.length === 1 ? c.pending[0] : c.pending.join(''))
      c.pending = []
      c.pendingBytes = 0
    }
    this.dirty.clear()
  }

  private beat (): void {
    for (const c of this.clients) if (!c.res.destroyed) this.enqueue(c, ': heartbeat\n\n')
  }

  stats (): LiveStreamStats {
    return { clients: this.clients.size, events: this.events, dropped: this.dropped }
  }

  /** Writes what is gathered and ends every stream; later clients are ended at once. */
  closeAll (): void {
    this.closed = true
    if (this.flushing !== undefined) clearImmediate(this.flushing)
    this.flush()
    for (const c of [...this.clients]) {
      this.remove(c)
      c.res.end()
    }
  }
}

function matches (c: Client, type: StreamEvent, region: string | undefined, sensor: string | undefined): boolean {
  if (!c.events.has(type)) return false
  if (type === 'regions') return true
  if (c.region !== undefined && region !== c.region) return false
  return c.prefix === '' || (sensor !== undefined && sensor.startsWith(c.prefix))
}
