import test from 'ava'
import { fakeClock } from '@edge-mesh/testkit'
import type { AnalyticsStore } from '../src/index.ts'
import { T0, openStore, tAt, tempDir, waitFor, waitTurns } from './helpers.ts'

const MIN = 60_000
/** A minute boundary, so windows start at B + k minutes. */
const B = T0 - (T0 % MIN)

/** Everything the store holds about the given sensors, through its queries. */
async function contents (store: AnalyticsStore, region: string, sensors: string[]): Promise<{ history: number[], windows: number[], regionWindows: number[], anomalies: number[] }> {
  const history: number[] = []
  const windows: number[] = []
  for (const sensor of sensors) {
    history.push(...(await store.history({ region, sensor, limit: 100_000 })).map(h => h.at))
    windows.push(...(await store.aggregates({ region, sensor })).map(w => w.start))
  }
  return {
    history: history.sort((a, b) => a - b),
    windows: windows.sort((a, b) => a - b),
    regionWindows: (await store.aggregates({ region })).map(w => w.start),
    anomalies: (await store.anomalies({ region })).map(a => a.at)
  }
}

test('retention deletes history, windows and anomalies older than the horizon, forgets expired sensors and regions, and keeps the rest', async t => {
  const dir = await tempDir(t)
  const clock = fakeClock(B + 10 * MIN)
  const store = await openStore(t, { path: dir, now: clock.now, retentionMs: 10 * MIN, anomaly: { minSamples: 5 } })
  // Every 10 s for 10 minutes: 'live' all along, with spikes at 2 and 8 min; 'state' (strings) all
  // along; 'old' for the first 3 minutes only; region 'gone' only in the first 2 minutes.
  for (let s = 0; s < 600; s += 10) {
    const at = B + s * 1000
    const wobble = (s / 10) % 3
    store.record('site', { sensor: 'live', t: tAt(at), writer: 'gw-a', value: s === 120 || s === 480 ? 100 : 20 + wobble })
    store.record('site', { sensor: 'state', t: tAt(at, 1), writer: 'gw-a', value: wobble === 0 ? 'idle' : 'run' })
    if (s < 180) store.record('site', { sensor: 'old', t: tAt(at, 2), writer: 'gw-a', value: 5 + wobble })
    if (s < 120) store.record('gone', { sensor: 'x', t: tAt(at), writer: 'gw-b', value: wobble })
  }
  await store.flush()
  const sensors = ['live', 'state', 'old']
  const before = await contents(store, 'site', sensors)
  const goneBefore = await contents(store, 'gone', ['x'])
  t.deepEqual(before.anomalies, [B + 2 * MIN, B + 8 * MIN])
  t.is(store.stats().retentionDeleted, 0, 'nothing was older than the horizon yet')

  // The horizon moves to B + 7 min.
  clock.ms = B + 17 * MIN
  const cutoff = B + 7 * MIN
  await store.runRetention()
  const after = await contents(store, 'site', sensors)
  t.deepEqual(after.history, before.history.filter(at => at >= cutoff))
  // A window goes when it has ended by the horizon: [B + 6 min, B + 7 min) is the last to go.
  t.deepEqual(after.windows, before.windows.filter(start => start + MIN > cutoff))
  t.deepEqual(after.regionWindows, [7, 8, 9].map(k => B + k * MIN))
  t.deepEqual(after.anomalies, [B + 8 * MIN])
  t.deepEqual(await contents(store, 'gone', ['x']), { history: [], windows: [], regionWindows: [], anomalies: [] })
  t.deepEqual(store.regions().map(r => r.region), ['site'])
  t.deepEqual(store.sensors('site').map(s => s.sensor), ['live', 'state'])
  t.like(store.stats(), { regions: 1, sensors: 2, retentionPasses: 2 })

  // Every deleted record is counted: history entries, windows, anomalies, and the two sensor states.
  const count = (c: typeof before): number => c.history.length + c.windows.length + c.regionWindows.length + c.anomalies.length
  t.is(store.stats().retentionDeleted, count(before) - count(after) + count(goneBefore) + 2)

  // Readings older than the horizon are left out when recorded (a late one from a healed partition).
  store.record('site', { sensor: 'live', t: tAt(cutoff - 1), writer: 'gw-a', value: 1 })
  store.record('site', { sensor: 'live', t: tAt(cutoff), writer: 'gw-z', value: 2 })
  await store.flush()
  t.like(store.stats(), { expired: 1 })
  t.deepEqual((await store.history({ region: 'site', sensor: 'live', to: cutoff + 1 })).map(h => h.value), [20, 2])
})

test('retention deletes in bounded batches, and readings recorded during a pass are written before it ends', async t => {
  const dir = await tempDir(t)
  const clock = fakeClock(B + 60 * MIN)
  const store = await openStore(t, { path: dir, now: clock.now, retentionMs: 60 * MIN, windowMs: 1000, retentionBatch: 7 })
  for (let i = 0; i < 600; i++) store.record('site', { sensor: `s${i % 3}`, t: tAt(B + 10 * MIN + i * 1000), writer: 'gw-a', value: i })
  await store.flush()
  // Past the pass started on open (which found nothing to delete).
  await store.runRetention()
  const passes = store.stats().retentionPasses
  t.is(store.stats().retentionDeleted, 0)
  clock.ms = B + 100 * MIN
  const pass = store.runRetention()
  await waitTurns(() => store.stats().retentionBatches >= 2, 'the pass to get going')
  store.record('site', { sensor: 'fresh', t: tAt(clock.ms), writer: 'gw-a', value: 1 })
  await store.flush()
  t.is(store.stats().retentionPasses, passes, 'the reading was written while the pass was still running')
  const batchesThen = store.stats().retentionBatches
  await pass
  const stats = store.stats()
  t.true(stats.retentionBatches > batchesThen)
  t.is(stats.retentionPasses, passes + 1)
  // 600 history entries, 600 sensor windows, 600 region windows, 3 sensor states.
  t.is(stats.retentionDeleted, 1803)
  t.true(stats.retentionBatches * 7 >= stats.retentionDeleted)
  t.deepEqual(store.sensors('site').map(s => s.sensor), ['fresh'])
  t.deepEqual((await store.aggregates({ region: 'site' })).map(w => w.count), [1])
})

test('the retention timer runs passes on its own, and a pass runs on open', async t => {
  const dir = await tempDir(t)
  const clock = fakeClock(B + 10 * MIN)
  const store = await openStore(t, { path: dir, now: clock.now, retentionMs: 5 * MIN, retentionIntervalMs: 10 })
  for (let i = 0; i < 10; i++) store.record('site', { sensor: 'a', t: tAt(B + 6 * MIN + i * 1000), writer: 'gw-a', value: i })
  for (let i = 0; i < 10; i++) store.record('site', { sensor: 'b', t: tAt(B + 9 * MIN + i * 1000), writer: 'gw-a', value: i })
  await store.flush()
  t.is((await store.history({ region: 'site', sensor: 'a' })).length, 10)
  clock.ms = B + 12 * MIN
  await waitFor(() => store.sensors('site').length === 1, 'the timer to expire sensor a')
  t.deepEqual(await store.history({ region: 'site', sensor: 'a' }), [])
  t.is((await store.history({ region: 'site', sensor: 'b' })).length, 10)
  await store.close()

  clock.ms = B + 15 * MIN
  const again = await openStore(t, { path: dir, now: clock.now, retentionMs: 5 * MIN })
  t.deepEqual(again.sensors('site').map(s => s.sensor), ['b'], 'loaded before the pass')
  await waitFor(() => again.stats().retentionPasses === 1, 'the pass started on open')
  t.deepEqual(again.regions(), [])
  t.deepEqual(await again.history({ region: 'site', sensor: 'b' }), [])
  t.deepEqual(await again.aggregates({ region: 'site' }), [])
})

test('a sensor that stops reporting is forgotten once its newest window has passed the horizon, whatever its values', async t => {
  const dir = await tempDir(t)
  const clock = fakeClock(B + 10 * MIN)
  const store = await openStore(t, { path: dir, now: clock.now, retentionMs: 10 * MIN })
  for (let s = 0; s <= 70; s += 10) {
    store.record('site', { sensor: 'text', t: tAt(B + s * 1000), writer: 'gw-a', value: `v${s}` })
    store.record('site', { sensor: 'num', t: tAt(B + s * 1000), writer: 'gw-a', value: s })
  }
  await store.flush()
  // Horizon B + 1 min 15 s: every reading is older, but the window [B + 1 min, B + 2 min) has not ended.
  clock.ms = B + 11 * MIN + 15_000
  await store.runRetention()
  t.deepEqual(await store.history({ region: 'site', sensor: 'text' }), [])
  t.deepEqual(await store.history({ region: 'site', sensor: 'num' }), [])
  t.deepEqual((await store.aggregates({ region: 'site', sensor: 'num' })).map(w => w.start), [B + MIN])
  t.deepEqual(store.sensors('site').map(s => s.sensor), ['num', 'text'])
  // Horizon B + 2 min: that window has ended too.
  clock.ms = B + 12 * MIN
  await store.runRetention()
  t.deepEqual(store.sensors('site'), [])
  t.deepEqual(store.regions(), [])
  t.deepEqual(await store.aggregates({ region: 'site' }), [])
  t.like(store.stats(), { sensors: 0, regions: 0 })
})

test('close stops a retention pass after its current step; the pass on the next open finishes the work', async t => {
  const dir = await tempDir(t)
  const clock = fakeClock(B + 60 * MIN)
  const init = { path: dir, now: clock.now, retentionMs: 60 * MIN, windowMs: 1000, retentionBatch: 5 }
  const store = await openStore(t, init)
  for (let i = 0; i < 300; i++) store.record('site', { sensor: `s${i % 3}`, t: tAt(B + 10 * MIN + i * 1000), writer: 'gw-a', value: i })
  await store.flush()
  clock.ms = B + 100 * MIN
  const pass = store.runRetention()
  await waitTurns(() => store.stats().retentionBatches >= 2, 'the pass to get going')
  await store.close()
  await pass
  const { retentionDeleted, retentionPasses } = store.stats()
  t.true(retentionDeleted > 0 && retentionDeleted < 903, `${retentionDeleted} deleted before the close`)
  t.is(retentionPasses, 1, 'only the pass on open completed')

  const again = await openStore(t, init)
  await waitFor(() => again.stats().retentionPasses === 1, 'the pass started on open')
  t.is(again.stats().retentionDeleted, 903 - retentionDeleted)
  t.deepEqual(again.regions(), [])
})
