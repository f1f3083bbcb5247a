import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import type { JsonValue } from '../src/index.ts'
import { jsonArb } from './arbitraries.ts'
import { fakeClock, logOf, normalize, recordLocalUpdates, region, shuffleWithDuplicates, winners } from './helpers.ts'

// Properties assert with node:assert so fast-check sees the failure and shrinks it; ava then reports the counterexample.

const SENSORS = ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']

type Op =
  | { op: 'put', sensor: number, value: JsonValue }
  | { op: 'putMany', entries: Array<{ sensor: number, value: JsonValue }> }
  | { op: 'delete', sensor: number }
  | { op: 'compact' }
  | { op: 'tick', ms: number }

const sensorIndex = fc.integer({ min: 0, max: SENSORS.length - 1 })
const smallValue: fc.Arbitrary<JsonValue> = fc.oneof(
  { arbitrary: fc.integer(), weight: 4 },
  { arbitrary: jsonArb, weight: 1 }
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('put' as const), sensor: sensorIndex, value: smallValue }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('putMany' as const), entries: fc.array(fc.record({ sensor: sensorIndex, value: smallValue }), { minLength: 1, maxLength: 6 }) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), sensor: sensorIndex }), weight: 2 },
  { arbitrary: fc.constant({ op: 'compact' as const }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 3 }) }), weight: 1 }
)

test('A\'s view equals a last-writer-wins reference map, and a replica applying A\'s updates shuffled and duplicated ends equal', t => {
  let runsWithCompaction = 0
  let runsWithGaps = 0
  fc.assert(fc.property(fc.array(opArb, { maxLength: 80 }), fc.integer(), fc.boolean(), (ops, seed, smallSteps) => {
    const clock = fakeClock()
    // Small compaction settings so that automatic steps (during writes) also happen.
    const a = region(clock, {
      writer: 'gw-a',
      compaction: smallSteps ? { stepReadings: 4, ratio: 1 } : { stepReadings: 16, ratio: 2 },
      maxChunkReadings: 3
    })
    const updates = recordLocalUpdates(a)
    const reference = new Map<string, JsonValue>()
    for (const op of ops) {
      switch (op.op) {
        case 'put':
          a.put(SENSORS[op.sensor], op.value)
          reference.set(SENSORS[op.sensor], normalize(op.value))
          break
        case 'putMany':
          a.putMany(op.entries.map(e => ({ sensor: SENSORS[e.sensor], value: e.value })))
          for (const e of op.entries) reference.set(SENSORS[e.sensor], normalize(e.value))
          break
        case 'delete':
          a.delete(SENSORS[op.sensor])
          reference.delete(SENSORS[op.sensor])
          break
        case 'compact': {
          const before = winners(a, SENSORS)
          a.compactStep()
          assert.deepStrictEqual(winners(a, SENSORS), before, 'compaction does not change the view')
          break
        }
        case 'tick':
          clock.ms += op.ms
          break
      }
    }
    // A against the reference.
    for (const s of SENSORS) {
      assert.deepStrictEqual(a.get(s)?.value, reference.get(s), `A's value of ${s}`)
    }
    assert.deepStrictEqual(a.list(), [...reference.keys()].sort())
    assert.equal(a.size, reference.size)
    // The own log mirror agrees with the doc, and the log never holds fewer readings than the winners.
    const stats = a.stats()
    assert.equal(stats.ownLogChunks, logOf(a, 'gw-a').length)
    assert.ok(stats.ownLogReadings >= stats.ownLive)

    // B applies every local update of A, shuffled, some twice.
    const b = region(clock, { writer: 'gw-b' })
    let sawGap = false
    for (const u of shuffleWithDuplicates(updates, seed)) sawGap = b.applyUpdate(u).pending || sawGap
    if (sawGap) runsWithGaps++
    if (stats.compactions > 0) runsWithCompaction++
    assert.deepStrictEqual(winners(b, SENSORS), winners(a, SENSORS), 'B has A\'s winners, tombstones included')
    assert.deepStrictEqual(b.list(), a.list())
    for (const s of SENSORS) assert.deepStrictEqual(b.get(s), a.get(s))
    assert.equal(b.stats().pending, false, 'every gap is filled once all updates arrived')
    assert.deepStrictEqual(logOf(b, 'gw-a'), logOf(a, 'gw-a'), 'B\'s copy of A\'s log converged to A\'s')

    // A fresh replica from A's full state (a compacted writer) has the same view.
    const c = region(clock, { readOnly: true })
    c.applyUpdate(a.encodeStateAsUpdate())
    assert.deepStrictEqual(winners(c, SENSORS), winners(a, SENSORS))
  }), { numRuns: 250 })
  // The generated runs exercise what the property is about (counted over all runs, shrinking included).
  t.true(runsWithCompaction >= 50, `${runsWithCompaction} runs compacted`)
  t.true(runsWithGaps >= 50, `${runsWithGaps} runs applied updates out of order`)
})

type WriterOp =
  | { op: 'put', writer: 0 | 1, sensor: number, value: JsonValue }
  | { op: 'delete', writer: 0 | 1, sensor: number }
  | { op: 'compact', writer: 0 | 1 }
  | { op: 'tick', ms: number }

const writerIndex = fc.constantFrom<0 | 1>(0, 1)
const writerOpArb: fc.Arbitrary<WriterOp> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('put' as const), writer: writerIndex, sensor: sensorIndex, value: fc.integer() }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), writer: writerIndex, sensor: sensorIndex }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('compact' as const), writer: writerIndex }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 2 }) }), weight: 2 }
)

test('two writers that compact while partitioned converge after exchanging their updates in any order, and no key vanishes from their docs', t => {
  fc.assert(fc.property(fc.array(writerOpArb, { maxLength: 60 }), fc.integer(), fc.integer(), (ops, seedA, seedB) => {
    const clock = fakeClock()
    const small = { compaction: { stepReadings: 4, ratio: 1 }, maxChunkReadings: 2 }
    const ws = [region(clock, { writer: 'gw-a', ...small }), region(clock, { writer: 'gw-b', ...small })]
    const updates = ws.map(w => recordLocalUpdates(w))
    // Reference: the reading with the greatest (t, writer) per sensor over everything written.
    const best = new Map<string, { t: string, writer: string, value: JsonValue | undefined }>()
    const note = (r: { sensor: string, t: string, writer: string, deleted: boolean, value: JsonValue }): void => {
      const cur = best.get(r.sensor)
      if (cur === undefined || r.t > cur.t || (r.t === cur.t && r.writer > cur.writer)) {
        best.set(r.sensor, { t: r.t, writer: r.writer, value: r.deleted ? undefined : r.value })
      }
    }
    for (const op of ops) {
      if (op.op === 'put') note(ws[op.writer].put(SENSORS[op.sensor], op.value))
      else if (op.op === 'delete') note(ws[op.writer].delete(SENSORS[op.sensor]))
      else if (op.op === 'compact') ws[op.writer].compactStep()
      else clock.ms += op.ms
    }
    const [a, b] = ws
    const fromA = [...updates[0]]
    const fromB = [...updates[1]]
    for (const u of shuffleWithDuplicates(fromB, seedA)) a.applyUpdate(u)
    for (const u of shuffleWithDuplicates(fromA, seedB)) b.applyUpdate(u)
    const observer = region(clock, { readOnly: true })
    for (const u of shuffleWithDuplicates([...fromA, ...fromB], seedA ^ seedB)) observer.applyUpdate(u)
    for (const s of SENSORS) {
      const expected = best.get(s)?.value
      assert.deepStrictEqual(a.get(s)?.value, expected, `A's ${s}`)
      assert.deepStrictEqual(b.get(s)?.value, expected, `B's ${s}`)
      assert.deepStrictEqual(observer.get(s)?.value, expected, `observer's ${s}`)
    }
    assert.deepStrictEqual(winners(b, SENSORS), winners(a, SENSORS))
    assert.deepStrictEqual(winners(observer, SENSORS), winners(a, SENSORS))
    const fresh = region(clock, { readOnly: true })
    fresh.applyUpdate(a.encodeStateAsUpdate())
    assert.deepStrictEqual(winners(fresh, SENSORS), winners(a, SENSORS), 'every winner is still in some log of A\'s doc')
  }), { numRuns: 200 })
  t.pass()
})
