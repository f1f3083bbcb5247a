/**
 * @packageDocumentation
 *
 * Typed errors for edge-mesh. Every error the project throws on purpose is an
 * {@link EdgeMeshError} with a stable `code` (`EM_ERR_*`), a stable `name`, and
 * the ids involved in `details`. Callers and tests branch on `code`, never on
 * the message text. {@link httpStatusFor} is the single place that maps codes
 * to HTTP statuses for the gateway.
 */

/** Every error code, with the HTTP status the gateway answers with. */
export const ERROR_CODES = {
  /** A value is not of the allowed JSON-compatible types, or contains a cycle. */
  EM_ERR_INVALID_VALUE: 400,
  /** An encoded value is larger than the configured limit. */
  EM_ERR_VALUE_TOO_LARGE: 413,
  /** A sensor id is empty, too long or contains control characters. */
  EM_ERR_INVALID_SENSOR: 400,
  /** A timestamp string or byte sequence is not a valid HLC encoding. */
  EM_ERR_INVALID_TIMESTAMP: 400,
  /** A remote timestamp is further ahead of the local clock than the drift bound allows. */
  EM_ERR_CLOCK_DRIFT: 400,
  /** A write was attempted on a read-only replica. */
  EM_ERR_READ_ONLY: 403,
  /** A reading (or gossip frame) comes from a writer that is not allowed to write the region. */
  EM_ERR_UNAUTHORIZED_WRITER: 403,
  /** A Yjs update or reading chunk could not be decoded or breaks the doc layout. */
  EM_ERR_INVALID_UPDATE: 400,
  /** A record read back from storage could not be decoded. */
  EM_ERR_CORRUPT_RECORD: 500,
  /** An operation was attempted on a closed component. */
  EM_ERR_CLOSED: 503,
  /** Options given to a factory are invalid. */
  EM_ERR_INVALID_OPTIONS: 400,
  /** A request body is not valid JSON or does not match its schema. */
  EM_ERR_INVALID_BODY: 400,
  /** A request body is larger than the configured limit. */
  EM_ERR_PAYLOAD_TOO_LARGE: 413,
  /** A request body has a content type the endpoint does not take. */
  EM_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  /** Ingest queues (durability or gossip) are over their limits: retry after `details.retryAfterMs`. */
  EM_ERR_OVERLOADED: 429,
  /** The service cannot take the request now (storage not open, shutting down): retry later. */
  EM_ERR_UNAVAILABLE: 503,
  /** No such region, sensor or route. */
  EM_ERR_NOT_FOUND: 404,
  /** Anything unexpected (a bug): logged at error level, no details given out. */
  EM_ERR_INTERNAL: 500
} as const

export type ErrorCode = keyof typeof ERROR_CODES

/** Base class of every deliberate edge-mesh error. */
export class EdgeMeshError extends Error {
  readonly code: ErrorCode
  readonly details: Readonly<Record<string, unknown>>

  constructor (code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.details = details
  }

  override get name (): string {
    return 'EdgeMeshError'
  }

  toJSON (): { error: string, code: ErrorCode, details: Readonly<Record<string, unknown>> } {
    return { error: this.message, code: this.code, details: this.details }
  }
}

export class InvalidValueError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}) {
    super('EM_ERR_INVALID_VALUE', message, details)
  }

  override get name (): string { return 'InvalidValueError' }
}

export class ValueTooLargeError extends EdgeMeshError {
  constructor (bytes: number, limit: number, details: Record<string, unknown> = {}) {
    super('EM_ERR_VALUE_TOO_LARGE', `value encodes to ${bytes} bytes, over the limit of ${limit}`, { ...details, bytes, limit })
  }

  override get name (): string { return 'ValueTooLargeError' }
}

export class InvalidSensorError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}) {
    super('EM_ERR_INVALID_SENSOR', message, details)
  }

  override get name (): string { return 'InvalidSensorError' }
}

export class InvalidTimestampError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}) {
    super('EM_ERR_INVALID_TIMESTAMP', message, details)
  }

  override get name (): string { return 'InvalidTimestampError' }
}

export class ClockDriftError extends EdgeMeshError {
  constructor (remoteWallMs: number, localWallMs: number, maxDriftMs: number, details: Record<string, unknown> = {}) {
    super('EM_ERR_CLOCK_DRIFT',
      `remote timestamp is ${remoteWallMs - localWallMs} ms ahead of the local clock, over the bound of ${maxDriftMs} ms`,
      { ...details, remoteWallMs, localWallMs, maxDriftMs })
  }

  override get name (): string { return 'ClockDriftError' }
}

export class ReadOnlyError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}) {
    super('EM_ERR_READ_ONLY', message, details)
  }

  override get name (): string { return 'ReadOnlyError' }
}

export class InvalidUpdateError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('EM_ERR_INVALID_UPDATE', message, details, options)
  }

  override get name (): string { return 'InvalidUpdateError' }
}

export class CorruptRecordError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('EM_ERR_CORRUPT_RECORD', message, details, options)
  }

  override get name (): string { return 'CorruptRecordError' }
}

export class ClosedError extends EdgeMeshError {
  constructor (what: string, details: Record<string, unknown> = {}) {
    super('EM_ERR_CLOSED', `${what} is closed`, details)
  }

  override get name (): string { return 'ClosedError' }
}

export class InvalidOptionsError extends EdgeMeshError {
  constructor (message: string, details: Record<string, unknown> = {}) {
    super('EM_ERR_INVALID_OPTIONS', message, details)
  }

  override get name (): string { return 'InvalidOptionsError' }
}

/** True when `err` is an edge-mesh error, optionally of the given code. */
export function isEdgeMeshError (err: unknown, code?: ErrorCode): err is EdgeMeshError {
  return err instanceof EdgeMeshError && (code === undefined || err.code === code)
}

/** The HTTP status for an error: its code's status, or 500 for anything unexpected. */
export function httpStatusFor (err: unknown): number {
  return err instanceof EdgeMeshError ? ERROR_CODES[err.code] : 500
}
