import fs from 'node:fs/promises'
import path from 'node:path'
import test from 'ava'
import type { EdgeMeshError } from '@edge-mesh/errors'
import { createRegionState } from '@edge-mesh/region-state'
import { openPersistence, type PersistenceInit } from '../src/index.ts'
import { REGION, newRegion, openBound, openStore, sensorName, tempDir } from './helpers.ts'

/** The bytes as a plain Uint8Array (LevelDB hands back Buffers, a subclass). */
const plain = (b: Uint8Array | undefined): Uint8Array | undefined => {
  if (b !== undefined && !(b instanceof Uint8Array)) throw new TypeError('not bytes')
  return b === undefined ? undefined : Uint8Array.from(b)
}

test('putMeta/getMeta round-trip any bytes across a reopen; an unknown name reads undefined', async t => {
  const dir = await tempDir(t)
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i)
  const store = await openStore(t, { path: dir })
  await store.putMeta('peer-key', bytes)
  await store.putMeta('empty', new Uint8Array(0))
  t.deepEqual(plain(await store.getMeta('peer-key')), bytes)
  t.is(await store.getMeta('nothing'), undefined)
  await store.close()

  const store2 = await openStore(t, { path: dir })
  t.deepEqual(plain(await store2.getMeta('peer-key')), bytes)
  t.deepEqual(plain(await store2.getMeta('empty')), new Uint8Array(0))
  t.is(await store2.getMeta('nothing'), undefined)
  // Metadata does not disturb the node clock record.
  t.true(store2.clock.now() > '0000000000000000')
})

test('a closed store rejects bind, getMeta, putMeta and compactStorage with EM_ERR_CLOSED; close() again is a no-op', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir })
  await store.close()
  await t.throwsAsync(store.bind(newRegion(t, store)), { code: 'EM_ERR_CLOSED' })
  await t.throwsAsync(store.getMeta('x'), { code: 'EM_ERR_CLOSED' })
  await t.throwsAsync(store.putMeta('x', new Uint8Array(1)), { code: 'EM_ERR_CLOSED' })
  await t.throwsAsync(store.compactStorage(), { code: 'EM_ERR_CLOSED' })
  await t.notThrowsAsync(store.close())
})

test('writes made after close() are not persisted, and do not throw', async t => {
  const dir = await tempDir(t)
  const { store, region } = await openBound(t, { path: dir, snapshotOnClose: false })
  region.put(sensorName(0), 'kept')
  await store.close()
  region.put(sensorName(1), 'after close')
  const { region: region2 } = await openBound(t, { path: dir })
  t.is(region2.winner(sensorName(0))?.value, 'kept')
  t.is(region2.winner(sensorName(1)), undefined)
})

test('binding a region name that is already bound rejects with EM_ERR_INVALID_OPTIONS, and the first binding goes on', async t => {
  const dir = await tempDir(t)
  const { store, region, bound } = await openBound(t, { path: dir })
  const err = await t.throwsAsync<EdgeMeshError>(store.bind(newRegion(t, store, { writer: 'gw-b' })), { code: 'EM_ERR_INVALID_OPTIONS' })
  t.is(err?.details.region, REGION)
  await t.throwsAsync(store.bind(region), { code: 'EM_ERR_INVALID_OPTIONS' })
  region.put(sensorName(0), 1)
  await bound.whenDurable()
  t.like(bound.stats(), { region: REGION, lastSeq: 1 })
  // Another region name binds fine.
  await t.notThrowsAsync(store.bind(newRegion(t, store, { region: 'us-east' })))
})

const badOptions: Array<[string, Omit<PersistenceInit, 'path'> & { path?: unknown }]> = [
  ['an empty path', { path: '' }],
  ['a path that is not a string', { path: 42 }],
  ['an unknown onCorrupt', { onCorrupt: 'ignore' as 'skip' }],
  ['a negative snapshotMinBytes', { snapshotMinBytes: -1 }],
  ['a NaN snapshotMinBytes', { snapshotMinBytes: Number.NaN }],
  ['an infinite snapshotMinBytes', { snapshotMinBytes: Infinity }],
  ['a negative snapshotRatio', { snapshotRatio: -0.5 }],
  ['a snapshotRatio that is not a number', { snapshotRatio: '2' as unknown as number }]
]

for (const [what, opts] of badOptions) {
  test(`openPersistence() with ${what} rejects with EM_ERR_INVALID_OPTIONS and creates no database`, async t => {
    const dir = await tempDir(t)
    const target = path.join(dir, 'db')
    const init = { path: target, ...opts } as PersistenceInit
    await t.throwsAsync(openPersistence(init), { code: 'EM_ERR_INVALID_OPTIONS' })
    await t.throwsAsync(fs.stat(target), { code: 'ENOENT' })
  })
}

test('openPersistence() with bad clock options rejects with EM_ERR_INVALID_OPTIONS', async t => {
  const dir = await tempDir(t)
  await t.throwsAsync(openPersistence({ path: path.join(dir, 'a'), clock: { maxDriftMs: -1 } }), { code: 'EM_ERR_INVALID_OPTIONS' })
  await t.throwsAsync(openPersistence({ path: path.join(dir, 'b'), clock: { now: 5 as unknown as () => number } }), { code: 'EM_ERR_INVALID_OPTIONS' })
})

// Regression: a store refused for bad clock options kept the LevelDB lock until the process exited.
test('a store refused for bad clock options leaves its directory free to open', async t => {
  const dir = await tempDir(t)
  await t.throwsAsync(openPersistence({ path: dir, clock: { maxDriftMs: -1 } }), { code: 'EM_ERR_INVALID_OPTIONS' })
  const store = await openStore(t, { path: dir })
  t.is(store.path, dir)
})

test('a read-only region can be bound and loads what a writer persisted', async t => {
  const dir = await tempDir(t)
  const { store, region } = await openBound(t, { path: dir })
  const r = region.put(sensorName(3), { ok: true })
  await store.close()
  const store2 = await openStore(t, { path: dir })
  const reader = createRegionState({ region: REGION, readOnly: true, hlc: store2.clock, maintenanceIntervalMs: 0 })
  t.teardown(() => { reader.close() })
  const bound = await store2.bind(reader)
  t.true(bound.loaded.snapshot)
  t.deepEqual(reader.winner(sensorName(3)), r)
})
