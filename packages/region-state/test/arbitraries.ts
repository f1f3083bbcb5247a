/** fast-check arbitraries shared by the property tests. */
import fc from 'fast-check'
import { MAX_LOGICAL, MAX_WALL, encodeTimestamp } from '@edge-mesh/hlc'
import { MAX_SENSOR_LENGTH, isValidSensorId, isValidWriterId, type JsonValue, type Reading } from '../src/index.ts'
import { normalize } from './helpers.ts'

const wellFormed = (s: string): boolean => s.isWellFormed()

/** Valid sensor ids: short ASCII, Unicode graphemes, and lengths up to the limit. */
export const sensorArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme-ascii', minLength: MAX_SENSOR_LENGTH - 2, maxLength: MAX_SENSOR_LENGTH })
).filter(s => isValidSensorId(s) && wellFormed(s))

export const writerArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('gw-a', 'gw-b', '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
).filter(w => isValidWriterId(w) && wellFormed(w))

export const timestampArb: fc.Arbitrary<string> = fc.record({
  wall: fc.oneof(fc.integer({ min: 0, max: MAX_WALL }), fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }), fc.constantFrom(0, MAX_WALL)),
  logical: fc.oneof(fc.integer({ min: 0, max: MAX_LOGICAL }), fc.constantFrom(0, MAX_LOGICAL))
}).map(encodeTimestamp)

function finiteOnly (v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v)
  if (Array.isArray(v)) return v.every(finiteOnly)
  if (v !== null && typeof v === 'object') return Object.values(v).every(finiteOnly)
  return true
}

/** JSON values (well-formed strings, finite numbers, modest depth). */
export const jsonArb: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.jsonValue({ maxDepth: 4, stringUnit: 'grapheme' }),
  fc.jsonValue({ maxDepth: 2 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'grapheme', maxLength: 200 })
).filter(finiteOnly) as fc.Arbitrary<JsonValue>

export const readingArb: fc.Arbitrary<Reading> = fc.record({
  sensor: sensorArb,
  value: jsonArb,
  t: timestampArb,
  writer: writerArb,
  deleted: fc.boolean()
})

/** How a reading decodes: tombstones carry null, containers go through their JSON text. */
export function expectedDecoded (r: Reading): Reading {
  return { sensor: r.sensor, value: r.deleted ? null : normalize(r.value), t: r.t, writer: r.writer, deleted: r.deleted }
}
