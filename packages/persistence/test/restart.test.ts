import test from 'ava'
import type { PersistenceInit } from '../src/index.ts'
import { WRITER, capture, maxT, newRegion, openBound, openStore, runWorkload, sensorName, snapshotNow, tempDir } from './helpers.ts'

const SENSORS = 300
const COMPACTION = { stepReadings: 64, ratio: 2 }

/** A few single puts and deletes, kept small enough that no automatic snapshot starts. */
function smallTail (region: ReturnType<typeof newRegion>, bound: { stats: () => { tailBytes: number } }, limit: number): number {
  let n = 0
  while (bound.stats().tailBytes < limit) {
    const sensor = sensorName((n * 37) % SENSORS)
    if (n % 5 === 4) region.delete(sensor)
    else region.put(sensor, { tail: n })
    n++
  }
  return n
}

test('with snapshotOnClose, a restart restores every winner, the list and the own log exactly, and replays nothing', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotMinBytes: 2000, snapshotOnClose: true }
  const { store, region, bound } = await openBound(t, init, { compaction: COMPACTION })
  await runWorkload(region, bound, { seed: 1, sensors: SENSORS, ops: 1500 })
  t.true(bound.stats().snapshots > 0, 'snapshots happened mid-way')
  t.true(region.stats().compactions > 0, 'compaction happened')
  // Let any automatic snapshot finish, then leave a tail for close() to snapshot.
  await snapshotNow(store, bound)
  t.true(smallTail(region, bound, 1000) > 0)
  await bound.whenDurable()
  const before = capture(region, SENSORS)
  await store.close()

  const { region: region2, bound: bound2 } = await openBound(t, init, { compaction: COMPACTION })
  t.true(bound2.loaded.snapshot)
  t.is(bound2.loaded.records, 0)
  t.is(bound2.loaded.skipped, 0)
  t.deepEqual(capture(region2, SENSORS), before)
})

test('without snapshotOnClose, a restart from the last snapshot plus the log tail restores exactly', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotMinBytes: 2000, snapshotOnClose: false }
  const { store, region, bound } = await openBound(t, init, { compaction: COMPACTION })
  await runWorkload(region, bound, { seed: 2, sensors: SENSORS, ops: 1500 })
  t.true(bound.stats().snapshots > 0, 'snapshots happened mid-way')
  t.true(region.stats().compactions > 0, 'compaction happened')
  await snapshotNow(store, bound)
  smallTail(region, bound, 1500)
  await bound.whenDurable()
  const tailRecords = bound.stats().tailRecords
  t.true(tailRecords > 0)
  const before = capture(region, SENSORS)
  await store.close()

  const { region: region2, bound: bound2 } = await openBound(t, init, { compaction: COMPACTION })
  t.true(bound2.loaded.snapshot)
  t.is(bound2.loaded.records, tailRecords, 'the tail is replayed')
  t.deepEqual(capture(region2, SENSORS), before)
})

test('without any snapshot, replaying the whole log (compaction included) restores exactly', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotMinBytes: 1e12, snapshotOnClose: false }
  const { store, region, bound } = await openBound(t, init, { compaction: COMPACTION })
  await runWorkload(region, bound, { seed: 3, sensors: SENSORS, ops: 800 })
  t.true(region.stats().compactions > 0, 'compaction happened')
  t.is(bound.stats().snapshots, 0)
  const records = bound.stats().tailRecords
  const before = capture(region, SENSORS)
  await store.close()

  const { region: region2, bound: bound2 } = await openBound(t, init, { compaction: COMPACTION })
  t.false(bound2.loaded.snapshot)
  t.is(bound2.loaded.records, records)
  t.deepEqual(capture(region2, SENSORS), before)
  // And the restored region keeps working on the same log.
  const r = region2.put(sensorName(0), 'after')
  t.is(r.writer, WRITER)
  t.deepEqual(region2.winner(sensorName(0)), r)
})

test('after a restart the clock issues timestamps above everything written before, even when the physical clock went back an hour', async t => {
  const dir = await tempDir(t)
  const T0 = Date.now()
  // A physical clock standing still: every timestamp comes from the logical counter.
  const { store, region, bound } = await openBound(t, { path: dir, snapshotOnClose: false, clock: { now: () => T0 } })
  const written = [
    ...region.putMany(Array.from({ length: 500 }, (_, i) => ({ sensor: sensorName(i % 100), value: i }))),
    region.delete(sensorName(7))
  ]
  await bound.whenDurable()
  const greatest = maxT(written)
  await store.close()

  const earlier = { now: () => T0 - 3_600_000 }
  const store2 = await openStore(t, { path: dir, clock: earlier })
  // Restored from the node clock record alone, before any region is loaded.
  const first = store2.clock.now()
  t.true(first > greatest, `${first} > ${greatest}`)
  const region2 = newRegion(t, store2)
  await store2.bind(region2)
  const r = region2.put(sensorName(1), 'later')
  t.true(r.t > first)
  t.deepEqual(region2.winner(sensorName(1)), r, 'a new write wins over the old ones')
})

test('the clock is restored after a restart from a snapshot, too', async t => {
  const dir = await tempDir(t)
  const T0 = Date.now()
  const { store, region } = await openBound(t, { path: dir, clock: { now: () => T0 } })
  const written = region.putMany(Array.from({ length: 300 }, (_, i) => ({ sensor: sensorName(i), value: i })))
  await store.close() // snapshotOnClose: true

  const store2 = await openStore(t, { path: dir, clock: { now: () => T0 - 3_600_000 } })
  t.true(store2.clock.now() > maxT(written))
})
