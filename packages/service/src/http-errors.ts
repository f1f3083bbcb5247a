/**
 * The error replies of an edge-mesh HTTP service (fastify 5). Every error reply is JSON
 * `{ error, code, details? }` with the status of its code (`httpStatusFor` of @edge-mesh/errors,
 * the one registry); 429 and 503 carry `Retry-After` in whole seconds. Errors fastify raises by
 * itself (body parsing, schema validation, routing) are first mapped to edge-mesh errors, so a
 * client sees the same codes whatever part of the stack refused its request.
 *
 * | fastify error | edge-mesh code |
 * |---|---|
 * | schema validation of the body | `EM_ERR_INVALID_BODY` |
 * | schema validation of the query, params or headers | `EM_ERR_INVALID_OPTIONS` |
 * | `FST_ERR_CTP_INVALID_MEDIA_TYPE` | `EM_ERR_UNSUPPORTED_MEDIA_TYPE` |
 * | `FST_ERR_CTP_BODY_TOO_LARGE` | `EM_ERR_PAYLOAD_TOO_LARGE` |
 * | `FST_ERR_CTP_INVALID_JSON_BODY`, `FST_ERR_CTP_EMPTY_JSON_BODY`, `FST_ERR_CTP_INVALID_CONTENT_LENGTH`, a `SyntaxError` | `EM_ERR_INVALID_BODY` |
 * | `FST_ERR_NOT_FOUND` | `EM_ERR_NOT_FOUND` |
 * | any other with status 400, 404, 413, 415 or 503 | `EM_ERR_INVALID_BODY`, `EM_ERR_NOT_FOUND`, `EM_ERR_PAYLOAD_TOO_LARGE`, `EM_ERR_UNSUPPORTED_MEDIA_TYPE`, `EM_ERR_UNAVAILABLE` |
 * | anything else | `EM_ERR_INTERNAL` (500, logged at error level) |
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { EdgeMeshError, httpStatusFor, isEdgeMeshError, type ErrorCode } from '@edge-mesh/errors'

/** How fastify's errors are described. */
export interface ErrorMappingInit {
  /**
   * What the items of an array body are called (`'reading'`). When set, a body that fails its
   * schema at `/<index>/<field>` is described as `reading 3 "value" must be …`, with
   * `details.index` and `details.field`. @default unset: body errors are described like query
   * errors (`body.3.value must be …`, `details.in` and `details.path`)
   */
  bodyItem?: string
}

/** The shape of fastify's schema validation errors. */
type ValidationError = FastifyError & { validation?: Array<{ instancePath?: string, message?: string }>, validationContext?: string }

/**
 * Maps fastify's own errors (body parsing, validation, routing) to edge-mesh errors; an
 * edge-mesh error is returned as it is. Undefined for anything else (an internal error).
 */
export function toEdgeMeshError (err: unknown, init: ErrorMappingInit = {}): EdgeMeshError | undefined {
  if (isEdgeMeshError(err)) return err
  const e = err as ValidationError
  if (Array.isArray(e.validation)) {
    const first = e.validation[0]
    const where = first?.instancePath ?? ''
    const problem = first?.message ?? 'is invalid'
    if (e.validationContext === 'body' && init.bodyItem !== undefined) return arrayBodyError(init.bodyItem, where, problem)
    const code: ErrorCode = e.validationContext === 'body' ? 'EM_ERR_INVALID_BODY' : 'EM_ERR_INVALID_OPTIONS'
    return new EdgeMeshError(code, `${e.validationContext ?? 'request'}${where.replace(/\//g, '.')} ${problem}`, { in: e.validationContext, path: where })
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

/** A body validation error of an array body, naming the item (`reading 3 "value" …`) by index and field. */
function arrayBodyError (item: string, where: string, problem: string): EdgeMeshError {
  const m = /^\/(\d+)(?:\/(.*))?$/.exec(where)
  const details: Record<string, unknown> = { path: where }
  if (m === null) return new EdgeMeshError('EM_ERR_INVALID_BODY', `body ${where} ${problem}`.replace(/\s+/g, ' '), details)
  details.index = Number(m[1])
  if (m[2] !== undefined) details.field = m[2]
  return new EdgeMeshError('EM_ERR_INVALID_BODY', `${item} ${m[1]}${m[2] !== undefined ? ` "${m[2]}"` : ''} ${problem}`, details)
}

/** Details safe to show: a client error's (but a cause); only the retry hint of a server error's. */
export function publicDetails (err: EdgeMeshError, status: number): Record<string, unknown> {
  if (status >= 500) return typeof err.details.retryAfterMs === 'number' ? { retryAfterMs: err.details.retryAfterMs } : {}
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(err.details)) if (k !== 'cause') out[k] = v
  return out
}

/** Retry-After in whole seconds (at least 1) for an error that says when to retry: `details.retryAfterMs`, else 5 s. */
export function retryAfterSeconds (err: EdgeMeshError): number {
  const ms = err.details.retryAfterMs
  return Math.max(1, Math.ceil((typeof ms === 'number' && ms > 0 ? ms : 5000) / 1000))
}

/** The JSON schema of an error reply, for the `4xx` and `5xx` entries of a route's response schema. */
export const errorReplySchema = {
  type: 'object',
  properties: { error: { type: 'string' }, code: { type: 'string' }, details: { type: 'object', additionalProperties: true } }
} as const

/** The body of an error reply. */
export interface ErrorReply {
  error: string
  code: ErrorCode
  details?: Record<string, unknown>
}

/** The part of a logger the error handler uses (pino's). */
export interface ErrorRepliesLogger {
  error: (obj: object, msg: string) => void
}

export interface ErrorRepliesInit extends ErrorMappingInit {
  logger: ErrorRepliesLogger
  /** Names the service in the log line of a failed request (`gateway:http` → `gateway:http request failed`). */
  component: string
}

/** What {@link installErrorReplies} counts. */
export interface ErrorReplies {
  /** Error replies so far, by code (a copy). */
  counts: () => Record<string, number>
}

/**
 * Sets `app`'s error handler and not-found handler: every error becomes an error reply, counted by
 * code. Internal errors (500, and anything that is not an edge-mesh error once mapped) are logged
 * at error level with the method and URL; their details are not shown.
 */
export function installErrorReplies (app: FastifyInstance, init: ErrorRepliesInit): ErrorReplies {
  const { logger, component } = init
  const mapping: ErrorMappingInit = { bodyItem: init.bodyItem }
  const counts: Record<string, number> = {}
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const mapped = toEdgeMeshError(err, mapping)
    const status = mapped !== undefined ? httpStatusFor(mapped) : 500
    const code: ErrorCode = mapped?.code ?? 'EM_ERR_INTERNAL'
    counts[code] = (counts[code] ?? 0) + 1
    if (mapped === undefined || status >= 500) logger.error({ err, code, method: req.method, url: req.url }, `${component} request failed`)
    if (mapped !== undefined && (status === 429 || status === 503)) void reply.header('retry-after', String(retryAfterSeconds(mapped)))
    const body: ErrorReply = { error: mapped?.message ?? 'internal error', code }
    if (mapped !== undefined && Object.keys(mapped.details).length > 0) body.details = publicDetails(mapped, status)
    void reply.code(status).type('application/json; charset=utf-8').send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    counts.EM_ERR_NOT_FOUND = (counts.EM_ERR_NOT_FOUND ?? 0) + 1
    const body: ErrorReply = { error: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'EM_ERR_NOT_FOUND' }
    void reply.code(404).type('application/json; charset=utf-8').send(body)
  })
  return { counts: () => ({ ...counts }) }
}
