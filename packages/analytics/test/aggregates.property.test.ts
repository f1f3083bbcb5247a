/**
 * Window aggregates equal a plain recomputation from the distinct readings recorded, whatever the
 * order of arrival (late readings into windows long written and evicted from the cache),
 * duplicates, batch sizes and flush points; per sensor and per region.
 *
 * Replay a failure with EM_PROPERTY_SEED=<seed> EM_PROPERTY_PATH=<path>; EM_PROPERTY_RUNS sets the number of runs.
 */
import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import type { WindowAggregate } from '../src/index.ts'
import { T0, openStore, tAt, tempDir } from './helpers.ts'

const RUNS = Number(process.env.EM_PROPERTY_RUNS ?? 40)
const WINDOW_MS = 1000
const REGIONS = ['r', 'r.1']
// Ids that are prefixes of each other, and one beyond ASCII.
const SENSORS = ['s', 's/1', 'sß']
const WRITERS = ['gw-a', 'gw-b']

interface Gen {
  region: number
  sensor: number
  wall: number
  logical: number
  writer: number
  value: number | string
  envelope: boolean
}

interface R {
  region: string
  sensor: string
  t: string
  writer: string
  at: number
  num: number | undefined
  stored: unknown
}

const genArb: fc.Arbitrary<Gen> = fc.record({
  region: fc.nat({ max: REGIONS.length - 1 }),
  sensor: fc.nat({ max: SENSORS.length - 1 }),
  wall: fc.nat({ max: 7999 }),
  logical: fc.nat({ max: 2 }),
  writer: fc.nat({ max: WRITERS.length - 1 }),
  // Quarters: every sum is exact in floating point, so means compare exactly.
  value: fc.oneof({ arbitrary: fc.integer({ min: -400, max: 400 }).map(n => n / 4), weight: 5 }, fc.constantFrom('on', 'off')),
  envelope: fc.boolean()
})

function toReading (g: Gen): R {
  const at = T0 + g.wall
  return {
    region: REGIONS[g.region],
    sensor: SENSORS[g.sensor],
    t: tAt(at, g.logical),
    writer: WRITERS[g.writer],
    at,
    num: typeof g.value === 'number' ? g.value : undefined,
    stored: g.envelope ? { value: g.value, unit: 'u' } : g.value
  }
}

const after = (a: R, b: R, withSensor: boolean): boolean =>
  a.t !== b.t ? a.t > b.t : a.writer !== b.writer ? a.writer > b.writer : withSensor && a.sensor > b.sensor

/** Windows recomputed from scratch: start -> aggregate, in start order. */
function recompute (readings: R[], withSensor: boolean): WindowAggregate[] {
  const groups = new Map<number, R[]>()
  for (const r of readings) {
    if (r.num === undefined) continue
    const start = r.at - (r.at % WINDOW_MS)
    const g = groups.get(start) ?? []
    g.push(r)
    groups.set(start, g)
  }
  return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([start, g]) => {
    const nums = g.map(r => r.num as number)
    const newest = g.reduce((m, r) => after(r, m, withSensor) ? r : m)
    return {
      start,
      count: g.length,
      min: Math.min(...nums),
      max: Math.max(...nums),
      mean: nums.reduce((s, x) => s + x, 0) / g.length,
      last: newest.num as number
    }
  })
}

const keyOf = (r: R): string => [r.region, r.sensor, r.t, r.writer].join('|')

test('aggregates per sensor and per region equal a recomputation from the distinct readings, in any arrival order', async t => {
  const params: fc.Parameters<[Gen[], number[], number[], number, number, [number, number]]> = { numRuns: RUNS, includeErrorInReport: true }
  if (process.env.EM_PROPERTY_SEED !== undefined) params.seed = Number(process.env.EM_PROPERTY_SEED)
  if (process.env.EM_PROPERTY_PATH !== undefined) params.path = process.env.EM_PROPERTY_PATH
  let lateIntoWrittenWindows = 0
  await fc.assert(fc.asyncProperty(
    fc.uniqueArray(genArb, { minLength: 1, maxLength: 120, selector: g => [g.region, g.sensor, g.wall, g.logical, g.writer].join('|') }),
    // Copies of earlier readings, inserted after the reading they copy.
    fc.array(fc.nat(), { maxLength: 30 }),
    // Positions after which the test waits for the store to write (so later readings find their windows in LevelDB).
    fc.array(fc.nat(), { maxLength: 6 }),
    fc.integer({ min: 1, max: 4 }),
    fc.integer({ min: 1, max: 40 }),
    fc.tuple(fc.nat({ max: 9000 }), fc.nat({ max: 9000 })),
    async (gens, dupPicks, flushPicks, maxCachedWindows, maxBatchReadings, [a, b]) => {
      const distinct = gens.map(toReading)
      const arrivals = [...distinct]
      for (const p of dupPicks) {
        const i = p % distinct.length
        const pos = arrivals.indexOf(distinct[i]) + 1 + (p % Math.max(1, arrivals.length))
        arrivals.splice(Math.min(pos, arrivals.length), 0, { ...distinct[i] })
      }
      const flushAt = new Set(flushPicks.map(p => p % arrivals.length))

      const dir = await tempDir(t)
      const store = await openStore(t, { path: dir, windowMs: WINDOW_MS, now: () => T0 + 10_000, maxCachedWindows, maxBatchReadings })
      const newestWindow = new Map<string, number>()
      for (let i = 0; i < arrivals.length; i++) {
        const r = arrivals[i]
        const start = r.at - (r.at % WINDOW_MS)
        if (start < (newestWindow.get(r.region) ?? -Infinity)) lateIntoWrittenWindows++
        newestWindow.set(r.region, Math.max(start, newestWindow.get(r.region) ?? -Infinity))
        store.record(r.region, { sensor: r.sensor, t: r.t, writer: r.writer, value: r.stored })
        if (flushAt.has(i)) await store.flush()
      }
      await store.flush()

      const stats = store.stats()
      assert.equal(new Set(distinct.map(keyOf)).size, distinct.length, 'the generated readings are distinct')
      assert.equal(stats.recorded, distinct.length, 'recorded')
      assert.equal(stats.duplicates, arrivals.length - distinct.length, 'duplicates')
      assert.ok(stats.cachedWindows <= maxCachedWindows, `${stats.cachedWindows} windows cached, over ${maxCachedWindows}`)

      const from = T0 + Math.min(a, b)
      const to = T0 + Math.max(a, b)
      const overlapping = (w: WindowAggregate): boolean => w.start + WINDOW_MS > from && w.start < to
      for (const region of REGIONS) {
        const inRegion = distinct.filter(r => r.region === region)
        const regionWide = recompute(inRegion, true)
        assert.deepStrictEqual(await store.aggregates({ region }), regionWide, `region ${region}`)
        assert.deepStrictEqual(await store.aggregates({ region, from, to }), regionWide.filter(overlapping), `region ${region} [${from}, ${to})`)
        for (const sensor of SENSORS) {
          const own = inRegion.filter(r => r.sensor === sensor)
          const expected = recompute(own, false)
          assert.deepStrictEqual(await store.aggregates({ region, sensor }), expected, `${region} ${sensor}`)
          assert.deepStrictEqual(await store.aggregates({ region, sensor, from, to }), expected.filter(overlapping), `${region} ${sensor} [${from}, ${to})`)
          const history = await store.history({ region, sensor })
          const sorted = own.sort((x, y) => after(x, y, false) ? 1 : -1)
          assert.deepStrictEqual(history.map(h => [h.t, h.writer]), sorted.map(r => [r.t, r.writer]), `history ${region} ${sensor}`)
        }
      }
      await store.close()
    }), params)
  t.true(lateIntoWrittenWindows > RUNS, 'the runs had readings arriving after newer windows of their region')
})
