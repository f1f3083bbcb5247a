/**
 * The analytics HTTP API without a mesh (`createAnalyticsHttp` over a real store and a stub of the
 * peer's views, through fastify's inject), the live stream's filters and bounds, and the lag
 * window's quantiles.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import {
  createAnalyticsHttp, LagWindow, LiveStream, parseQuery, quantile,
  type AnalyticsApi, type AnalyticsHttp, type AnalyticsReadiness
} from '../src/index.ts'
import { T0, openStore, tAt, tempDir } from './helpers.ts'

const W = '12D3KooWwriter'

interface ErrorBody { error: string, code: string, details?: Record<string, unknown> }

async function app (t: ExecutionContext, opts: { ready?: boolean } = {}): Promise<{ http: AnalyticsHttp, live: LiveStream, publicDir: string }> {
  const dir = await tempDir(t)
  const store = await openStore(t, { path: join(dir, 'db'), retentionMs: 10 * 365 * 86_400_000 })
  for (let i = 0; i < 5; i++) store.record('plant-1', { sensor: 'line-1/temp', t: tAt(T0 + i * 1000), writer: W, value: { value: 20 + i, unit: 'C' } })
  await store.flush()
  const publicDir = join(dir, 'public')
  await mkdir(join(publicDir, 'js'), { recursive: true })
  await writeFile(join(publicDir, 'index.html'), '<!doctype html><title>x</title>')
  await writeFile(join(publicDir, 'app.js'), 'export {}')
  await writeFile(join(publicDir, 'js', 'chart.js'), '// chart')
  await writeFile(join(publicDir, '.secret'), 'no')
  await writeFile(join(dir, 'outside.txt'), 'no')
  const vendorFile = join(dir, 'vendor.css')
  await writeFile(vendorFile, 'body{}')
  const readiness: AnalyticsReadiness = { ready: opts.ready ?? true, storage: 'open', mesh: 'started', peers: 1, regions: 1, lastSyncAt: null }
  const api: AnalyticsApi = {
    store,
    regions: () => [],
    knows: r => r === 'plant-1' || r === 'announced-only',
    latest: (region, prefix, limit) => region === 'plant-1'
      ? { sensors: [{ sensor: 'line-1/temp', value: 24, unit: 'C', t: tAt(T0 + 4000), at: T0 + 4000, writer: W, ageMs: 5 }].filter(s => s.sensor.startsWith(prefix)).slice(0, limit), truncated: false }
      : undefined,
    peers: () => ({ peerId: 'me', addrs: [], peers: [], announced: {}, following: ['plant-1'] }),
    readiness: () => readiness
  }
  const live = new LiveStream()
  const http = createAnalyticsHttp({
    logger: pino({ level: 'silent' }),
    api,
    live,
    metrics: { render: async () => 'x 1\n', contentType: 'text/plain; version=0.0.4' },
    publicDir,
    vendor: new Map([['uPlot.min.css', vendorFile]])
  })
  t.teardown(async () => { await http.app.close() })
  return { http, live, publicDir }
}

async function get<T> (http: AnalyticsHttp, url: string): Promise<{ status: number, body: T, type: string, text: string }> {
  const res = await http.app.inject({ method: 'GET', url })
  let body: unknown = res.body
  try {
    body = JSON.parse(res.body)
  } catch {}
  return { status: res.statusCode, body: body as T, type: String(res.headers['content-type'] ?? ''), text: res.body }
}

async function expectError (t: ExecutionContext, http: AnalyticsHttp, url: string, status: number, code: string, param?: string): Promise<void> {
  const r = await get<ErrorBody>(http, url)
  t.is(r.status, status, `${url}: ${r.text}`)
  t.regex(r.type, /^application\/json/, url)
  t.is(r.body.code, code, url)
  t.true(typeof r.body.error === 'string' && r.body.error.length > 0, url)
  if (param !== undefined) t.is(r.body.details?.param, param, `${url} names ${param}`)
}

test('history, aggregates and anomalies answer with the store\'s data; time ranges take ms or ISO 8601', async t => {
  const { http } = await app(t)
  const all = await get<{ region: string, sensor: string, points: Array<{ value: number, unit: string, at: number }> }>(http, '/v1/history?region=plant-1&sensor=line-1%2Ftemp')
  t.is(all.status, 200)
  t.deepEqual(all.body.points.map(p => p.value), [20, 21, 22, 23, 24])
  t.is(all.body.points[0].unit, 'C')
  const ranged = await get<{ points: Array<{ value: number }> }>(http, `/v1/history?region=plant-1&sensor=line-1/temp&from=${T0 + 1000}&to=${T0 + 3000}`)
  t.deepEqual(ranged.body.points.map(p => p.value), [21, 22])
  const iso = await get<{ points: Array<{ value: number }> }>(http, `/v1/history?region=plant-1&sensor=line-1/temp&from=${new Date(T0 + 1000).toISOString()}&to=${new Date(T0 + 3000).toISOString()}`)
  t.deepEqual(iso.body.points.map(p => p.value), [21, 22])
  const desc = await get<{ points: Array<{ value: number }> }>(http, '/v1/history?region=plant-1&sensor=line-1/temp&order=desc&limit=2')
  t.deepEqual(desc.body.points.map(p => p.value), [24, 23])
  const agg = await get<{ windowMs: number, sensor: string | null, windows: Array<{ count: number, min: number, max: number, mean: number, last: number }> }>(http, '/v1/aggregates?region=plant-1')
  t.is(agg.status, 200)
  t.is(agg.body.sensor, null)
  t.is(agg.body.windowMs, 60_000)
  t.deepEqual(agg.body.windows.map(w => [w.count, w.min, w.max, w.mean, w.last]), [[5, 20, 24, 22, 24]])
  const an = await get<{ anomalies: unknown[] }>(http, '/v1/anomalies')
  t.deepEqual(an.body, { anomalies: [] })
  const sensors = await get<{ sensors: Array<{ sensor: string }> }>(http, '/v1/sensors?region=plant-1')
  t.deepEqual(sensors.body.sensors.map(s => s.sensor), ['line-1/temp'])
  const latest = await get<{ region: string, sensors: Array<{ sensor: string }>, truncated: boolean }>(http, '/v1/latest?region=plant-1&prefix=line-')
  t.is(latest.body.region, 'plant-1')
  t.deepEqual(latest.body.sensors.map(s => s.sensor), ['line-1/temp'])
})

test('bad query parameters are 400 EM_ERR_INVALID_OPTIONS naming the parameter; unknown regions and routes are 404', async t => {
  const { http } = await app(t)
  const h = '/v1/history?region=plant-1&sensor=s'
  await expectError(t, http, `${h}&since=1`, 400, 'EM_ERR_INVALID_OPTIONS', 'since')
  await expectError(t, http, `${h}&from=1&from=2`, 400, 'EM_ERR_INVALID_OPTIONS', 'from')
  await expectError(t, http, `${h}&from=yesterday`, 400, 'EM_ERR_INVALID_OPTIONS', 'from')
  await expectError(t, http, `${h}&to=-5`, 400, 'EM_ERR_INVALID_OPTIONS', 'to')
  await expectError(t, http, `${h}&limit=1.5`, 400, 'EM_ERR_INVALID_OPTIONS', 'limit')
  await expectError(t, http, `${h}&limit=0`, 400, 'EM_ERR_INVALID_OPTIONS')
  await expectError(t, http, `${h}&limit=100001`, 400, 'EM_ERR_INVALID_OPTIONS')
  await expectError(t, http, `${h}&order=newest`, 400, 'EM_ERR_INVALID_OPTIONS', 'order')
  await expectError(t, http, `${h}&from=10&to=5`, 400, 'EM_ERR_INVALID_OPTIONS')
  await expectError(t, http, '/v1/history?region=plant-1', 400, 'EM_ERR_INVALID_OPTIONS', 'sensor')
  await expectError(t, http, '/v1/history?sensor=s', 400, 'EM_ERR_INVALID_OPTIONS', 'region')
  await expectError(t, http, '/v1/history?region=bad%20name&sensor=s', 400, 'EM_ERR_INVALID_OPTIONS', 'region')
  await expectError(t, http, `/v1/history?region=plant-1&sensor=${encodeURIComponent('a\u0001b')}`, 400, 'EM_ERR_INVALID_OPTIONS')
  await expectError(t, http, '/v1/history?region=elsewhere&sensor=s', 404, 'EM_ERR_NOT_FOUND')
  await expectError(t, http, '/v1/aggregates', 400, 'EM_ERR_INVALID_OPTIONS', 'region')
  await expectError(t, http, '/v1/aggregates?region=plant-1&order=asc', 400, 'EM_ERR_INVALID_OPTIONS', 'order')
  await expectError(t, http, '/v1/anomalies?sensor=s', 400, 'EM_ERR_INVALID_OPTIONS', 'sensor')
  await expectError(t, http, '/v1/anomalies?region=elsewhere', 404, 'EM_ERR_NOT_FOUND')
  await expectError(t, http, '/v1/latest?region=plant-1&limit=10001', 400, 'EM_ERR_INVALID_OPTIONS', 'limit')
  await expectError(t, http, '/v1/latest?region=announced-only', 404, 'EM_ERR_NOT_FOUND')
  await expectError(t, http, '/v1/regions?x=1', 400, 'EM_ERR_INVALID_OPTIONS', 'x')
  await expectError(t, http, '/v1/stream?events=readings', 400, 'EM_ERR_INVALID_OPTIONS', 'events')
  await expectError(t, http, '/v1/nothing-here', 404, 'EM_ERR_NOT_FOUND')
  const post = await http.app.inject({ method: 'POST', url: '/v1/regions', payload: {} })
  t.is(post.statusCode, 404)
  t.is(JSON.parse(post.body).code, 'EM_ERR_NOT_FOUND')
  t.true((http.stats().errors.EM_ERR_INVALID_OPTIONS ?? 0) > 10, 'error replies are counted by code')
})

test('parseQuery converts and checks each kind of parameter', t => {
  t.deepEqual(parseQuery({ a: '12', b: '1970-01-01T00:00:01Z', c: 'desc', d: 'x' }, { a: 'int', b: 'time', c: 'order', d: 'string' }), { a: 12, b: 1000, c: 'desc', d: 'x' })
  t.deepEqual(parseQuery(undefined, {}), {})
  t.throws(() => parseQuery({ a: ['1', '2'] }, { a: 'int' }), { code: 'EM_ERR_INVALID_OPTIONS' })
  t.throws(() => parseQuery({ b: '2024-13-45T99:99:99Z' }, { b: 'time' }), { code: 'EM_ERR_INVALID_OPTIONS' })
  t.throws(() => parseQuery({ e: 'reading,bogus' }, { e: 'events' }), { code: 'EM_ERR_INVALID_OPTIONS' })
})

test('health, readiness and metrics; readiness is 503 when not ready', async t => {
  const { http } = await app(t, { ready: false })
  t.deepEqual((await get(http, '/health')).body, { status: 'ok' })
  const r = await get<AnalyticsReadiness>(http, '/ready')
  t.is(r.status, 503)
  t.false(r.body.ready)
  const m = await get(http, '/metrics')
  t.is(m.status, 200)
  t.is(m.text, 'x 1\n')
  t.regex(m.type, /^text\/plain/)
})

test('the dashboard directory is served at /, with uPlot under /vendor/, and nothing outside it', async t => {
  const { http } = await app(t)
  const index = await get(http, '/')
  t.is(index.status, 200)
  t.regex(index.type, /^text\/html/)
  t.is(index.text, '<!doctype html><title>x</title>')
  const js = await get(http, '/app.js')
  t.is(js.status, 200)
  t.regex(js.type, /^text\/javascript/)
  t.is((await get(http, '/js/chart.js')).text, '// chart')
  const vendor = await get(http, '/vendor/uPlot.min.css')
  t.is(vendor.status, 200)
  t.regex(vendor.type, /^text\/css/)
  for (const url of ['/vendor/other.js', '/missing.js', '/.secret', '/..%2Foutside.txt', '/js/..%2F..%2Foutside.txt', '/%2e%2e/outside.txt', '/js']) {
    const r = await get<ErrorBody>(http, url)
    t.is(r.status, 404, url)
    t.is(r.body.code, 'EM_ERR_NOT_FOUND', url)
  }
})

// ------------------------------------------------------------------ the live stream

/** A stand-in for a ServerResponse: what LiveStream uses of one. */
function fakeResponse (writableLength: number = 0): ServerResponse & { written: string[], ended: boolean } {
  const listeners: Array<() => void> = []
  const res = {
    written: [] as string[],
    ended: false,
    destroyed: false,
    writableLength,
    writeHead () { return res },
    write (s: string) { res.written.push(s); return true },
    end () { res.ended = true; for (const f of listeners) f() },
    destroy () { res.destroyed = true; for (const f of listeners) f() },
    once (_e: string, f: () => void) { listeners.push(f); return res }
  }
  return res as unknown as ServerResponse & { written: string[], ended: boolean }
}

const frames = (res: { written: string[] }): string[] => res.written.join('').split('\n\n').filter(b => b.startsWith('event: '))

test('the live stream sends each client the events its filter passes, gathered into one write per turn', async t => {
  const live = new LiveStream()
  const all = fakeResponse()
  const onlyP1 = fakeResponse()
  const lineOnly = fakeResponse()
  const summaries = fakeResponse()
  live.add(all)
  live.add(onlyP1, { region: 'p1' })
  live.add(lineOnly, { prefix: 'line-' })
  live.add(summaries, { events: new Set(['regions']) })
  t.is(live.size, 4)
  let encoded = 0
  const data = (x: object) => () => { encoded++; return x }
  live.publish('reading', data({ n: 1 }), 'p1', 'line-1')
  live.publish('reading', data({ n: 2 }), 'p2', 'other')
  live.publish('anomaly', data({ n: 3 }), 'p1', 'other')
  live.publish('regions', data({ n: 4 }))
  t.is(encoded, 4, 'each event encoded once')
  await new Promise(resolve => setImmediate(resolve))
  t.deepEqual(frames(all), ['event: reading\ndata: {"n":1}', 'event: reading\ndata: {"n":2}', 'event: anomaly\ndata: {"n":3}', 'event: regions\ndata: {"n":4}'])
  t.deepEqual(frames(onlyP1), ['event: reading\ndata: {"n":1}', 'event: anomaly\ndata: {"n":3}', 'event: regions\ndata: {"n":4}'])
  t.deepEqual(frames(lineOnly), ['event: reading\ndata: {"n":1}', 'event: regions\ndata: {"n":4}'])
  t.deepEqual(frames(summaries), ['event: regions\ndata: {"n":4}'])
  t.is(all.written.length, 2, 'the preamble, then one write for the four events')
  t.true(live.wants('reading', 'p2', 'x'))
  const narrow = new LiveStream()
  narrow.add(fakeResponse(), { region: 'p1', events: new Set(['reading']) })
  t.false(narrow.wants('reading', 'p2', 'x'))
  t.false(narrow.wants('anomaly', 'p1', 'x'))
  t.true(narrow.wants('reading', 'p1', 'x'))
  t.is(live.stats().events, 10)
  live.closeAll()
  t.true(all.ended && summaries.ended)
  t.is(live.size, 0)
})

test('a stream client that falls behind its byte bound is dropped, the others keep their events', async t => {
  const drops: number[] = []
  const live = new LiveStream({ maxBufferedBytes: 1000, onDrop: i => { drops.push(i.buffered) } })
  const slow = fakeResponse(990)
  const fast = fakeResponse()
  live.add(slow)
  live.add(fast)
  live.publish('reading', () => ({ pad: 'x'.repeat(50) }), 'p', 's')
  t.true(slow.destroyed, 'the slow client is dropped')
  t.is(drops.length, 1)
  t.is(live.size, 1)
  // Gathered frames count against the bound too: a client that is never written to is dropped.
  for (let i = 0; i < 30; i++) live.publish('reading', () => ({ pad: 'y'.repeat(50) }), 'p', 's')
  t.true((fast as unknown as { destroyed: boolean }).destroyed)
  t.is(live.stats().dropped, 2)
  t.is(live.size, 0)
})

// ------------------------------------------------------------------ lag

test('the lag window reports nearest-rank quantiles of the recent samples of each region, bounded in count and age', t => {
  const lag = new LagWindow({ maxSamples: 100, windowMs: 10_000 })
  for (let i = 1; i <= 100; i++) lag.add('a', 1000 + i, i)
  t.deepEqual(lag.summary('a', 2000), { samples: 100, p50Ms: 50, p99Ms: 99, maxMs: 100 })
  // The ring keeps the newest 100: 101..150 replace 1..50.
  for (let i = 101; i <= 150; i++) lag.add('a', 1000 + i, i)
  t.deepEqual(lag.summary('a', 2000), { samples: 100, p50Ms: 100, p99Ms: 149, maxMs: 150 })
  // Samples older than the window are left out.
  t.deepEqual(lag.summary('a', 1000 + 120 + 10_000), { samples: 31, p50Ms: 135, p99Ms: 150, maxMs: 150 })
  t.deepEqual(lag.summary('b', 2000), { samples: 0, p50Ms: null, p99Ms: null, maxMs: null })
  lag.add('b', 5, -3)
  t.is(lag.summary('b', 10).maxMs, 0, 'a negative lag (clock skew) counts as 0')
  t.is(quantile(new Float64Array([5]), 0.99), 5)
  t.throws(() => new LagWindow({ maxSamples: 0 }), { code: 'EM_ERR_INVALID_OPTIONS' })
})
