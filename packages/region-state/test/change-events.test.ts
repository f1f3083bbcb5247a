import test from 'ava'
import type { Change, RegionState } from '../src/index.ts'
import { fakeClock, recordLocalUpdates, region } from './helpers.ts'

function recordChanges (r: RegionState): Change[] {
  const out: Change[] = []
  r.on('change', c => out.push(c))
  return out
}

test('a local put emits change {sensor, old: undefined, new, reason: write, local: true}', t => {
  const r = region(fakeClock())
  const changes = recordChanges(r)
  const written = r.put('s', 1)
  t.deepEqual(changes, [{ sensor: 's', old: undefined, new: written, reason: 'write', local: true }])
})

test('an overwrite emits change with the previous reading as old', t => {
  const r = region(fakeClock())
  const first = r.put('s', 1)
  const changes = recordChanges(r)
  const second = r.put('s', 2)
  t.deepEqual(changes, [{ sensor: 's', old: first, new: second, reason: 'write', local: true }])
})

test('a local delete emits change with reason delete and new undefined', t => {
  const r = region(fakeClock())
  const first = r.put('s', 1)
  const changes = recordChanges(r)
  r.delete('s')
  t.deepEqual(changes, [{ sensor: 's', old: first, new: undefined, reason: 'delete', local: true }])
})

test('deleting an absent or already deleted sensor emits no change', t => {
  const r = region(fakeClock())
  r.put('s', 1)
  r.delete('s')
  const changes = recordChanges(r)
  r.delete('s')
  r.delete('never-written')
  t.is(changes.length, 0)
})

test('a put after a delete emits a write with old undefined', t => {
  const r = region(fakeClock())
  r.put('s', 1)
  r.delete('s')
  const changes = recordChanges(r)
  const again = r.put('s', 2)
  t.deepEqual(changes, [{ sensor: 's', old: undefined, new: again, reason: 'write', local: true }])
})

test('a batch emits one change per winning reading, in order', t => {
  const r = region(fakeClock())
  r.put('b', 0)
  const changes = recordChanges(r)
  const out = r.write([{ sensor: 'a', value: 1 }, { sensor: 'b', deleted: true }, { sensor: 'a', value: 2 }])
  t.deepEqual(changes.map(c => [c.sensor, c.reason, c.new?.value]), [['a', 'write', 1], ['b', 'delete', undefined], ['a', 'write', 2]])
  t.deepEqual(changes[2].old, out[0])
})

test('remote applies emit change with local: false, for writes and deletes', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const updates = recordLocalUpdates(a)
  const w = a.put('s', 'on')
  a.delete('s')
  const changes = recordChanges(b)
  b.applyUpdate(updates[0])
  b.applyUpdate(updates[1])
  t.deepEqual(changes, [
    { sensor: 's', old: undefined, new: w, reason: 'write', local: false },
    { sensor: 's', old: w, new: undefined, reason: 'delete', local: false }
  ])
})

test('an older remote reading that loses emits no change and leaves the value', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const fromB = recordLocalUpdates(b)
  b.put('s', 'old') // t = T0
  clock.ms += 10
  const mine = a.put('s', 'new') // t = T0 + 10, greater
  const changes = recordChanges(a)
  const result = a.applyUpdate(fromB[0])
  t.is(changes.length, 0)
  t.is(result.readings, 1)
  t.is(result.changed, 0)
  t.is(a.get('s')?.value, 'new')
  t.is(a.get('s')?.t, mine.t)
})

test('a duplicated remote update emits no second change', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const updates = recordLocalUpdates(a)
  a.put('s', 1)
  const changes = recordChanges(b)
  b.applyUpdate(updates[0])
  const again = b.applyUpdate(updates[0])
  t.is(changes.length, 1)
  t.is(again.changed, 0)
})

test('retention expiry emits change with reason expire and new undefined', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: 10_000 })
  const w = r.put('s', 1)
  const changes = recordChanges(r)
  clock.ms += 10_001
  r.maintain()
  t.is(changes.length, 1)
  t.like(changes[0], { sensor: 's', old: w, new: undefined, reason: 'expire' })
})

test('an expiring tombstone emits no change', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: 10_000 })
  r.put('s', 1)
  r.delete('s')
  const changes = recordChanges(r)
  clock.ms += 10_001
  r.maintain()
  t.is(changes.length, 0)
  t.is(r.winner('s'), undefined)
  t.is(r.stats().tombstones, 0)
})

test('compaction emits no change', t => {
  const r = region(fakeClock(), { compaction: { stepReadings: 1_000 } })
  for (let i = 0; i < 20; i++) r.put(`s${i % 3}`, i)
  const changes = recordChanges(r)
  t.truthy(r.compactStep())
  t.is(changes.length, 0)
})

// Regression: a reading past the horizon but not yet swept was reported as `old`.
test('a write over an expired, not yet swept reading reports old as undefined', t => {
  const clock = fakeClock()
  const r = region(clock, { retentionMs: 10_000 })
  r.put('s', 1)
  clock.ms += 10_001
  t.is(r.get('s'), undefined)
  const changes = recordChanges(r)
  const w = r.put('s', 2)
  t.deepEqual(changes, [{ sensor: 's', old: undefined, new: w, reason: 'write', local: true }])
})
