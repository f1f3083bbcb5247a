import test from 'ava'
import { decodeTimestamp, encodeTimestamp, isTimestamp } from '@edge-mesh/hlc'
import { fakeClock, recordLocalUpdates, region, T0 } from './helpers.ts'

test('put() returns the reading with sensor, value, writer and a 16-hex HLC timestamp from the injected clock', t => {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a' })
  const reading = r.put('line-3/temp', 21.5)
  t.is(reading.sensor, 'line-3/temp')
  t.is(reading.value, 21.5)
  t.is(reading.writer, 'gw-a')
  t.false(reading.deleted)
  t.true(isTimestamp(reading.t))
  t.is(reading.t.length, 16)
  t.deepEqual(decodeTimestamp(reading.t), { wall: T0, logical: 0 })
})

test('timestamps are strictly increasing across put, putMany, delete and write, even with a clock that stands still', t => {
  const clock = fakeClock()
  const r = region(clock)
  const ts: string[] = []
  ts.push(r.put('a', 1).t)
  ts.push(...r.putMany([{ sensor: 'b', value: 2 }, { sensor: 'c', value: 3 }]).map(x => x.t))
  ts.push(r.delete('a').t)
  ts.push(...r.write([{ sensor: 'd', value: 4 }, { sensor: 'b', deleted: true }]).map(x => x.t))
  clock.ms -= 5_000 // the physical clock going backwards must not matter
  ts.push(r.put('e', 5).t)
  clock.ms += 10_000
  ts.push(r.put('f', 6).t)
  for (let i = 1; i < ts.length; i++) t.true(ts[i] > ts[i - 1], `timestamp ${i} is greater than ${i - 1}`)
  t.is(ts[ts.length - 1], encodeTimestamp({ wall: T0 + 5_000, logical: 0 }))
})

test('get() returns sensor, value, t, writer and ageMs measured on the injected clock', t => {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a' })
  const written = r.put('s', 'on')
  clock.ms += 1_234
  t.deepEqual(r.get('s'), { sensor: 's', value: 'on', t: written.t, writer: 'gw-a', ageMs: 1_234 })
})

test('ageMs is 0, not negative, when the clock is behind the reading', t => {
  const clock = fakeClock()
  const r = region(clock)
  r.put('s', 1)
  clock.ms -= 500
  t.is(r.get('s')?.ageMs, 0)
})

test('get() of a sensor never written is undefined', t => {
  const r = region(fakeClock())
  t.is(r.get('nope'), undefined)
  t.is(r.winner('nope'), undefined)
})

test('a later put overwrites the value', t => {
  const r = region(fakeClock())
  r.put('s', 1)
  const second = r.put('s', 2)
  t.is(r.get('s')?.value, 2)
  t.is(r.get('s')?.t, second.t)
})

test('putMany() writes every entry and returns them in input order', t => {
  const r = region(fakeClock())
  const out = r.putMany([{ sensor: 'x', value: 1 }, { sensor: 'y', value: 'two' }, { sensor: 'z', value: [3] }])
  t.deepEqual(out.map(x => x.sensor), ['x', 'y', 'z'])
  t.deepEqual(out.map(x => x.value), [1, 'two', [3]])
  t.deepEqual(r.list(), ['x', 'y', 'z'])
  t.is(r.get('y')?.value, 'two')
})

test('the same sensor twice in one batch: the later entry wins', t => {
  const r = region(fakeClock())
  const out = r.putMany([{ sensor: 's', value: 'first' }, { sensor: 's', value: 'second' }])
  t.true(out[1].t > out[0].t)
  t.is(r.get('s')?.value, 'second')
  t.is(r.size, 1)
})

test('delete() writes a tombstone: winner() shows deleted, get() is undefined and list() excludes it', t => {
  const r = region(fakeClock(), { writer: 'gw-a' })
  r.put('s', 1)
  r.put('other', 2)
  const tomb = r.delete('s')
  t.true(tomb.deleted)
  t.is(tomb.value, null)
  t.is(tomb.writer, 'gw-a')
  t.deepEqual(r.winner('s'), { sensor: 's', value: null, t: tomb.t, writer: 'gw-a', deleted: true })
  t.is(r.get('s'), undefined)
  t.deepEqual(r.list(), ['other'])
  t.is(r.size, 1)
  t.is(r.stats().tombstones, 1)
})

test('delete() of a sensor never written still records a tombstone and does not change size', t => {
  const r = region(fakeClock())
  const tomb = r.delete('ghost')
  t.true(r.winner('ghost')?.deleted)
  t.is(r.winner('ghost')?.t, tomb.t)
  t.is(r.size, 0)
})

test('a put after a delete resurrects the sensor', t => {
  const r = region(fakeClock())
  r.put('s', 1)
  r.delete('s')
  const again = r.put('s', 3)
  t.is(r.get('s')?.value, 3)
  t.is(r.get('s')?.t, again.t)
  t.false(r.winner('s')?.deleted)
  t.deepEqual(r.list(), ['s'])
  t.is(r.size, 1)
  t.is(r.stats().tombstones, 0)
})

test('write() mixes puts and deletes in one batch', t => {
  const r = region(fakeClock())
  r.putMany([{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }])
  const out = r.write([{ sensor: 'a', deleted: true }, { sensor: 'c', value: 3 }])
  t.true(out[0].deleted)
  t.false(out[1].deleted)
  t.deepEqual(r.list(), ['b', 'c'])
})

test('a batch is written as one local update', t => {
  const r = region(fakeClock())
  const updates = recordLocalUpdates(r)
  r.write([{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }, { sensor: 'a', deleted: true }])
  t.is(updates.length, 1)
})

test('list() is sorted and filters by prefix; entries() filters by prefix and skips deleted sensors', t => {
  const r = region(fakeClock())
  r.putMany([
    { sensor: 'line-3/temp', value: 1 },
    { sensor: 'line-1/temp', value: 2 },
    { sensor: 'line-2/hum', value: 3 },
    { sensor: 'line-1/hum', value: 4 },
    { sensor: 'dock/door', value: 5 }
  ])
  r.delete('line-2/hum')
  t.deepEqual(r.list(), ['dock/door', 'line-1/hum', 'line-1/temp', 'line-3/temp'])
  t.deepEqual(r.list('line-1/'), ['line-1/hum', 'line-1/temp'])
  t.deepEqual(r.list('line-2/'), [])
  t.deepEqual(r.list('nothing'), [])
  const entries = new Map(r.entries('line-'))
  t.deepEqual([...entries.keys()].sort(), ['line-1/hum', 'line-1/temp', 'line-3/temp'])
  t.is(entries.get('line-1/temp')?.value, 2)
  t.deepEqual(entries.get('line-3/temp'), r.get('line-3/temp'))
  t.is([...r.entries()].length, 4)
})

test('size counts live sensors only', t => {
  const r = region(fakeClock())
  t.is(r.size, 0)
  r.putMany([{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }, { sensor: 'c', value: 3 }])
  r.put('a', 10)
  t.is(r.size, 3)
  r.delete('b')
  r.delete('never')
  t.is(r.size, 2)
  t.is(r.stats().sensors, 2)
  t.is(r.stats().tombstones, 2)
})

test('readings written by this replica count as its own live keys', t => {
  const r = region(fakeClock())
  r.putMany([{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }])
  r.delete('a')
  t.like(r.stats(), { ownLive: 2, sensors: 1, tombstones: 1, ownLogReadings: 3, ownLogChunks: 2 })
})
