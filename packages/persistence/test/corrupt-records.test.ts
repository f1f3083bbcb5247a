import test, { type ExecutionContext } from 'ava'
import type { EdgeMeshError } from '@edge-mesh/errors'
import type { Reading } from '@edge-mesh/region-state'
import { openPersistence, type PersistenceInit } from '../src/index.ts'
import { HLC_KEY, snapshotDocKey, snapshotMetaKey, snapshotViewKey, updateKey } from '../src/keys.ts'
import { REGION, newRegion, openBound, openStore, rawDb, sensorName, tempDir } from './helpers.ts'

/** Bytes that are neither a Yjs update, a view snapshot nor a timestamp. */
const GARBAGE = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37])

async function overwrite (dir: string, key: string, value: Uint8Array): Promise<void> {
  const db = rawDb(dir)
  await db.open()
  if (await db.get(key) === undefined) throw new Error(`no record ${key} to corrupt`)
  await db.put(key, value)
  await db.close()
}

/**
 * 20 single puts on distinct sensors, one update record each (seq i+1 holds sensor i), with no
 * snapshot unless `snapshotAfter` puts were made, then close without a final snapshot.
 */
async function writeRecords (t: ExecutionContext, dir: string, snapshotAfter?: number): Promise<Reading[]> {
  const { store, region, bound } = await openBound(t, { path: dir, snapshotOnClose: false })
  const written: Reading[] = []
  for (let i = 0; i < 20; i++) {
    if (i === snapshotAfter) await bound.snapshot()
    written.push(region.put(sensorName(i), i * 10))
  }
  await bound.whenDurable()
  await store.close()
  return written
}

async function bindRejection (t: ExecutionContext, init: PersistenceInit): Promise<EdgeMeshError | undefined> {
  const store = await openStore(t, init)
  return t.throwsAsync<EdgeMeshError>(store.bind(newRegion(t, store)), { code: 'EM_ERR_CORRUPT_RECORD' })
}

test('a corrupt update record makes bind() reject with EM_ERR_CORRUPT_RECORD naming its key (onCorrupt: fail, the default)', async t => {
  const dir = await tempDir(t)
  await writeRecords(t, dir)
  const key = updateKey(REGION, 5)
  await overwrite(dir, key, GARBAGE)
  const err = await bindRejection(t, { path: dir })
  t.like(err?.details, { key, path: dir })
})

test('with onCorrupt: skip a corrupt update record is left out and counted, the records before it load, and the store goes on', async t => {
  const dir = await tempDir(t)
  const written = await writeRecords(t, dir)
  const key = updateKey(REGION, 5) // sensor 4
  await overwrite(dir, key, GARBAGE)
  const { store, region, bound } = await openBound(t, { path: dir, onCorrupt: 'skip' })
  t.like(bound.loaded, { snapshot: false, records: 19, skipped: 1 })
  t.deepEqual(bound.loaded.skippedKeys, [key])
  for (const r of written.slice(0, 4)) t.deepEqual(region.winner(r.sensor), r)
  t.is(region.winner(sensorName(4)), undefined)
  // The log goes on after the highest seq, not over the skipped one.
  t.is(bound.stats().lastSeq, 20)
  region.put('after', 1)
  await bound.whenDurable()
  t.like(bound.stats(), { lastSeq: 21 })
  t.is(store.stats().queuedBytes, 0)
})

// Regression: after a skipped record, the chunks of every later record were deferred for good,
// since their log is known only through the record before. Replayed records are trusted.
test('with onCorrupt: skip the records after a corrupt update record still load', async t => {
  const dir = await tempDir(t)
  const written = await writeRecords(t, dir)
  await overwrite(dir, updateKey(REGION, 5), GARBAGE)
  const { region } = await openBound(t, { path: dir, onCorrupt: 'skip' })
  for (const r of written.slice(5)) t.deepEqual(region.winner(r.sensor), r)
})

for (const part of ['view', 'doc'] as const) {
  const partKey = part === 'view' ? snapshotViewKey(REGION) : snapshotDocKey(REGION)

  test(`a corrupt snapshot ${part} makes bind() reject with EM_ERR_CORRUPT_RECORD naming a snapshot key`, async t => {
    const dir = await tempDir(t)
    await writeRecords(t, dir, 10)
    await overwrite(dir, partKey, GARBAGE)
    const err = await bindRejection(t, { path: dir })
    t.true([partKey, snapshotMetaKey(REGION)].includes(err?.details.key as string))
    t.is(err?.details.path, dir)
  })

  test(`with onCorrupt: skip a corrupt snapshot ${part} is left out and counted, and the log after it is replayed`, async t => {
    const dir = await tempDir(t)
    const written = await writeRecords(t, dir, 10)
    await overwrite(dir, partKey, GARBAGE)
    const { region, bound } = await openBound(t, { path: dir, onCorrupt: 'skip' })
    t.like(bound.loaded, { snapshot: false, records: 10, skipped: 1 })
    t.is(bound.loaded.skippedKeys.length, 1)
    t.true(bound.loaded.skippedKeys[0].startsWith(`d!${REGION}!s!`))
    // Readings only in the snapshot are gone (peers can re-supply them).
    for (const r of written.slice(0, 10)) t.is(region.winner(r.sensor), undefined)
  })
}

// Regression: the log after a skipped snapshot was deferred for good (its items' origins were lost).
test('with onCorrupt: skip the readings of the log after a corrupt snapshot still load', async t => {
  const dir = await tempDir(t)
  const written = await writeRecords(t, dir, 10)
  await overwrite(dir, snapshotViewKey(REGION), GARBAGE)
  const { region } = await openBound(t, { path: dir, onCorrupt: 'skip' })
  for (const r of written.slice(10)) t.deepEqual(region.winner(r.sensor), r)
})

// Regression: a corrupt snapshot part was reported under the meta key, not its own.
test('a corrupt snapshot view is reported under its own key', async t => {
  const dir = await tempDir(t)
  await writeRecords(t, dir, 10)
  await overwrite(dir, snapshotViewKey(REGION), GARBAGE)
  const err = await bindRejection(t, { path: dir })
  t.is(err?.details.key, snapshotViewKey(REGION))
})

test('a corrupt node clock record makes openPersistence() reject with EM_ERR_CORRUPT_RECORD, and releases the database', async t => {
  const dir = await tempDir(t)
  await writeRecords(t, dir)
  await overwrite(dir, HLC_KEY, new TextEncoder().encode('not-a-timestamp!'))
  const err = await t.throwsAsync<EdgeMeshError>(openPersistence({ path: dir }), { code: 'EM_ERR_CORRUPT_RECORD' })
  t.like(err?.details, { key: HLC_KEY, path: dir })
  // The database was closed again: it can be opened (and repaired) by someone else.
  const db = rawDb(dir)
  await t.notThrowsAsync(db.open())
  await db.close()
})
