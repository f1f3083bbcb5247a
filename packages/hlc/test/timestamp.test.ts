import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import {
  MAX_LOGICAL, MAX_WALL, TIMESTAMP_BYTE_LENGTH, TIMESTAMP_STRING_LENGTH, ZERO_TIMESTAMP,
  compareTimestamps, decodeTimestamp, encodeTimestamp, isTimestamp, readTimestampBytes, wallOf, writeTimestampBytes
} from '../src/index.ts'
import type { Timestamp } from '../src/index.ts'

const RUNS = { numRuns: 1000 }
// Properties assert with node:assert so fast-check sees the failure and shrinks it; ava then reports the counterexample.

// Uniform values plus the byte and word boundaries where a wrong shift or sign would show.
const wallArb = fc.oneof(
  fc.integer({ min: 0, max: MAX_WALL }),
  fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
  fc.constantFrom(0, 1, 0xff, 0x100, 0x7fffffff, 0x80000000, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 47, MAX_WALL - 1, MAX_WALL)
)
const logicalArb = fc.oneof(fc.integer({ min: 0, max: MAX_LOGICAL }), fc.constantFrom(0, 1, 0xff, 0x100, 0x7fff, 0x8000, MAX_LOGICAL))
const timestampArb: fc.Arbitrary<Timestamp> = fc.record({ wall: wallArb, logical: logicalArb })
// Independent pairs almost always differ in wall, so also draw pairs that share it.
const pairArb: fc.Arbitrary<[Timestamp, Timestamp]> = fc.oneof(
  fc.tuple(timestampArb, timestampArb),
  fc.tuple(wallArb, logicalArb, logicalArb).map(([wall, a, b]): [Timestamp, Timestamp] => [{ wall, logical: a }, { wall, logical: b }]),
  timestampArb.map((ts): [Timestamp, Timestamp] => [ts, ts])
)

function hlcOrder (a: Timestamp, b: Timestamp): -1 | 0 | 1 {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1
  return 0
}

function toBytes (t: string): Uint8Array {
  const bytes = new Uint8Array(TIMESTAMP_BYTE_LENGTH)
  writeTimestampBytes(t, bytes, 0)
  return bytes
}

function compareBytes (a: Uint8Array, b: Uint8Array): -1 | 0 | 1 {
  const c = Buffer.compare(a, b)
  return c < 0 ? -1 : c > 0 ? 1 : 0
}

test('encoding is 12 hex digits of wall then 4 of logical, and the bytes are big-endian', t => {
  const s = encodeTimestamp({ wall: 0x0123456789ab, logical: 0xcdef })
  t.is(s, '0123456789abcdef')
  t.deepEqual([...toBytes(s)], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])
  t.is(encodeTimestamp({ wall: 0, logical: 0 }), ZERO_TIMESTAMP)
  t.is(encodeTimestamp({ wall: MAX_WALL, logical: MAX_LOGICAL }), 'ffffffffffffffff')
  t.is(ZERO_TIMESTAMP.length, TIMESTAMP_STRING_LENGTH)
  t.deepEqual(decodeTimestamp('ffffffffffffffff'), { wall: MAX_WALL, logical: MAX_LOGICAL })
})

test('encode then decode returns the same wall and logical, as a valid 16-char string', t => {
  fc.assert(fc.property(timestampArb, ts => {
    const s = encodeTimestamp(ts)
    assert.ok(isTimestamp(s))
    assert.equal(s.length, TIMESTAMP_STRING_LENGTH)
    assert.deepEqual(decodeTimestamp(s), { wall: ts.wall, logical: ts.logical })
    assert.equal(wallOf(s), ts.wall)
  }), RUNS)
  t.pass()
})

test('string order (compareTimestamps and <) equals HLC order by (wall, logical)', t => {
  fc.assert(fc.property(pairArb, ([a, b]) => {
    const ea = encodeTimestamp(a)
    const eb = encodeTimestamp(b)
    const expected = hlcOrder(a, b)
    assert.equal(compareTimestamps(ea, eb), expected)
    assert.equal(ea < eb, expected < 0)
    assert.equal(ea === eb, expected === 0)
  }), RUNS)
  t.pass()
})

test('bytes written then read at any offset give back the timestamp and touch only 8 bytes', t => {
  fc.assert(fc.property(timestampArb, fc.nat(16), fc.nat(16), fc.integer({ min: 0, max: 255 }), (ts, offset, slack, fill) => {
    const s = encodeTimestamp(ts)
    const buf = new Uint8Array(offset + TIMESTAMP_BYTE_LENGTH + slack).fill(fill)
    writeTimestampBytes(s, buf, offset)
    assert.equal(readTimestampBytes(buf, offset), s)
    assert.ok(buf.subarray(0, offset).every(b => b === fill))
    assert.ok(buf.subarray(offset + TIMESTAMP_BYTE_LENGTH).every(b => b === fill))
  }), RUNS)
  t.pass()
})

test('any 8 bytes read as a valid timestamp that writes back to the same bytes', t => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), bytes => {
    const s = readTimestampBytes(bytes, 0)
    assert.ok(isTimestamp(s))
    assert.deepEqual(toBytes(s), bytes)
  }), RUNS)
  t.pass()
})

test('lexicographic order of the 8 bytes equals HLC order', t => {
  fc.assert(fc.property(pairArb, ([a, b]) => {
    assert.equal(compareBytes(toBytes(encodeTimestamp(a)), toBytes(encodeTimestamp(b))), hlcOrder(a, b))
  }), RUNS)
  t.pass()
})

const malformed: Array<[string, unknown]> = [
  ['empty string', ''],
  ['uppercase hex', '0123456789ABCDEF'],
  ['15 chars', '000000000000000'],
  ['17 chars', '00000000000000000'],
  ['non-hex char', '000000000000000g'],
  ['0x prefix', '0x00000000000000'],
  ['sign', '-000000000000001'],
  ['whitespace', ' 000000000000000'],
  ['trailing newline', '000000000000000\n'],
  ['full-width digits', '０００００００００００００００１'],
  ['number', 1],
  ['null', null],
  ['undefined', undefined],
  ['object', {}],
  ['boxed string', new String('0000000000000000')]
]

test('malformed strings and non-strings are rejected with EM_ERR_INVALID_TIMESTAMP', t => {
  for (const [label, value] of malformed) {
    t.false(isTimestamp(value), label)
    t.throws(() => decodeTimestamp(value as string), { code: 'EM_ERR_INVALID_TIMESTAMP', name: 'InvalidTimestampError' }, label)
    t.throws(() => writeTimestampBytes(value as string, new Uint8Array(8), 0), { code: 'EM_ERR_INVALID_TIMESTAMP' }, label)
  }
})

test('encodeTimestamp rejects out-of-range and non-integer fields with EM_ERR_INVALID_TIMESTAMP', t => {
  const bad: Array<Record<string, unknown>> = [
    { wall: -1, logical: 0 }, { wall: MAX_WALL + 1, logical: 0 }, { wall: 1.5, logical: 0 },
    { wall: Number.NaN, logical: 0 }, { wall: Infinity, logical: 0 }, { wall: '1', logical: 0 },
    { wall: 0, logical: -1 }, { wall: 0, logical: MAX_LOGICAL + 1 }, { wall: 0, logical: 0.5 }, { wall: 0 }
  ]
  for (const ts of bad) {
    t.throws(() => encodeTimestamp(ts as unknown as Timestamp), { code: 'EM_ERR_INVALID_TIMESTAMP' }, JSON.stringify(ts))
  }
})

test('readTimestampBytes with fewer than 8 bytes remaining throws EM_ERR_INVALID_TIMESTAMP', t => {
  t.throws(() => readTimestampBytes(new Uint8Array(7), 0), { code: 'EM_ERR_INVALID_TIMESTAMP' })
  t.throws(() => readTimestampBytes(new Uint8Array(10), 3), { code: 'EM_ERR_INVALID_TIMESTAMP' })
  t.throws(() => readTimestampBytes(new Uint8Array(10), -1), { code: 'EM_ERR_INVALID_TIMESTAMP' })
  t.is(readTimestampBytes(new Uint8Array(10), 2), ZERO_TIMESTAMP)
})

test('writeTimestampBytes without 8 bytes of room throws RangeError and writes nothing', t => {
  const buf = new Uint8Array(10)
  t.throws(() => writeTimestampBytes('ffffffffffffffff', buf, 3), { instanceOf: RangeError })
  t.throws(() => writeTimestampBytes('ffffffffffffffff', buf, -1), { instanceOf: RangeError })
  t.true(buf.every(b => b === 0))
})
