import test from 'ava'
import { T0, openStore, tAt, tempDir } from './helpers.ts'

const REGION = 'eu-west'

test('history returns every recorded value decoded, with t, wall time and writer, oldest first', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 60_000 })
  const values = [
    21.5,
    { value: 22, unit: 'C' },
    { value: 23, unit: 'C', ts: T0 - 5 },
    'open',
    { value: { value: 2 } },
    { a: [1, 'x', null] },
    null,
    true
  ]
  values.forEach((value, i) => { store.record(REGION, { sensor: 'line-1/temp', t: tAt(T0 + i * 1000), writer: 'gw-a', value }) })
  await store.flush()
  const h = await store.history({ region: REGION, sensor: 'line-1/temp' })
  t.deepEqual(h, [
    { t: tAt(T0), at: T0, value: 21.5, writer: 'gw-a' },
    { t: tAt(T0 + 1000), at: T0 + 1000, value: 22, unit: 'C', writer: 'gw-a' },
    { t: tAt(T0 + 2000), at: T0 + 2000, value: 23, unit: 'C', ts: T0 - 5, writer: 'gw-a' },
    { t: tAt(T0 + 3000), at: T0 + 3000, value: 'open', writer: 'gw-a' },
    { t: tAt(T0 + 4000), at: T0 + 4000, value: { value: 2 }, writer: 'gw-a' },
    { t: tAt(T0 + 5000), at: T0 + 5000, value: { a: [1, 'x', null] }, writer: 'gw-a' },
    { t: tAt(T0 + 6000), at: T0 + 6000, value: null, writer: 'gw-a' },
    { t: tAt(T0 + 7000), at: T0 + 7000, value: true, writer: 'gw-a' }
  ])
  // Only the numeric readings (bare or in an envelope) are aggregated.
  const [w] = await store.aggregates({ region: REGION, sensor: 'line-1/temp' })
  t.like(w, { count: 3, min: 21.5, max: 23, last: 23 })
  t.is(store.stats().recorded, values.length)
  // A late reading does not move the newest wall time back.
  store.record(REGION, { sensor: 'line-1/temp', t: tAt(T0 - 1000), writer: 'gw-b', value: 1 })
  await store.flush()
  t.deepEqual(store.regions(), [{ region: REGION, sensors: 1, lastAt: T0 + 7000, lastRecordedAt: T0 + 60_000 }])
  t.deepEqual(store.sensors(REGION), [{ sensor: 'line-1/temp', lastAt: T0 + 7000, lastRecordedAt: T0 + 60_000, samples: 4 }])
})

test('history ranges are [from, to) on the wall time, limits take the oldest or (desc) the newest, ties order by writer', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 100_000 })
  for (let i = 0; i < 20; i++) {
    store.record(REGION, { sensor: 's', t: tAt(T0 + i * 1000, 1), writer: 'gw-b', value: 100 + i })
    store.record(REGION, { sensor: 's', t: tAt(T0 + i * 1000, 1), writer: 'gw-a', value: -100 - i })
  }
  // Another sensor whose id extends this one's must never show up in its history.
  store.record(REGION, { sensor: 's2', t: tAt(T0 + 5000), writer: 'gw-a', value: 99 })
  store.record(REGION, { sensor: 's/x', t: tAt(T0 + 5000), writer: 'gw-a', value: 98 })
  await store.flush()

  const all = await store.history({ region: REGION, sensor: 's' })
  t.is(all.length, 40)
  t.deepEqual(all.slice(0, 4).map(e => [e.at, e.writer, e.value]), [[T0, 'gw-a', -100], [T0, 'gw-b', 100], [T0 + 1000, 'gw-a', -101], [T0 + 1000, 'gw-b', 101]])

  const range = await store.history({ region: REGION, sensor: 's', from: T0 + 3000, to: T0 + 6000 })
  t.deepEqual(range.map(e => e.at), [T0 + 3000, T0 + 3000, T0 + 4000, T0 + 4000, T0 + 5000, T0 + 5000])
  t.deepEqual(await store.history({ region: REGION, sensor: 's', from: T0 + 3001, to: T0 + 4001 }).then(r => r.map(e => e.at)), [T0 + 4000, T0 + 4000])
  t.deepEqual(await store.history({ region: REGION, sensor: 's', from: T0 + 3000, to: T0 + 3000 }), [])

  const firstThree = await store.history({ region: REGION, sensor: 's', limit: 3 })
  t.deepEqual(firstThree.map(e => e.value), [-100, 100, -101])
  const lastThree = await store.history({ region: REGION, sensor: 's', limit: 3, order: 'desc' })
  t.deepEqual(lastThree.map(e => e.value), [119, -119, 118])
  const lastBefore = await store.history({ region: REGION, sensor: 's', to: T0 + 10_000, limit: 1, order: 'desc' })
  t.deepEqual(lastBefore.map(e => [e.at, e.writer]), [[T0 + 9000, 'gw-b']])

  t.deepEqual(await store.history({ region: REGION, sensor: 's2' }).then(r => r.map(e => e.value)), [99])
  t.deepEqual(await store.history({ region: REGION, sensor: 'absent' }), [])
  t.deepEqual(await store.history({ region: 'other', sensor: 's' }), [])
})

test('a reading seen twice (same region, sensor, t and writer) is recorded once: in one batch, in later batches and after a reopen', async t => {
  const dir = await tempDir(t)
  const now = (): number => T0 + 100_000
  const store = await openStore(t, { path: dir, now })
  const r = (i: number, writer: string = 'gw-a'): { sensor: string, t: string, writer: string, value: number } =>
    ({ sensor: 'rpm', t: tAt(T0 + i * 1000), writer, value: 1000 + i })
  for (let i = 0; i < 10; i++) store.record(REGION, r(i))
  store.record(REGION, r(3))
  store.record(REGION, r(9))
  await store.flush()
  t.is(store.stats().duplicates, 2)
  // Later: a replay of old readings, interleaved with a late reading that is not a duplicate, and
  // the same t from another writer, which is another reading.
  store.record(REGION, r(2))
  store.record(REGION, r(9))
  store.record(REGION, { sensor: 'rpm', t: tAt(T0 + 2500), writer: 'gw-a', value: 5 })
  store.record(REGION, r(4, 'gw-b'))
  await store.flush()
  t.is(store.stats().duplicates, 4)
  t.is(store.stats().recorded, 12)
  const expected = await store.history({ region: REGION, sensor: 'rpm' })
  t.is(expected.length, 12)
  const [window] = await store.aggregates({ region: REGION, sensor: 'rpm' })
  t.like(window, { count: 12, min: 5, max: 1009, last: 1009 })
  await store.close()

  const again = await openStore(t, { path: dir, now })
  for (let i = 0; i < 10; i++) again.record(REGION, r(i))
  again.record(REGION, r(4, 'gw-b'))
  again.record(REGION, { sensor: 'rpm', t: tAt(T0 + 2500), writer: 'gw-a', value: 5 })
  await again.flush()
  t.like(again.stats(), { recorded: 0, duplicates: 12 })
  t.deepEqual(await again.history({ region: REGION, sensor: 'rpm' }), expected)
  t.deepEqual(await again.aggregates({ region: REGION, sensor: 'rpm' }), [window])
  // Only readings that were not newer than the newest recorded were looked up.
  t.is(again.stats().duplicateChecks, 12)
})

test('a reopened store keeps history, windows, anomalies, regions and sensors', async t => {
  const dir = await tempDir(t)
  const now = (): number => T0 + 600_000
  const store = await openStore(t, { path: dir, now, anomaly: { minSamples: 5 } })
  for (let i = 0; i < 300; i++) {
    const value = i === 250 ? 500 : 10 + (i % 3)
    store.record(i % 2 === 0 ? 'r1' : 'r2', { sensor: `s${i % 4}`, t: tAt(T0 + i * 1000), writer: 'gw-a', value })
  }
  await store.flush()
  const snapshot = async (s: typeof store): Promise<unknown> => ({
    history: await s.history({ region: 'r1', sensor: 's2' }),
    windows: await s.aggregates({ region: 'r1', sensor: 's2' }),
    regionWindows: await s.aggregates({ region: 'r2' }),
    anomalies: await s.anomalies(),
    regions: s.regions(),
    sensors: [s.sensors('r1'), s.sensors('r2')]
  })
  const before = await snapshot(store)
  t.is((before as { anomalies: unknown[] }).anomalies.length, 1)
  await store.close()
  t.is(store.status(), 'closed')
  const again = await openStore(t, { path: dir, now, anomaly: { minSamples: 5 } })
  t.deepEqual(await snapshot(again), before)
  t.like(again.stats(), { regions: 2, sensors: 4 })
})
