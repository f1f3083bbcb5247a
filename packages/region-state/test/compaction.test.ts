import test from 'ava'
import { readChunkHeader, decodeChunk, type CompactionStats, type RegionState } from '../src/index.ts'
import { connect, fakeClock, logOf, prng, recordLocalUpdates, region, views, winners } from './helpers.ts'

const STEP = 64
const RATIO = 2
const MAX_CHUNK = 16
const small = { compaction: { stepReadings: STEP, ratio: RATIO }, maxChunkReadings: MAX_CHUNK }

/** The own log as the doc holds it: readings per chunk. */
function logCounts (r: RegionState, writer: string): number[] {
  return logOf(r, writer).map(c => readChunkHeader(c).count)
}

test('after many overwrites of few sensors the own log stays bounded and compaction ran', t => {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a', ...small })
  const rand = prng(7)
  let maxSeen = 0
  for (let i = 0; i < 3_000; i++) {
    const batch = 1 + Math.floor(rand() * MAX_CHUNK)
    const entries = Array.from({ length: batch }, (_, j) => ({ sensor: `s${(i + j) % 5}`, value: i * 100 + j }))
    if (i % 11 === 0) r.delete(`s${i % 5}`)
    else r.putMany(entries)
    if (i % 3 === 0) clock.ms += 1
    const s = r.stats()
    maxSeen = Math.max(maxSeen, s.ownLogReadings)
    t.true(s.ownLogReadings <= RATIO * s.ownLive + STEP + MAX_CHUNK, `after write ${i}: ${s.ownLogReadings} readings for ${s.ownLive} own keys`)
  }
  const s = r.stats()
  t.true(s.compactions > 0)
  t.true(maxSeen <= RATIO * 5 + STEP + MAX_CHUNK)
  // The mirror the bound is computed from agrees with the doc.
  const counts = logCounts(r, 'gw-a')
  t.is(s.ownLogChunks, counts.length)
  t.is(s.ownLogReadings, counts.reduce((x, y) => x + y, 0))
})

test('compactStep() removes lost readings, keeps winners and tombstones, and reports the counts', t => {
  const r = region(fakeClock(), { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  for (let i = 0; i < 20; i++) r.put(`s${i % 4}`, i) // 20 readings, 4 winners
  r.delete('s0') // 1 more reading; s0's winner is now a tombstone
  const before = winners(r)
  const events: CompactionStats[] = []
  r.on('compaction', s => events.push(s))
  const stats = r.compactStep()
  t.like(stats, { readings: 21, kept: 4 })
  t.deepEqual(events.map(e => [e.readings, e.kept]), [[21, 4]])
  t.deepEqual(logCounts(r, 'gw-a'), [4])
  const kept = decodeChunk(logOf(r, 'gw-a')[0]).readings
  t.deepEqual(kept.sort((a, b) => a.sensor < b.sensor ? -1 : 1), before)
  t.like(r.stats(), { ownLogReadings: 4, ownLogChunks: 1, compactions: 1 })
})

test('compactStep() on an empty own log returns undefined', t => {
  const r = region(fakeClock())
  t.is(r.compactStep(), undefined)
  t.is(r.stats().compactions, 0)
})

test('compactStep() takes about stepReadings readings from the head of the log', t => {
  const r = region(fakeClock(), { compaction: { stepReadings: 10, ratio: 1_000 }, maxChunkReadings: 4 })
  r.putMany(Array.from({ length: 40 }, (_, i) => ({ sensor: `s${i}`, value: i }))) // chunks of 4
  t.deepEqual(logCounts(r, 'gw-a'), Array(10).fill(4))
  const stats = r.compactStep()
  t.like(stats, { readings: 12, kept: 12 }, 'three chunks of 4 reach the 10-reading step')
  t.deepEqual(logCounts(r, 'gw-a'), [...Array(7).fill(4), 12])
})

test('explicit compaction never changes the view', t => {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a', compaction: { stepReadings: 37, ratio: 1_000 }, maxChunkReadings: MAX_CHUNK })
  const sensors = Array.from({ length: 12 }, (_, i) => `s${i}`)
  const rand = prng(3)
  for (let i = 0; i < 500; i++) {
    const s = sensors[Math.floor(rand() * sensors.length)]
    if (rand() < 0.15) r.delete(s)
    else r.put(s, { i, s })
    if (i % 10 === 0) clock.ms += 1
  }
  t.is(r.stats().compactions, 0, 'precondition: no automatic compaction with this ratio')
  for (let k = 0; k < 40; k++) {
    const before = views(r, sensors)
    const winnersBefore = winners(r)
    const stats = r.compactStep()
    if (stats === undefined) break
    t.deepEqual(views(r, sensors), before)
    t.deepEqual(winners(r), winnersBefore)
  }
  t.is(r.stats().compactions, 40)
  t.is(r.stats().ownLogReadings, r.stats().ownLive, 'repeated steps shrink the log to the winners')
})

test('a replica that receives every update, compaction included, has an identical view and log', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', ...small })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  let compactionEvents = 0
  a.on('compaction', () => { compactionEvents++ })
  for (let i = 0; i < 1_000; i++) {
    if (i % 13 === 0) a.delete(`s${i % 6}`)
    else a.put(`s${i % 6}`, i)
    if (i % 50 === 0) a.compactStep()
  }
  t.true(compactionEvents > 0)
  t.is(compactionEvents, a.stats().compactions)
  const all = ['s0', 's1', 's2', 's3', 's4', 's5']
  t.deepEqual(winners(b, all), winners(a, all))
  t.deepEqual(b.list(), a.list())
  t.deepEqual(logOf(b, 'gw-a'), logOf(a, 'gw-a'))
})

test('a fresh replica loading only encodeStateAsUpdate() of a compacted writer has the same view (no key vanishes)', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', ...small })
  const rand = prng(11)
  const sensors = Array.from({ length: 8 }, (_, i) => `k${i}`)
  for (let i = 0; i < 2_000; i++) {
    const s = sensors[Math.floor(rand() * sensors.length)]
    if (rand() < 0.1) a.delete(s)
    else a.put(s, [i, s])
    if (rand() < 0.2) clock.ms += 1
  }
  // Compact until the log is down to the winners.
  for (let k = 0; k < 100 && a.stats().ownLogReadings > a.stats().ownLive; k++) a.compactStep()
  t.true(a.stats().compactions > 0)
  const fresh = region(clock, { writer: 'gw-fresh' })
  fresh.applyUpdate(a.encodeStateAsUpdate())
  t.deepEqual(winners(fresh, sensors), winners(a, sensors))
  t.deepEqual(views(fresh, sensors), views(a, sensors))
  const ro = region(clock, { readOnly: true })
  ro.applyUpdate(a.encodeStateAsUpdate())
  t.deepEqual(winners(ro, sensors), winners(a, sensors))
})

test('compaction touches only the writer\'s own log', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  for (let i = 0; i < 10; i++) b.put('shared', `b${i}`)
  clock.ms += 1
  for (let i = 0; i < 10; i++) a.put('shared', `a${i}`)
  const bLogBefore = logOf(a, 'gw-b')
  const stats = a.compactStep()
  t.like(stats, { readings: 10, kept: 1 })
  t.deepEqual(logOf(a, 'gw-b'), bLogBefore)
  t.deepEqual(logOf(b, 'gw-b'), bLogBefore)
})

test('a writer\'s own readings beaten by another writer are dropped by its compaction, and the view keeps the other\'s', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  a.put('s', 'a')
  clock.ms += 1
  b.put('s', 'b')
  const stats = a.compactStep()
  t.like(stats, { readings: 1, kept: 0 })
  t.deepEqual(logOf(a, 'gw-a'), [])
  t.is(a.get('s')?.value, 'b')
  t.like(a.stats(), { ownLive: 0, ownLogReadings: 0, ownLogChunks: 0 })
})

test('writes after compaction keep the mirror of the log in step with the doc', t => {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a', compaction: { stepReadings: 5, ratio: 1 }, maxChunkReadings: 3 })
  const updates = recordLocalUpdates(r)
  for (let i = 0; i < 200; i++) {
    r.putMany([{ sensor: `s${i % 4}`, value: i }, { sensor: `s${(i + 1) % 4}`, value: -i }])
    if (i % 7 === 0) r.compactStep()
    const counts = logCounts(r, 'gw-a')
    const s = r.stats()
    t.is(s.ownLogChunks, counts.length)
    t.is(s.ownLogReadings, counts.reduce((x, y) => x + y, 0))
  }
  t.true(updates.length > 200, 'compaction steps emitted their own local updates')
})

test('a writer that restarts from its own doc (persisted update) keeps compacting correctly', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  for (let i = 0; i < 30; i++) a.put(`s${i % 3}`, i)
  const persisted = a.encodeStateAsUpdate()
  const expected = winners(a, ['s0', 's1', 's2'])
  const restarted = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  restarted.replayUpdate(persisted)
  t.deepEqual(winners(restarted, ['s0', 's1', 's2']), expected)
  t.like(restarted.stats(), { ownLogReadings: 30, ownLive: 3 })
  const stats = restarted.compactStep()
  t.like(stats, { readings: 30, kept: 3 })
  t.deepEqual(winners(restarted, ['s0', 's1', 's2']), expected)
  t.deepEqual(logCounts(restarted, 'gw-a'), [3])
  const next = restarted.put('s0', 'after restart')
  t.true(next.t > expected[0].t)
})

// Regression: after the own log was touched by a non-local transaction (a restart, or chunks of an
// earlier run arriving from a peer), the first local write lost its live bits and compaction dropped it.
test('the first write after a restart from the persisted doc survives compaction', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  for (let i = 0; i < 5; i++) a.put('old', i)
  const restarted = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  restarted.replayUpdate(a.encodeStateAsUpdate())
  restarted.put('new', 'after restart')
  const stats = restarted.compactStep()
  t.like(stats, { readings: 6, kept: 2 })
  const fresh = region(clock, { writer: 'gw-fresh' })
  fresh.applyUpdate(restarted.encodeStateAsUpdate())
  t.deepEqual(winners(fresh, ['old', 'new']), winners(restarted, ['old', 'new']))
  t.is(fresh.get('new')?.value, 'after restart')
})

test('the first write after own-log chunks arrive from a peer survives compaction', t => {
  const clock = fakeClock()
  const earlier = region(clock, { writer: 'gw-a' })
  earlier.put('from earlier run', 1)
  clock.ms += 1
  const now = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  now.applyUpdate(earlier.encodeStateAsUpdate())
  now.put('written now', 2)
  now.compactStep()
  const fresh = region(clock, { readOnly: true })
  fresh.applyUpdate(now.encodeStateAsUpdate())
  t.deepEqual(fresh.list(), ['from earlier run', 'written now'])
})
