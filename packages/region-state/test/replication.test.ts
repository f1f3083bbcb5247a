import test from 'ava'
import { decodeTimestamp, encodeTimestamp } from '@edge-mesh/hlc'
import type { Reading } from '../src/index.ts'
import { connect, fakeClock, logOf, recordLocalUpdates, region, T0, winners } from './helpers.ts'

/** All orders of `items`. */
function permutations<T> (items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]]
  const out: T[][] = []
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest])
  })
  return out
}

test('connected replicas see each other\'s writes', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  connect(a, b)
  const w = a.put('line-3/temp', 21.5)
  t.deepEqual(b.get('line-3/temp'), { sensor: 'line-3/temp', value: 21.5, t: w.t, writer: 'gw-a', ageMs: 0 })
  b.put('line-4/temp', 19)
  t.is(a.get('line-4/temp')?.writer, 'gw-b')
  b.delete('line-3/temp')
  t.is(a.get('line-3/temp'), undefined)
  t.deepEqual(winners(a), winners(b))
})

test('concurrent puts with equal timestamps resolve to the greater writer on both replicas, whatever the order', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  const ub = recordLocalUpdates(b)
  const ra = a.put('s', 'from a')
  const rb = b.put('s', 'from b')
  t.is(ra.t, rb.t, 'precondition: both clocks issued the same timestamp')
  // a receives b's update, b receives a's: opposite orders of application.
  a.applyUpdate(ub[0])
  b.applyUpdate(ua[0])
  for (const r of [a, b]) {
    t.is(r.get('s')?.value, 'from b')
    t.is(r.get('s')?.writer, 'gw-b')
  }
  t.deepEqual(winners(a), winners(b))
})

test('concurrent puts resolve to the greater timestamp even when its writer id is smaller', t => {
  const clockA = fakeClock(T0 + 10)
  const clockB = fakeClock(T0)
  const a = region(clockA, { writer: 'gw-a' })
  const b = region(clockB, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  const ub = recordLocalUpdates(b)
  a.put('s', 'later')
  b.put('s', 'earlier')
  a.applyUpdate(ub[0])
  b.applyUpdate(ua[0])
  t.is(a.get('s')?.value, 'later')
  t.is(b.get('s')?.value, 'later')
  t.is(b.get('s')?.writer, 'gw-a')
})

test('three writers on one sensor: every order of application, with duplicates, gives the same winners', t => {
  const clock = fakeClock()
  const writers = ['gw-a', 'gw-b', 'gw-c'].map(w => region(clock, { writer: w }))
  const updates = writers.map(r => recordLocalUpdates(r))
  // Same timestamp on all three for 'tie', distinct timestamps for 'spread', a delete racing a put on 'gone'.
  writers.forEach((r, i) => r.put('tie', i))
  writers.forEach((r, i) => { clock.ms += 1; r.put('spread', `v${i}`) })
  clock.ms += 1
  writers[2].delete('gone')
  clock.ms += 1
  writers[0].put('gone', 'resurrected?')
  const all = updates.flat()
  let reference: Reading[] | undefined
  for (const order of permutations(updates.map((_, i) => i))) {
    const observer = region(clock, { readOnly: true })
    for (const i of order) for (const u of updates[i]) observer.applyUpdate(u)
    for (const u of [...all].reverse()) observer.applyUpdate(u) // duplicates change nothing
    const got = winners(observer)
    reference ??= got
    t.deepEqual(got, reference, `order ${order.join(',')}`)
  }
  t.is(reference?.find(r => r.sensor === 'tie')?.writer, 'gw-c')
  t.is(reference?.find(r => r.sensor === 'spread')?.value, 'v2')
  t.deepEqual(reference?.find(r => r.sensor === 'gone')?.value, 'resurrected?', 'the put at a later HLC beats the delete')
  // And the writers themselves converge once they exchange everything.
  for (const r of writers) for (const u of all) r.applyUpdate(u)
  t.deepEqual(winners(writers[0]), reference)
  t.deepEqual(winners(writers[1]), reference)
  t.deepEqual(winners(writers[2]), reference)
})

test('three connected replicas writing many sensors converge to identical views and identical docs', t => {
  const clock = fakeClock()
  const rs = ['gw-a', 'gw-b', 'gw-c'].map(w => region(clock, { writer: w }))
  connect(...rs)
  for (let i = 0; i < 60; i++) {
    const r = rs[i % 3]
    if (i % 7 === 0) r.delete(`s${i % 5}`)
    else r.put(`s${i % 5}`, { i, by: r.writer ?? '' })
    if (i % 4 === 0) clock.ms += 1
  }
  t.deepEqual(winners(rs[1]), winners(rs[0]))
  t.deepEqual(winners(rs[2]), winners(rs[0]))
  for (const w of ['gw-a', 'gw-b', 'gw-c']) {
    t.deepEqual(logOf(rs[1], w), logOf(rs[0], w))
    t.deepEqual(logOf(rs[2], w), logOf(rs[0], w))
  }
  t.deepEqual(Array.from(rs[1].encodeStateVector()), Array.from(rs[0].encodeStateVector()))
  t.deepEqual(Array.from(rs[2].encodeStateVector()), Array.from(rs[0].encodeStateVector()))
})

test('a replica that received a remote reading issues later timestamps greater than it, even with its clock behind', t => {
  const clockA = fakeClock(T0 + 30_000)
  const clockB = fakeClock(T0)
  const a = region(clockA, { writer: 'gw-a' })
  const b = region(clockB, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  const remote = a.put('s', 'from the future')
  b.applyUpdate(ua[0])
  t.true(b.hlc.last() > remote.t)
  const mine = b.put('s', 'mine')
  t.true(mine.t > remote.t)
  t.is(decodeTimestamp(mine.t).wall, T0 + 30_000)
  t.is(b.get('s')?.value, 'mine', 'the causally later local write wins')
})

test('a remote reading exactly at the drift bound is accepted', t => {
  const a = region(fakeClock(T0 + 60_000), { writer: 'gw-a' })
  const b = region(fakeClock(T0), { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  a.put('s', 1)
  t.notThrows(() => b.applyUpdate(ua[0]))
  t.is(b.get('s')?.t, encodeTimestamp({ wall: T0 + 60_000, logical: 0 }))
})

test('applyUpdate() reports the readings new to the replica and the keys whose winner changed', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  const ub = recordLocalUpdates(b)
  b.put('z', 'b wrote z first')
  clock.ms += 1
  a.putMany([{ sensor: 'x', value: 1 }, { sensor: 'y', value: 2 }])
  clock.ms += 1
  b.put('y', 'b wrote y later')
  t.deepEqual(b.applyUpdate(ua[0]), { readings: 2, changed: 1, pending: false }, 'x is new, y loses to b\'s later write')
  t.deepEqual(b.applyUpdate(ua[0]), { readings: 0, changed: 0, pending: false }, 'a duplicate carries nothing new')
  t.deepEqual(a.applyUpdate(ub[0]), { readings: 1, changed: 1, pending: false })
})

// Regression: ApplyResult.changed counted readings, not keys.
test('applyUpdate().changed counts keys, not readings, when an update overwrites a key twice', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  a.putMany([{ sensor: 'x', value: 1 }, { sensor: 'y', value: 2 }, { sensor: 'x', value: 3 }])
  t.deepEqual(b.applyUpdate(ua[0]), { readings: 3, changed: 2, pending: false })
})

test('a remote update applied emits update with local: false, and a duplicate emits nothing', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  a.put('s', 1)
  const seen: Array<[Uint8Array, boolean]> = []
  b.on('update', (u, local) => seen.push([u, local]))
  b.applyUpdate(ua[0])
  b.applyUpdate(ua[0])
  t.is(seen.length, 1)
  t.false(seen[0][1])
  t.deepEqual(seen[0][0], ua[0])
})

test('an update whose predecessor is missing is reported pending with a gap event, and integrates once the gap is filled', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const ua = recordLocalUpdates(a)
  a.put('s', 1)
  a.put('s', 2)
  let gaps = 0
  b.on('gap', () => { gaps++ })
  const second = b.applyUpdate(ua[1])
  t.true(second.pending)
  t.is(gaps, 1)
  t.true(b.stats().pending)
  const first = b.applyUpdate(ua[0])
  t.false(first.pending)
  t.false(b.stats().pending)
  t.is(b.get('s')?.value, 2)
  t.deepEqual(logOf(b, 'gw-a'), logOf(a, 'gw-a'))
})

test('state-vector sync: encodeStateAsUpdate(peer state vector) brings the peer up to date', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  a.put('x', 1)
  b.applyUpdate(a.encodeStateAsUpdate())
  a.put('y', 2)
  a.delete('x')
  b.applyUpdate(a.encodeStateAsUpdate(b.encodeStateVector()))
  t.deepEqual(winners(b), winners(a))
  t.deepEqual(Array.from(b.encodeStateVector()), Array.from(a.encodeStateVector()))
})

test('Yjs encodes updates only for the replica\'s own transactions: applying a remote one does not encode it again', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const b = region(clock, { writer: 'gw-b' })
  const fromA = recordLocalUpdates(a)
  // Yjs encodes a transaction's update exactly when the doc has an 'update' observer at its end.
  const encodes = (r: typeof b): boolean[] => {
    const seen: boolean[] = []
    r.doc.on('afterTransaction', () => { seen.push((r.doc as unknown as { _observers: Map<string, unknown> })._observers.has('update')) })
    return seen
  }
  const bEncodes = encodes(b)
  a.putMany(Array.from({ length: 50 }, (_, i) => ({ sensor: `s${i}`, value: i })))
  for (const u of fromA) b.applyUpdate(u)
  t.is(b.list().length, 50, 'the remote readings are in the view')
  t.true(bEncodes.length > 0)
  t.true(bEncodes.every(x => !x), 'no encoding for remote transactions')
  b.put('own', 1)
  t.is(bEncodes.at(-1), true, 'its own write is encoded (it is what it sends)')
  t.false((b.doc as unknown as { _observers: Map<string, unknown> })._observers.has('update'), 'and the listener is gone again')
})
