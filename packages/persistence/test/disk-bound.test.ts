import test from 'ava'
import type { Persistence, PersistenceInit } from '../src/index.ts'
import { dirBytes, openBound, sensorName, snapshotNow, tempDir, updateKeys } from './helpers.ts'

const SENSORS = 500
const BATCH = 100
const SYNC_EVERY = 50 // batches between awaits of whenDurable()

test('disk use is bounded by live sensors, not by writes: the log is trimmed to nothing by snapshot(), and 5x the writes take at most 1.5x the space', async t => {
  const dir = await tempDir(t)
  const init: PersistenceInit = { path: dir, snapshotMinBytes: 64 * 1024 }
  let written = 0

  /** Writes readings until `upTo`, then snapshots, closes and measures. */
  async function writeUpTo (upTo: number): Promise<{ bytes: number, updateRecords: number, snapshots: number }> {
    const { store, region, bound } = await openBound(t, init, { compaction: { stepReadings: 1000 } })
    let batches = 0
    while (written < upTo) {
      const entries = Array.from({ length: BATCH }, (_, i) => ({ sensor: sensorName((written + i * 7) % SENSORS), value: written + i }))
      region.putMany(entries)
      written += BATCH
      if (++batches % SYNC_EVERY === 0) await bound.whenDurable()
    }
    await bound.whenDurable()
    t.true(region.stats().ownLogReadings <= 2 * SENSORS + 1000 + BATCH, 'compaction keeps the own log bounded')
    // snapshotNow: see the failing test about snapshot() during an automatic snapshot (snapshots.test.ts).
    await snapshotNow(store as Persistence, bound)
    const snapshots = bound.stats().snapshots
    await store.close()
    return { bytes: await dirBytes(dir), updateRecords: (await updateKeys(dir)).length, snapshots }
  }

  const small = await writeUpTo(40_000)
  const large = await writeUpTo(200_000)
  t.log(`after 40k writes: ${small.bytes} bytes; after 200k writes: ${large.bytes} bytes`)
  t.true(small.snapshots > 1 && large.snapshots > 1, 'automatic snapshots happened')
  t.is(small.updateRecords, 0)
  t.is(large.updateRecords, 0)
  t.true(large.bytes <= 1.5 * small.bytes, `${large.bytes} <= 1.5 x ${small.bytes}`)
})
