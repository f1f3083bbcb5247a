import test from 'ava'
import { connect, fakeClock, fingerprint, recordLocalUpdates, region, winners } from './helpers.ts'

test('a read-only replica needs no writer, and ignores one if given', t => {
  const clock = fakeClock()
  const ro = region(clock, { readOnly: true, writer: undefined })
  t.true(ro.readOnly)
  t.is(ro.writer, undefined)
  const ro2 = region(clock, { readOnly: true, writer: 'gw-x' })
  t.is(ro2.writer, undefined)
  t.like(ro2.stats(), { readOnly: true, writer: undefined })
})

test('put, putMany, delete and write on a read-only replica throw EM_ERR_READ_ONLY and change nothing', t => {
  const ro = region(fakeClock(), { readOnly: true })
  const before = fingerprint(ro)
  t.throws(() => ro.put('s', 1), { code: 'EM_ERR_READ_ONLY', name: 'ReadOnlyError' })
  t.throws(() => ro.putMany([{ sensor: 's', value: 1 }]), { code: 'EM_ERR_READ_ONLY' })
  t.throws(() => ro.delete('s'), { code: 'EM_ERR_READ_ONLY' })
  t.throws(() => ro.write([{ sensor: 's', deleted: true }]), { code: 'EM_ERR_READ_ONLY' })
  t.throws(() => ro.write([]), { code: 'EM_ERR_READ_ONLY' })
  t.deepEqual(fingerprint(ro), before)
})

test('the read-only check comes before input validation', t => {
  const ro = region(fakeClock(), { readOnly: true })
  t.throws(() => ro.put('', NaN), { code: 'EM_ERR_READ_ONLY' })
})

test('a read-only replica applies remote updates and its view matches the writers\'', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 8, ratio: 1 }, maxChunkReadings: 4 })
  const b = region(clock, { writer: 'gw-b' })
  const ro = region(clock, { readOnly: true })
  connect(a, b, ro)
  for (let i = 0; i < 50; i++) {
    a.put(`a${i % 4}`, i)
    if (i % 5 === 0) b.put(`a${i % 4}`, -i)
    if (i % 9 === 0) a.delete(`a${(i + 1) % 4}`)
    clock.ms += 1
  }
  t.true(a.stats().compactions > 0, 'precondition: the writer compacted while the read-only replica listened')
  const all = ['a0', 'a1', 'a2', 'a3']
  t.deepEqual(winners(ro, all), winners(a, all))
  t.deepEqual(winners(ro, all), winners(b, all))
  t.deepEqual(ro.list(), a.list())
})

test('compactStep() on a read-only replica returns undefined and writes nothing', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const ro = region(clock, { readOnly: true })
  connect(a, ro)
  for (let i = 0; i < 30; i++) a.put('s', i)
  const before = fingerprint(ro)
  t.is(ro.compactStep(), undefined)
  ro.maintain()
  t.deepEqual(fingerprint(ro), before)
  t.is(ro.stats().compactions, 0)
})

test('a read-only replica never emits update with local = true', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', compaction: { stepReadings: 4, ratio: 1 } })
  const ro = region(clock, { readOnly: true, retentionMs: 1_000 })
  const seen: boolean[] = []
  ro.on('update', (_u, local) => seen.push(local))
  const ua = recordLocalUpdates(a)
  for (let i = 0; i < 40; i++) a.put(`s${i % 2}`, i)
  a.delete('s0')
  for (const u of ua) ro.applyUpdate(u)
  ro.compactStep()
  clock.ms += 5_000
  ro.maintain()
  ro.compactStep()
  t.true(seen.length > 0, 'remote updates were re-emitted')
  t.true(seen.every(local => !local))
  t.is(seen.length, ua.length)
})
