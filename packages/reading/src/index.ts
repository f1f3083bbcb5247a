/**
 * @packageDocumentation
 *
 * The reading a gateway stores in region state, shared by the gateway (which writes it), the
 * client package and the analytics peer (which read it).
 *
 * A region-state value is either the device's value itself, or an envelope
 * `{ value, unit?, ts? }` when the reading carries a unit or a device timestamp. The envelope is
 * also used when the value is itself a plain object with a `value` key, so that decoding is never
 * ambiguous: a plain object with a `value` key is always an envelope.
 *
 *   ingest input                              stored value
 *   { sensor, value: 21.5 }                   21.5
 *   { sensor, value: 21.5, unit: 'C' }        { value: 21.5, unit: 'C' }
 *   { sensor, value: 1, ts: 1700000000000 }   { value: 1, ts: 1700000000000 }
 *   { sensor, value: { value: 2 } }           { value: { value: 2 } }
 *
 * `ts` is the device's own timestamp (ms since the epoch), used for deduplication; the replication
 * order is always the HLC timestamp the gateway assigns.
 */
import { EdgeMeshError } from '@edge-mesh/errors'

/** A JSON value as region state accepts it (the full contract is checked by region state). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** One reading as a device or app sends it to a gateway. */
export interface ReadingInput {
  sensor: string
  value: JsonValue
  /** The device's timestamp, ms since the epoch (an integer). */
  ts?: number
  /** Unit of the value, 1-32 characters. */
  unit?: string
}

/** A stored reading, decoded. */
export interface Reading {
  value: JsonValue
  ts?: number
  unit?: string
}

/** Largest unit string, characters. */
export const MAX_UNIT_LENGTH = 32
/** Device timestamps must lie between these (2000-01-01 and 2100-01-01), ms. */
export const MIN_DEVICE_TS = 946_684_800_000
export const MAX_DEVICE_TS = 4_102_444_800_000

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)

/** The value to store for an input (see the table above). The input must have been validated. */
export function toStored (input: ReadingInput): JsonValue {
  const needsEnvelope = input.unit !== undefined || input.ts !== undefined ||
    (isPlainObject(input.value) && Object.prototype.hasOwnProperty.call(input.value, 'value'))
  if (!needsEnvelope) return input.value
  const env: { [key: string]: JsonValue } = { value: input.value }
  if (input.unit !== undefined) env.unit = input.unit
  if (input.ts !== undefined) env.ts = input.ts
  return env
}

/** Decodes a stored value. Anything that is not an envelope is a bare value. */
export function fromStored (stored: unknown): Reading {
  if (isPlainObject(stored) && Object.prototype.hasOwnProperty.call(stored, 'value')) {
    const r: Reading = { value: stored.value as JsonValue }
    if (typeof stored.unit === 'string') r.unit = stored.unit
    if (typeof stored.ts === 'number') r.ts = stored.ts
    return r
  }
  return { value: stored as JsonValue }
}

/** The device timestamp of a stored value, if it has one. */
export function deviceTsOf (stored: unknown): number | undefined {
  if (isPlainObject(stored) && typeof stored.ts === 'number' && Object.prototype.hasOwnProperty.call(stored, 'value')) return stored.ts
  return undefined
}

/**
 * Checks the shape of one input (sensor and value themselves are checked by region state, with
 * their own typed errors). Throws `EM_ERR_INVALID_VALUE` naming the field and the index.
 */
export function assertReadingInput (x: unknown, index: number = 0): asserts x is ReadingInput {
  const fail = (msg: string, field: string): never => {
    throw new EdgeMeshError('EM_ERR_INVALID_VALUE', `reading ${index}: ${msg}`, { index, field })
  }
  if (!isPlainObject(x)) fail('must be an object', '')
  const r = x as Record<string, unknown>
  for (const k of Object.keys(r)) {
    if (k !== 'sensor' && k !== 'value' && k !== 'ts' && k !== 'unit') fail(`unknown field "${k}"`, k)
  }
  if (typeof r.sensor !== 'string') fail('"sensor" must be a string', 'sensor')
  if (!Object.prototype.hasOwnProperty.call(r, 'value') || r.value === undefined) fail('"value" is required', 'value')
  if (r.ts !== undefined) {
    if (typeof r.ts !== 'number' || !Number.isSafeInteger(r.ts) || r.ts < MIN_DEVICE_TS || r.ts > MAX_DEVICE_TS) {
      fail(`"ts" must be an integer number of ms since the epoch between ${MIN_DEVICE_TS} and ${MAX_DEVICE_TS}`, 'ts')
    }
  }
  if (r.unit !== undefined) {
    if (typeof r.unit !== 'string' || r.unit.length === 0 || r.unit.length > MAX_UNIT_LENGTH) {
      fail(`"unit" must be a string of 1-${MAX_UNIT_LENGTH} characters`, 'unit')
    }
  }
}

/** JSON schema of one reading input (for fastify's validator); `assertReadingInput` is the same contract. */
export const readingInputSchema = {
  type: 'object',
  required: ['sensor', 'value'],
  additionalProperties: false,
  properties: {
    sensor: { type: 'string', minLength: 1, maxLength: 256 },
    value: {},
    ts: { type: 'integer', minimum: MIN_DEVICE_TS, maximum: MAX_DEVICE_TS },
    unit: { type: 'string', minLength: 1, maxLength: MAX_UNIT_LENGTH }
  }
} as const
