/**
 * Finding a view slot from a chunk's bytes: remote readings find their slot by sensorHash.
 * Ids whose hashes collide stay apart through merges, overwrites and expiry; ids that are not
 * printable ASCII (looked up by string) merge the same way; the hash agrees with the bytes.
 */
import test from 'ava'
import fc from 'fast-check'
import { sensorHash } from '../src/chunk.ts'
import { collidingIds, fakeClock, prng, recordLocalUpdates, region, T0, views, winners } from './helpers.ts'

test('sensorHash: a small integer for printable ASCII ids of 1 to 256 characters, -1 for any other id', t => {
  t.true(Number.isInteger(sensorHash('line-1/sensor-7')) && sensorHash('line-1/sensor-7') >= 0)
  t.true(sensorHash('x'.repeat(256)) >= 0)
  t.is(sensorHash(''), -1)
  t.is(sensorHash('x'.repeat(257)), -1)
  t.is(sensorHash('température'), -1)
  t.is(sensorHash('tab\there'), -1)
  t.is(sensorHash('del\u007f'), -1)
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 256, unit: fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)) }), id => {
    const h = sensorHash(id)
    return Number.isInteger(h) && h >= 0 && h < 2 ** 30
  }))
})

test('two ids with the same hash keep their own readings on a replica, through overwrites and from either order', t => {
  const [x, y] = collidingIds(sensorHash, 's')
  t.is(sensorHash(x), sensorHash(y))
  const a = region(fakeClock(), { writer: 'gw-a' })
  const updates = recordLocalUpdates(a)
  a.put(x, 1)
  a.put(y, 2)
  a.put(y, 3)
  a.put(x, 4)
  a.delete(y)
  a.put(y, 5)
  for (const order of [updates, [...updates].reverse()]) {
    const b = region(fakeClock(), { readOnly: true })
    for (const u of order) b.applyUpdate(u)
    t.is(b.get(x)?.value, 4)
    t.is(b.get(y)?.value, 5)
    t.is(b.winner(x)?.t, a.winner(x)?.t)
    t.is(b.winner(y)?.t, a.winner(y)?.t)
    t.deepEqual(b.list().sort(), [x, y].sort())
  }
})

test('after one of two colliding ids expires and is swept, the other is still found and updated by remote readings', t => {
  const [x, y] = collidingIds(sensorHash, 's')
  const RETENTION = 10_000
  for (const headExpires of [true, false]) {
    const clock = fakeClock()
    const a = region(clock, { writer: 'gw-a' })
    const updates = recordLocalUpdates(a)
    const b = region(clock, { readOnly: true, retentionMs: RETENTION })
    // The slot made last heads its hash's chain; the other one is refreshed later and survives.
    const [expiring, surviving] = [x, y]
    if (headExpires) a.put(surviving, 'old')
    a.put(expiring, 'old')
    if (!headExpires) a.put(surviving, 'old')
    clock.ms += RETENTION / 2
    a.put(surviving, 'kept')
    for (const u of updates.splice(0)) b.applyUpdate(u)
    clock.ms += RETENTION / 2 + 1
    b.maintain()
    const where = headExpires ? 'head of the chain' : 'behind the head'
    t.is(b.winner(expiring), undefined, `${where}: swept`)
    t.is(b.stats().expired, 1)
    t.is(b.get(surviving)?.value, 'kept')
    // An older reading of the surviving id (another writer, behind in time) must find its slot and lose.
    const c = region(fakeClock(T0 + RETENTION / 2 - 1000), { writer: 'gw-c' })
    const fromC = recordLocalUpdates(c)
    c.put(surviving, 'older')
    b.applyUpdate(fromC[0])
    t.is(b.get(surviving)?.value, 'kept', `${where}: an older reading loses to the slot found from the bytes`)
    a.put(surviving, 'newer')
    a.put(expiring, 'back')
    for (const u of updates.splice(0)) b.applyUpdate(u)
    t.is(b.get(surviving)?.value, 'newer', `${where}: the other id is still found from the bytes`)
    t.is(b.get(expiring)?.value, 'back', `${where}: the swept id comes back as a new slot`)
    t.deepEqual(b.list().sort(), [x, y].sort())
  }
})

test('ids that are not printable ASCII merge from remote chunks beside ASCII ones', t => {
  const ids = ['température/1', '温度', '🌡️', 'plain', 'x'.repeat(256), 'é'.repeat(256)]
  const a = region(fakeClock(), { writer: 'gw-a' })
  const updates = recordLocalUpdates(a)
  ids.forEach((id, i) => a.put(id, i))
  ids.forEach((id, i) => a.put(id, i * 10))
  const b = region(fakeClock(T0), { readOnly: true })
  for (const u of updates) b.applyUpdate(u)
  t.deepEqual(ids.map(id => b.get(id)?.value), ids.map((_, i) => i * 10))
  t.deepEqual(b.list().sort(), [...ids].sort())
})

test('chunks longer than a merge batch (their slots looked up ahead, 256 at a time) merge to the writers\' own views', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const c = region(clock, { writer: 'gw-c' })
  const fromA = recordLocalUpdates(a)
  const fromC = recordLocalUpdates(c)
  const rnd = prng(11)
  const id = (): string => `line-${Math.floor(rnd() * 3)}/sensor-${Math.floor(rnd() * 400)}`
  // One-reading chunks, then chunks of 255 to 1000 readings, over the same 1200 sensors from two
  // writers at the same physical time (timestamps tie on the wall; the logical counter and the
  // writer id decide).
  for (const n of [1, 1, 255, 256, 257, 513, 1000]) {
    a.putMany(Array.from({ length: n }, (_, i) => ({ sensor: id(), value: i })))
    c.putMany(Array.from({ length: n }, (_, i) => ({ sensor: id(), value: { i } })))
  }
  c.delete(id())
  const updates = [...fromA, ...fromC]
  t.is(updates.length, 15)
  const b = region(clock, { readOnly: true })
  for (const u of updates) b.applyUpdate(u)
  for (const u of updates) { a.applyUpdate(u); c.applyUpdate(u) }
  t.deepEqual(winners(b), winners(a))
  t.deepEqual(winners(b), winners(c))
  t.deepEqual(b.list(), a.list())
  t.deepEqual(views(b, b.list()).map(v => [v?.value, v?.t, v?.writer]), views(a, a.list()).map(v => [v?.value, v?.t, v?.writer]))
  t.true(b.size > 900)
})

test('a chunk deferred behind a gap keeps its own bytes: the update it came in may be reused once applied', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const updates = recordLocalUpdates(a)
  a.put('x', 1)
  a.putMany([{ sensor: 'y', value: 2 }, { sensor: 'z', value: 'three' }])
  t.is(updates.length, 2)
  const b = region(clock, { readOnly: true })
  const second = Uint8Array.from(updates[1])
  t.true(b.applyUpdate(second).pending, 'the second chunk waits for the first')
  t.is(b.stats().deferredChunks, 1)
  second.fill(0)
  b.applyUpdate(updates[0])
  t.is(b.stats().deferredChunks, 0)
  t.is(b.get('y')?.value, 2)
  t.is(b.get('z')?.value, 'three')
  t.deepEqual(winners(b), winners(a))
})

test('a change listener that overwrites, during a remote merge, the only sensor of the chunk\'s writer leaves the rest of the chunk named right', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const updates = recordLocalUpdates(a)
  a.putMany([{ sensor: 'x', value: 1 }, { sensor: 'y', value: 2 }, { sensor: 'z', value: 3 }])
  const b = region(clock, { writer: 'gw-b' })
  b.on('change', c => { if (!c.local && c.sensor === 'x') b.put('x', 'overwritten') })
  b.applyUpdate(updates[0])
  t.is(b.winner('x')?.writer, 'gw-b')
  t.is(b.winner('y')?.writer, 'gw-a')
  t.is(b.winner('z')?.writer, 'gw-a')
  t.is(b.get('z')?.value, 3)
})
