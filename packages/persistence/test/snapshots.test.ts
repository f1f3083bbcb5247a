import test from 'ava'
import type { Reading } from '@edge-mesh/region-state'
import type { BoundRegion, PersistenceInit } from '../src/index.ts'
import { capture, openBound, rawDb, sensorName, tempDir, updateKeys } from './helpers.ts'

/** Single puts on fresh sensors until one of them starts an automatic snapshot; returns every reading written. */
function putUntilAutoSnapshot (region: { put: (s: string, v: number) => Reading }, bound: BoundRegion): Reading[] {
  const written: Reading[] = []
  for (let i = 0; i < 10_000; i++) {
    written.push(region.put(`fresh-${i}`, i))
    // An automatic snapshot is scheduled by the put that takes the tail over the bound.
    if (bound.stats().snapshotPending) return written
  }
  throw new Error('no automatic snapshot started')
}

test('snapshot() writes the snapshot and trims every update record, and the next start replays nothing', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotOnClose: false }
  const { store, region, bound } = await openBound(t, init)
  for (let i = 0; i < 100; i++) region.put(sensorName(i), i)
  for (let i = 0; i < 100; i += 3) region.delete(sensorName(i))
  await bound.snapshot()
  t.like(bound.stats(), { tailRecords: 0, tailBytes: 0, snapshots: 1 })
  t.true(bound.stats().snapshotBytes > 0)
  const before = capture(region, 100)
  await store.close()
  t.deepEqual(await updateKeys(dir), [])

  const { region: region2, bound: bound2 } = await openBound(t, init)
  t.like(bound2.loaded, { snapshot: true, records: 0, skipped: 0 })
  t.deepEqual(capture(region2, 100), before)
})

test('update records a crash left behind a snapshot are ignored on load, not replayed again', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotOnClose: false }
  const first = await openBound(t, init)
  for (let i = 0; i < 50; i++) first.region.put(sensorName(i), i)
  await first.store.close()
  // Keep the update records the snapshot will cover.
  const db = rawDb(dir)
  await db.open()
  const leftBehind: Array<[string, Uint8Array]> = []
  for await (const entry of db.iterator({ gte: 'd!', lt: 'd!~' })) if (entry[0].includes('!u!')) leftBehind.push(entry)
  await db.close()
  t.is(leftBehind.length, 50)

  const second = await openBound(t, init)
  for (let i = 0; i < 50; i += 2) second.region.put(sensorName(i), -i)
  await second.bound.snapshot()
  const before = capture(second.region, 50)
  await second.store.close()
  // The crash: the snapshot batch was written, the trim was not.
  const db2 = rawDb(dir)
  await db2.open()
  await db2.batch(leftBehind.map(([key, value]) => ({ type: 'put' as const, key, value })))
  await db2.close()

  const third = await openBound(t, init)
  t.like(third.bound.loaded, { snapshot: true, records: 0 })
  t.deepEqual(capture(third.region, 50), before)
})

// Regression: a snapshot started from inside the update event missed that write's readings.
test('the readings of a write that starts an automatic snapshot survive a restart from that snapshot', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotMinBytes: 200, snapshotOnClose: false }
  const { store, region, bound } = await openBound(t, init)
  const written = putUntilAutoSnapshot(region, bound)
  await bound.whenDurable()
  await store.close()

  const { region: region2 } = await openBound(t, init)
  const trigger = written[written.length - 1]
  t.deepEqual(region2.winner(trigger.sensor), trigger)
  for (const r of written) t.deepEqual(region2.winner(r.sensor), r)
})

// Regression: snapshot() returned at once while an automatic snapshot was in flight.
test('snapshot() called while an automatic snapshot is in flight still snapshots everything written before it', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotMinBytes: 200, snapshotOnClose: false }
  const { store, region, bound } = await openBound(t, init)
  putUntilAutoSnapshot(region, bound)
  for (let i = 0; i < 3; i++) region.put(sensorName(i), i)
  await bound.snapshot()
  t.is(bound.stats().tailRecords, 0)
  await store.close()
  t.deepEqual(await updateKeys(dir), [])
})
