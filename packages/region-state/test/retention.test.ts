import test from 'ava'
import type { Change } from '../src/index.ts'
import { connect, fakeClock, logOf, recordLocalUpdates, region, T0 } from './helpers.ts'

const RETENTION = 10_000

test('get() returns undefined as soon as a reading is past the horizon, before any sweep', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION })
  r.put('s', 1)
  r.put('other', 2)
  clock.ms = T0 + RETENTION // exactly at the horizon: still kept
  t.is(r.get('s')?.value, 1)
  clock.ms = T0 + RETENTION + 1
  t.is(r.get('s'), undefined)
  t.deepEqual(r.list(), [])
  t.deepEqual([...r.entries()], [])
  t.is(r.stats().expired, 0, 'nothing was swept yet')
})

test('maintain() removes expired readings with a change of reason expire and counts them', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION })
  const old = r.put('old', 1)
  clock.ms += 5_000
  r.put('fresh', 2)
  clock.ms = T0 + RETENTION + 1
  const changes: Change[] = []
  r.on('change', c => changes.push(c))
  r.maintain()
  t.deepEqual(changes, [{ sensor: 'old', old, new: undefined, reason: 'expire', local: true }])
  t.is(r.winner('old'), undefined)
  t.is(r.get('fresh')?.value, 2)
  t.like(r.stats(), { expired: 1, sensors: 1, ownLive: 1 })
  t.is(r.size, 1)
})

test('a sweep limited by sweepBatch eventually removes every expired reading', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION, sweepBatch: 3 })
  for (let i = 0; i < 10; i++) r.put(`s${i}`, i)
  clock.ms += RETENTION + 1
  for (let i = 0; i < 10 && r.stats().expired < 10; i++) r.maintain()
  t.is(r.stats().expired, 10)
  t.is(r.size, 0)
})

test('a newer write after expiry brings the sensor back', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION })
  r.put('s', 1)
  clock.ms += RETENTION + 1
  r.maintain()
  r.put('s', 2)
  t.is(r.get('s')?.value, 2)
})

test('a remote update carrying a reading already past the horizon is not taken into the view', t => {
  const a = region(fakeClock(T0), { writer: 'gw-a' })
  const bClock = fakeClock(T0 + RETENTION + 1)
  const b = region(bClock, { writer: 'gw-b', retentionMs: RETENTION })
  const ua = recordLocalUpdates(a)
  a.put('s', 'stale')
  const changes: Change[] = []
  b.on('change', c => changes.push(c))
  const result = b.applyUpdate(ua[0])
  t.is(result.changed, 0)
  t.is(b.get('s'), undefined)
  t.is(b.winner('s'), undefined)
  t.deepEqual(b.list(), [])
  t.is(changes.length, 0)
})

test('an expired reading re-delivered later (by the writer\'s compaction) does not resurrect', t => {
  const clock = fakeClock()
  // The writer keeps readings forever and compacts; the replica has a retention horizon.
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 1_000 } })
  const b = region(clock, { writer: 'gw-b', retentionMs: RETENTION })
  connect(a, b)
  a.put('s', 'v1')
  t.is(b.get('s')?.value, 'v1')
  clock.ms += RETENTION + 1
  b.maintain()
  t.is(b.winner('s'), undefined)
  // a's compaction re-appends the still-winning reading as a new chunk, which b receives.
  const stats = a.compactStep()
  t.is(stats?.kept, 1)
  t.is(b.get('s'), undefined)
  t.is(b.winner('s'), undefined)
  // A full state update from a, applied to a fresh replica past the horizon, does not bring it back either.
  const c = region(clock, { writer: 'gw-c', retentionMs: RETENTION })
  c.applyUpdate(a.encodeStateAsUpdate())
  t.is(c.get('s'), undefined)
})

test('an expired tombstone is swept and an older late reading stays out', t => {
  const aClock = fakeClock(T0)
  const a = region(aClock, { writer: 'gw-a' })
  const ua = recordLocalUpdates(a)
  a.put('s', 'older') // T0
  const clock = fakeClock(T0)
  const b = region(clock, { writer: 'gw-b', retentionMs: RETENTION })
  clock.ms += 1
  b.put('s', 'newer')
  b.delete('s')
  clock.ms += RETENTION + 10
  b.maintain()
  t.is(b.winner('s'), undefined)
  t.is(b.stats().tombstones, 0)
  b.applyUpdate(ua[0])
  t.is(b.get('s'), undefined)
})

test('compaction does not carry readings swept as expired', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION, compaction: { stepReadings: 1_000 } })
  r.putMany([{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }])
  clock.ms += RETENTION + 1
  r.put('c', 3)
  r.maintain()
  const stats = r.compactStep()
  t.deepEqual(stats && { readings: stats.readings, kept: stats.kept }, { readings: 3, kept: 1 })
  t.is(r.stats().ownLogReadings, 1)
  t.is(logOf(r, 'gw-a').length, 1)
})

// Regression: compaction carried readings past the horizon that were not swept yet.
test('compaction does not carry readings past the horizon even before the sweep', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION, compaction: { stepReadings: 1_000 } })
  r.putMany([{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }])
  clock.ms += RETENTION + 1
  r.put('c', 3)
  const stats = r.compactStep()
  t.deepEqual(stats && { readings: stats.readings, kept: stats.kept }, { readings: 3, kept: 1 })
  t.is(r.stats().ownLogReadings, 1)
})

// Regression: `size` counted readings past the horizon that were not swept yet.
test('size agrees with list() for readings past the horizon that are not swept yet', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: RETENTION })
  r.put('s', 1)
  clock.ms += RETENTION + 1
  t.is(r.list().length, 0)
  t.is(r.size, 0)
})
