import test from 'ava'
import { prng } from '@edge-mesh/testkit'
import { alphaForHalfLife, emptyBaseline, observe, type AnalyticsStore, type Anomaly } from '../src/index.ts'
import { T0, openStore, tAt, tempDir } from './helpers.ts'

const REGION = 'plant-1'
const STEP_MS = 1000

/** A steady signal: 20 plus uniform noise in [-1, 1) (std 0.577), from a seeded PRNG, with spikes added at given indices. */
function signal (seed: number, n: number, spikes: Record<number, number>): number[] {
  const rand = prng(seed)
  return Array.from({ length: n }, (_, i) => 20 + (rand() * 2 - 1) + (spikes[i] ?? 0))
}

function feed (store: AnalyticsStore, region: string, sensor: string, values: number[], first: number = 0, writer: string = 'gw-a'): void {
  for (let i = first; i < values.length; i++) store.record(region, { sensor, t: tAt(T0 + i * STEP_MS), writer, value: values[i] })
}

const indexOf = (a: Anomaly): number => (a.at - T0) / STEP_MS

test('the EW baseline starts as the exact mean and population variance, then forgets with the half-life', t => {
  const rule = { threshold: 3.5, alpha: alphaForHalfLife(30), minSamples: 20 }
  t.true(Math.abs(rule.alpha - (1 - 2 ** (-1 / 30))) < 1e-15)
  const b = emptyBaseline()
  const xs = [3, 7, 8, 1, 6]
  for (const x of xs) t.is(observe(b, x, rule), undefined)
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length
  t.is(b.n, 5)
  t.true(Math.abs(b.mean - mean) < 1e-12)
  t.true(Math.abs(b.variance - variance) < 1e-12)
  // Far into the exponential regime a step is followed at the rate of the half-life: after 30
  // more samples of a new level, half the distance is left.
  const c = { n: 1000, mean: 0, variance: 1 }
  for (let i = 0; i < 30; i++) observe(c, 1, { ...rule, minSamples: Infinity })
  t.true(Math.abs(c.mean - 0.5) < 1e-12)
})

test('onAnomalies is told each anomaly once, batch by batch: the same as /v1/anomalies, in reading order', async t => {
  const dir = await tempDir(t)
  const told: Anomaly[][] = []
  const store = await openStore(t, { path: dir, now: () => T0 + 3_600_000, maxBatchReadings: 100, onAnomalies: a => { told.push([...a]) } })
  const spikes = { 150: 7, 420: -6, 421: 8, 990: 5 }
  feed(store, REGION, 'line-1/temp', signal(7, 1000, spikes))
  feed(store, REGION, 'line-2/temp', signal(8, 1000, { 300: 9 }))
  await store.flush()
  t.true(told.length >= 2, 'several batches told')
  t.true(told.every(batch => batch.length > 0), 'a batch that flagged nothing is not told')
  const all = told.flat()
  const stored = await store.anomalies({ region: REGION, order: 'asc' })
  const key = (a: Anomaly): string => `${a.sensor} ${a.t}`
  t.deepEqual(all.map(key).sort(), stored.map(key).sort(), 'each stored anomaly told once, nothing else')
  t.deepEqual(all.filter(a => a.sensor === 'line-1/temp').map(indexOf), [150, 420, 421, 990])
  t.deepEqual(all.filter(a => a.sensor === 'line-2/temp').map(indexOf), [300])
})

test('a listener that throws costs the store nothing', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 3_600_000, onAnomalies: () => { throw new Error('listener failure') } })
  feed(store, REGION, 'line-1/temp', signal(9, 300, { 250: 8 }))
  await store.flush()
  t.deepEqual((await store.anomalies({ region: REGION })).map(indexOf), [250])
  t.is(store.stats().status, 'open')
})

test('a steady noisy signal with injected spikes is flagged at the spikes and nowhere else', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 3_600_000 })
  // The spike at 10 comes before minSamples (20) samples: not flagged, and it must not hide later ones.
  const spikes = { 10: 15, 200: 6, 600: -8, 601: 9, 1100: 5, 1400: -4 }
  const values = signal(42, 1500, spikes)
  feed(store, REGION, 'line-1/temp', values)
  // A second sensor of the same region with no spikes, and a constant one (std 0: never flagged).
  feed(store, REGION, 'line-2/temp', signal(43, 1500, {}))
  feed(store, REGION, 'line-3/setpoint', Array.from({ length: 1500 }, (_, i) => i === 700 ? 80 : 20))
  await store.flush()

  const found = await store.anomalies({ region: REGION })
  t.deepEqual(found.map(indexOf), [200, 600, 601, 1100, 1400])
  t.true(found.every(a => a.sensor === 'line-1/temp' && a.region === REGION && a.writer === 'gw-a'))
  for (const a of found) {
    const i = indexOf(a)
    t.is(a.value, values[i])
    t.is(a.t, tAt(a.at))
    t.true(Math.abs(a.z) > 3.5)
    t.is(Math.sign(a.z), Math.sign(spikes[i as keyof typeof spikes]))
    t.true(Math.abs(a.z - (a.value - a.mean) / a.std) < 1e-9)
    t.true(Math.abs(a.mean - 20) < 0.3, `mean ${a.mean}`)
    t.true(a.std > 0.4 && a.std < 0.8, `std ${a.std}`)
  }
  t.is(store.stats().anomalies, 5)
  t.deepEqual(store.sensors(REGION).map(s => [s.sensor, s.samples]), [['line-1/temp', 1500], ['line-2/temp', 1500], ['line-3/setpoint', 1500]])
})

test('a lasting level shift is flagged at first, then becomes the baseline', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 3_600_000 })
  const values = signal(5, 1200, Object.fromEntries(Array.from({ length: 700 }, (_, k) => [500 + k, 10])))
  feed(store, REGION, 'flow', values)
  await store.flush()
  const at = (await store.anomalies({ region: REGION, sensor: 'flow' })).map(indexOf)
  t.true(at.length >= 3 && at.length <= 40, `${at.length} flags`)
  t.deepEqual(at, Array.from({ length: at.length }, (_, k) => 500 + k), 'flags are the first readings of the new level')
})

test('anomaly queries filter by region and sensor, by [from, to), order and limit', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 3_600_000, anomaly: { minSamples: 10, threshold: 4, halfLifeSamples: 20 } })
  feed(store, 'r1', 'a', signal(1, 300, { 50: 10, 250: 10 }))
  feed(store, 'r1', 'b', signal(2, 300, { 100: -10 }))
  feed(store, 'r2', 'a', signal(3, 300, { 150: 10, 200: 10 }), 0, 'gw-b')
  // A region whose name extends r1's: never in r1's results.
  feed(store, 'r10', 'a', signal(4, 300, { 120: 10 }))
  await store.flush()
  const key = (a: Anomaly): string => `${a.region}/${a.sensor}@${indexOf(a)}`

  t.deepEqual((await store.anomalies()).map(key), ['r1/a@50', 'r1/b@100', 'r10/a@120', 'r2/a@150', 'r2/a@200', 'r1/a@250'])
  t.deepEqual((await store.anomalies({ region: 'r1' })).map(key), ['r1/a@50', 'r1/b@100', 'r1/a@250'])
  t.deepEqual((await store.anomalies({ region: 'r1', sensor: 'a' })).map(key), ['r1/a@50', 'r1/a@250'])
  t.deepEqual((await store.anomalies({ region: 'r2', sensor: 'b' })), [])
  t.deepEqual((await store.anomalies({ from: T0 + 100 * STEP_MS, to: T0 + 200 * STEP_MS })).map(key), ['r1/b@100', 'r10/a@120', 'r2/a@150'])
  t.deepEqual((await store.anomalies({ limit: 2 })).map(key), ['r1/a@50', 'r1/b@100'])
  t.deepEqual((await store.anomalies({ order: 'desc', limit: 2 })).map(key), ['r1/a@250', 'r2/a@200'])
  t.deepEqual((await store.anomalies({ region: 'r1', order: 'desc', to: T0 + 250 * STEP_MS })).map(key), ['r1/b@100', 'r1/a@50'])
  t.is((await store.anomalies({ region: 'r2' }))[0].writer, 'gw-b')
  t.is(store.stats().anomalies, 6)
})

test('baselines are persisted: a store reopened mid-stream flags exactly what an uninterrupted one flags, even right after the reopen', async t => {
  const now = (): number => T0 + 3_600_000
  const values = signal(11, 800, { 300: 7, 401: -6, 402: 8, 700: 5 })
  const dirA = await tempDir(t)
  const dirB = await tempDir(t)
  const a = await openStore(t, { path: dirA, now })
  feed(a, REGION, 's', values)
  await a.flush()

  const b1 = await openStore(t, { path: dirB, now })
  feed(b1, REGION, 's', values.slice(0, 400))
  await b1.close()
  const b2 = await openStore(t, { path: dirB, now })
  // The mesh shows the last readings again after a restart: they are not fed twice.
  feed(b2, REGION, 's', values.slice(0, 400), 390)
  feed(b2, REGION, 's', values, 400)
  await b2.flush()

  const flagged = await a.anomalies()
  t.deepEqual(flagged.map(indexOf), [300, 401, 402, 700])
  t.deepEqual(await b2.anomalies(), flagged)
  t.deepEqual(await b2.aggregates({ region: REGION, sensor: 's' }), await a.aggregates({ region: REGION, sensor: 's' }))
  t.deepEqual(await b2.aggregates({ region: REGION }), await a.aggregates({ region: REGION }))
  t.deepEqual(b2.sensors(REGION), a.sensors(REGION).map(s => ({ ...s })))
  t.is(b2.stats().duplicates, 10)
})
