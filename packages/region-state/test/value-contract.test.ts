import test from 'ava'
import type { ValueTooLargeError } from '@edge-mesh/errors'
import { HARD_MAX_VALUE_BYTES, MAX_DEPTH, MAX_SENSOR_LENGTH, type JsonValue, type WriteInput } from '../src/index.ts'
import { connect, fakeClock, fingerprint, recordLocalUpdates, region } from './helpers.ts'

/** `n` nested containers: nestArrays(1) = [], nestArrays(2) = [[]], ... */
function nestArrays (n: number): JsonValue {
  let v: JsonValue = []
  for (let i = 1; i < n; i++) v = [v]
  return v
}

function nestObjects (n: number): JsonValue {
  let v: JsonValue = { leaf: true }
  for (let i = 1; i < n; i++) v = { child: v }
  return v
}

const accepted: Array<[string, JsonValue]> = [
  ['null', null],
  ['true', true],
  ['false', false],
  ['zero', 0],
  ['negative zero', -0],
  ['negative float', -273.15],
  ['largest double', Number.MAX_VALUE],
  ['smallest subnormal', Number.MIN_VALUE],
  ['max safe integer', Number.MAX_SAFE_INTEGER],
  ['empty string', ''],
  ['ascii string', 'hello'],
  ['non-ASCII string', 'Grüße, Zürich — température 21 °C'],
  ['emoji string', '🌡️🔥 ok 👍🏽'],
  ['CJK string over 128 bytes', '温度センサー'.repeat(30)],
  ['long ascii string', 'x'.repeat(5_000)],
  ['string with control characters', 'a\u0000b\nc\td'],
  ['empty array', []],
  ['empty object', {}],
  ['nested array and object', { a: [1, 'two', null, true, { b: [[], {}] }], 'ключ': '值', '🔑': -1.5 }],
  ['array of mixed values', [0, -1, 1e300, 'é', false, null, [null]]],
  [`${MAX_DEPTH} nested arrays`, nestArrays(MAX_DEPTH)],
  [`${MAX_DEPTH} nested objects`, nestObjects(MAX_DEPTH)]
]

for (const [name, value] of accepted) {
  test(`value contract accepts ${name} and it reads back equal, locally and on a replica`, t => {
    const clock = fakeClock()
    const a = region(clock, { writer: 'gw-a' })
    const b = region(clock, { writer: 'gw-b' })
    connect(a, b)
    const written = a.put('s', value)
    t.deepEqual(written.value, value)
    t.deepEqual(a.get('s')?.value, value)
    t.deepEqual(b.get('s')?.value, value)
    if (typeof value === 'number') {
      t.true(Object.is(a.get('s')?.value, value), 'a number keeps its exact bits, -0 included')
      t.true(Object.is(b.get('s')?.value, value))
    }
  })
}

test('a null-prototype object is accepted and reads back as an equal plain object', t => {
  const r = region(fakeClock())
  const v = Object.assign(Object.create(null) as Record<string, JsonValue>, { a: 1, b: [2] })
  r.put('s', v)
  t.deepEqual(r.get('s')?.value, { a: 1, b: [2] })
})

test('an object referenced twice (not a cycle) is accepted', t => {
  const r = region(fakeClock())
  const shared = { x: 1 }
  r.put('s', { left: shared, right: shared, list: [shared, shared] })
  t.deepEqual(r.get('s')?.value, { left: { x: 1 }, right: { x: 1 }, list: [{ x: 1 }, { x: 1 }] })
})

test('containers read back deeply frozen, on the writer (get and returned reading) and on a replica', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  const written = a.put('s', { list: [1, { deep: [2] }], obj: { k: 'v' } })
  for (const v of [written.value, a.get('s')?.value, b.get('s')?.value, a.winner('s')?.value]) {
    const o = v as { list: [number, { deep: number[] }], obj: { k: string } }
    t.true(Object.isFrozen(o))
    t.true(Object.isFrozen(o.list))
    t.true(Object.isFrozen(o.list[1]))
    t.true(Object.isFrozen(o.list[1].deep))
    t.true(Object.isFrozen(o.obj))
    t.throws(() => { (o.obj as { k: string }).k = 'changed' }, { instanceOf: TypeError })
  }
})

test('changing the caller\'s object after put does not change the view', t => {
  const r = region(fakeClock())
  const input = { temp: 21, tags: ['a'] }
  r.put('s', input)
  input.temp = 99
  input.tags.push('b')
  t.deepEqual(r.get('s')?.value, { temp: 21, tags: ['a'] })
  t.false(Object.isFrozen(input), 'the caller\'s object is left alone')
})

class Point { x = 1; y = 2 }

const sparse: JsonValue[] = [1, 2, 3]
// eslint-disable-next-line @typescript-eslint/no-array-delete
delete sparse[1]
const holey = new Array(3) as JsonValue[]
const cycle: Record<string, unknown> = { a: 1 }
cycle.self = cycle
const arrayCycle: unknown[] = [1]
arrayCycle.push([arrayCycle])
const symbolKey = { a: 1, [Symbol('k')]: 2 }

const refused: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['a function', () => 1],
  ['a symbol', Symbol('s')],
  ['a bigint', 10n],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['a Date', new Date(0)],
  ['a Map', new Map([['a', 1]])],
  ['a Set', new Set([1])],
  ['a class instance', new Point()],
  ['a typed array', new Uint8Array([1, 2])],
  ['a regular expression', /x/],
  ['a boxed number', Object(1)],
  ['a sparse array (deleted element)', sparse],
  ['a sparse array (holes)', holey],
  ['a cycle through an object', cycle],
  ['a cycle through nested arrays', arrayCycle],
  ['an object with a symbol key', symbolKey],
  ['undefined inside an object', { a: undefined }],
  ['undefined inside an array', [1, undefined]],
  ['NaN nested in an object', { deep: { n: NaN } }],
  ['a function nested in an array', [[() => 1]]],
  ['a bigint nested in an object', { n: 1n }],
  ['a Date nested in an array', [new Date(0)]],
  [`${MAX_DEPTH + 1} nested arrays`, nestArrays(MAX_DEPTH + 1)],
  [`${MAX_DEPTH + 1} nested objects`, nestObjects(MAX_DEPTH + 1)]
]

for (const [name, value] of refused) {
  test(`value contract refuses ${name} with EM_ERR_INVALID_VALUE and writes nothing`, t => {
    const r = region(fakeClock())
    r.put('existing', 1)
    const before = fingerprint(r)
    const updates = recordLocalUpdates(r)
    t.throws(() => r.put('s', value as JsonValue), { code: 'EM_ERR_INVALID_VALUE', name: 'InvalidValueError' })
    t.throws(() => r.putMany([{ sensor: 's', value: value as JsonValue }]), { code: 'EM_ERR_INVALID_VALUE' })
    t.deepEqual(fingerprint(r), before)
    t.is(updates.length, 0)
    t.is(r.get('s'), undefined)
  })
}

test('a value over maxValueBytes is refused with EM_ERR_VALUE_TOO_LARGE naming the bytes and the limit', t => {
  const r = region(fakeClock(), { maxValueBytes: 1000 })
  const err = t.throws<ValueTooLargeError>(() => r.put('s', 'x'.repeat(2000)), { code: 'EM_ERR_VALUE_TOO_LARGE', name: 'ValueTooLargeError' })
  t.like(err?.details, { bytes: 2000, limit: 1000 })
  t.is(r.get('s'), undefined)
  t.is(r.stats().ownLogReadings, 0)
})

test('maxValueBytes is inclusive: a value of exactly the limit is accepted, one byte more is refused', t => {
  const r = region(fakeClock(), { maxValueBytes: 1000 })
  t.notThrows(() => r.put('s', 'x'.repeat(1000)))
  t.throws(() => r.put('s', 'x'.repeat(1001)), { code: 'EM_ERR_VALUE_TOO_LARGE' })
  t.is((r.get('s')?.value as string).length, 1000)
})

test('the size limit counts UTF-8 bytes, not characters', t => {
  const r = region(fakeClock(), { maxValueBytes: 1000 })
  // '€' is 3 bytes in UTF-8: 400 characters are 1200 bytes.
  const err = t.throws<ValueTooLargeError>(() => r.put('s', '€'.repeat(400)), { code: 'EM_ERR_VALUE_TOO_LARGE' })
  t.like(err?.details, { bytes: 1200, limit: 1000 })
  // '😀' is 2 UTF-16 units and 4 bytes: 251 of them are 1004 bytes.
  t.throws(() => r.put('s', '😀'.repeat(251)), { code: 'EM_ERR_VALUE_TOO_LARGE' })
  t.notThrows(() => r.put('s', '€'.repeat(333)))
  t.notThrows(() => r.put('s', '😀'.repeat(250)))
  t.is(r.get('s')?.value, '😀'.repeat(250))
})

test('the size limit applies to the JSON text of containers', t => {
  const r = region(fakeClock(), { maxValueBytes: 100 })
  t.throws(() => r.put('s', { text: 'y'.repeat(100) }), { code: 'EM_ERR_VALUE_TOO_LARGE' })
  t.throws(() => r.put('s', Array.from({ length: 60 }, () => 1)), { code: 'EM_ERR_VALUE_TOO_LARGE' })
  t.notThrows(() => r.put('s', { text: 'y'.repeat(80) }))
})

test('the default limit refuses a value over 64 KiB', t => {
  const r = region(fakeClock())
  t.throws(() => r.put('s', 'z'.repeat(65_537)), { code: 'EM_ERR_VALUE_TOO_LARGE' })
  t.notThrows(() => r.put('s', 'z'.repeat(65_536)))
})

test('a region configured with the hard maximum accepts a value of 1 MiB and refuses more', t => {
  const r = region(fakeClock(), { maxValueBytes: HARD_MAX_VALUE_BYTES })
  t.notThrows(() => r.put('s', 'h'.repeat(HARD_MAX_VALUE_BYTES)))
  t.throws(() => r.put('s', 'h'.repeat(HARD_MAX_VALUE_BYTES + 1)), { code: 'EM_ERR_VALUE_TOO_LARGE' })
})

const badSensors: Array<[string, unknown]> = [
  ['that is an empty string', ''],
  ['that is a number', 42],
  ['that is null', null],
  ['that is undefined', undefined],
  ['that is an object', { id: 's' }],
  [`of ${MAX_SENSOR_LENGTH + 1} characters`, 's'.repeat(MAX_SENSOR_LENGTH + 1)],
  ['containing a NUL character', 'a\u0000b'],
  ['containing a newline', 'line-1\ntemp'],
  ['containing a tab', '\tleading'],
  ['containing a unit separator', 'a\u001fb'],
  ['containing DEL', 'a\u007f']
]

for (const [name, sensor] of badSensors) {
  test(`a sensor id ${name} is refused with EM_ERR_INVALID_SENSOR by put, delete and write`, t => {
    const r = region(fakeClock())
    const before = fingerprint(r)
    t.throws(() => r.put(sensor as string, 1), { code: 'EM_ERR_INVALID_SENSOR', name: 'InvalidSensorError' })
    t.throws(() => r.delete(sensor as string), { code: 'EM_ERR_INVALID_SENSOR' })
    t.throws(() => r.write([{ sensor: sensor as string, deleted: true }]), { code: 'EM_ERR_INVALID_SENSOR' })
    t.deepEqual(fingerprint(r), before)
  })
}

test(`a sensor id of exactly ${MAX_SENSOR_LENGTH} characters, non-ASCII and emoji ids are accepted`, t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  const ids = ['s'.repeat(MAX_SENSOR_LENGTH), 'é'.repeat(MAX_SENSOR_LENGTH), 'Halle 3/Temperatur °C', '🌡️/north', 'with space']
  for (const id of ids) a.put(id, id.length)
  t.deepEqual(a.list(), [...ids].sort())
  t.deepEqual(b.list(), [...ids].sort())
  for (const id of ids) t.is(b.get(id)?.value, id.length)
})

test('a write() batch with one bad input writes nothing: no state change, no stats change, no update event', t => {
  const clock = fakeClock()
  const r = region(clock, { maxValueBytes: 100 })
  r.put('keep', 'old')
  const before = fingerprint(r)
  const updates = recordLocalUpdates(r)
  const changes: unknown[] = []
  r.on('change', c => changes.push(c))
  const batches: Array<[string, WriteInput[], string]> = [
    ['bad value last', [{ sensor: 'keep', value: 'new' }, { sensor: 'n', value: 1 }, { sensor: 'x', value: NaN }], 'EM_ERR_INVALID_VALUE'],
    ['bad sensor in the middle', [{ sensor: 'a', value: 1 }, { sensor: '', value: 2 }, { sensor: 'b', value: 3 }], 'EM_ERR_INVALID_SENSOR'],
    ['too large first', [{ sensor: 'big', value: 'q'.repeat(200) }, { sensor: 'keep', deleted: true }], 'EM_ERR_VALUE_TOO_LARGE'],
    ['bad delete', [{ sensor: 'keep', deleted: true }, { sensor: 'a\nb', deleted: true }], 'EM_ERR_INVALID_SENSOR']
  ]
  for (const [, batch, code] of batches) {
    t.throws(() => r.write(batch), { code })
  }
  t.throws(() => r.putMany([{ sensor: 'a', value: 1 }, { sensor: 'b', value: undefined as unknown as JsonValue }]), { code: 'EM_ERR_INVALID_VALUE' })
  t.deepEqual(fingerprint(r), before)
  t.is(r.get('keep')?.value, 'old')
  t.is(updates.length, 0)
  t.is(changes.length, 0)
})

// Regression: a lone UTF-16 surrogate cannot be stored as UTF-8 (it became U+FFFD on replicas);
// it is refused instead.
test('a string value with a lone surrogate is either refused or reads back equal on a replica', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  let refused = false
  try {
    a.put('s', 'x\uD800y')
  } catch (err) {
    refused = (err as { code?: string }).code === 'EM_ERR_INVALID_VALUE'
  }
  if (!refused) t.is(b.get('s')?.value, a.get('s')?.value)
  else t.pass()
})

test('a sensor id with a lone surrogate is either refused or is the same key on a replica', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  let refused = false
  try {
    a.put('k\uDC00', 1)
  } catch (err) {
    refused = (err as { code?: string }).code === 'EM_ERR_INVALID_SENSOR'
  }
  if (!refused) t.deepEqual(b.list(), a.list())
  else t.pass()
})
