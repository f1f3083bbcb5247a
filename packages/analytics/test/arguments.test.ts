import test from 'ava'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { MAX_LIMIT, openAnalyticsStore, type AnalyticsStoreInit } from '../src/index.ts'
import { T0, openStore, tAt, tempDir } from './helpers.ts'

const code = (err: unknown): string | undefined => isEdgeMeshError(err) ? err.code : undefined

test('bad query arguments are refused with EM_ERR_INVALID_OPTIONS', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 })
  const bad: Array<[string, () => Promise<unknown>]> = [
    ['history without sensor', async () => store.history({ region: 'r' } as never)],
    ['history with a bad region', async () => store.history({ region: 'no/slash', sensor: 's' })],
    ['history with a sensor holding a control character', async () => store.history({ region: 'r', sensor: 'a\x00b' })],
    ['history from after to', async () => store.history({ region: 'r', sensor: 's', from: 10, to: 9 })],
    ['history with a negative from', async () => store.history({ region: 'r', sensor: 's', from: -1 })],
    ['history with a fractional to', async () => store.history({ region: 'r', sensor: 's', to: 1.5 })],
    ['history with NaN', async () => store.history({ region: 'r', sensor: 's', from: NaN })],
    ['history with a string time', async () => store.history({ region: 'r', sensor: 's', from: '10' as never })],
    ['history with limit 0', async () => store.history({ region: 'r', sensor: 's', limit: 0 })],
    ['history with a fractional limit', async () => store.history({ region: 'r', sensor: 's', limit: 2.5 })],
    ['history with a limit over the maximum', async () => store.history({ region: 'r', sensor: 's', limit: MAX_LIMIT + 1 })],
    ['history with an unknown order', async () => store.history({ region: 'r', sensor: 's', order: 'newest' as never })],
    ['history with an unknown option', async () => store.history({ region: 'r', sensor: 's', since: 5 } as never)],
    ['history with no query', async () => store.history(undefined as never)],
    ['aggregates without region', async () => store.aggregates({} as never)],
    ['aggregates with a bad sensor', async () => store.aggregates({ region: 'r', sensor: '' })],
    ['aggregates from after to', async () => store.aggregates({ region: 'r', from: 2, to: 1 })],
    ['aggregates with limit -1', async () => store.aggregates({ region: 'r', limit: -1 })],
    ['anomalies with a sensor but no region', async () => store.anomalies({ sensor: 's' })],
    ['anomalies with a bad region', async () => store.anomalies({ region: '' })],
    ['anomalies with an infinite to', async () => store.anomalies({ to: Infinity })],
    ['anomalies with limit 1e9', async () => store.anomalies({ limit: 1e9 })],
    ['anomalies as an array', async () => store.anomalies([] as never)]
  ]
  for (const [what, call] of bad) {
    const err = await call().then(() => undefined, (e: unknown) => e)
    t.is(code(err), 'EM_ERR_INVALID_OPTIONS', what)
  }
  t.throws(() => store.sensors('bad region'), { code: 'EM_ERR_INVALID_OPTIONS' } as never)
  // Edges that are valid.
  t.deepEqual(await store.history({ region: 'r', sensor: 's', from: 5, to: 5, limit: MAX_LIMIT }), [])
  t.deepEqual(await store.aggregates({ region: 'r', from: 0, to: Number.MAX_SAFE_INTEGER }), [])
  t.deepEqual(await store.anomalies({ from: Number.MAX_SAFE_INTEGER }), [])
  t.deepEqual(store.sensors('r'), [])
})

test('bad store options are refused with EM_ERR_INVALID_OPTIONS, and so is reopening with another window length', async t => {
  const dir = await tempDir(t)
  const bad: Array<Partial<AnalyticsStoreInit>> = [
    { path: '' },
    { retentionMs: 0 },
    { retentionMs: -5 },
    { windowMs: 0 },
    { windowMs: 1.5 },
    { maxPendingWrites: 0 },
    { maxPendingBytes: Number.NaN },
    { maxBatchReadings: 0 },
    { maxCachedWindows: 0.5 },
    { retentionBatch: 0 },
    { retentionIntervalMs: -1 },
    { now: 5 as never },
    { anomaly: { threshold: 0 } },
    { anomaly: { halfLifeSamples: -1 } },
    { anomaly: { minSamples: 0 } },
    { anomaly: 'yes' as never }
  ]
  for (const init of bad) {
    const err = await openAnalyticsStore({ path: dir, ...init }).then(async s => { await s.close() }, (e: unknown) => e)
    t.is(code(err), 'EM_ERR_INVALID_OPTIONS', JSON.stringify(init))
  }
  const store = await openStore(t, { path: dir, windowMs: 10_000 })
  await store.close()
  const err = await openAnalyticsStore({ path: dir }).then(async s => { await s.close() }, (e: unknown) => e)
  t.is(code(err), 'EM_ERR_INVALID_OPTIONS')
  const same = await openStore(t, { path: dir, windowMs: 10_000 })
  t.is(same.windowMs, 10_000)
  // One process at a time: the directory is locked while open.
  const locked = await openAnalyticsStore({ path: dir, windowMs: 10_000 }).then(async s => { await s.close() }, (e: unknown) => e)
  t.is(code(locked), 'EM_ERR_UNAVAILABLE')
})

test('record refuses malformed observations with typed errors and records nothing', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 })
  const ok = { sensor: 's', t: tAt(T0), writer: 'gw-a', value: 1 }
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  const bad: Array<[string, string, unknown]> = [
    ['EM_ERR_INVALID_VALUE', 'bad region', ok],
    ['EM_ERR_INVALID_VALUE', 'r', null],
    ['EM_ERR_INVALID_SENSOR', 'r', { ...ok, sensor: 'a\nb' }],
    ['EM_ERR_INVALID_SENSOR', 'r', { ...ok, sensor: '' }],
    ['EM_ERR_INVALID_TIMESTAMP', 'r', { ...ok, t: 'ABCDEF0123456789' }],
    ['EM_ERR_INVALID_TIMESTAMP', 'r', { ...ok, t: T0 }],
    ['EM_ERR_INVALID_VALUE', 'r', { ...ok, writer: '' }],
    ['EM_ERR_INVALID_VALUE', 'r', { ...ok, value: undefined }],
    ['EM_ERR_INVALID_VALUE', 'r', { ...ok, value: cyclic }],
    ['EM_ERR_INVALID_VALUE', 'r', { ...ok, value: 10n }]
  ]
  for (const [expected, region, obs] of bad) {
    t.throws(() => { store.record(region, obs as never) }, { code: expected } as never, `${expected} ${region} ${String((obs as { sensor?: unknown } | null)?.sensor)}`)
  }
  await store.flush()
  t.like(store.stats(), { received: 0, recorded: 0, pending: 0 })
})

test('record reports overload once the write queue is full, and takes readings again once it drains', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 60_000, maxPendingWrites: 50, maxPendingBytes: 4000 })
  for (let i = 0; i < 50; i++) store.record('r', { sensor: 's', t: tAt(T0 + i), writer: 'gw-a', value: i })
  t.is(store.stats().pending, 50)
  const err = t.throws(() => { store.record('r', { sensor: 's', t: tAt(T0 + 50), writer: 'gw-a', value: 50 }) }, { code: 'EM_ERR_OVERLOADED' } as never)
  t.true(typeof (err as unknown as { details: { retryAfterMs: number } }).details.retryAfterMs === 'number')
  await store.flush()
  t.like(store.stats(), { pending: 0, recorded: 50, refused: 1 })
  store.record('r', { sensor: 's', t: tAt(T0 + 50), writer: 'gw-a', value: 50 })
  // The byte bound: 3 values of about 1500 characters do not fit in 4000.
  const big = 'x'.repeat(1500)
  store.record('r', { sensor: 'b', t: tAt(T0 + 1), writer: 'gw-a', value: big })
  store.record('r', { sensor: 'b', t: tAt(T0 + 2), writer: 'gw-a', value: big })
  t.throws(() => { store.record('r', { sensor: 'b', t: tAt(T0 + 3), writer: 'gw-a', value: big }) }, { code: 'EM_ERR_OVERLOADED' } as never)
  t.throws(() => { store.record('r', { sensor: 'b', t: tAt(T0 + 4), writer: 'gw-a', value: 'y'.repeat(5000) }) }, { code: 'EM_ERR_VALUE_TOO_LARGE' } as never)
  await store.flush()
  t.like(store.stats(), { pending: 0, pendingBytes: 0, recorded: 53, refused: 2 })
})

test('a closed store refuses records and queries with EM_ERR_CLOSED, and close writes what was recorded', async t => {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: dir, now: () => T0 + 60_000 })
  for (let i = 0; i < 100; i++) store.record('r', { sensor: 's', t: tAt(T0 + i), writer: 'gw-a', value: i })
  await store.close()
  t.is(store.status(), 'closed')
  t.throws(() => { store.record('r', { sensor: 's', t: tAt(T0 + 200), writer: 'gw-a', value: 1 }) }, { code: 'EM_ERR_CLOSED' } as never)
  await t.throwsAsync(store.history({ region: 'r', sensor: 's' }), { code: 'EM_ERR_CLOSED' } as never)
  await t.throwsAsync(store.runRetention(), { code: 'EM_ERR_CLOSED' } as never)
  await store.close()
  const again = await openStore(t, { path: dir, now: () => T0 + 60_000 })
  t.is((await again.history({ region: 'r', sensor: 's', limit: 1000 })).length, 100)
})
