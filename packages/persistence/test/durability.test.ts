import test from 'ava'
import { newRegion, openBound, openStore, sensorName, tempDir } from './helpers.ts'

test('whenDurable() on a store with nothing queued resolves, and writes no batch', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir })
  await store.whenDurable()
  t.deepEqual(store.stats(), { queuedBytes: 0, batches: 0, lastBatchMs: 0 })
})

test('bound.whenDurable() after puts resolves once a batch holding them has been written', async t => {
  const dir = await tempDir(t)
  const { store, region, bound } = await openBound(t, { path: dir })
  region.put(sensorName(0), 1)
  region.delete(sensorName(1))
  t.true(store.stats().queuedBytes > 0, 'the updates wait in the queue')
  t.is(store.stats().batches, 0)
  await bound.whenDurable()
  t.is(store.stats().batches, 1)
  t.is(store.stats().queuedBytes, 0)
  t.like(bound.stats(), { tailRecords: 2, lastSeq: 2 })
  // Nothing new: resolves without another batch.
  await bound.whenDurable()
  t.is(store.stats().batches, 1)
})

test('puts made in one synchronous loop are written in fewer batches than puts (group commit)', async t => {
  const dir = await tempDir(t)
  const { store, region, bound } = await openBound(t, { path: dir })
  const puts = 1000
  const acks: Array<Promise<void>> = []
  for (let i = 0; i < puts; i++) {
    region.put(sensorName(i % 100), i)
    acks.push(bound.whenDurable())
  }
  await Promise.all(acks)
  t.like(bound.stats(), { tailRecords: puts, lastSeq: puts })
  t.true(store.stats().batches < puts, `${store.stats().batches} batches for ${puts} puts`)
  t.true(store.stats().batches >= 1)
})

test('the store-wide whenDurable() covers every bound region', async t => {
  const dir = await tempDir(t)
  const { store, region, bound } = await openBound(t, { path: dir })
  const other = newRegion(t, store, { region: 'us-east' })
  const boundOther = await store.bind(other)
  region.put(sensorName(0), 1)
  other.put(sensorName(0), 2)
  await store.whenDurable()
  const before = store.stats().batches
  // Both regions' updates are in: their own acknowledgements need no further batch.
  await Promise.all([bound.whenDurable(), boundOther.whenDurable()])
  t.is(store.stats().batches, before)
  t.is(store.stats().queuedBytes, 0)
})
