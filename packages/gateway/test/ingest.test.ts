/**
 * The ingestor over a real mesh peer and LevelDB (and, where the test must hold durability back,
 * over a stand-in mesh): all-or-nothing validation with the index of the bad input, deduplication
 * by device timestamp, idempotency keys, unknown regions, backpressure, and acknowledgement only
 * once the batch is in LevelDB.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import test from 'ava'
import type { EdgeMeshError } from '@edge-mesh/errors'
import { openPersistence } from '@edge-mesh/persistence'
import { createRegionState } from '@edge-mesh/region-state'
import { fromStored } from '@edge-mesh/reading'
import { createIngestor, type Pressure } from '../src/ingest.ts'
import { REGION, gatedMesh, startMesh, tempDir, waitFor } from './gateway-helpers.ts'

const TS = 1_700_000_000_000

test('a batch is written with its envelope (unit, device ts) and the result lists each reading with its HLC timestamp', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const res = await ingestor.ingest(REGION, [
    { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS },
    { sensor: 'line-1/state', value: { ok: true } },
    { sensor: 'line-1/wrapped', value: { value: 2 } }
  ])
  t.is(res.accepted, 3)
  t.is(res.duplicates, 0)
  t.deepEqual(res.readings.map(r => r.sensor), ['line-1/temp', 'line-1/state', 'line-1/wrapped'])
  const region = mesh.region(REGION)
  for (const r of res.readings) t.is(region.get(r.sensor)?.t, r.t)
  t.deepEqual(fromStored(region.get('line-1/temp')?.value), { value: 21.5, unit: 'C', ts: TS })
  t.deepEqual(fromStored(region.get('line-1/state')?.value), { value: { ok: true } })
  t.deepEqual(fromStored(region.get('line-1/wrapped')?.value), { value: { value: 2 } })
  t.is(ingestor.stats().accepted.http, 3)
  t.is(ingestor.stats().pending, 0)
})

test('a batch with one bad input writes nothing and names the input by index, whoever finds the fault', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const good = (i: number): object => ({ sensor: `s${i}`, value: i })
  let deep: unknown = 1
  for (let i = 0; i < 40; i++) deep = [deep]
  const cases: Array<[unknown, string, string]> = [
    [{ sensor: 's', value: 1, extra: true }, 'EM_ERR_INVALID_VALUE', 'unknown field (shape)'],
    [{ sensor: 's', value: 1, ts: 12 }, 'EM_ERR_INVALID_VALUE', 'ts out of range (shape)'],
    [{ value: 1 }, 'EM_ERR_INVALID_VALUE', 'no sensor (shape)'],
    [{ sensor: 'bad\u0001id', value: 1 }, 'EM_ERR_INVALID_SENSOR', 'control character (region state)'],
    [{ sensor: 'x'.repeat(300), value: 1 }, 'EM_ERR_INVALID_SENSOR', 'sensor too long (region state)'],
    [{ sensor: '..', value: 1 }, 'EM_ERR_INVALID_SENSOR', 'a dot segment (not addressable by URL)'],
    [{ sensor: '.', value: 1 }, 'EM_ERR_INVALID_SENSOR', 'a dot segment (not addressable by URL)'],
    [{ sensor: 's', value: deep }, 'EM_ERR_INVALID_VALUE', 'nested too deep (region state)'],
    [{ sensor: 's', value: { a: '\ud800' } }, 'EM_ERR_INVALID_VALUE', 'lone surrogate in a nested string (region state)'],
    [{ sensor: 's', value: 'x'.repeat(70_000) }, 'EM_ERR_VALUE_TOO_LARGE', 'value over 64 KiB (region state)']
  ]
  for (const [bad, code, what] of cases) {
    const batch = [good(0), good(1), bad, good(3)]
    const err = await t.throwsAsync<EdgeMeshError>(ingestor.ingest(REGION, batch), { code }, what)
    t.is(err?.details.index, 2, `${what}: details.index`)
    t.true(err?.message.startsWith('reading 2:'), `${what}: ${err?.message}`)
    t.deepEqual(mesh.region(REGION).list(), [], `${what}: nothing written`)
  }
  t.is(ingestor.stats().rejected.EM_ERR_INVALID_VALUE, 5 * 4)
  t.is(ingestor.stats().rejected.EM_ERR_INVALID_SENSOR, 4 * 4)
  t.is(ingestor.stats().rejected.EM_ERR_VALUE_TOO_LARGE, 4)
})

test('a reading whose sensor already holds the same device ts is a duplicate; an older ts is stale; both are counted and not written', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const region = mesh.region(REGION)
  const first = await ingestor.ingest(REGION, [{ sensor: 'a', value: 1, ts: TS }, { sensor: 'b', value: 1, ts: TS }])
  t.is(first.accepted, 2)
  const tA = region.get('a')?.t

  const again = await ingestor.ingest(REGION, [
    { sensor: 'a', value: 1, ts: TS }, // duplicate
    { sensor: 'b', value: 0, ts: TS - 1 }, // stale
    { sensor: 'b', value: 2, ts: TS + 1 }, // newer: written
    { sensor: 'b', value: 2, ts: TS + 1 }, // duplicate of the one just before, in this batch
    { sensor: 'b', value: 9, ts: TS }, // older than the one just before, in this batch: stale
    { sensor: 'c', value: 1 }, // no ts: always written
    { sensor: 'c', value: 1 }
  ])
  t.is(again.accepted, 3)
  t.is(again.duplicates, 4)
  t.deepEqual(again.readings.map(r => r.sensor), ['b', 'c', 'c'])
  t.is(region.get('a')?.t, tA, 'the duplicate left the winner as it was')
  t.deepEqual(fromStored(region.get('b')?.value), { value: 2, ts: TS + 1 })
  const s = ingestor.stats()
  t.is(s.duplicates, 4)
  t.is(s.stale, 2)

  // A batch of duplicates only resolves at once with nothing written.
  t.deepEqual(await ingestor.ingest(REGION, [{ sensor: 'a', value: 1, ts: TS }]), { accepted: 0, duplicates: 1, readings: [] })
})

test('ifAbsent (MQTT retained values) writes an input without ts only for a sensor with no live reading; inputs with ts dedupe as usual', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const region = mesh.region(REGION)
  await ingestor.ingest(REGION, [{ sensor: 'held', value: 25 }])
  const tHeld = region.get('held')?.t
  const res = await ingestor.ingest(REGION, [
    { sensor: 'held', value: 20 }, // the sensor has a reading: not written
    { sensor: 'new', value: 1 }, // no reading yet: written
    { sensor: 'new', value: 2 }, // the one just before counts: not written
    { sensor: 'stamped', value: 3, ts: TS } // has a ts: written, deduplicated by ts as always
  ], { source: 'mqtt', ifAbsent: true })
  t.is(res.accepted, 2)
  t.is(res.duplicates, 2)
  t.deepEqual(res.readings.map(r => r.sensor), ['new', 'stamped'])
  t.is(region.get('held')?.t, tHeld, 'the held reading was not overwritten')
  t.is(fromStored(region.get('held')?.value).value, 25)
  t.is(fromStored(region.get('new')?.value).value, 1)
  t.is(ingestor.stats().stale, 2)
  // Without the option the same input is written.
  t.is((await ingestor.ingest(REGION, [{ sensor: 'held', value: 20 }])).accepted, 1)
  t.is(fromStored(region.get('held')?.value).value, 20)
})

test('a reading another gateway wrote counts for deduplication: the same device ts arriving here is a duplicate', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const other = createRegionState({ region: REGION, writer: 'gw-other', maintenanceIntervalMs: 0 })
  t.teardown(() => { other.close() })
  other.on('update', (u, local) => { if (local) mesh.region(REGION).applyUpdate(u) })
  other.put('line-9/temp', { value: 20, ts: TS })
  t.is(mesh.region(REGION).get('line-9/temp')?.writer, 'gw-other')
  const res = await ingestor.ingest(REGION, [{ sensor: 'line-9/temp', value: 20, ts: TS }])
  t.is(res.duplicates, 1)
  t.is(mesh.region(REGION).get('line-9/temp')?.writer, 'gw-other')
})

test('a repeated Idempotency-Key returns the first result and writes nothing; concurrent repeats share one promise; keys are per region', async t => {
  const mesh = await startMesh(t, { regions: [REGION, 'site-b'] })
  const ingestor = createIngestor({ mesh, regions: [REGION, 'site-b'] })
  const batch = [{ sensor: 'k/1', value: 1 }]
  const p1 = ingestor.ingest(REGION, batch, { idempotencyKey: 'req-1' })
  const p2 = ingestor.ingest(REGION, [{ sensor: 'k/other', value: 2 }], { idempotencyKey: 'req-1' })
  t.is(p1, p2, 'a concurrent repeat awaits the same promise')
  const r1 = await p1
  const r3 = await ingestor.ingest(REGION, batch, { idempotencyKey: 'req-1' })
  t.is(r3, r1)
  t.deepEqual(mesh.region(REGION).list(), ['k/1'], 'written once, and the repeat body was not written')
  t.is(mesh.region(REGION).get('k/1')?.t, r1.readings[0].t)
  t.is(ingestor.stats().idempotentReplays, 2)

  const other = await ingestor.ingest('site-b', batch, { idempotencyKey: 'req-1' })
  t.is(other.accepted, 1, 'the same key in another region is another request')
  t.deepEqual(mesh.region('site-b').list(), ['k/1'])
})

test('a failed request is not remembered under its key: a corrected retry with the same key is written', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  await t.throwsAsync(ingestor.ingest(REGION, [{ sensor: 'x', value: 1, junk: 1 }], { idempotencyKey: 'k' }), { code: 'EM_ERR_INVALID_VALUE' })
  const res = await ingestor.ingest(REGION, [{ sensor: 'x', value: 1 }], { idempotencyKey: 'k' })
  t.is(res.accepted, 1)
})

test('idempotency keys are forgotten after their time to live and beyond the bound, oldest first', async t => {
  const mesh = await startMesh(t)
  let now = 1_000_000
  const ingestor = createIngestor({ mesh, regions: [REGION], idempotencyKeys: 2, idempotencyTtlMs: 1000, now: () => now })
  const put = async (key: string, sensor: string): Promise<number> => (await ingestor.ingest(REGION, [{ sensor, value: 1 }], { idempotencyKey: key })).accepted
  t.is(await put('a', 's1'), 1)
  t.is(await put('a', 's1'), 1)
  t.is(mesh.region(REGION).list().length, 1)
  now += 1001
  const before = mesh.region(REGION).get('s1')?.t
  t.is(await put('a', 's1'), 1)
  t.not(mesh.region(REGION).get('s1')?.t, before, 'after the TTL the key is new: written again')

  t.is(await put('b', 's2'), 1)
  t.is(await put('c', 's3'), 1) // evicts 'a' (the oldest)
  const tB = mesh.region(REGION).get('s2')?.t
  await put('b', 's2')
  t.is(mesh.region(REGION).get('s2')?.t, tB, "'b' is still remembered")
  const tA = mesh.region(REGION).get('s1')?.t
  await put('a', 's1')
  t.not(mesh.region(REGION).get('s1')?.t, tA, "'a' was evicted: written again")
})

test('the idempotency cache is bounded by the readings its results hold, oldest keys first, and keeps no values', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION], idempotencyReadings: 250 })
  const batch = (tag: string, n: number): Array<{ sensor: string, value: unknown }> =>
    Array.from({ length: n }, (_, i) => ({ sensor: `${tag}/${i}`, value: { big: 'x'.repeat(100), i } }))
  const first = await ingestor.ingest(REGION, batch('a', 100), { idempotencyKey: 'a' })
  t.deepEqual(Object.keys(first.readings[0]).sort(), ['sensor', 't'], 'a result keeps sensor and timestamp only')
  await ingestor.ingest(REGION, batch('b', 100), { idempotencyKey: 'b' })
  t.deepEqual(ingestor.stats().idempotency, { keys: 2, readings: 200 })
  await ingestor.ingest(REGION, batch('c', 100), { idempotencyKey: 'c' }) // 300 > 250: 'a' goes
  t.deepEqual(ingestor.stats().idempotency, { keys: 2, readings: 200 })
  const replays = ingestor.stats().idempotentReplays
  const tB = mesh.region(REGION).get('b/0')?.t
  t.is((await ingestor.ingest(REGION, batch('b', 100), { idempotencyKey: 'b' })).accepted, 100)
  t.is(ingestor.stats().idempotentReplays, replays + 1, "'b' answered from the cache")
  t.is(mesh.region(REGION).get('b/0')?.t, tB, "'b' not written again")
  const tA = mesh.region(REGION).get('a/0')?.t
  await ingestor.ingest(REGION, batch('a', 100), { idempotencyKey: 'a' })
  t.not(mesh.region(REGION).get('a/0')?.t, tA, "'a' was forgotten: written again")
  // A single batch over the bound is still remembered (the newest key stays).
  await ingestor.ingest(REGION, batch('d', 300), { idempotencyKey: 'd' })
  t.deepEqual(ingestor.stats().idempotency, { keys: 1, readings: 300 })
  t.throws(() => createIngestor({ mesh, regions: [REGION], idempotencyReadings: 0 }), { message: /idempotencyReadings must be a positive integer/ })
})

test('an unknown region is EM_ERR_NOT_FOUND naming it', async t => {
  const mesh = await startMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const err = await t.throwsAsync<EdgeMeshError>(ingestor.ingest('nowhere', [{ sensor: 's', value: 1 }]), { code: 'EM_ERR_NOT_FOUND' })
  t.is(err?.details.region, 'nowhere')
  t.is(ingestor.stats().rejected.EM_ERR_NOT_FOUND, 1)
})

test('the ack waits for durability: nothing resolves until the store has written the batch', async t => {
  const mesh = gatedMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  let done = false
  const p = ingestor.ingest(REGION, [{ sensor: 's', value: 1 }]).then(r => { done = true; return r })
  await waitFor(() => mesh.waiting() === 1, 'the ingest waits for durability')
  t.false(done)
  t.is(ingestor.pending(), 1)
  mesh.release()
  t.is((await p).accepted, 1)
  t.is(ingestor.pending(), 0)
})

test('an acknowledged batch is in LevelDB at the moment of the ack (a copy of the data dir taken then holds it)', async t => {
  const dir = await tempDir(t)
  const mesh = await startMesh(t, { dataDir: dir })
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const batch = Array.from({ length: 500 }, (_, i) => ({ sensor: `line-${i % 7}/s${i}`, value: i, ts: TS + i }))
  const res = await ingestor.ingest(REGION, batch)
  // Copied right after the ack, before any close could flush: what LevelDB has written is there.
  const copy = path.join(dir, 'copy')
  await fs.cp(path.join(dir, 'db'), copy, { recursive: true })
  await fs.rm(path.join(copy, 'LOCK'), { force: true })
  const store = await openPersistence({ path: copy, snapshotOnClose: false })
  t.teardown(async () => { await store.close() })
  const region = createRegionState({ region: REGION, writer: 'reader', hlc: store.clock, maintenanceIntervalMs: 0 })
  t.teardown(() => { region.close() })
  await store.bind(region)
  t.is(region.list().length, 500)
  for (const r of res.readings) t.is(region.get(r.sensor)?.t, r.t)
})

test('over maxPendingReadings a batch is refused with EM_ERR_OVERLOADED and retryAfterMs; pressure goes high and back to ok', async t => {
  const mesh = gatedMesh(t)
  const ingestor = createIngestor({ mesh, regions: [REGION], maxPendingReadings: 4 })
  const seen: Pressure[] = []
  ingestor.onPressure(p => seen.push(p))
  const batch = (k: number, tag: string): object[] => Array.from({ length: k }, (_, i) => ({ sensor: `${tag}/${i}`, value: i }))

  // Nothing pending: even a batch over the limit is taken (it is bounded by the adapters).
  const big = ingestor.ingest(REGION, batch(6, 'big'))
  t.is(ingestor.pending(), 6)
  t.is(ingestor.pressure(), 'high')
  const err = await t.throwsAsync<EdgeMeshError>(ingestor.ingest(REGION, batch(1, 'more')), { code: 'EM_ERR_OVERLOADED' })
  t.is(err?.details.retryAfterMs, 1000)
  t.false(mesh.region(REGION).list().some(s => s.startsWith('more/')), 'the refused batch wrote nothing')
  mesh.release()
  await big
  t.is(ingestor.pressure(), 'ok')
  t.deepEqual(seen, ['high', 'ok'])

  const a = ingestor.ingest(REGION, batch(2, 'a'))
  const b = ingestor.ingest(REGION, batch(2, 'b'))
  await t.throwsAsync(ingestor.ingest(REGION, batch(1, 'c')), { code: 'EM_ERR_OVERLOADED' })
  mesh.release()
  await Promise.all([a, b])
  t.is((await (async () => { const p = ingestor.ingest(REGION, batch(1, 'c')); mesh.release(); return await p })()).accepted, 1, 'taken again once durable')
  t.is(ingestor.stats().rejected.EM_ERR_OVERLOADED, 2)
})

test('when the mesh is stopping or stopped, storage is closed, or the ingestor is closed, ingest is EM_ERR_UNAVAILABLE', async t => {
  const gated = gatedMesh(t)
  const ingestor = createIngestor({ mesh: gated, regions: [REGION] })
  gated.status = 'stopping'
  const err = await t.throwsAsync<EdgeMeshError>(ingestor.ingest(REGION, [{ sensor: 's', value: 1 }]), { code: 'EM_ERR_UNAVAILABLE' })
  t.is(err?.details.retryAfterMs, 5000)
  gated.status = 'started'

  // A failed LevelDB write: the waiting batch is refused as unavailable.
  const p = ingestor.ingest(REGION, [{ sensor: 's', value: 1 }])
  await waitFor(() => gated.waiting() === 1, 'the ingest waits for durability')
  gated.fail(new Error('disk full'))
  await t.throwsAsync(p, { code: 'EM_ERR_UNAVAILABLE' })
  t.is(ingestor.pending(), 0)

  // close() waits for the batches in flight, then refuses.
  const inFlight = ingestor.ingest(REGION, [{ sensor: 't', value: 1 }])
  const closing = ingestor.close()
  await t.throwsAsync(ingestor.ingest(REGION, [{ sensor: 'u', value: 1 }]), { code: 'EM_ERR_UNAVAILABLE' })
  gated.release()
  await closing
  t.is((await inFlight).accepted, 1)

  const dir = await tempDir(t)
  const mesh = await startMesh(t, { dataDir: dir })
  const real = createIngestor({ mesh, regions: [REGION] })
  await mesh.stop()
  await t.throwsAsync(real.ingest(REGION, [{ sensor: 's', value: 1 }]), { code: 'EM_ERR_UNAVAILABLE' })
})

test('storage closed under a running mesh is EM_ERR_UNAVAILABLE, not an ack of a write that was not persisted', async t => {
  const dir = await tempDir(t)
  const mesh = await startMesh(t, { dataDir: dir })
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  await mesh.store?.close()
  await t.throwsAsync(ingestor.ingest(REGION, [{ sensor: 's', value: 1 }]), { code: 'EM_ERR_UNAVAILABLE' })
  t.deepEqual(mesh.region(REGION).list(), [])
})
