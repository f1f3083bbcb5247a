/**
 * The gateway's HTTP API (fastify 5): ingest, reads, the change stream (SSE), health, readiness
 * and metrics. Every error reply is JSON `{ error, code, details? }` with the status of its code
 * (`httpStatusFor`), built by the one error handler below; 429 and 503 carry `Retry-After`.
 *
 * Reads are the hot path: no per-request logging (`disableRequestLogging`), replies serialised by
 * fast-json-stringify from response schemas, no child logger per request, and little allocated
 * beyond the reply object.
 */
import type { ServerResponse } from 'node:http'
import { LogController, fastify, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { EdgeMeshError, httpStatusFor, isEdgeMeshError, type ErrorCode } from '@edge-mesh/errors'
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

/** Retry-After in whole seconds (at least 1) for an error that says when to retry. */
function retryAfterSeconds (err: EdgeMeshError): number {
  const ms = err.details.retryAfterMs
  return Math.max(1, Math.ceil((typeof ms === 'number' && ms > 0 ? ms : 5000) / 1000))
}

/** Maps fastify's own errors (body parsing, validation, routing) to edge-mesh errors. */
export function toEdgeMeshError (err: unknown): EdgeMeshError | undefined {
  if (isEdgeMeshError(err)) return err
  const e = err as FastifyError & { validation?: Array<{ instancePath?: string, message?: string }>, validationContext?: string }
  if (Array.isArray(e.validation)) {
    const first = e.validation[0]
    const where = first?.instancePath ?? ''
    const m = /^\/(\d+)(?:\/(.*))?$/.exec(where)
    if (e.validationContext === 'body') {
      const details: Record<string, unknown> = { path: where }
      if (m !== null) {
        details.index = Number(m[1])
        if (m[2] !== undefined) details.field = m[2]
      }
      const msg = m !== null ? `reading ${m[1]}${m[2] !== undefined ? ` "${m[2]}"` : ''} ${first?.message ?? 'is invalid'}` : `body ${where} ${first?.message ?? 'is invalid'}`.replace(/\s+/g, ' ')
      return new EdgeMeshError('EM_ERR_INVALID_BODY', msg, details)
    }
    return new EdgeMeshError('EM_ERR_INVALID_OPTIONS', `${e.validationContext ?? 'request'}${where.replace(/\//g, '.')} ${first?.message ?? 'is invalid'}`, { in: e.validationContext, path: where })
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new EdgeMeshError('EM_ERR_UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON (Content-Type: application/json)', {})
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new EdgeMeshError('EM_ERR_PAYLOAD_TOO_LARGE', 'the request body is over the size limit', {})
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new EdgeMeshError('EM_ERR_INVALID_BODY', `the body is not valid JSON: ${e.message}`, {})
    case 'FST_ERR_NOT_FOUND':
      return new EdgeMeshError('EM_ERR_NOT_FOUND', 'no such route', {})
  }
  if (err instanceof SyntaxError) return new EdgeMeshError('EM_ERR_INVALID_BODY', `the body is not valid JSON: ${err.message}`, {})
  switch (e.statusCode) {
    case 400: return new EdgeMeshError('EM_ERR_INVALID_BODY', e.message, {})
    case 404: return new EdgeMeshError('EM_ERR_NOT_FOUND', e.message, {})
    case 413: return new EdgeMeshError('EM_ERR_PAYLOAD_TOO_LARGE', e.message, {})
    case 415: return new EdgeMeshError('EM_ERR_UNSUPPORTED_MEDIA_TYPE', e.message, {})
    case 503: return new EdgeMeshError('EM_ERR_UNAVAILABLE', e.message, {})
  }
  return undefined
}

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, code: { type: 'string' }, details: { type: 'object', additionalProperties: true } }
} as const

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
  const errors: Record<string, number> = {}
  const streams = new ChangeStreams(regions, init.sseMaxBufferedBytes ?? 1024 * 1024, init.sseHeartbeatMs ?? 15_000, logger)

  const app = fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No log line per request, and no child logger per request either: only errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: parent => parent,
    bodyLimit: init.bodyLimitBytes ?? 4 * 1024 * 1024,
    return503OnClosing: true,
    // Strict schemas: no coercion, no silently removed fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    routerOptions: { maxParamLength: 1024 }
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

  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const mapped = toEdgeMeshError(err)
    const status = mapped !== undefined ? httpStatusFor(mapped) : 500
    const code: ErrorCode = mapped?.code ?? 'EM_ERR_INTERNAL'
    errors[code] = (errors[code] ?? 0) + 1
    if (mapped === undefined || status >= 500) {
      logger.error({ err, code, method: req.method, url: req.url }, 'gateway:http request failed')
    }
    if (mapped !== undefined && (status === 429 || status === 503)) void reply.header('retry-after', String(retryAfterSeconds(mapped)))
    const body: { error: string, code: string, details?: Record<string, unknown> } = {
      error: mapped?.message ?? 'internal error',
      code
    }
    if (mapped !== undefined && Object.keys(mapped.details).length > 0) body.details = publicDetails(mapped, status)
    void reply.code(status).type('application/json; charset=utf-8').send(body)
  })

  app.setNotFoundHandler((req, reply) => {
    errors.EM_ERR_NOT_FOUND = (errors.EM_ERR_NOT_FOUND ?? 0) + 1
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'EM_ERR_NOT_FOUND' })
  })

  // ---------------------------------------------------------------- ingest

  const ingestSchema = {
    body: { type: 'array', maxItems: MAX_BATCH_READINGS, items: readingInputSchema },
    headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 256 } } },
    response: { 200: ingestReplySchema, '4xx': errorSchema, '5xx': errorSchema }
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
  /**
   * Replies with `body` once what the region held when it was read is durable: a reading is in the
   * view as soon as it is written (or received), before its LevelDB batch completes, and a crash in
   * between would take back what a client had read. With nothing waiting this costs a resolved promise.
   */
  const durably = async <T>(region: string, body: T): Promise<T> => {
    if (whenDurable === undefined) return body
    try {
      await whenDurable(region)
    } catch (err) {
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', 'storage failed to write what this read would show', { region, retryAfterMs: 5000 }, { cause: err })
    }
    return body
  }
  const readSensor = (id: string, query: { region?: string, maxAgeMs?: number }): SensorReply => {
    const region = regionOf(query.region)
    const view = (regions.get(region) as RegionState).get(id)
    if (view === undefined) throw new EdgeMeshError('EM_ERR_NOT_FOUND', `no reading for sensor ${JSON.stringify(id)} in region ${region}`, { region, sensor: id })
    const r = fromStored(view.value)
    return {
      sensor: id,
      value: r.value,
      unit: r.unit,
      ts: r.ts,
      t: view.t,
      writer: view.writer,
      ageMs: view.ageMs,
      stale: query.maxAgeMs !== undefined && view.ageMs > query.maxAgeMs
    }
  }
  // maxAgeMs as digits: the strict validator does not coerce query strings to numbers.
  const readSchema = {
    querystring: { type: 'object', properties: { ...regionQuery, maxAgeMs: { type: 'string', pattern: '^\\d{1,15}$' } } },
    response: { 200: sensorReplySchema, '4xx': errorSchema }
  }
  // Sensor ids contain '/': URL-encoded (%2F) in one segment, or as the rest of the path.
  app.get<{ Params: { id: string }, Querystring: { region?: string, maxAgeMs?: string } }>('/v1/sensors/:id', { schema: readSchema }, async req => {
    const q = req.query
    return await durably(regionOf(q.region), readSensor(req.params.id, { region: q.region, maxAgeMs: q.maxAgeMs === undefined ? undefined : Number(q.maxAgeMs) }))
  })
  app.get<{ Params: { '*': string }, Querystring: { region?: string, maxAgeMs?: string } }>('/v1/sensors/*', { schema: readSchema }, async req => {
    const q = req.query
    return await durably(regionOf(q.region), readSensor(req.params['*'], { region: q.region, maxAgeMs: q.maxAgeMs === undefined ? undefined : Number(q.maxAgeMs) }))
  })

  app.get<{ Querystring: { region?: string, prefix?: string, limit?: string } }>('/v1/sensors', {
    schema: {
      querystring: {
        type: 'object',
        properties: { ...regionQuery, prefix: { type: 'string', maxLength: 256 }, limit: { type: 'string', pattern: '^\\d{1,6}$' } }
      },
      response: {
        200: { type: 'object', properties: { region: { type: 'string' }, sensors: { type: 'array', items: { type: 'string' } }, truncated: { type: 'boolean' } } },
        '4xx': errorSchema
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

  app.get('/health', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, (_req, reply) => {
    void reply.send({ status: 'ok' })
  })
  app.get('/ready', (_req, reply) => {
    const r = init.readiness()
    void reply.code(r.ready ? 200 : 503).send(r)
  })
  app.get('/metrics', async (_req, reply) => {
    const text = await init.metrics.render()
    void reply.type(init.metrics.contentType).send(text)
  })

  app.addHook('preClose', (done) => {
    streams.closeAll()
    done()
  })

  return {
    app,
    stats: () => ({ errors: { ...errors } }),
    sseStats: () => streams.stats(),
    closeStreams: () => { streams.closeAll() }
  }
}

/** Details safe to show: a client error's (but a cause); only the retry hint of a server error's. */
function publicDetails (err: EdgeMeshError, status: number): Record<string, unknown> {
  if (status >= 500) return typeof err.details.retryAfterMs === 'number' ? { retryAfterMs: err.details.retryAfterMs } : {}
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(err.details)) if (k !== 'cause') out[k] = v
  return out
}
