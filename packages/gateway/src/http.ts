/**
 * The gateway's HTTP API (fastify 5): ingest, reads, the change stream (SSE), health, readiness
 * and metrics. Every error reply is JSON `{ error, code, details? }` with the status of its code
 * (`httpStatusFor`), built by the error handler of @edge-mesh/service (`installErrorReplies`, the
 * analytics peer's too); 429 and 503 carry `Retry-After`.
 *
 * Reads are the hot path: no per-request logging (`disableRequestLogging`), no child logger per
 * request, and single-sensor reads that succeed answered ahead of fastify's routing (`fastRead`);
 * other replies are serialised by fast-json-stringify from response schemas.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { LogController, fastify, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { EdgeMeshError } from '@edge-mesh/errors'
import { errorReplySchema, installErrorReplies, registerOperationRoutes, toEdgeMeshError as mapFastifyError, type ErrorMappingInit } from '@edge-mesh/service'
import { fromStored, readingInputSchema } from '@edge-mesh/reading'
import type { Change, RegionState } from '@edge-mesh/region-state'
import type { Ingestor } from './ingest.ts'

/** Most readings in one POST. */
export const MAX_BATCH_READINGS = 10_000
/** Largest and default page of GET /v1/sensors. */
export const MAX_LIST_LIMIT = 10_000
export const DEFAULT_LIST_LIMIT = 1000

/** What /ready reports. */
export interface Readiness {
  ready: boolean
  /** `open`, `memory` (no data dir), `closing`, `closed` or `failed`. */
  storage: string
  /** libp2p's status: `started`, `stopping`, ... */
  mesh: string
  peers: number
  /** When the last sync round completed (ms since the epoch), null before the first. */
  lastSyncAt: number | null
  regions: string[]
}

export interface HttpAppInit {
  logger: Logger
  ingestor: Ingestor
  /** The regions served, by name. */
  regions: ReadonlyMap<string, RegionState>
  readiness: () => Readiness
  metrics: { render: () => Promise<string>, contentType: string }
  /** Largest request body, bytes. @default 4 MiB */
  bodyLimitBytes?: number
  /** Period of the SSE heartbeat comment, ms. @default 15000 */
  sseHeartbeatMs?: number
  /** A stream client with more than this many bytes unsent is dropped. @default 1 MiB */
  sseMaxBufferedBytes?: number
  /**
   * Resolves once everything the region's state emitted so far is in LevelDB (the mesh's
   * `whenDurable`). Reads wait for it before replying, so that no client reads a reading a crash
   * could still take back. @default reads reply at once (memory-only state)
   */
  whenDurable?: (region: string) => Promise<void>
}

export interface HttpStats {
  /** Error replies by code. */
  errors: Record<string, number>
  /** Single-sensor reads answered by the fast path (outside fastify's routing). */
  fastReads: number
}

export interface SseStats {
  clients: number
  events: number
  dropped: number
}

/** The fastify instance with the gateway's counters. */
export interface HttpApp {
  readonly app: FastifyInstance
  stats: () => HttpStats
  sseStats: () => SseStats
  /** Ends every stream client (before the server closes: open streams would hold it). */
  closeStreams: () => void
}

/** How the gateway describes fastify's errors: a body is an array of readings. */
const ERROR_MAPPING: ErrorMappingInit = { bodyItem: 'reading' }

/** Maps fastify's own errors (body parsing, validation, routing) to edge-mesh errors, naming a bad reading by index. */
export function toEdgeMeshError (err: unknown): EdgeMeshError | undefined {
  return mapFastifyError(err, ERROR_MAPPING)
}

const ingestReplySchema = {
  type: 'object',
  properties: {
    accepted: { type: 'integer' },
    duplicates: { type: 'integer' },
    readings: { type: 'array', items: { type: 'object', properties: { sensor: { type: 'string' }, t: { type: 'string' } } } }
  }
} as const

const sensorReplySchema = {
  type: 'object',
  properties: {
    sensor: { type: 'string' },
    value: {},
    unit: { type: 'string' },
    ts: { type: 'integer' },
    t: { type: 'string' },
    writer: { type: 'string' },
    ageMs: { type: 'integer' },
    stale: { type: 'boolean' }
  }
} as const

interface SensorReply {
  sensor: string
  value: unknown
  unit: string | undefined
  ts: number | undefined
  t: string
  writer: string
  ageMs: number
  stale: boolean
}

const regionQuery = { region: { type: 'string', minLength: 1, maxLength: 64 } } as const
const SENSOR_PATH = '/v1/sensors/'

interface SseClient {
  res: ServerResponse
  prefix: string
}

/**
 * The change stream: per region, one 'change' listener while it has clients; each change is
 * encoded once and written to the clients whose prefix matches. A client whose socket holds more
 * than `maxBuffered` unsent bytes is dropped (its stream ends; it can reconnect and re-read).
 */
class ChangeStreams {
  private readonly byRegion = new Map<string, { clients: Set<SseClient>, off: () => void }>()
  private readonly regions: ReadonlyMap<string, RegionState>
  private readonly maxBuffered: number
  private readonly heartbeatMs: number
  private readonly log: Logger
  private heartbeat: ReturnType<typeof setInterval> | undefined
  private clients = 0
  private events = 0
  private dropped = 0

  constructor (regions: ReadonlyMap<string, RegionState>, maxBuffered: number, heartbeatMs: number, log: Logger) {
    this.regions = regions
    this.maxBuffered = maxBuffered
    this.heartbeatMs = heartbeatMs
    this.log = log
  }

  add (region: string, client: SseClient): void {
    let entry = this.byRegion.get(region)
    if (entry === undefined) {
      const state = this.regions.get(region) as RegionState
      const clients = new Set<SseClient>()
      const onChange = (c: Change): void => { this.broadcast(state, clients, c) }
      state.on('change', onChange)
      entry = { clients, off: () => { state.off('change', onChange) } }
      this.byRegion.set(region, entry)
    }
    entry.clients.add(client)
    this.clients++
    if (this.heartbeat === undefined) {
      this.heartbeat = setInterval(() => { this.beat() }, this.heartbeatMs)
      this.heartbeat.unref()
    }
    client.res.once('close', () => { this.remove(region, client) })
  }

  private remove (region: string, client: SseClient): void {
    const entry = this.byRegion.get(region)
    if (entry === undefined || !entry.clients.delete(client)) return
    this.clients--
    if (entry.clients.size === 0) {
      entry.off()
      this.byRegion.delete(region)
    }
    if (this.clients === 0 && this.heartbeat !== undefined) {
      clearInterval(this.heartbeat)
      this.heartbeat = undefined
    }
  }

  private broadcast (state: RegionState, clients: Set<SseClient>, c: Change): void {
    let frame: string | undefined
    for (const client of clients) {
      if (client.prefix !== '' && !c.sensor.startsWith(client.prefix)) continue
      if (frame === undefined) {
        try {
          frame = `event: change\ndata: ${JSON.stringify(changeData(state, c))}\n\n`
        } catch (err) {
          this.log.error({ region: state.region, sensor: c.sensor, err: String(err) }, 'gateway:sse could not encode a change')
          return
        }
      }
      this.send(client, frame)
    }
  }

  private send (client: SseClient, frame: string): void {
    const res = client.res
    if (res.destroyed) return
    if (res.writableLength > this.maxBuffered) {
      this.dropped++
      this.log.warn({ buffered: res.writableLength }, 'gateway:sse dropping a stream client that fell behind')
      res.destroy()
      return
    }
    res.write(frame)
    this.events++
  }

  private beat (): void {
    for (const { clients } of this.byRegion.values()) {
      for (const client of clients) if (!client.res.destroyed) client.res.write(': heartbeat\n\n')
    }
  }

  closeAll (): void {
    for (const { clients } of this.byRegion.values()) {
      for (const client of [...clients]) client.res.end()
    }
  }

  stats (): SseStats {
    return { clients: this.clients, events: this.events, dropped: this.dropped }
  }
}

/** The data of one SSE change event. */
function changeData (state: RegionState, c: Change): Record<string, unknown> {
  if (c.new !== undefined) {
    const r = fromStored(c.new.value)
    const out: Record<string, unknown> = { sensor: c.sensor, value: r.value }
    if (r.unit !== undefined) out.unit = r.unit
    if (r.ts !== undefined) out.ts = r.ts
    out.t = c.new.t
    out.writer = c.new.writer
    out.reason = c.reason
    return out
  }
  // Deleted: the tombstone's timestamp and writer; expired: the reading that left.
  const w = c.reason === 'delete' ? state.winner(c.sensor) : c.old
  return { sensor: c.sensor, value: null, t: w?.t, writer: w?.writer, reason: c.reason }
}

/** Builds the fastify app (not listening yet). */
export function createHttpApp (init: HttpAppInit): HttpApp {
  const { ingestor, regions, logger } = init
  const names = [...regions.keys()]
  const streams = new ChangeStreams(regions, init.sseMaxBufferedBytes ?? 1024 * 1024, init.sseHeartbeatMs ?? 15_000, logger)

  /** fastify's request handler (set by its serverFactory), for reads the fast path hands on. */
  let toFastify: (req: IncomingMessage, res: ServerResponse) => void = () => {}
  const app = fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No log line per request, and no child logger per request either: only errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: parent => parent,
    bodyLimit: init.bodyLimitBytes ?? 4 * 1024 * 1024,
    return503OnClosing: true,
    // Strict schemas: no coercion, no silently removed fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    routerOptions: { maxParamLength: 1024 },
    // Single-sensor reads that succeed are answered before fastify's routing (`fastRead` below);
    // everything else, errors of those reads included, goes through fastify.
    serverFactory: (handler, opts) => {
      toFastify = handler
      const server = createServer((req, res) => {
        if (!fastRead(req, res)) handler(req, res)
      })
      // What fastify sets on a server it creates itself (its resolved options, defaults included).
      const o = opts as { keepAliveTimeout: number, requestTimeout: number, connectionTimeout: number, maxRequestsPerSocket: number }
      server.keepAliveTimeout = o.keepAliveTimeout
      server.requestTimeout = o.requestTimeout
      server.setTimeout(o.connectionTimeout)
      if (o.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket
      return server
    }
  })

  // JSON only: fastify's default text/plain parser would hand the schema a string (a 400 instead of 415).
  app.removeContentTypeParser('text/plain')

  /** The region named in the query, or the only one held. */
  const regionOf = (name: string | undefined): string => {
    if (name === undefined || name === '') {
      if (names.length === 1) return names[0]
      throw new EdgeMeshError('EM_ERR_INVALID_OPTIONS', `this gateway holds several regions: name one with ?region= (one of ${names.join(', ')})`, { param: 'region', regions: names })
    }
    if (!regions.has(name)) throw new EdgeMeshError('EM_ERR_NOT_FOUND', `region ${JSON.stringify(name)} is not held by this gateway`, { region: name, regions: names })
    return name
  }

  // Every error reply is { error, code, details? } with the status of its code, counted by code.
  const errorReplies = installErrorReplies(app, { logger, component: 'gateway:http', ...ERROR_MAPPING })

  // ---------------------------------------------------------------- ingest

  const ingestSchema = {
    body: { type: 'array', maxItems: MAX_BATCH_READINGS, items: readingInputSchema },
    headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 256 } } },
    response: { 200: ingestReplySchema, '4xx': errorReplySchema, '5xx': errorReplySchema }
  }
  const ingestHandler = async (region: string, req: FastifyRequest<{ Querystring: { echo?: string } }>): Promise<object> => {
    const key = req.headers['idempotency-key']
    const res = await ingestor.ingest(region, req.body as unknown[], { idempotencyKey: typeof key === 'string' ? key : undefined, source: 'http' })
    const echo = req.query.echo
    if (echo === '1' || echo === 'true') return res
    return { accepted: res.accepted, duplicates: res.duplicates }
  }
  app.post<{ Querystring: { region?: string, echo?: string } }>('/v1/readings', {
    schema: { ...ingestSchema, querystring: { type: 'object', properties: { ...regionQuery, echo: { type: 'string' } } } }
  }, async req => await ingestHandler(regionOf(req.query.region), req))
  app.post<{ Params: { region: string }, Querystring: { echo?: string } }>('/v1/regions/:region/readings', {
    schema: { ...ingestSchema, querystring: { type: 'object', properties: { echo: { type: 'string' } } } }
  }, async req => await ingestHandler(regionOf(req.params.region), req))

  // ---------------------------------------------------------------- reads

  const whenDurable = init.whenDurable
  /** Reads whose durability wait failed in the fast path, with the failure, for the route to answer. */
  const failedWaits = new WeakMap<IncomingMessage, unknown>()
  /**
   * Replies with `body` once what the region held when it was read is durable: a reading is in the
   * view as soon as it is written (or received), before its LevelDB batch completes, and a crash in
   * between would take back what a client had read. With nothing waiting this costs a resolved promise.
   */
  const durably = async <T>(region: string, body: T, raw?: IncomingMessage): Promise<T> => {
    if (whenDurable === undefined) return body
    try {
      // A read the fast path handed on after its wait failed: that failure is the answer.
      if (raw !== undefined && failedWaits.has(raw)) throw failedWaits.get(raw)
      await whenDurable(region)
    } catch (err) {
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', 'storage failed to write what this read would show', { region, retryAfterMs: init.ingestor.unavailableRetryAfterMs }, { cause: err })
    }
    return body
  }
  /** The reply for `id` in `state`, or undefined if it holds no live reading; `maxAgeMs` as the query gave it (digits). */
  const sensorReply = (state: RegionState, id: string, maxAgeMs: string | undefined): SensorReply | undefined => {
    const view = state.get(id)
    if (view === undefined) return undefined
    const r = fromStored(view.value)
    return {
      sensor: id,
      value: r.value,
      unit: r.unit,
      ts: r.ts,
      t: view.t,
      writer: view.writer,
      ageMs: view.ageMs,
      stale: maxAgeMs !== undefined && view.ageMs > Number(maxAgeMs)
    }
  }
  /** The reply for `id` in `region` (resolved by `regionOf`); EM_ERR_NOT_FOUND if it holds none. */
  const readSensor = (region: string, id: string, maxAgeMs: string | undefined): SensorReply => {
    const reply = sensorReply(regions.get(region) as RegionState, id, maxAgeMs)
    if (reply === undefined) throw new EdgeMeshError('EM_ERR_NOT_FOUND', `no reading for sensor ${JSON.stringify(id)} in region ${region}`, { region, sensor: id })
    return reply
  }
  // maxAgeMs as digits: the strict validator does not coerce query strings to numbers.
  const readSchema = {
    querystring: { type: 'object', properties: { ...regionQuery, maxAgeMs: { type: 'string', pattern: '^\\d{1,15}$' } } },
    response: { 200: sensorReplySchema, '4xx': errorReplySchema }
  }
  // Sensor ids contain '/': URL-encoded (%2F) in one segment, or as the rest of the path.
  app.get<{ Params: { id: string }, Querystring: { region?: string, maxAgeMs?: string } }>('/v1/sensors/:id', { schema: readSchema }, async req => {
    const region = regionOf(req.query.region)
    return await durably(region, readSensor(region, req.params.id, req.query.maxAgeMs), req.raw)
  })
  app.get<{ Params: { '*': string }, Querystring: { region?: string, maxAgeMs?: string } }>('/v1/sensors/*', { schema: readSchema }, async req => {
    const region = regionOf(req.query.region)
    return await durably(region, readSensor(region, req.params['*'], req.query.maxAgeMs), req.raw)
  })

  /**
   * The hot path of `GET /v1/sensors/:id` (and `/v1/sensors/*`), outside fastify's routing, hooks,
   * validation and serializer: on this 2-core machine they doubled the read p99 (bench/README.md).
   * It answers only a read that succeeds, with the reply the routes above give (same fields, same
   * order, same durability wait); a request it does not recognise in full (another method or path,
   * a query with escapes, repeated or invalid parameters, an unknown region or sensor, a failed
   * durability wait, a closing server) returns false or is handed on, and fastify answers it.
   */
  let fastReads = true
  let fastReadCount = 0
  const fastRead = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url
    if (!fastReads || req.method !== 'GET' || url === undefined || !url.startsWith(SENSOR_PATH)) return false
    const q = url.indexOf('?')
    const rawId = q < 0 ? url.slice(SENSOR_PATH.length) : url.slice(SENSOR_PATH.length, q)
    if (rawId === '' || rawId.length > 3 * 1024) return false
    let id: string
    try {
      id = rawId.includes('%') ? decodeURIComponent(rawId) : rawId
    } catch {
      return false
    }
    let regionName: string | undefined
    let maxAgeMs: string | undefined
    if (q >= 0) {
      const query = url.slice(q + 1)
      if (query.includes('%') || query.includes('+') || query.includes('#')) return false
      for (const pair of query.split('&')) {
        const eq = pair.indexOf('=')
        const key = eq < 0 ? pair : pair.slice(0, eq)
        const value = eq < 0 ? '' : pair.slice(eq + 1)
        if (key === 'region') {
          if (regionName !== undefined || value === '' || value.length > 64) return false
          regionName = value
        } else if (key === 'maxAgeMs') {
          if (maxAgeMs !== undefined || !/^\d{1,15}$/.test(value)) return false
          maxAgeMs = value
        }
      }
    }
    const region = regionName ?? (names.length === 1 ? names[0] : undefined)
    const state = region === undefined ? undefined : regions.get(region)
    const reply = state === undefined ? undefined : sensorReply(state, id, maxAgeMs)
    if (reply === undefined) return false
    const body = JSON.stringify(reply)
    const send = (): void => {
      fastReadCount++
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    if (whenDurable === undefined) send()
    else {
      whenDurable(region as string).then(send, (err: unknown) => {
        failedWaits.set(req, err)
        toFastify(req, res)
      })
    }
    return true
  }

  app.get<{ Querystring: { region?: string, prefix?: string, limit?: string } }>('/v1/sensors', {
    schema: {
      querystring: {
        type: 'object',
        properties: { ...regionQuery, prefix: { type: 'string', maxLength: 256 }, limit: { type: 'string', pattern: '^\\d{1,6}$' } }
      },
      response: {
        200: { type: 'object', properties: { region: { type: 'string' }, sensors: { type: 'array', items: { type: 'string' } }, truncated: { type: 'boolean' } } },
        '4xx': errorReplySchema
      }
    }
  }, async req => {
    const region = regionOf(req.query.region)
    const limit = req.query.limit === undefined ? DEFAULT_LIST_LIMIT : Number(req.query.limit)
    if (limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new EdgeMeshError('EM_ERR_INVALID_OPTIONS', `limit must be between 1 and ${MAX_LIST_LIMIT}`, { param: 'limit', limit })
    }
    const all = (regions.get(region) as RegionState).list(req.query.prefix ?? '')
    return await durably(region, { region, sensors: all.length > limit ? all.slice(0, limit) : all, truncated: all.length > limit })
  })

  app.get<{ Querystring: { region?: string, prefix?: string } }>('/v1/stream', {
    schema: { querystring: { type: 'object', properties: { ...regionQuery, prefix: { type: 'string', maxLength: 256 } } } }
  }, (req, reply) => {
    const region = regionOf(req.query.region)
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    res.write(': edge-mesh change stream\n\n')
    streams.add(region, { res, prefix: req.query.prefix ?? '' })
  })

  // ---------------------------------------------------------------- operations

  registerOperationRoutes(app, { readiness: init.readiness, metrics: init.metrics })

  app.addHook('preClose', (done) => {
    fastReads = false
    streams.closeAll()
    done()
  })

  return {
    app,
    stats: () => ({ errors: errorReplies.counts(), fastReads: fastReadCount }),
    sseStats: () => streams.stats(),
    closeStreams: () => { streams.closeAll() }
  }
}
