/**
 * The HTTP API over fastify's inject and over a real listening socket: ingest replies and every
 * error reply (status, JSON body, Retry-After), reads with freshness, listing, the change stream,
 * and /health, /ready, /metrics.
 */
import http from 'node:http'
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import type { RegionState } from '@edge-mesh/region-state'
import { fakeClock } from '@edge-mesh/testkit'
import { createHttpApp, type HttpApp, type Readiness } from '../src/http.ts'
import { createIngestor, type Ingestor, type IngestMesh } from '../src/ingest.ts'
import { createGatewayMetrics } from '../src/metrics.ts'
import { REGION, gatedMesh, startMesh, waitFor } from './gateway-helpers.ts'

const TS = 1_700_000_000_000
const silent = pino({ level: 'silent' })

interface Harness {
  http: HttpApp
  ingestor: Ingestor
  regions: Map<string, RegionState>
  ready: Readiness
}

/** The HTTP app over `mesh` (not listening), closed when the test ends. */
function harness (t: ExecutionContext, mesh: IngestMesh, names: string[], opts: { bodyLimitBytes?: number, maxPendingReadings?: number, sseMaxBufferedBytes?: number, sseHeartbeatMs?: number, unavailableRetryAfterMs?: number } = {}): Harness {
  const regions = new Map(names.map(n => [n, mesh.region(n)]))
  const ingestor = createIngestor({ mesh, regions: names, maxPendingReadings: opts.maxPendingReadings, unavailableRetryAfterMs: opts.unavailableRetryAfterMs })
  const metrics = createGatewayMetrics()
  const ready: Readiness = { ready: true, storage: 'open', mesh: 'started', peers: 0, lastSyncAt: null, regions: names }
  const app = createHttpApp({
    logger: silent,
    ingestor,
    regions,
    readiness: () => ({ ...ready }),
    metrics,
    bodyLimitBytes: opts.bodyLimitBytes,
    sseMaxBufferedBytes: opts.sseMaxBufferedBytes,
    sseHeartbeatMs: opts.sseHeartbeatMs,
    whenDurable: async region => { await mesh.whenDurable(region) }
  })
  metrics.sources = { ingest: () => ingestor.stats(), http: () => app.stats(), sse: () => app.sseStats() }
  t.teardown(async () => { await app.app.close() })
  return { http: app, ingestor, regions, ready }
}

const post = async (h: Harness, url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown>, headers: Record<string, unknown> }> => {
  const res = await h.http.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body)
  })
  return { status: res.statusCode, json: res.json(), headers: res.headers }
}

const get = async (h: Harness, url: string): Promise<{ status: number, json: Record<string, unknown>, headers: Record<string, unknown> }> => {
  const res = await h.http.app.inject({ method: 'GET', url })
  return { status: res.statusCode, json: res.json(), headers: res.headers }
}

test('POST /v1/readings answers {accepted, duplicates}; ?echo=1 adds the readings; the region route does the same', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  const a = await post(h, '/v1/readings', [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS }, { sensor: 'line-1/rpm', value: 1450 }])
  t.is(a.status, 200)
  t.deepEqual(a.json, { accepted: 2, duplicates: 0 })
  const b = await post(h, `/v1/readings?region=${REGION}&echo=1`, [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS }, { sensor: 'line-2/temp', value: 3 }])
  t.is(b.status, 200)
  t.is(b.json.accepted, 1)
  t.is(b.json.duplicates, 1)
  t.deepEqual((b.json.readings as Array<{ sensor: string, t: string }>).map(r => r.sensor), ['line-2/temp'])
  t.is(mesh.region(REGION).get('line-2/temp')?.t, (b.json.readings as Array<{ t: string }>)[0].t)
  const c = await post(h, `/v1/regions/${REGION}/readings`, [{ sensor: 'line-3/temp', value: 1 }])
  t.deepEqual(c.json, { accepted: 1, duplicates: 0 })
  t.deepEqual(mesh.region(REGION).list(), ['line-1/rpm', 'line-1/temp', 'line-2/temp', 'line-3/temp'])
})

test('the region may be left out only when the gateway holds one; an unknown region is 404', async t => {
  const mesh = await startMesh(t, { regions: ['r1', 'r2'] })
  const h = harness(t, mesh, ['r1', 'r2'])
  const none = await post(h, '/v1/readings', [{ sensor: 's', value: 1 }])
  t.is(none.status, 400)
  t.is(none.json.code, 'EM_ERR_INVALID_OPTIONS')
  const unknown = await post(h, '/v1/readings?region=r9', [{ sensor: 's', value: 1 }])
  t.is(unknown.status, 404)
  t.is(unknown.json.code, 'EM_ERR_NOT_FOUND')
  t.is((unknown.json.details as Record<string, unknown>).region, 'r9')
  t.is((await post(h, '/v1/regions/r9/readings', [{ sensor: 's', value: 1 }])).status, 404)
  t.is((await get(h, '/v1/sensors/s?region=r9')).status, 404)
  t.is((await post(h, '/v1/readings?region=r2', [{ sensor: 's', value: 1 }])).status, 200)
  t.deepEqual(mesh.region('r1').list(), [])
  t.deepEqual(mesh.region('r2').list(), ['s'])
})

test('bad bodies: invalid JSON, schema failures (with the index), too many items, not an array: 400 EM_ERR_INVALID_BODY, nothing written', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  const cases: Array<[string, unknown, Record<string, unknown>?]> = [
    ['invalid JSON', '[{"sensor": "s", "value": '],
    ['empty body', ''],
    ['not an array', { sensor: 's', value: 1 }],
    ['ts not an integer', [{ sensor: 'a', value: 1 }, { sensor: 's', value: 1, ts: 'yesterday' }], { index: 1, field: 'ts' }],
    ['unknown field', [{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }, { sensor: 's', value: 1, colour: 'red' }], { index: 2 }],
    ['missing value', [{ sensor: 's' }], { index: 0 }],
    ['empty sensor', [{ sensor: '', value: 1 }], { index: 0, field: 'sensor' }],
    ['ts out of range', [{ sensor: 's', value: 1, ts: 12 }], { index: 0, field: 'ts' }],
    ['too many readings', Array.from({ length: 10_001 }, (_, i) => ({ sensor: `s${i}`, value: i }))]
  ]
  for (const [what, body, details] of cases) {
    const r = await post(h, '/v1/readings', body)
    t.is(r.status, 400, what)
    t.is(r.json.code, 'EM_ERR_INVALID_BODY', what)
    t.is(typeof r.json.error, 'string', what)
    if (details !== undefined) t.like(r.json.details, details, what)
  }
  // Faults only region state finds: 400 with its own code and the index.
  const sensor = await post(h, '/v1/readings', [{ sensor: 'ok', value: 1 }, { sensor: 'bad\u0007', value: 1 }])
  t.is(sensor.status, 400)
  t.is(sensor.json.code, 'EM_ERR_INVALID_SENSOR')
  t.is((sensor.json.details as Record<string, unknown>).index, 1)
  const big = await post(h, '/v1/readings', [{ sensor: 'big', value: 'x'.repeat(70_000) }])
  t.is(big.status, 413)
  t.is(big.json.code, 'EM_ERR_VALUE_TOO_LARGE')
  t.deepEqual(mesh.region(REGION).list(), [])
})

test('a body over the limit is 413 EM_ERR_PAYLOAD_TOO_LARGE; a body that is not JSON is 415 EM_ERR_UNSUPPORTED_MEDIA_TYPE', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION], { bodyLimitBytes: 1024 })
  const large = await post(h, '/v1/readings', [{ sensor: 's', value: 'x'.repeat(2000) }])
  t.is(large.status, 413)
  t.is(large.json.code, 'EM_ERR_PAYLOAD_TOO_LARGE')
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
    const r = await post(h, '/v1/readings', 'sensor=s&value=1', { 'content-type': type })
    t.is(r.status, 415, type)
    t.is(r.json.code, 'EM_ERR_UNSUPPORTED_MEDIA_TYPE', type)
  }
  t.deepEqual(mesh.region(REGION).list(), [])
})

test('over the pending limit ingest answers 429 with Retry-After; while unavailable 503 with Retry-After', async t => {
  const mesh = gatedMesh(t)
  const h = harness(t, mesh, [REGION], { maxPendingReadings: 2 })
  const first = post(h, '/v1/readings', [{ sensor: 'a', value: 1 }, { sensor: 'b', value: 2 }])
  await waitFor(() => h.ingestor.pending() === 2, 'the first batch waits for durability')
  const refused = await post(h, '/v1/readings', [{ sensor: 'c', value: 3 }])
  t.is(refused.status, 429)
  t.is(refused.json.code, 'EM_ERR_OVERLOADED')
  t.is(refused.headers['retry-after'], '1')
  t.is((refused.json.details as Record<string, unknown>).retryAfterMs, 1000)
  mesh.release()
  t.is((await first).status, 200)

  mesh.status = 'stopping'
  const down = await post(h, '/v1/readings', [{ sensor: 'c', value: 3 }])
  t.is(down.status, 503)
  t.is(down.json.code, 'EM_ERR_UNAVAILABLE')
  t.is(down.headers['retry-after'], '5')
  t.false(mesh.states.get(REGION)?.list().includes('c'))
})

test('an Idempotency-Key header makes a POST repeatable: the repeat gets the same reply and writes nothing', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  const first = await post(h, '/v1/readings?echo=1', [{ sensor: 's', value: 1 }], { 'idempotency-key': 'abc' })
  const t1 = mesh.region(REGION).get('s')?.t
  const again = await post(h, '/v1/readings?echo=1', [{ sensor: 's', value: 1 }], { 'idempotency-key': 'abc' })
  t.deepEqual(again.json, first.json)
  t.is(mesh.region(REGION).get('s')?.t, t1)
  const other = await post(h, '/v1/readings?echo=1', [{ sensor: 's', value: 1 }], { 'idempotency-key': 'def' })
  t.not((other.json.readings as Array<{ t: string }>)[0].t, t1)
})

test('GET /v1/sensors/:id returns the value with unit, device ts, HLC, writer and age; maxAgeMs decides stale; absent is 404', async t => {
  const clock = fakeClock(Date.now())
  const mesh = await startMesh(t, { region: { now: clock.now } })
  const h = harness(t, mesh, [REGION])
  await post(h, '/v1/readings', [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS }, { sensor: 'plain', value: { a: [1, 'x'] } }])
  const w = mesh.region(REGION).get('line-1/temp')
  clock.ms = Date.now() + 10_000
  const fresh = await get(h, '/v1/sensors/line-1%2Ftemp?maxAgeMs=60000')
  t.is(fresh.status, 200)
  t.like(fresh.json, { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS, t: w?.t, writer: mesh.peerId, stale: false })
  t.true((fresh.json.ageMs as number) >= 10_000)
  const stale = await get(h, `/v1/sensors/line-1%2Ftemp?region=${REGION}&maxAgeMs=5000`)
  t.is(stale.json.stale, true)
  t.is((await get(h, '/v1/sensors/line-1%2Ftemp')).json.stale, false, 'no bound: never stale')
  const raw = await get(h, '/v1/sensors/line-1/temp')
  t.is(raw.json.t, w?.t, 'the id may also be the rest of the path')
  const plain = await get(h, '/v1/sensors/plain')
  t.deepEqual(plain.json.value, { a: [1, 'x'] })
  t.false('unit' in plain.json)
  t.false('ts' in plain.json)

  const absent = await get(h, '/v1/sensors/nope')
  t.is(absent.status, 404)
  t.is(absent.json.code, 'EM_ERR_NOT_FOUND')
  t.deepEqual(absent.json.details, { region: REGION, sensor: 'nope' })
  mesh.region(REGION).delete('plain')
  t.is((await get(h, '/v1/sensors/plain')).status, 404, 'deleted')
  const bad = await get(h, '/v1/sensors/line-1%2Ftemp?maxAgeMs=soon')
  t.is(bad.status, 400)
  t.is(bad.json.code, 'EM_ERR_INVALID_OPTIONS')
})

test('GET /v1/sensors lists sensor ids sorted, by prefix, with a limit', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  mesh.region(REGION).putMany(['b/2', 'a/1', 'b/1', 'c', 'b/10'].map(sensor => ({ sensor, value: 1 })))
  t.deepEqual((await get(h, '/v1/sensors')).json, { region: REGION, sensors: ['a/1', 'b/1', 'b/10', 'b/2', 'c'], truncated: false })
  t.deepEqual((await get(h, '/v1/sensors?prefix=b%2F')).json.sensors, ['b/1', 'b/10', 'b/2'])
  t.deepEqual((await get(h, '/v1/sensors?prefix=b/&limit=2')).json, { region: REGION, sensors: ['b/1', 'b/10'], truncated: true })
  for (const limit of ['0', '10001', 'x', '-1']) {
    const r = await get(h, `/v1/sensors?limit=${limit}`)
    t.is(r.status, 400, limit)
    t.is(r.json.code, 'EM_ERR_INVALID_OPTIONS', limit)
  }
})

test('unknown routes and methods are 404 JSON', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  for (const [method, url] of [['GET', '/nope'], ['GET', '/v1'], ['DELETE', '/v1/readings'], ['PUT', '/v1/sensors/x']] as const) {
    const res = await h.http.app.inject({ method, url })
    t.is(res.statusCode, 404, `${method} ${url}`)
    t.is(res.json().code, 'EM_ERR_NOT_FOUND')
  }
})

test('/health is ok; /ready is 200 when ready and 503 with the reasons otherwise; /metrics has the gateway metrics', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  t.deepEqual((await get(h, '/health')).json, { status: 'ok' })
  const ready = await get(h, '/ready')
  t.is(ready.status, 200)
  t.deepEqual(ready.json, { ready: true, storage: 'open', mesh: 'started', peers: 0, lastSyncAt: null, regions: [REGION] })
  h.ready.ready = false
  h.ready.storage = 'closed'
  const notReady = await get(h, '/ready')
  t.is(notReady.status, 503)
  t.like(notReady.json, { ready: false, storage: 'closed' })

  await post(h, '/v1/readings', [{ sensor: 's', value: 1 }])
  await post(h, '/v1/readings', 'nope')
  const res = await h.http.app.inject({ method: 'GET', url: '/metrics' })
  t.is(res.statusCode, 200)
  t.regex(res.headers['content-type'] as string, /^text\/plain/)
  t.regex(res.body, /edge_mesh_readings_accepted_total\{source="http"\} 1/)
  t.regex(res.body, /edge_mesh_http_errors_total\{code="EM_ERR_INVALID_BODY"\} 1/)
  t.regex(res.body, /process_cpu_user_seconds_total/)
})

// ------------------------------------------------------------------ over a real socket

async function listen (h: Harness): Promise<string> {
  await h.http.app.listen({ host: '127.0.0.1', port: 0 })
  const addr = h.http.app.server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  return `http://127.0.0.1:${addr.port}`
}

test('over a real socket: 200, 400, 413, 415, 404, 429 and 503 with their JSON bodies and Retry-After', async t => {
  const mesh = gatedMesh(t)
  const h = harness(t, mesh, [REGION], { bodyLimitBytes: 4096, maxPendingReadings: 1 })
  const base = await listen(h)
  const send = async (body: string, type: string = 'application/json', path: string = '/v1/readings'): Promise<Response> =>
    await fetch(base + path, { method: 'POST', headers: { 'content-type': type }, body })
  const expect = async (res: Response, status: number, code: string): Promise<void> => {
    t.is(res.status, status, code)
    t.regex(res.headers.get('content-type') ?? '', /^application\/json/)
    const body = await res.json() as Record<string, unknown>
    t.is(body.code, code)
    t.is(typeof body.error, 'string')
  }
  await expect(await send('[{"sensor":'), 400, 'EM_ERR_INVALID_BODY')
  await expect(await send(JSON.stringify([{ sensor: 's', value: 'x'.repeat(5000) }])), 413, 'EM_ERR_PAYLOAD_TOO_LARGE')
  await expect(await send('s=1', 'text/plain'), 415, 'EM_ERR_UNSUPPORTED_MEDIA_TYPE')
  await expect(await fetch(base + '/v2/nothing'), 404, 'EM_ERR_NOT_FOUND')

  const first = send(JSON.stringify([{ sensor: 'a', value: 1 }]))
  await waitFor(() => mesh.waiting() === 1, 'the first batch waits for durability')
  const busy = await send(JSON.stringify([{ sensor: 'b', value: 1 }]))
  t.is(busy.headers.get('retry-after'), '1')
  await expect(busy, 429, 'EM_ERR_OVERLOADED')
  mesh.release()
  const ok = await first
  t.is(ok.status, 200)
  t.deepEqual(await ok.json(), { accepted: 1, duplicates: 0 })

  await h.ingestor.close()
  const down = await send(JSON.stringify([{ sensor: 'c', value: 1 }]))
  t.is(down.headers.get('retry-after'), '5')
  await expect(down, 503, 'EM_ERR_UNAVAILABLE')
})

/** An SSE client on a real socket: collects the `data` of `change` events. */
function subscribe (t: ExecutionContext, url: string): { events: Array<Record<string, unknown>>, raw: () => string, status: Promise<number>, close: () => void } {
  const events: Array<Record<string, unknown>> = []
  let text = ''
  let req: http.ClientRequest | undefined
  const status = new Promise<number>((resolve, reject) => {
    req = http.get(url, res => {
      resolve(res.statusCode ?? 0)
      res.setEncoding('utf8')
      let buf = ''
      res.on('data', (chunk: string) => {
        text += chunk
        buf += chunk
        let end: number
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          const lines = block.split('\n')
          if (lines.includes('event: change')) {
            const data = lines.find(l => l.startsWith('data: '))
            if (data !== undefined) events.push(JSON.parse(data.slice(6)) as Record<string, unknown>)
          }
        }
      })
      res.on('error', () => {})
    })
    req.on('error', reject)
  })
  const close = (): void => { req?.destroy() }
  t.teardown(close)
  return { events, raw: () => text, status, close }
}

test('GET /v1/stream sends each change as an SSE event, filtered by prefix, and forgets a client that disconnects', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  const base = await listen(h)
  const all = subscribe(t, `${base}/v1/stream`)
  const line1 = subscribe(t, `${base}/v1/stream?region=${REGION}&prefix=line-1%2F`)
  t.is(await all.status, 200)
  t.is(await line1.status, 200)
  await waitFor(() => h.http.sseStats().clients === 2, 'both clients registered')

  await post(h, '/v1/readings', [{ sensor: 'line-2/temp', value: 7 }])
  await post(h, '/v1/readings', [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS }])
  mesh.region(REGION).delete('line-1/temp')
  await waitFor(() => all.events.length === 3 && line1.events.length === 2, 'the events arrive', { explain: () => [all.events, line1.events] })
  t.deepEqual(all.events.map(e => e.sensor), ['line-2/temp', 'line-1/temp', 'line-1/temp'])
  const [write, del] = line1.events
  const w = mesh.region(REGION).winner('line-1/temp')
  t.like(write, { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS, writer: mesh.peerId, reason: 'write' })
  t.is(typeof write.t, 'string')
  t.like(del, { sensor: 'line-1/temp', reason: 'delete', t: w?.t, writer: mesh.peerId })

  line1.close()
  await waitFor(() => h.http.sseStats().clients === 1, 'the closed client is forgotten')
  all.close()
  await waitFor(() => h.http.sseStats().clients === 0, 'no client left')
  t.is(h.http.sseStats().events, 5)
})

test('a stream client that stops reading is dropped once its buffer is over the bound, and counted', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION], { sseMaxBufferedBytes: 64 * 1024 })
  const base = await listen(h)
  // A client that never reads: the socket's buffers fill, then the gateway's.
  const { port } = new URL(base)
  const net = await import('node:net')
  const sock = net.connect(Number(port), '127.0.0.1')
  t.teardown(() => { sock.destroy() })
  sock.pause()
  sock.write('GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => h.http.sseStats().clients === 1, 'the client registered')
  const region = mesh.region(REGION)
  const big = 'x'.repeat(8 * 1024)
  await waitFor(() => {
    region.putMany(Array.from({ length: 50 }, (_, i) => ({ sensor: `s${i}`, value: big })))
    return h.http.sseStats().dropped === 1
  }, 'the slow client is dropped', { everyMs: 5, explain: () => h.http.sseStats() })
  await waitFor(() => h.http.sseStats().clients === 0, 'and forgotten')
  t.is(h.http.sseStats().dropped, 1)
})

test('app.close() ends open streams, so that the server can close', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  const base = await listen(h)
  const s = subscribe(t, `${base}/v1/stream`)
  t.is(await s.status, 200)
  await waitFor(() => h.http.sseStats().clients === 1, 'registered')
  await h.http.app.close()
  t.is(h.http.sseStats().clients, 0)
})

test('stream clients get a heartbeat comment every sseHeartbeatMs', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION], { sseHeartbeatMs: 50 })
  const base = await listen(h)
  const s = subscribe(t, `${base}/v1/stream`)
  t.is(await s.status, 200)
  await waitFor(() => s.raw().split(': heartbeat\n\n').length > 2, 'two heartbeats arrive')
  t.deepEqual(s.events, [])
})

test('a read replies only once what it shows is durable: a reading waiting for its LevelDB batch is not served until the batch is written', async t => {
  const mesh = gatedMesh(t)
  const h = harness(t, mesh, [REGION])
  const posted = post(h, '/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
  await waitFor(() => mesh.waiting() > 0, 'the batch waits for its LevelDB write')
  let served: { status: number, json: Record<string, unknown> } | undefined
  const reading = get(h, '/v1/sensors/line-1%2Ftemp').then(r => { served = r })
  const listing = get(h, '/v1/sensors')
  await waitFor(() => mesh.waiting() >= 3, 'the read and the listing wait for durability too')
  t.is(served, undefined, 'nothing served while the batch is not durable')
  mesh.release()
  await reading
  t.is(served?.status, 200)
  t.is(served?.json.value, 21.5)
  t.deepEqual((await listing).json.sensors, ['line-1/temp'])
  t.is((await posted).status, 200)
})

test('a read whose durability wait fails answers 503 EM_ERR_UNAVAILABLE with the ingest\'s Retry-After, not the value', async t => {
  const mesh = gatedMesh(t)
  const h = harness(t, mesh, [REGION], { unavailableRetryAfterMs: 3000 })
  const posted = post(h, '/v1/readings', [{ sensor: 's', value: 1 }])
  await waitFor(() => mesh.waiting() > 0, 'the batch waits for its LevelDB write')
  const read = get(h, '/v1/sensors/s')
  await waitFor(() => mesh.waiting() >= 2, 'the read waits')
  mesh.fail(new Error('disk full'))
  const r = await read
  t.is(r.status, 503)
  t.is(r.json.code, 'EM_ERR_UNAVAILABLE')
  t.is(r.headers['retry-after'], '3', 'the read says what an unavailable ingest says')
  const p = await posted
  t.is(p.status, 503)
  t.is(p.headers['retry-after'], '3')
})

// ------------------------------------------------------------------ reads over a real socket

test('over a real socket, a single-sensor read answers as the fastify route does, by either path form, and every error still comes from fastify', async t => {
  const mesh = await startMesh(t)
  const h = harness(t, mesh, [REGION])
  const base = await listen(h)
  t.is((await post(h, '/v1/readings', [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS }, { sensor: 'bare', value: { a: [1, 'x'] } }])).status, 200)
  const read = async (path: string): Promise<{ status: number, type: string | null, keepAlive: string | null, body: Record<string, unknown> }> => {
    const res = await fetch(base + path)
    return { status: res.status, type: res.headers.get('content-type'), keepAlive: res.headers.get('keep-alive'), body: await res.json() as Record<string, unknown> }
  }
  // The fast path answers the first two; an escape in the query makes it hand the third to fastify.
  const encoded = await read('/v1/sensors/line-1%2Ftemp?maxAgeMs=600000')
  const slashes = await read(`/v1/sensors/line-1/temp?region=${REGION}&maxAgeMs=600000`)
  t.is(h.http.stats().fastReads, 2, 'both answered by the fast path')
  const viaFastify = await read(`/v1/sensors/line-1%2Ftemp?region=${REGION.replace('-', '%2D')}&maxAgeMs=600000`)
  t.is(h.http.stats().fastReads, 2, 'the escaped query went to fastify')
  const injected = await get(h, '/v1/sensors/line-1%2Ftemp?maxAgeMs=600000')
  for (const r of [encoded, slashes, viaFastify]) {
    t.is(r.status, 200)
    t.is(r.type, 'application/json; charset=utf-8')
    t.is(r.keepAlive, 'timeout=72', "fastify's keep-alive timeout on the server")
    const { ageMs, ...rest } = r.body
    t.true(typeof ageMs === 'number' && ageMs >= 0)
    const { ageMs: _, ...expected } = injected.json
    t.deepEqual(rest, expected)
    t.deepEqual(Object.keys(r.body), Object.keys(injected.json), 'same fields in the same order')
  }
  t.like(encoded.body, { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS, stale: false })
  const stale = await read('/v1/sensors/line-1%2Ftemp?maxAgeMs=0')
  t.is(stale.status, 200)
  t.is(stale.body.stale, (stale.body.ageMs as number) > 0)
  t.deepEqual((await read('/v1/sensors/bare')).body.value, { a: [1, 'x'] })

  // Errors: fastify's replies, unchanged.
  const missing = await read('/v1/sensors/nope')
  t.is(missing.status, 404)
  t.is(missing.body.code, 'EM_ERR_NOT_FOUND')
  const badAge = await read('/v1/sensors/bare?maxAgeMs=soon')
  t.is(badAge.status, 400)
  t.is(badAge.body.code, 'EM_ERR_INVALID_OPTIONS')
  const twice = await read(`/v1/sensors/bare?region=${REGION}&region=${REGION}`)
  t.is(twice.status, 400)
  const elsewhere = await read('/v1/sensors/bare?region=plant-9')
  t.is(elsewhere.status, 404)
  t.is(elsewhere.body.code, 'EM_ERR_NOT_FOUND')
  const emptyRegion = await read('/v1/sensors/bare?region=')
  t.is(emptyRegion.status, 400)
  t.is(h.http.stats().fastReads, 4, 'no error was answered by the fast path')
})

test('over a real socket, a read waits for durability, and a failed wait is answered 503 EM_ERR_UNAVAILABLE with Retry-After', async t => {
  const mesh = gatedMesh(t)
  const h = harness(t, mesh, [REGION])
  const base = await listen(h)
  const first = post(h, '/v1/readings', [{ sensor: 's', value: 1 }])
  await waitFor(() => mesh.waiting() > 0, 'the batch waits for its LevelDB write')
  let served: Response | undefined
  const reading = fetch(`${base}/v1/sensors/s`).then(r => { served = r; return r })
  await waitFor(() => mesh.waiting() >= 2, 'the read waits for durability')
  t.is(served, undefined, 'nothing served while the batch is not durable')
  mesh.release()
  const ok = await reading
  t.is(ok.status, 200)
  t.is(h.http.stats().fastReads, 1)
  t.like(await ok.json(), { sensor: 's', value: 1 })
  t.is((await first).status, 200)

  const second = post(h, '/v1/readings', [{ sensor: 's', value: 2 }])
  await waitFor(() => mesh.waiting() > 0, 'the second batch waits')
  const failing = fetch(`${base}/v1/sensors/s`)
  await waitFor(() => mesh.waiting() >= 2, 'the read waits')
  mesh.fail(new Error('disk full'))
  const r = await failing
  t.is(r.status, 503)
  t.truthy(r.headers.get('retry-after'))
  t.is((await r.json() as { code: string }).code, 'EM_ERR_UNAVAILABLE')
  t.is(h.http.stats().fastReads, 1, 'the failed read was answered by fastify')
  t.is(h.http.stats().errors.EM_ERR_UNAVAILABLE, 2, 'and counted with the failed batch')
  t.is((await second).status, 503)
})
