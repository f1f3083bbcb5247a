import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import { encodeTimestamp } from '@edge-mesh/hlc'
import {
  CHUNK_VERSION, VIEW_VERSION, ViewSnapshotEncoder, decodeChunk, decodeViewSnapshot, encodeViewSnapshot, readChunkHeader, type JsonValue, type Reading
} from '../src/index.ts'
import { expectedDecoded, readingArb, sensorArb, timestampArb, writerArb } from './arbitraries.ts'
import { KIND, buildChunk, connect, fakeClock, logOf, pushStr, pushVaruint, rawOf, region, T0, winners } from './helpers.ts'

const RUNS = { numRuns: 300 }
// Properties assert with node:assert so fast-check sees the failure and shrinks it; ava then reports the counterexample.

function assertInvalidUpdate (fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: string }).code, 'EM_ERR_INVALID_UPDATE', `${what}: ${String(err)}`)
    assert.equal((err as { name?: string }).name, 'InvalidUpdateError')
    return true
  }, what)
}

test('format versions are 1', t => {
  t.is(CHUNK_VERSION, 1)
  t.is(VIEW_VERSION, 1)
})

test('a writer\'s chunk is byte for byte the documented layout, for every value kind', t => {
  const r = region(fakeClock(), { writer: 'gw-ä' })
  const values: Array<[string, JsonValue | undefined]> = [
    ['tomb', undefined],
    ['null', null],
    ['false', false],
    ['true', true],
    ['num', -12.375],
    ['str', 'plain'],
    ['utf8 sensor 温度', 'ünïcödé 🌡️'],
    ['long', 'L'.repeat(300)], // two-byte length
    ['s'.repeat(200), 1], // sensor id over 127 bytes
    ['json', { a: [1, 'x', null], b: { c: true } }],
    ['arr', [1, [2, [3]]]]
  ]
  const out = r.write(values.map(([sensor, value]) => value === undefined ? { sensor, deleted: true as const } : { sensor, value }))
  const expected = buildChunk('gw-ä', out.map(x => rawOf(x.sensor, x.t, x.value, x.deleted)))
  const log = logOf(r, 'gw-ä')
  t.is(log.length, 1)
  t.deepEqual(Array.from(log[0]), Array.from(expected))
})

test('decodeChunk() gives back the writer and the readings that were written', t => {
  const r = region(fakeClock(), { writer: 'gw-a' })
  const out = r.write([{ sensor: 'a', value: { x: 1 } }, { sensor: 'b', deleted: true }, { sensor: 'c', value: 'z' }])
  const decoded = decodeChunk(logOf(r, 'gw-a')[0])
  t.is(decoded.writer, 'gw-a')
  t.deepEqual(decoded.readings, out)
  t.true(Object.isFrozen(decoded.readings[0].value))
})

test('readChunkHeader() gives the writer and count; batches are split at maxChunkReadings', t => {
  const r = region(fakeClock(), { writer: 'gw-a', maxChunkReadings: 16 })
  r.putMany(Array.from({ length: 40 }, (_, i) => ({ sensor: `s${i}`, value: i })))
  const headers = logOf(r, 'gw-a').map(readChunkHeader)
  t.deepEqual(headers, [{ writer: 'gw-a', count: 16 }, { writer: 'gw-a', count: 16 }, { writer: 'gw-a', count: 8 }])
  t.like(r.stats(), { ownLogChunks: 3, ownLogReadings: 40 })
})

test('decodeChunk() of a hand-built chunk decodes every kind', t => {
  const ts = (l: number): string => encodeTimestamp({ wall: T0, logical: l })
  const chunk = buildChunk('w', [
    { sensor: 'a', t: ts(0), kind: KIND.tombstone },
    { sensor: 'b', t: ts(1), kind: KIND.null },
    { sensor: 'c', t: ts(2), kind: KIND.false },
    { sensor: 'd', t: ts(3), kind: KIND.true },
    { sensor: 'e', t: ts(4), kind: KIND.number, payload: 2.5 },
    { sensor: 'f', t: ts(5), kind: KIND.string, payload: 'ß' },
    { sensor: 'g', t: ts(6), kind: KIND.json, payload: '{"k":[1]}' }
  ])
  const { writer, readings } = decodeChunk(chunk)
  t.is(writer, 'w')
  t.deepEqual(readings.map(r => [r.sensor, r.value, r.deleted, r.writer]), [
    ['a', null, true, 'w'], ['b', null, false, 'w'], ['c', false, false, 'w'], ['d', true, false, 'w'],
    ['e', 2.5, false, 'w'], ['f', 'ß', false, 'w'], ['g', { k: [1] }, false, 'w']
  ])
  t.deepEqual(readings.map(r => r.t), [0, 1, 2, 3, 4, 5, 6].map(ts))
})

test('decodeChunk() and readChunkHeader() refuse malformed chunks with EM_ERR_INVALID_UPDATE', t => {
  const ts = encodeTimestamp({ wall: T0, logical: 0 })
  const ok = { sensor: 's', t: ts, kind: KIND.true }
  const bad: Uint8Array[] = [
    new Uint8Array(0),
    buildChunk('w', [ok], { version: 0 }),
    buildChunk('w', [ok], { version: 2 }),
    buildChunk('', [ok]),
    buildChunk('w\u0001', [ok]),
    buildChunk('w'.repeat(129), [ok]),
    buildChunk('w', [ok], { trailing: [1] }),
    buildChunk('w', [ok], { count: 2 }),
    buildChunk('w', [ok], { count: 2 ** 32 - 1 }),
    Uint8Array.from([1, 1, 0x77, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), // varuint longer than 5 bytes
    buildChunk('w', [{ ...ok, kind: 200 }])
  ]
  for (const chunk of bad) {
    t.throws(() => decodeChunk(chunk), { code: 'EM_ERR_INVALID_UPDATE', name: 'InvalidUpdateError' }, Array.from(chunk).join(','))
  }
  for (const chunk of bad.slice(0, 6)) {
    t.throws(() => readChunkHeader(chunk), { code: 'EM_ERR_INVALID_UPDATE' })
  }
})

test('decodeChunk() refuses a string value length over the hard limit without reading it', t => {
  const out: number[] = [1]
  pushStr(out, 'w')
  pushVaruint(out, 1)
  pushStr(out, 's')
  out.push(...new Array(8).fill(0), KIND.string)
  pushVaruint(out, (1 << 20) + 1)
  t.throws(() => decodeChunk(Uint8Array.from(out)), { code: 'EM_ERR_INVALID_UPDATE' })
})

test('chunk round trip: hand-built chunks of arbitrary readings decode to those readings', t => {
  fc.assert(fc.property(writerArb, fc.array(readingArb, { maxLength: 12 }), (writer, readings) => {
    const chunk = buildChunk(writer, readings.map(r => rawOf(r.sensor, r.t, r.value, r.deleted)))
    const decoded = decodeChunk(chunk)
    assert.equal(decoded.writer, writer)
    assert.deepStrictEqual(decoded.readings, readings.map(r => expectedDecoded({ ...r, writer })))
    assert.deepStrictEqual(readChunkHeader(chunk), { writer, count: readings.length })
  }), RUNS)
  t.pass()
})

test('every truncation of a valid chunk is refused with EM_ERR_INVALID_UPDATE', t => {
  fc.assert(fc.property(writerArb, fc.array(readingArb, { maxLength: 6 }), (writer, readings) => {
    const chunk = buildChunk(writer, readings.map(r => rawOf(r.sensor, r.t, r.value, r.deleted)))
    for (let n = 0; n < chunk.length; n++) assertInvalidUpdate(() => decodeChunk(chunk.subarray(0, n)), `prefix of ${n} bytes`)
  }), { numRuns: 150 })
  t.pass()
})

test('view snapshot round trip: decodeViewSnapshot(encodeViewSnapshot(readings)) gives the readings back', t => {
  fc.assert(fc.property(fc.array(readingArb, { maxLength: 20 }), readings => {
    const bytes = encodeViewSnapshot(readings)
    assert.deepStrictEqual(decodeViewSnapshot(bytes), readings.map(expectedDecoded))
  }), RUNS)
  t.pass()
})

test('a view entry given with its timestamp as the three integers of a slot encodes to the same bytes as the same reading', t => {
  fc.assert(fc.property(fc.array(readingArb, { maxLength: 20 }), readings => {
    const byReading = new ViewSnapshotEncoder()
    const byParts = new ViewSnapshotEncoder()
    for (const r of readings) {
      byReading.add(r)
      byParts.addParts(r.sensor, parseInt(r.t.slice(0, 6), 16), parseInt(r.t.slice(6, 12), 16), parseInt(r.t.slice(12), 16), r.writer, r.deleted, r.value)
    }
    assert.deepStrictEqual(byParts.finish(), byReading.finish())
  }), RUNS)
  t.pass()
})

test('view snapshot round trip holds with a tiny size hint (the encoder grows its buffer)', t => {
  fc.assert(fc.property(fc.array(readingArb, { minLength: 1, maxLength: 20 }), readings => {
    assert.deepStrictEqual(decodeViewSnapshot(encodeViewSnapshot(readings, 1)), readings.map(expectedDecoded))
  }), { numRuns: 100 })
  t.pass()
})

test('every truncation of a valid view snapshot is refused with EM_ERR_INVALID_UPDATE', t => {
  fc.assert(fc.property(fc.array(readingArb, { maxLength: 6 }), readings => {
    const bytes = encodeViewSnapshot(readings)
    for (let n = 0; n < bytes.length; n++) assertInvalidUpdate(() => decodeViewSnapshot(bytes.subarray(0, n)), `prefix of ${n} bytes`)
  }), { numRuns: 150 })
  t.pass()
})

test('a view snapshot with a trailing byte, a bad version, a bad writer or a writer index out of range is refused', t => {
  const reading: Reading = { sensor: 's', value: 1, t: encodeTimestamp({ wall: T0, logical: 0 }), writer: 'w', deleted: false }
  const good = encodeViewSnapshot([reading])
  t.deepEqual(decodeViewSnapshot(good), [reading])
  t.throws(() => decodeViewSnapshot(Uint8Array.from([...good, 0])), { code: 'EM_ERR_INVALID_UPDATE' })
  t.throws(() => decodeViewSnapshot(Uint8Array.from([2, ...good.subarray(1)])), { code: 'EM_ERR_INVALID_UPDATE' })
  // view := version:u8 writers:varuint writer:str{writers} count:varuint entry{count}; entry := writerIndex:varuint reading
  t.deepEqual(Array.from(good.subarray(0, 6)), [1, 1, 1, 0x77, 1, 0], 'layout of the header and the first writer index')
  const readingBytes = Array.from(good.subarray(6))
  t.throws(() => decodeViewSnapshot(Uint8Array.from([1, 1, 1, 0x77, 1, 1, ...readingBytes])), { code: 'EM_ERR_INVALID_UPDATE' })
  t.deepEqual(decodeViewSnapshot(Uint8Array.from([1, 2, 1, 0x76, 1, 0x77, 1, 1, ...readingBytes])), [reading], 'index 1 of two writers')
  const badWriter: number[] = [1, 1, 0, 0]
  t.throws(() => decodeViewSnapshot(Uint8Array.from(badWriter)), { code: 'EM_ERR_INVALID_UPDATE' })
  t.throws(() => decodeViewSnapshot(Uint8Array.from([1, 0xff, 0xff, 0xff, 0xff, 0x0f])), { code: 'EM_ERR_INVALID_UPDATE' })
})

test('sensor, writer and timestamp arbitraries cover the edges they claim (sanity of the generators)', t => {
  const sensors = fc.sample(sensorArb, 500)
  t.true(sensors.some(s => s.length >= 254))
  t.true(sensors.some(s => /[^\x00-\x7f]/.test(s)))
  t.true(fc.sample(writerArb, 200).every(w => w.length >= 1 && w.length <= 128))
  t.true(fc.sample(timestampArb, 200).every(x => x.length === 16))
})

test('encodeSnapshot()/loadSnapshot() restore the view, tombstones and readings no log holds any more', async t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  const b = region(clock, { writer: 'gw-b', compaction: { stepReadings: 1_000 } })
  const c = region(clock, { writer: 'gw-c' })
  connect(a, b)
  // a holds b's reading of k as the winner; b then learns of c's later reading (a does not) and its
  // compaction drops its own beaten reading, deleting it from a's doc too.
  b.put('k', 'from b')
  clock.ms += 1
  c.put('k', 'from c')
  b.applyUpdate(c.encodeStateAsUpdate())
  t.like(b.compactStep(), { readings: 1, kept: 0 })
  t.is(a.get('k')?.value, 'from b', 'precondition: a never saw c\'s reading')
  t.deepEqual(logOf(a, 'gw-b'), [], 'precondition: no log in a\'s doc holds k any more')
  a.put('x', [1, 2])
  a.delete('y')
  const snap = await a.encodeSnapshot()
  t.deepEqual(decodeViewSnapshot(snap.view).map(r => r.sensor).sort(), ['k', 'x', 'y'], 'the view part lists every winner, tombstones included')
  const sliced = await a.encodeSnapshot(1)
  t.deepEqual(decodeViewSnapshot(sliced.view), decodeViewSnapshot(snap.view), 'encoding in slices of one entry gives the same view')
  const restored = region(clock, { writer: 'gw-a' })
  restored.loadSnapshot(snap.doc, snap.view)
  t.deepEqual(winners(restored, ['k', 'x', 'y']), winners(a, ['k', 'x', 'y']))
  t.is(winners(a, ['k', 'x', 'y']).length, 3)
  t.is(restored.get('k')?.value, 'from b')
  const next = restored.put('z', 1)
  t.true(next.t > a.hlc.last(), 'the restored clock issues past every restored reading')
})

test('the encoder refuses a string with a lone surrogate instead of storing a replaced one', t => {
  // UTF-8 cannot carry a lone surrogate; TextEncoder would silently store U+FFFD instead.
  const r: Reading = { sensor: 's', value: 'a\uD83Db', t: encodeTimestamp({ wall: T0, logical: 0 }), writer: 'w', deleted: false }
  const err = t.throws(() => encodeViewSnapshot([r]))
  t.is((err as { code?: string }).code, 'EM_ERR_INVALID_VALUE')
})
