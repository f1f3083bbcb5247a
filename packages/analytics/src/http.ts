/**
 * The analytics peer's HTTP API (fastify 5): regions with freshness and replication lag, history,
 * window aggregates, anomalies, the current values of the analytics replica, peers, the live
 * stream (SSE), health, readiness, metrics, and the dashboard's static files.
 *
 * Every error reply is JSON `{ error, code, details? }` with the status of its code
 * (`httpStatusFor` of @edge-mesh/errors), built by the error handler the gateway uses too
 * (`installErrorReplies` of @edge-mesh/service).
 * Query parameters are checked here (unknown or repeated ones, numbers, times) and by the store
 * (region names, sensor ids, ranges, limits): any bad one is a 400 `EM_ERR_INVALID_OPTIONS` naming
 * it. A valid region name that the peer neither follows nor has history of is a 404.
 */
import { readFile, stat } from 'node:fs/promises'
import { extname, join, resolve, sep } from 'node:path'
import { LogController, fastify, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import { EdgeMeshError } from '@edge-mesh/errors'
import { installErrorReplies, registerOperationRoutes } from '@edge-mesh/service'
import { isValidRegionName } from '@edge-mesh/region-state'
import type { AnalyticsStore } from './store.ts'
import { STREAM_EVENTS, type LiveStream, type StreamEvent } from './live-stream.ts'

/** One row of GET /v1/regions (and of the stream's `regions` event). */
export interface RegionReport {
  region: string
  /** The peer holds the region (follows it). */
  following: boolean
  /** Live sensors in the analytics replica (or, for a region not followed, sensors with history). */
  sensors: number
  /** Sensors with history within the retention horizon. */
  recordedSensors: number
  /** Wall time of the newest reading observed or recorded (ms), null before any. */
  lastAt: number | null
  /** Freshness: now minus `lastAt`, ms; null before any reading. */
  newestAgeMs: number | null
  /** When the store last wrote a reading of the region (ms), null before any. */
  lastRecordedAt: number | null
  /** Readings of the region observed since the peer started. */
  observed: number
  /** Replication lag seen by this peer over the recent window (`lagWindowMs`, at most `lagSamples` readings): observed at minus the HLC wall time. Null without samples. */
  lagP50Ms: number | null
  lagP99Ms: number | null
  lagMaxMs: number | null
  lagSamples: number
  lagWindowMs: number
  /** Peers that announced the region (bounded). */
  announcedBy: string[]
}

/** One sensor of GET /v1/latest: the analytics replica's current value. */
export interface LatestEntry {
  sensor: string
  value: unknown
  unit?: string
  ts?: number
  t: string
  /** Wall time of `t`, ms. */
  at: number
  writer: string
  ageMs: number
}

export interface PeersReport {
  peerId: string
  addrs: string[]
  /** Connected peers. */
  peers: string[]
  /** Regions announced by other peers, with the peers that announced each. */
  announced: Record<string, string[]>
  /** Regions held. */
  following: string[]
}

export interface AnalyticsReadiness {
  ready: boolean
  /** The store's status: open, closing, closed or failed. */
  storage: string
  /** libp2p's status. */
  mesh: string
  peers: number
  regions: number
  lastSyncAt: number | null
}

/** What the HTTP API reads from the peer. */
export interface AnalyticsApi {
  readonly store: AnalyticsStore
  regions: () => RegionReport[]
  /** True for a region followed, recorded or announced. */
  knows: (region: string) => boolean
  /** The replica's live sensors of a followed region (undefined if not followed), sorted by id, at most `limit`. */
  latest: (region: string, prefix: string, limit: number) => { sensors: LatestEntry[], truncated: boolean } | undefined
  peers: () => PeersReport
  readiness: () => AnalyticsReadiness
}

export interface AnalyticsHttpInit {
  logger: Logger
  api: AnalyticsApi
  live: LiveStream
  metrics: { render: () => Promise<string>, contentType: string }
  /** Directory served at `/` (the dashboard). */
  publicDir: string
  /** Files served at `/vendor/<name>`: name → absolute path. */
  vendor: ReadonlyMap<string, string>
}

export interface AnalyticsHttp {
  readonly app: FastifyInstance
  /** Error replies by code. */
  stats: () => { errors: Record<string, number> }
}

/** Largest and default page of GET /v1/latest. */
export const MAX_LATEST_LIMIT = 10_000
export const DEFAULT_LATEST_LIMIT = 1000
/** Largest static file served. */
const MAX_STATIC_BYTES = 16 * 1024 * 1024

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8'
}

const invalid = (message: string, details: Record<string, unknown>): EdgeMeshError => new EdgeMeshError('EM_ERR_INVALID_OPTIONS', message, details)

// ------------------------------------------------------------------ query parameters

type ParamKind = 'string' | 'int' | 'time' | 'order' | 'events'

/**
 * Checks a query string against the parameters a route takes: unknown and repeated parameters are
 * refused, `int` is digits, `time` is wall ms (digits) or an ISO 8601 date-time, `order` asc or
 * desc. Returns the values converted.
 */
export function parseQuery (query: unknown, params: Record<string, ParamKind>): Record<string, string | number | undefined> {
  const q = (query ?? {}) as Record<string, unknown>
  const out: Record<string, string | number | undefined> = {}
  for (const [name, raw] of Object.entries(q)) {
    const kind = params[name]
    if (kind === undefined) {
      const known = Object.keys(params)
      throw invalid(`unknown query parameter "${name}" (${known.length === 0 ? 'this route takes none' : `known: ${known.join(', ')}`})`, { param: name })
    }
    if (typeof raw !== 'string') throw invalid(`query parameter "${name}" is given more than once`, { param: name })
    out[name] = convert(name, kind, raw)
  }
  return out
}

function convert (name: string, kind: ParamKind, raw: string): string | number {
  switch (kind) {
    case 'string':
      return raw
    case 'int':
      if (!/^\d{1,15}$/.test(raw)) throw invalid(`${name} must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`, { param: name })
      return Number(raw)
    case 'time': {
      if (/^\d{1,15}$/.test(raw)) return Number(raw)
      const ms = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(raw) ? Date.parse(raw) : NaN
      if (!Number.isFinite(ms) || ms < 0) {
        throw invalid(`${name} must be a time: milliseconds since the epoch or an ISO 8601 date-time (2024-05-01T12:00:00Z), got ${JSON.stringify(raw.slice(0, 40))}`, { param: name })
      }
      return ms
    }
    case 'order':
      if (raw !== 'asc' && raw !== 'desc') throw invalid(`${name} must be asc or desc, got ${JSON.stringify(raw.slice(0, 40))}`, { param: name })
      return raw
    case 'events': {
      for (const e of raw.split(',')) {
        if (!(STREAM_EVENTS as readonly string[]).includes(e)) throw invalid(`${name} must list some of ${STREAM_EVENTS.join(', ')}, got ${JSON.stringify(raw.slice(0, 60))}`, { param: name })
      }
      return raw
    }
  }
}

/** An object without the keys whose value is undefined (the store refuses none, but its queries stay tidy). */
function defined<T extends Record<string, unknown>> (o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k]
  return o
}

// ------------------------------------------------------------------ the app

/** Builds the fastify app (not listening yet). */
export function createAnalyticsHttp (init: AnalyticsHttpInit): AnalyticsHttp {
  const { api, live, logger } = init
  const store = api.store
  const publicDir = resolve(init.publicDir)

  const app = fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: parent => parent,
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } }
  })
  app.removeContentTypeParser('text/plain')

  const errorReplies = installErrorReplies(app, { logger, component: 'analytics:http' })

  /** A region the peer knows, checked: 400 for an invalid name, 404 for an unknown one. */
  const knownRegion = (region: unknown, required: boolean): string | undefined => {
    if (region === undefined) {
      if (required) throw invalid('region is required (?region=<name>)', { param: 'region' })
      return undefined
    }
    if (!isValidRegionName(region)) {
      throw invalid('region must be 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit', { param: 'region', region: String(region).slice(0, 80) })
    }
    if (!api.knows(region)) throw new EdgeMeshError('EM_ERR_NOT_FOUND', `region ${JSON.stringify(region)} is unknown to this analytics peer (neither followed nor recorded)`, { region })
    return region
  }

  // ---------------------------------------------------------------- regions, history, aggregates, anomalies

  app.get('/v1/regions', async req => {
    parseQuery(req.query, {})
    return { at: Date.now(), regions: api.regions() }
  })

  app.get('/v1/sensors', async req => {
    const q = parseQuery(req.query, { region: 'string' })
    const region = knownRegion(q.region, true) as string
    return { region, sensors: store.sensors(region) }
  })

  app.get('/v1/history', async req => {
    const q = parseQuery(req.query, { region: 'string', sensor: 'string', from: 'time', to: 'time', limit: 'int', order: 'order' })
    if (q.sensor === undefined) throw invalid('sensor is required (?sensor=<id>)', { param: 'sensor' })
    const region = knownRegion(q.region, true) as string
    const points = await store.history(defined({ region, sensor: q.sensor as string, from: q.from as number | undefined, to: q.to as number | undefined, limit: q.limit as number | undefined, order: q.order as 'asc' | 'desc' | undefined }))
    return { region, sensor: q.sensor, points }
  })

  app.get('/v1/aggregates', async req => {
    const q = parseQuery(req.query, { region: 'string', sensor: 'string', from: 'time', to: 'time', limit: 'int' })
    const region = knownRegion(q.region, true) as string
    const windows = await store.aggregates(defined({ region, sensor: q.sensor as string | undefined, from: q.from as number | undefined, to: q.to as number | undefined, limit: q.limit as number | undefined }))
    return { region, sensor: q.sensor ?? null, windowMs: store.windowMs, windows }
  })

  app.get('/v1/anomalies', async req => {
    const q = parseQuery(req.query, { region: 'string', sensor: 'string', from: 'time', to: 'time', limit: 'int', order: 'order' })
    if (q.sensor !== undefined && q.region === undefined) throw invalid('sensor needs region (?region=<name>&sensor=<id>)', { param: 'sensor' })
    const region = knownRegion(q.region, false)
    const anomalies = await store.anomalies(defined({ region, sensor: q.sensor as string | undefined, from: q.from as number | undefined, to: q.to as number | undefined, limit: q.limit as number | undefined, order: q.order as 'asc' | 'desc' | undefined }))
    return { anomalies }
  })

  app.get('/v1/latest', async req => {
    const q = parseQuery(req.query, { region: 'string', prefix: 'string', limit: 'int' })
    const region = knownRegion(q.region, true) as string
    const limit = (q.limit as number | undefined) ?? DEFAULT_LATEST_LIMIT
    if (limit < 1 || limit > MAX_LATEST_LIMIT) throw invalid(`limit must be from 1 to ${MAX_LATEST_LIMIT}`, { param: 'limit', limit })
    const prefix = (q.prefix as string | undefined) ?? ''
    if (prefix.length > 256) throw invalid('prefix must be at most 256 characters', { param: 'prefix' })
    const got = api.latest(region, prefix, limit)
    if (got === undefined) throw new EdgeMeshError('EM_ERR_NOT_FOUND', `region ${JSON.stringify(region)} is not followed by this analytics peer (it has history only)`, { region })
    return { region, ...got }
  })

  app.get('/v1/peers', async req => {
    parseQuery(req.query, {})
    return api.peers()
  })

  /** The stream may name a region not seen yet (it may appear later): only the name is checked. */
  const knownRegionForStream = (region: unknown): string | undefined => {
    if (region === undefined) return undefined
    if (!isValidRegionName(region)) throw invalid('region must be 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit', { param: 'region' })
    return region
  }
  app.get('/v1/stream', (req, reply) => {
    const q = parseQuery(req.query, { region: 'string', prefix: 'string', events: 'events' })
    const region = knownRegionForStream(q.region)
    const events = q.events === undefined ? undefined : new Set((q.events as string).split(',') as StreamEvent[])
    reply.hijack()
    live.add(reply.raw, { region, prefix: q.prefix as string | undefined, events })
  })

  // ---------------------------------------------------------------- operations

  registerOperationRoutes(app, { readiness: () => api.readiness(), metrics: init.metrics })

  // ---------------------------------------------------------------- the dashboard

  const sendFile = async (reply: FastifyReply, path: string, cache: string): Promise<boolean> => {
    let size: number
    try {
      const s = await stat(path)
      if (!s.isFile()) return false
      size = s.size
    } catch {
      return false
    }
    if (size > MAX_STATIC_BYTES) return false
    const body = await readFile(path)
    void reply.header('cache-control', cache).type(CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream').send(body)
    return true
  }
  const notFound = (path: string): EdgeMeshError => new EdgeMeshError('EM_ERR_NOT_FOUND', `no file ${path}`, { path })

  app.get<{ Params: { name: string } }>('/vendor/:name', async (req, reply) => {
    const file = init.vendor.get(req.params.name)
    if (file === undefined || !await sendFile(reply, file, 'public, max-age=86400')) throw notFound(`/vendor/${req.params.name}`)
    return reply
  })
  app.get('/', async (_req, reply) => {
    if (!await sendFile(reply, join(publicDir, 'index.html'), 'no-cache')) throw notFound('/index.html')
    return reply
  })
  app.get<{ Params: { '*': string } }>('/*', async (req, reply) => {
    const rel = req.params['*']
    const parts = rel.split('/')
    // No dot files, no '..', nothing but plain names: the path stays inside the directory.
    if (rel.length > 512 || parts.some(p => !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(p))) throw notFound('/' + rel.slice(0, 80))
    const path = join(publicDir, ...parts)
    if (!path.startsWith(publicDir + sep) || !await sendFile(reply, path, 'no-cache')) throw notFound('/' + rel)
    return reply
  })

  return {
    app,
    stats: () => ({ errors: errorReplies.counts() })
  }
}
