/**
 * A read-only view of one region doc, synced from a gateway's app endpoint with y-websocket.
 *
 *   gateway ──y-websocket──▶ WebsocketProvider ──▶ Y.Doc ──'update'──▶ read-only RegionState ──▶ latest(), 'change'
 *
 * The provider keeps a plain Y.Doc in sync (and reconnects, with backoff, by itself); every update
 * of that doc is applied to a read-only RegionState, which checks it in full and computes the
 * view (greatest `(t, writer)` per sensor). An update the replica refuses is counted and reported
 * through `onError`, never thrown. Values are decoded with `fromStored` (`@edge-mesh/reading`).
 *
 * The replica's clock does not police drift: a view shows what its gateway accepted, whatever the
 * app's own clock says (the gateway enforced the drift bound when the readings entered the mesh).
 * Ages (`ageMs`, `freshness`) are measured on the app's clock, so they are only as right as it is.
 */
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { ClosedError, EdgeMeshError, InvalidOptionsError } from '@edge-mesh/errors'
import { fromStored, type JsonValue } from '@edge-mesh/reading'
import { createRegionState, type Change, type RegionState, type RegionStateInit } from '@edge-mesh/region-state'

export type ViewStatus = 'connecting' | 'connected' | 'disconnected'

/** A WebSocket class: the browser's or Node's global one, or `ws`'s. */
export type WebSocketClass = new (url: string, protocols?: string | string[]) => object

export interface ConnectRegionInit {
  /** The gateway's app endpoint, e.g. 'ws://127.0.0.1:8080/v1/docs'; the view connects to `${url}/${region}`. */
  url: string
  region: string
  /** @default globalThis.WebSocket (pass `ws`'s WebSocket in Node without one) */
  WebSocket?: WebSocketClass
  /** The app's clock for ages, ms. @default Date.now */
  now?: () => number
  /**
   * Readings whose HLC time is older than `now() - retentionMs` leave the view (a 'change' with
   * no reading); use the gateway's retention.
   * @default Infinity
   */
  retentionMs?: number
  /** `synced` rejects with EM_ERR_UNAVAILABLE if the first sync has not completed by then, ms. @default 30_000 */
  syncTimeoutMs?: number
  /** Longest wait between reconnect attempts, ms (the provider backs off exponentially from 200 ms). @default 2500 */
  maxBackoffMs?: number
  /** Called with updates the view refused and errors thrown by 'change' listeners. @default none */
  onError?: (err: unknown) => void
}

/** The live reading of a sensor, decoded. */
export interface LatestReading {
  readonly sensor: string
  readonly value: JsonValue
  readonly unit?: string
  /** The device's timestamp, ms since the epoch, if it sent one. */
  readonly ts?: number
  /** HLC timestamp the gateway assigned. */
  readonly t: string
  /** Peer id of the gateway that wrote it. */
  readonly writer: string
  /** Milliseconds since the reading's HLC time, on the app's clock (0 if it lies in the future). */
  readonly ageMs: number
}

export interface Freshness {
  readonly ageMs: number
  /** `ageMs <= maxAgeMs`. */
  readonly fresh: boolean
}

export interface ViewChange {
  readonly sensor: string
  /** The new live reading, or undefined when the sensor was deleted or its reading expired. */
  readonly reading: LatestReading | undefined
  /** Always false: a view never writes. */
  readonly local: false
}

export interface RegionViewEvents {
  change: (change: ViewChange) => void
  status: (status: ViewStatus) => void
}

export interface RegionViewStats {
  /** Live sensors in the view. */
  sensors: number
  /** Updates the view refused (see `onError`). */
  invalidUpdates: number
  /** Connections opened, the first one included. */
  connects: number
}

export interface RegionView {
  readonly region: string
  /** Resolves once the first sync with the gateway is done. */
  readonly synced: Promise<void>
  readonly status: ViewStatus
  latest: (sensor: string) => LatestReading | undefined
  freshness: (sensor: string, maxAgeMs: number) => Freshness | undefined
  /** Live sensor ids starting with `prefix`, sorted. */
  sensors: (prefix?: string) => string[]
  /** Age of the newest live reading in the region, ms; undefined if there is none. */
  newestAgeMs: () => number | undefined
  on: <E extends keyof RegionViewEvents>(event: E, listener: RegionViewEvents[E]) => void
  off: <E extends keyof RegionViewEvents>(event: E, listener: RegionViewEvents[E]) => void
  stats: () => RegionViewStats
  /** Disconnects and frees the view; resolves once the socket has closed (at most ~2 s). Reads keep answering from the last state. */
  close: () => Promise<void>
}

type Clock = NonNullable<RegionStateInit['hlc']>

/**
 * The clock of a view's replica: it never issues timestamps (the replica is read-only) and never
 * refuses one for drift; it only remembers the greatest one seen.
 */
function viewerClock (): Clock {
  let last = '0000000000000000'
  const seen = (t: string): string => {
    if (t > last) last = t
    return last
  }
  return {
    maxDriftMs: Infinity,
    now: () => { throw new EdgeMeshError('EM_ERR_READ_ONLY', 'a region view never issues timestamps') },
    receive: seen,
    checkDrift: () => {},
    restore: t => { seen(t) },
    last: () => last
  }
}

const CLOSE_WAIT_MS = 2000

function checkUrl (url: unknown): string {
  let parsed: URL
  try {
    parsed = new URL(url as string)
  } catch {
    throw new InvalidOptionsError('url must be an absolute ws:// or wss:// URL', { url })
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol)) {
    throw new InvalidOptionsError('url must be an absolute ws:// or wss:// URL', { url })
  }
  return url as string
}

class View implements RegionView {
  readonly region: string
  readonly synced: Promise<void>
  private readonly url: string
  private readonly replica: RegionState
  private readonly doc: Y.Doc
  private readonly provider: WebsocketProvider
  private readonly onError: (err: unknown) => void
  private readonly listeners: { [E in keyof RegionViewEvents]: Set<RegionViewEvents[E]> } = { change: new Set(), status: new Set() }
  private invalidUpdates = 0
  private connects = 0
  private lastStatus: ViewStatus = 'connecting'
  private newest: { sensor: string, t: string } | undefined
  /** The newest reading left the view: find it again on the next newestAgeMs(). */
  private newestStale = false
  private syncTimer: ReturnType<typeof setTimeout> | undefined
  private settleSynced: ((err?: Error) => void) | undefined
  private closing: Promise<void> | undefined

  constructor (init: ConnectRegionInit) {
    this.url = checkUrl(init.url)
    const WS = init.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket
    if (typeof WS !== 'function') throw new InvalidOptionsError('no WebSocket class: pass one (e.g. ws\'s) as `WebSocket`')
    const syncTimeoutMs = init.syncTimeoutMs ?? 30_000
    const maxBackoffMs = init.maxBackoffMs ?? 2500
    for (const [k, v] of Object.entries({ syncTimeoutMs, maxBackoffMs })) {
      if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) throw new InvalidOptionsError(`${k} must be a positive number`, { [k]: v })
    }
    const userOnError = init.onError
    this.onError = err => {
      try {
        userOnError?.(err)
      } catch {}
    }
    // Throws InvalidOptionsError for a bad region name or retentionMs, before anything connects.
    this.replica = createRegionState({
      region: init.region,
      readOnly: true,
      hlc: viewerClock(),
      now: init.now,
      retentionMs: init.retentionMs,
      maintenanceIntervalMs: init.retentionMs === undefined ? 0 : 1000
    })
    this.region = init.region
    this.replica.on('change', c => { this.onChange(c) })
    this.doc = new Y.Doc()
    this.doc.on('update', (update: Uint8Array) => { this.onDocUpdate(update) })

    this.synced = new Promise<void>((resolve, reject) => {
      this.settleSynced = err => {
        this.settleSynced = undefined
        clearTimeout(this.syncTimer)
        if (err === undefined) resolve()
        else reject(err)
      }
    })
    // Nobody has to await `synced`: a rejection nobody handles must not crash the app.
    this.synced.catch(() => {})
    this.syncTimer = setTimeout(() => {
      this.settleSynced?.(new EdgeMeshError('EM_ERR_UNAVAILABLE', `region ${this.region} did not sync from ${this.url} within ${syncTimeoutMs} ms`,
        { region: this.region, url: this.url, timeoutMs: syncTimeoutMs }))
    }, syncTimeoutMs)

    this.provider = new WebsocketProvider(this.url, this.region, this.doc, {
      WebSocketPolyfill: WS as unknown as typeof globalThis.WebSocket,
      connect: false,
      disableBc: true,
      maxBackoffTime: maxBackoffMs
    })
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') this.connects++
      this.emit('status', status)
    })
    this.provider.on('sync', (isSynced: boolean) => { if (isSynced) this.settleSynced?.() })
    this.provider.connect()
  }

  get status (): ViewStatus {
    if (this.closing !== undefined) return 'disconnected'
    return this.provider.wsconnected ? 'connected' : this.provider.wsconnecting ? 'connecting' : 'disconnected'
  }

  latest (sensor: string): LatestReading | undefined {
    const rv = this.replica.get(sensor)
    if (rv === undefined) return undefined
    const r = fromStored(rv.value)
    return {
      sensor,
      value: r.value,
      ...(r.unit !== undefined ? { unit: r.unit } : {}),
      ...(r.ts !== undefined ? { ts: r.ts } : {}),
      t: rv.t,
      writer: rv.writer,
      ageMs: rv.ageMs
    }
  }

  freshness (sensor: string, maxAgeMs: number): Freshness | undefined {
    if (typeof maxAgeMs !== 'number' || !(maxAgeMs >= 0)) throw new InvalidOptionsError('maxAgeMs must be a non-negative number', { maxAgeMs })
    const ageMs = this.replica.get(sensor)?.ageMs
    return ageMs === undefined ? undefined : { ageMs, fresh: ageMs <= maxAgeMs }
  }

  sensors (prefix: string = ''): string[] {
    return this.replica.list(prefix)
  }

  newestAgeMs (): number | undefined {
    if (!this.newestStale && this.newest !== undefined) {
      const age = this.replica.get(this.newest.sensor)?.ageMs
      if (age !== undefined) return age
    }
    // The newest reading was deleted or expired: scan for the next one.
    this.newest = undefined
    this.newestStale = false
    let best: { sensor: string, t: string, ageMs: number } | undefined
    for (const [sensor, rv] of this.replica.entries()) {
      if (best === undefined || rv.t > best.t) best = { sensor, t: rv.t, ageMs: rv.ageMs }
    }
    if (best === undefined) return undefined
    this.newest = { sensor: best.sensor, t: best.t }
    return best.ageMs
  }

  on<E extends keyof RegionViewEvents> (event: E, listener: RegionViewEvents[E]): void {
    (this.listeners[event] as Set<RegionViewEvents[E]>).add(listener)
  }

  off<E extends keyof RegionViewEvents> (event: E, listener: RegionViewEvents[E]): void {
    (this.listeners[event] as Set<RegionViewEvents[E]>).delete(listener)
  }

  stats (): RegionViewStats {
    return { sensors: this.replica.size, invalidUpdates: this.invalidUpdates, connects: this.connects }
  }

  close (): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    this.settleSynced?.(new ClosedError(`the view of region ${this.region}`, { region: this.region }))
    const ws = this.provider.ws
    this.provider.destroy()
    if (this.lastStatus !== 'disconnected') this.emit('status', 'disconnected')
    this.listeners.change.clear()
    this.listeners.status.clear()
    // Destroys the provider's Awareness (and its timer) too.
    this.doc.destroy()
    this.replica.close()
    if (ws === null || ws.readyState === 3) return
    let timer: ReturnType<typeof setTimeout> | undefined
    await new Promise<void>(resolve => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS)
      ws.addEventListener('close', () => { resolve() }, { once: true })
    })
    clearTimeout(timer)
  }

  private onDocUpdate (update: Uint8Array): void {
    try {
      this.replica.applyUpdate(update)
    } catch (err) {
      this.invalidUpdates++
      this.onError(err)
    }
  }

  private onChange (c: Change): void {
    if (c.new !== undefined) {
      if (!this.newestStale && (this.newest === undefined || c.new.t > this.newest.t)) this.newest = { sensor: c.sensor, t: c.new.t }
    } else if (this.newest?.sensor === c.sensor) {
      this.newestStale = true
    }
    if (this.listeners.change.size === 0) return
    const change: ViewChange = { sensor: c.sensor, reading: c.new === undefined ? undefined : this.latest(c.sensor), local: false }
    for (const f of this.listeners.change) {
      try {
        f(change)
      } catch (err) {
        this.onError(err)
      }
    }
  }

  private emit (event: 'status', status: ViewStatus): void {
    this.lastStatus = status
    for (const f of this.listeners[event]) {
      try {
        f(status)
      } catch (err) {
        this.onError(err)
      }
    }
  }
}

/**
 * Connects a read-only view of `init.region` to a gateway's app endpoint (see the module doc).
 * Throws EM_ERR_INVALID_OPTIONS for a bad URL, region name or option.
 *
 * @example
 * ```ts
 * const view = connectRegion({ url: 'ws://127.0.0.1:8080/v1/docs', region: 'eu-west' })
 * await view.synced
 * view.latest('line-3/temp')     // { sensor, value: 21.5, unit: 'C', t, writer, ageMs }
 * view.on('change', c => console.log(c.sensor, c.reading?.value))
 * await view.close()
 * ```
 */
export function connectRegion (init: ConnectRegionInit): RegionView {
  return new View(init)
}
