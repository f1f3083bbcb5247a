/**
 * The analytics peer: a read-only mesh member that follows every region announced in the mesh,
 * records every reading it observes in the analytics store (history, window aggregates, anomaly
 * flags), and serves them over HTTP with a live stream and the dashboard.
 *
 *   gateways ──announce /edge-mesh/1/announce──▶ mesh peer (readOnly, followAnnounced)
 *            ──gossip frames + sync─────────────▶   │ region state 'change' (reason write)
 *                                                   ▼
 *                              observe(): lag sample, store.record(), live 'reading' event
 *                                                   │
 *                                 LevelDB (store) ◀─┘      HTTP: /v1/* , /v1/stream, /, /metrics
 *
 * It never writes region state: the mesh peer is `readOnly` (no writes, no compaction, no
 * tombstones, no announcements, no gossip frames). Its data dir holds the peer key (`peer-key`),
 * the mesh's LevelDB (`db/`, the followed regions' state, so a restart syncs only what changed)
 * and the analytics store (`analytics/`).
 *
 * Start order: store, mesh (regions are followed as announced, and at once those the store has
 * history of), HTTP. Stop order: timers and streams, HTTP, mesh (no more changes), store (what is
 * queued is written).
 */
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { pino, type Logger } from 'pino'
import { isEdgeMeshError, InvalidOptionsError } from '@edge-mesh/errors'
import { wallOf } from '@edge-mesh/hlc'
import { createMeshPeer, type MeshPeer, type MeshPeerInit } from '@edge-mesh/mesh'
import { fromStored } from '@edge-mesh/reading'
import type { Change, Reading, RegionState } from '@edge-mesh/region-state'
import { openAnalyticsStore, type AnalyticsStore, type AnalyticsStoreInit, type Anomaly } from './store.ts'
import { LagWindow, type LagWindowInit } from './lag.ts'
import { LiveStream } from './live-stream.ts'
import { createAnalyticsMetrics, type AnalyticsMetrics, type ObservationStats } from './metrics.ts'
import {
  createAnalyticsHttp, type AnalyticsApi, type AnalyticsHttp, type AnalyticsReadiness, type LatestEntry, type PeersReport, type RegionReport
} from './http.ts'
import { createTestHooks, type AnalyticsTestHooksInit } from './test-hooks.ts'
import { ANALYTICS_DEFAULTS } from './config.ts'

/** The directory of the dashboard's static files. */
export const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url))

export interface AnalyticsPeerInit {
  /** Data directory: peer key, the mesh's LevelDB (`db/`) and the analytics store (`analytics/`). */
  dataDir: string
  /** Peers to keep connected (multiaddrs with /p2p/<id>): gateways of the mesh. @default [] */
  bootstrap?: string[]
  /** libp2p listen multiaddrs. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** Private network key (swarm.key file bytes). */
  psk?: Uint8Array
  /** Read the private network key from this file (when `psk` is not given). */
  pskFile?: string
  /** HTTP listen address; port 0 picks a free one. @default 127.0.0.1:8090 */
  http?: { host: string, port: number }
  /** History, windows and anomalies older than this are deleted, ms. @default 7 days */
  retentionMs?: number
  /** Anomaly z-score threshold. @default 3.5 */
  anomalyThreshold?: number
  /**
   * Writer authorization, as the gateways have it: per region, the peer ids allowed to write it.
   * Readings of other writers are refused before they are observed. @default none (any writer)
   */
  writers?: Record<string, string[]>
  /** Anti-entropy period of the mesh, ms (0 disables). @default the mesh's (10000) */
  syncIntervalMs?: number
  /** Most regions followed. @default 64 */
  maxFollowedRegions?: number
  /** The recent window the lag quantiles cover. @default 2048 samples per region, 60 s */
  lag?: LagWindowInit
  /** Period of the stream's `regions` event, ms. @default 1000 */
  summaryIntervalMs?: number
  /** SSE heartbeat period, ms. @default 15000 */
  sseHeartbeatMs?: number
  /** A stream client with more unsent bytes is dropped. @default 1 MiB */
  sseMaxBufferedBytes?: number
  /** Directory served at `/`. @default the package's `public/` */
  publicDir?: string
  /** pino logger; components log as children (`component: 'analytics:http'`, ...). @default pino at info on stderr */
  logger?: Logger
  /** Further store options (tests, tuning). */
  store?: Partial<Omit<AnalyticsStoreInit, 'path'>>
  /** Further mesh options (tests, tuning). */
  mesh?: Partial<Omit<MeshPeerInit, 'regions' | 'dataDir' | 'readOnly' | 'listen' | 'bootstrap' | 'psk' | 'logger' | 'onRegion' | 'followAnnounced'>>
  /** TEST-ONLY hooks (partition control), see `test-hooks.ts`. @default none */
  testHooks?: AnalyticsTestHooksInit
}

/** A running analytics peer. */
export interface AnalyticsPeer {
  readonly peerId: string
  readonly mesh: MeshPeer
  readonly store: AnalyticsStore
  readonly http: AnalyticsHttp
  readonly metrics: AnalyticsMetrics
  readonly live: LiveStream
  /** `http://host:port` the API listens on. */
  readonly url: string
  addrs: () => string[]
  regions: () => RegionReport[]
  latest: AnalyticsApi['latest']
  peers: () => PeersReport
  readiness: () => AnalyticsReadiness
  observations: () => ObservationStats
  /** Stops in order: streams, HTTP, the mesh, then the store (everything observed is written). */
  close: () => Promise<void>
}

/** What the peer keeps per region besides the store. */
interface RegionInfo {
  /** Wall time of the newest reading observed, ms (0: none). */
  lastAt: number
  observed: number
}

/** `http://host:port` (IPv6 hosts in brackets). */
export function httpUrl (host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** Absolute paths of the uPlot files served under /vendor/ (those that resolve). */
function vendorFiles (log: Logger): Map<string, string> {
  const out = new Map<string, string>()
  const resolveModule = createRequire(import.meta.url).resolve
  for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) {
    try {
      out.set(name, resolveModule(`uplot/dist/${name}`))
    } catch (err) {
      log.warn({ file: name, err: String(err) }, 'analytics: uPlot file not found; /vendor/ will answer 404 for it')
    }
  }
  return out
}

/** Least time between two warnings about readings the store refused, ms. */
const WARN_EVERY_MS = 10_000

/** Starts an analytics peer. On failure, whatever was started is stopped again. */
export async function createAnalyticsPeer (init: AnalyticsPeerInit): Promise<AnalyticsPeer> {
  if (typeof init.dataDir !== 'string' || init.dataDir === '') throw new InvalidOptionsError('dataDir is required: the analytics peer keeps its history on disk', { option: 'dataDir' })
  const threshold = init.anomalyThreshold ?? init.store?.anomaly?.threshold ?? ANALYTICS_DEFAULTS.anomalyThreshold
  const logger = init.logger ?? pino({ level: 'info' }, pino.destination(2))
  const log = logger.child({ component: 'analytics' })
  const psk = init.psk ?? (init.pskFile !== undefined ? new Uint8Array(await readFile(init.pskFile)) : undefined)
  const bootstrap = init.bootstrap ?? []
  const metrics = createAnalyticsMetrics()
  const lag = new LagWindow(init.lag)
  const live = new LiveStream({
    maxBufferedBytes: init.sseMaxBufferedBytes,
    heartbeatMs: init.sseHeartbeatMs,
    onDrop: info => { log.warn(info, 'analytics:stream dropping a client that fell behind') }
  })
  const testHooks = init.testHooks !== undefined ? createTestHooks(init.testHooks, log) : undefined

  const store = await openAnalyticsStore({
    maxBatchReadings: ANALYTICS_DEFAULTS.storeMaxBatchReadings,
    ...init.store,
    path: join(init.dataDir, 'analytics'),
    retentionMs: init.retentionMs ?? init.store?.retentionMs ?? ANALYTICS_DEFAULTS.retentionMs,
    anomaly: { ...init.store?.anomaly, threshold },
    // Each anomaly goes on the live stream once its batch is written, as the store flags it.
    onAnomalies: anomalies => {
      init.store?.onAnomalies?.(anomalies)
      if (!live.wants('anomaly')) return
      for (const a of anomalies) live.publish('anomaly', () => a, a.region, a.sensor)
    }
  })
  const cleanups: Array<() => Promise<void>> = [async () => { await store.close() }]
  const undo = async (): Promise<void> => {
    for (const f of cleanups.reverse()) await f().catch(() => {})
  }

  // ---------------------------------------------------------------- observing readings

  const followed = new Map<string, RegionState>()
  const infos = new Map<string, RegionInfo>()
  const counts = { observed: 0, overloaded: 0, refused: 0 }
  let lastWarnAt = -Infinity

  const readingEvent = (region: string, r: Reading, at: number): object => {
    const v = fromStored(r.value)
    const out: Record<string, unknown> = { region, sensor: r.sensor, value: v.value }
    if (v.unit !== undefined) out.unit = v.unit
    if (v.ts !== undefined) out.ts = v.ts
    out.t = r.t
    out.at = at
    out.writer = r.writer
    return out
  }

  const observe = (region: string, info: RegionInfo, c: Change): void => {
    const r = c.new
    if (c.reason !== 'write' || r === undefined) return
    const now = Date.now()
    const at = wallOf(r.t)
    counts.observed++
    info.observed++
    if (at > info.lastAt) info.lastAt = at
    lag.add(region, now, now - at)
    metrics.observeLag(now - at)
    try {
      store.record(region, r)
    } catch (err) {
      if (isEdgeMeshError(err, 'EM_ERR_OVERLOADED')) counts.overloaded++
      else counts.refused++
      if (now - lastWarnAt >= WARN_EVERY_MS) {
        lastWarnAt = now
        log.warn({ region, sensor: r.sensor, code: (err as { code?: string }).code, err: String(err), overloaded: counts.overloaded, refused: counts.refused },
          'analytics: the store refused an observed reading (counted in edge_mesh_analytics_readings_dropped_total)')
      }
    }
    if (live.size > 0) live.publish('reading', () => readingEvent(region, r, at), region, r.sensor)
  }

  const onRegion = (name: string, state: RegionState): void => {
    if (followed.has(name)) return
    followed.set(name, state)
    let info = infos.get(name)
    if (info === undefined) infos.set(name, info = { lastAt: 0, observed: 0 })
    const i = info
    state.on('change', c => { observe(name, i, c) })
    log.info({ region: name }, 'analytics: following a region')
  }

  // ---------------------------------------------------------------- the mesh

  let mesh: MeshPeer
  try {
    mesh = await createMeshPeer({
      ...init.mesh,
      ...testHooks?.meshInit(),
      regions: [],
      readOnly: true,
      followAnnounced: true,
      maxFollowedRegions: init.maxFollowedRegions ?? init.mesh?.maxFollowedRegions ?? ANALYTICS_DEFAULTS.maxFollowedRegions,
      dataDir: init.dataDir,
      listen: init.listen ?? [...ANALYTICS_DEFAULTS.listen],
      bootstrap,
      psk,
      onRegion,
      ...(init.syncIntervalMs !== undefined ? { syncIntervalMs: init.syncIntervalMs } : {}),
      ...(init.writers !== undefined ? { writers: init.writers } : {}),
      logger: logger.child({ component: 'mesh' })
    })
  } catch (err) {
    await undo()
    throw err
  }
  cleanups.push(async () => { await mesh.stop() })

  try {
    // Regions with history are followed at once (announcements may take a few seconds).
    for (const r of store.regions()) {
      mesh.follow(r.region).catch((err: unknown) => { log.warn({ region: r.region, err: String(err) }, 'analytics: could not follow a recorded region') })
    }

    // -------------------------------------------------------------- what the API reads

    const regions = (): RegionReport[] => {
      const now = Date.now()
      const recorded = new Map(store.regions().map(r => [r.region, r]))
      const announced = mesh.announcedRegions()
      const names = new Set<string>([...followed.keys(), ...recorded.keys(), ...announced.keys()])
      return [...names].sort().map(region => {
        const st = recorded.get(region)
        const state = followed.get(region)
        const info = infos.get(region)
        const lastAt = Math.max(info?.lastAt ?? 0, st?.lastAt ?? 0)
        const l = lag.summary(region, now)
        return {
          region,
          following: state !== undefined,
          sensors: state !== undefined ? state.size : st?.sensors ?? 0,
          recordedSensors: st?.sensors ?? 0,
          lastAt: lastAt > 0 ? lastAt : null,
          newestAgeMs: lastAt > 0 ? Math.max(0, now - lastAt) : null,
          lastRecordedAt: st?.lastRecordedAt ?? null,
          observed: info?.observed ?? 0,
          lagP50Ms: l.p50Ms,
          lagP99Ms: l.p99Ms,
          lagMaxMs: l.maxMs,
          lagSamples: l.samples,
          lagWindowMs: lag.windowMs,
          announcedBy: announced.get(region) ?? []
        }
      })
    }

    const latest: AnalyticsApi['latest'] = (region, prefix, limit) => {
      const state = followed.get(region)
      if (state === undefined) return undefined
      const all = [...state.entries(prefix)].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
      const sensors: LatestEntry[] = []
      for (const [sensor, view] of all.slice(0, limit)) {
        const v = fromStored(view.value)
        const e: LatestEntry = { sensor, value: v.value, t: view.t, at: wallOf(view.t), writer: view.writer, ageMs: view.ageMs }
        if (v.unit !== undefined) e.unit = v.unit
        if (v.ts !== undefined) e.ts = v.ts
        sensors.push(e)
      }
      return { sensors, truncated: all.length > limit }
    }

    const peers = (): PeersReport => ({
      peerId: mesh.peerId,
      addrs: mesh.addrs(),
      peers: mesh.connectedPeers().sort(),
      announced: Object.fromEntries([...mesh.announcedRegions()].sort((a, b) => a[0] < b[0] ? -1 : 1)),
      following: [...followed.keys()].sort()
    })

    const readiness = (): AnalyticsReadiness => {
      const s = mesh.stats()
      const storage = store.status()
      const meshStatus = mesh.node.status
      return { ready: storage === 'open' && meshStatus === 'started', storage, mesh: meshStatus, peers: s.peers, regions: followed.size, lastSyncAt: s.lastSyncAt ?? null }
    }

    const api: AnalyticsApi = {
      store,
      regions,
      knows: region => followed.has(region) || store.regions().some(r => r.region === region) || mesh.announcedRegions().has(region),
      latest,
      peers,
      readiness
    }

    // -------------------------------------------------------------- HTTP

    const http = createAnalyticsHttp({
      logger: logger.child({ component: 'analytics:http' }),
      api,
      live,
      metrics,
      publicDir: init.publicDir ?? PUBLIC_DIR,
      vendor: vendorFiles(log)
    })
    cleanups.push(async () => { await http.app.close() })
    testHooks?.register(http.app, () => mesh, bootstrap)
    const where = init.http ?? ANALYTICS_DEFAULTS.http
    await http.app.listen({ host: where.host, port: where.port })
    const address = http.app.server.address()
    const url = httpUrl(where.host, typeof address === 'object' && address !== null ? address.port : where.port)

    const observations = (): ObservationStats => ({ ...counts, regions: followed.size })
    metrics.sources = {
      observations,
      store: () => store.stats(),
      mesh: () => mesh.stats(),
      stream: () => live.stats(),
      http: () => http.stats()
    }

    // -------------------------------------------------------------- the stream's periodic events

    const summaryTimer = setInterval(() => {
      if (live.wants('regions')) live.publish('regions', () => ({ at: Date.now(), regions: regions() }))
    }, init.summaryIntervalMs ?? ANALYTICS_DEFAULTS.summaryIntervalMs)
    summaryTimer.unref()


    let closing: Promise<void> | undefined
    const close = async (): Promise<void> => {
      closing ??= (async () => {
        log.info({ peerId: mesh.peerId }, 'analytics: stopping')
        clearInterval(summaryTimer)
        live.closeAll()
        await http.app.close().catch((err: unknown) => { log.warn({ err: String(err) }, 'analytics:http close failed') })
        await mesh.stop()
        await store.close()
        log.info({ peerId: mesh.peerId, ...counts }, 'analytics: stopped')
      })()
      await closing
    }

    log.info({ peerId: mesh.peerId, addrs: mesh.addrs(), http: url, bootstrap, retentionMs: store.retentionMs, anomalyThreshold: threshold }, 'analytics: started')
    return {
      peerId: mesh.peerId,
      mesh,
      store,
      http,
      metrics,
      live,
      url,
      addrs: () => mesh.addrs(),
      regions,
      latest,
      peers,
      readiness,
      observations,
      close
    }
  } catch (err) {
    await undo()
    throw err
  }
}
