import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import test from 'ava'
import { COMPACTION_DEFAULTS, createRegionState } from '@edge-mesh/region-state'
import { openPersistence } from '../src/index.ts'
import { REGION, WRITER, dirBytes, sensorName, snapshotNow, updateKeys } from './helpers.ts'

const SENSORS = 500
const BATCH = 100
const SYNC_EVERY = 50 // batches between awaits of whenDurable()

interface Measure {
  /** Size of the directory right after snapshot() + compactStorage() + close(). */
  bytes: number
  updateRecords: number
  snapshots: number
  /** Bytes of the last snapshot (doc + view): the live state. */
  snapshotBytes: number
  ownLogReadings: number
}

/** Writes `total` readings into a fresh directory, snapshots, closes and measures. */
async function writeAndMeasure (dir: string, total: number): Promise<Measure> {
  const store = await openPersistence({ path: dir, snapshotMinBytes: 64 * 1024 })
  const region = createRegionState({ region: REGION, writer: WRITER, hlc: store.clock, maintenanceIntervalMs: 0, compaction: { stepReadings: 1000 } })
  const bound = await store.bind(region)
  let written = 0
  let batches = 0
  while (written < total) {
    region.putMany(Array.from({ length: BATCH }, (_, i) => ({ sensor: sensorName((written + i * 7) % SENSORS), value: written + i })))
    written += BATCH
    if (++batches % SYNC_EVERY === 0) await bound.whenDurable()
  }
  await bound.whenDurable()
  // snapshotNow() rather than a bare snapshot(): see the failing test about snapshot() while an
  // automatic snapshot is in flight (snapshots.test.ts).
  await snapshotNow(store, bound)
  // Reclaims the space of the trimmed records now rather than at LevelDB's next background compaction.
  await store.compactStorage()
  const { snapshots, snapshotBytes } = bound.stats()
  const { ownLogReadings } = region.stats()
  await store.close()
  region.close()
  return { bytes: await dirBytes(dir), updateRecords: (await updateKeys(dir)).length, snapshots, snapshotBytes, ownLogReadings }
}

let dirs: string[] = []
let run: Promise<{ small: Measure, large: Measure }> | undefined
const measured = async (): Promise<{ small: Measure, large: Measure }> => {
  run ??= (async () => {
    dirs = await Promise.all([0, 1].map(async () => fs.mkdtemp(path.join(os.tmpdir(), 'em-persistence-disk-'))))
    return { small: await writeAndMeasure(dirs[0], 40_000), large: await writeAndMeasure(dirs[1], 200_000) }
  })()
  return run
}

test.after.always(async () => {
  await run?.catch(() => {})
  for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true })
})

test('after snapshot() no update record is left, and the directory after 200k writes over 500 sensors is at most 1.5x its size after 40k', async t => {
  const { small, large } = await measured()
  t.log(`40k writes: ${small.bytes} bytes (${small.snapshots} snapshots); 200k writes: ${large.bytes} bytes (${large.snapshots} snapshots)`)
  t.true(small.snapshots > 1 && large.snapshots > 1, 'automatic snapshots happened')
  t.true(large.ownLogReadings <= COMPACTION_DEFAULTS.ratio * SENSORS + 1000 + BATCH, 'compaction keeps the own log bounded')
  t.is(small.updateRecords, 0)
  t.is(large.updateRecords, 0)
  t.true(large.bytes <= 1.5 * small.bytes, `${large.bytes} <= 1.5 x ${small.bytes}`)
  // Bounded by the live state, not by the writes.
  t.true(large.bytes <= 4 * large.snapshotBytes, `${large.bytes} <= 4 x ${large.snapshotBytes}`)
})

// Not asserted: right after a store is opened, trimmed records can still sit in LevelDB's write
// buffer. compactStorage() (LevelDB CompactRange) picks the levels to compact before it flushes that
// buffer, and the flushed file can land on a level it then does not compact, so its dead versions
// stay until background compaction reaches them. The bound above holds once data has moved through
// the levels; the package README notes the same.
