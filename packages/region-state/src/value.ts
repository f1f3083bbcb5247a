/**
 * The value contract. A sensor value is JSON-compatible data:
 *
 * - `null`, `true`, `false`
 * - a finite number (NaN and ±Infinity are refused)
 * - a string
 * - an array or a plain object (prototype `Object.prototype` or `null`) of the above,
 *   nested at most {@link MAX_DEPTH} deep, without cycles, without symbol keys
 *
 * Anything else (undefined, functions, symbols, bigints, Dates, Maps, class instances, typed
 * arrays, sparse array holes) is refused with an `InvalidValueError` (code `EM_ERR_INVALID_VALUE`)
 * that names the path of the offending part. A value whose encoding is larger than the limit is
 * refused with a `ValueTooLargeError` (`EM_ERR_VALUE_TOO_LARGE`).
 *
 * Strings (values, object keys, sensor ids) must be well-formed Unicode: a lone surrogate cannot be
 * encoded in UTF-8, so it would reach other replicas changed; it is refused instead.
 *
 * Sensor ids are strings of 1 to {@link MAX_SENSOR_LENGTH} UTF-16 code units without control
 * characters; anything else is an `InvalidSensorError` (`EM_ERR_INVALID_SENSOR`).
 */
import { InvalidSensorError, InvalidValueError } from '@edge-mesh/errors'

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue }

/** Deepest nesting of arrays and objects in a value. */
export const MAX_DEPTH = 32
/** Longest sensor id, in UTF-16 code units. */
export const MAX_SENSOR_LENGTH = 256
/** Hard ceiling on an encoded value, whatever a region is configured with (1 MiB). */
export const HARD_MAX_VALUE_BYTES = 1 << 20

// eslint-disable-next-line no-control-regex
const SENSOR_RE = /^[^\u0000-\u001f\u007f]+$/

export function assertSensorId (sensor: unknown): asserts sensor is string {
  if (typeof sensor !== 'string') {
    throw new InvalidSensorError(`sensor id must be a string, got ${typeof sensor}`)
  }
  if (sensor.length === 0 || sensor.length > MAX_SENSOR_LENGTH) {
    throw new InvalidSensorError(`sensor id must be 1 to ${MAX_SENSOR_LENGTH} characters long`, { length: sensor.length })
  }
  if (!SENSOR_RE.test(sensor)) {
    throw new InvalidSensorError('sensor id must not contain control characters', { sensor })
  }
  if (!sensor.isWellFormed()) {
    throw new InvalidSensorError('sensor id must be well-formed Unicode (no lone surrogates)', { sensor })
  }
}

export function isValidSensorId (sensor: unknown): sensor is string {
  return typeof sensor === 'string' && sensor.length > 0 && sensor.length <= MAX_SENSOR_LENGTH && SENSOR_RE.test(sensor) && sensor.isWellFormed()
}

/**
 * Checks that an array or object value follows the contract. Primitives are checked by the
 * caller's fast path; this walks containers. Throws InvalidValueError naming the path.
 */
export function assertJsonContainer (value: object, path: string = '$', depth: number = 1, stack: object[] = []): void {
  if (depth > MAX_DEPTH) throw new InvalidValueError(`value nests deeper than ${MAX_DEPTH} levels`, { path })
  if (stack.includes(value)) throw new InvalidValueError('value contains a cycle', { path })
  stack.push(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw new InvalidValueError('sparse arrays are not allowed', { path: `${path}[${i}]` })
      assertJsonMember(value[i], `${path}[${i}]`, depth, stack)
    }
  } else {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object'
      throw new InvalidValueError(`${kind} is not a plain object`, { path })
    }
    if (Object.getOwnPropertySymbols(value).length > 0) {
      throw new InvalidValueError('symbol keys are not allowed', { path })
    }
    for (const key of Object.keys(value)) {
      if (!key.isWellFormed()) throw new InvalidValueError('object keys must be well-formed Unicode (no lone surrogates)', { path })
      assertJsonMember((value as Record<string, unknown>)[key], `${path}.${key}`, depth, stack)
    }
  }
  stack.pop()
}

function assertJsonMember (v: unknown, path: string, depth: number, stack: object[]): void {
  switch (typeof v) {
    case 'string':
      if (!v.isWellFormed()) throw new InvalidValueError('strings must be well-formed Unicode (no lone surrogates)', { path })
      return
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(v)) throw new InvalidValueError(`${v} is not a finite number`, { path })
      return
    case 'object':
      if (v === null) return
      assertJsonContainer(v, path, depth + 1, stack)
      return
    default:
      throw new InvalidValueError(`${typeof v} is not a JSON value`, { path })
  }
}

/** Freezes a decoded JSON container and everything in it, so that readers cannot change the view. */
export function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
