/**
 * What a store tells its operators: a callback per completed batch write (for a latency
 * histogram) and its status in stats() (for readiness checks and ingest refusal).
 */
import test from 'ava'
import { openPersistence, type BatchInfo } from '../src/index.ts'
import { openBound, sensorName, tempDir } from './helpers.ts'

test('onBatch is called once per completed batch write with its duration, op count and bytes; a throwing callback changes nothing', async t => {
  const dir = await tempDir(t)
  const batches: BatchInfo[] = []
  let throwNext = true
  const { store, region, bound } = await openBound(t, {
    path: dir,
    onBatch: b => {
      batches.push(b)
      if (throwNext) {
        throwNext = false
        throw new Error('a broken metrics callback')
      }
    }
  })
  region.putMany([{ sensor: sensorName(0), value: 1 }, { sensor: sensorName(1), value: 2 }])
  await bound.whenDurable()
  t.is(batches.length, store.stats().batches)
  t.true(batches.length >= 1)
  const first = batches[0]
  t.true(first.ms >= 0)
  t.true(first.ops >= 2, 'the update record and the clock record')
  t.true(first.bytes > 0)

  // The callback threw on the first batch: the store goes on persisting.
  region.put(sensorName(2), 3)
  await bound.whenDurable()
  t.is(batches.length, store.stats().batches)
  t.true(batches.length >= 2)
})

test('status() is open, then closed after close(); writes acknowledged before close are kept', async t => {
  const dir = await tempDir(t)
  const { store, region, bound } = await openBound(t, { path: dir })
  t.is(store.status(), 'open')
  region.put(sensorName(0), 'v')
  await bound.whenDurable()
  const closing = store.close()
  t.is(store.status(), 'closing', 'at once after close() began')
  await closing
  t.is(store.status(), 'closed')
  const again = await openBound(t, { path: dir })
  t.is(again.region.winner(sensorName(0))?.value, 'v')
  t.is(again.store.status(), 'open')
})

test('opening a data dir whose LevelDB is held by another open store is EM_ERR_UNAVAILABLE saying so, and the first store keeps working', async t => {
  const dir = await tempDir(t)
  const { store, region, bound } = await openBound(t, { path: dir })
  const err = await t.throwsAsync(openPersistence({ path: dir }))
  t.is((err as { code?: string }).code, 'EM_ERR_UNAVAILABLE')
  t.regex(err?.message ?? '', /in use by another process/)
  region.put(sensorName(0), 1)
  await bound.whenDurable()
  t.is(store.status(), 'open')
})
