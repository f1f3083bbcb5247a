/**
 * End to end: `edge-mesh gateway` as real child processes (peers/edge-mesh.ts, through
 * test/helpers/gateway-process.ts), each with its own LevelDB data dir, over real TCP on 127.0.0.1:
 * - HTTP ingest at one gateway, visible at another's read API (value, unit, ts, HLC t, writer,
 *   ageMs, stale), listing, change stream (SSE), in a STOCK y-websocket client's doc and in an
 *   `@edge-mesh/client` view;
 * - MQTT ingest through a real mosquitto (test/helpers/mosquitto.ts), malformed payloads counted,
 *   QoS 1 messages kept by the broker while the gateway is down;
 * - the documented JSON errors for bad bodies; 429 + Retry-After under --max-pending;
 * - reads and writes while every peer is down; every acknowledged reading kept across SIGTERM
 *   and SIGKILL; device-ts and Idempotency-Key deduplication; compaction, reconnects, conflicts,
 *   two regions, a private network key.
 *
 * Every wait is a bounded poll of an observable condition (an HTTP reply, a metric, the synced
 * doc); no duration is asserted. The tests run serially: each starts one to three gateway
 * processes (and maybe a broker), and the suites of other packages may run beside this file.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import test, { type ExecutionContext } from 'ava'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { connectRegion, type ViewChange } from '@edge-mesh/client'
import { fromStored, type Reading } from '@edge-mesh/reading'
import { createRegionState, type ReadingView, type RegionState } from '@edge-mesh/region-state'
import { GatewayProcess, type GatewayProcessOptions, type GatewayReply } from './helpers/gateway-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { until as untilWithin } from './helpers/until.ts'

const REGION = 'plant-1'
/** Bound of every wait on a condition (replication, reconnects, metrics). */
const WAIT_MS = 60_000
/** A device timestamp in the accepted range (2000..2100), distinct per run. */
const TS0 = Date.now() - 60_000

/** What GET /v1/sensors/:id answers. */
interface SensorReply {
  sensor: string
  value: unknown
  unit?: string
  ts?: number
  t: string
  writer: string
  ageMs: number
  stale: boolean
}

interface ErrorReply {
  error: string
  code: string
  details?: Record<string, unknown>
}

interface IngestReply {
  accepted: number
  duplicates: number
  readings?: Array<{ sensor: string, t: string }>
}

interface ReadyReply {
  ready: boolean
  storage: string
  mesh: string
  peers: number
  lastSyncAt: number | null
  regions: string[]
}

/** A fresh temp dir, removed when the test ends (after the gateways registered later are stopped). */
async function tempDir (t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function startGateway (t: ExecutionContext, options: GatewayProcessOptions): Promise<GatewayProcess> {
  return await GatewayProcess.start(t, options)
}

const until = async <T>(read: () => Promise<T> | T, ok: (value: T) => boolean, what: string, withinMs: number = WAIT_MS): Promise<T> => await untilWithin(read, ok, what, withinMs)


const sensorPath = (sensor: string, query: string = ''): string => `/v1/sensors/${encodeURIComponent(sensor)}${query}`

/** Reads a sensor at `gw` until it has `value` (deep-equal by JSON), and returns the reply. */
async function readUntil (gw: GatewayProcess, sensor: string, value: unknown): Promise<SensorReply> {
  const want = JSON.stringify(value)
  const reply = await until(
    async () => await gw.get<SensorReply>(sensorPath(sensor)),
    r => r.status === 200 && JSON.stringify(r.body.value) === want,
    `${gw.label()} to serve ${sensor} = ${want}`
  )
  return reply.body
}

/** The value of a sample (`name` with its labels, as printed) in Prometheus text, undefined if absent. */
function metric (text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1))
  }
  return undefined
}

async function metricsOf (gw: GatewayProcess): Promise<string> {
  const r = await gw.get('/metrics')
  if (r.status !== 200) throw new Error(`${gw.label()}: /metrics answered ${r.status}: ${r.text}`)
  return r.text
}

/** Checks the shape of an error reply: JSON `{ error, code }` with `status`. */
function assertError (t: ExecutionContext, reply: GatewayReply, status: number, code: string, what: string): void {
  t.is(reply.status, status, `${what}: ${reply.text}`)
  t.regex(reply.headers.get('content-type') ?? '', /^application\/json/, `${what}: content type`)
  const body = reply.body as ErrorReply
  t.is(body.code, code, `${what}: ${reply.text}`)
  t.is(typeof body.error, 'string', `${what}: error message`)
  t.true(body.error.length > 0, `${what}: error message`)
}

/** A stock y-websocket client on one region of `gw`, its doc decoded into a read-only region state. */
interface StockApp {
  provider: WebsocketProvider
  replica: RegionState
  /** Updates the replica refused (none expected). */
  invalid: string[]
}

function connectStockApp (t: ExecutionContext, gw: GatewayProcess, region: string = REGION): StockApp {
  const doc = new Y.Doc()
  const replica = createRegionState({ region, readOnly: true, maintenanceIntervalMs: 0 })
  const invalid: string[] = []
  doc.on('update', (u: Uint8Array) => {
    try {
      replica.applyUpdate(u)
    } catch (err) {
      invalid.push(err instanceof Error ? err.message : String(err))
    }
  })
  const provider = new WebsocketProvider(`${gw.wsUrl}/v1/docs`, region, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true
  })
  t.teardown(() => {
    provider.destroy()
    doc.destroy()
    replica.close()
  })
  return { provider, replica, invalid }
}

/** The decoded reading of `sensor` in a replica whose value is `value`, or undefined. */
function replicaHas (replica: RegionState, sensor: string, value: unknown): (ReadingView & { reading: Reading }) | undefined {
  const view = replica.get(sensor)
  if (view === undefined) return undefined
  const reading = fromStored(view.value)
  return JSON.stringify(reading.value) === JSON.stringify(value) ? { ...view, reading } : undefined
}

// ---------------------------------------------------------------------------------------- 1

test.serial('a batch posted at gateway A is served by gateway B (value, unit, ts, HLC t, writer, freshness), listed by prefix, and reaches a stock y-websocket client of B', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-a-'), tempDir(t, 'em-e2e-b-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  t.not(a.peerId, b.peerId)
  t.regex(a.url, /^http:\/\/127\.0\.0\.1:\d+$/)

  const batch = [
    { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0 },
    { sensor: 'line-1/rpm', value: 1450 },
    { sensor: 'line-2/state', value: 'running', ts: TS0 + 1 },
    { sensor: 'line-2/pressure', value: { bar: 2.1, ok: true }, unit: 'bar' },
    { sensor: 'office/co2', value: 412 }
  ]
  const posted = await a.post<IngestReply>('/v1/readings', batch)
  t.is(posted.status, 200, posted.text)
  t.deepEqual(posted.body, { accepted: batch.length, duplicates: 0 })

  const atBOf = new Map<string, string>()
  for (const input of batch) {
    const atA = await a.get<SensorReply>(sensorPath(input.sensor))
    t.is(atA.status, 200, `A reads back ${input.sensor} after its ack: ${atA.text}`)
    const atB = await readUntil(b, input.sensor, input.value)
    t.is(atB.sensor, input.sensor)
    t.is(atB.unit, input.unit, `${input.sensor} unit at B`)
    t.is(atB.ts, input.ts, `${input.sensor} device ts at B`)
    t.is(atB.t, atA.body.t, `${input.sensor}: B holds A's HLC timestamp`)
    t.is(atB.writer, a.peerId, `${input.sensor}: the writer is A's peer id`)
    t.true(Number.isInteger(atB.ageMs) && atB.ageMs >= 0, `${input.sensor} ageMs ${atB.ageMs}`)
    t.false(atB.stale, `${input.sensor}: not stale without maxAgeMs`)
    atBOf.set(input.sensor, atB.t)
  }

  // The sensor id as the rest of the path (not URL-encoded) is the same sensor.
  const plain = await b.get<SensorReply>('/v1/sensors/line-1/temp')
  t.is(plain.status, 200, plain.text)
  t.is(plain.body.value, 21.5)

  // Bounded-staleness reads: within a generous bound, not stale; with 0 ms, stale once it has aged.
  const bounded = await b.get<SensorReply>(sensorPath('line-1/temp', '?maxAgeMs=3600000'))
  t.is(bounded.status, 200, bounded.text)
  t.false(bounded.body.stale)
  const aged = await until(async () => await b.get<SensorReply>(sensorPath('line-1/temp', '?maxAgeMs=0')), r => r.status === 200 && r.body.ageMs > 0, 'B to report line-1/temp older than 0 ms')
  t.true(aged.body.stale, `ageMs ${aged.body.ageMs} > maxAgeMs 0 is stale: ${aged.text}`)

  const line1 = await b.get<{ region: string, sensors: string[] }>(`/v1/sensors?prefix=${encodeURIComponent('line-1/')}`)
  t.is(line1.status, 200, line1.text)
  t.deepEqual(line1.body.sensors, ['line-1/rpm', 'line-1/temp'])
  const all = await b.get<{ region: string, sensors: string[] }>('/v1/sensors?prefix=')
  t.is(all.status, 200, all.text)
  t.deepEqual(all.body.sensors, batch.map(r => r.sensor).sort())
  t.is(all.body.region, REGION)

  // A stock y-websocket client of B and an @edge-mesh/client view of B: the initial sync brings
  // what B holds...
  const app = connectStockApp(t, b)
  const view = connectRegion({ url: `${b.wsUrl}/v1/docs`, region: REGION, WebSocket, syncTimeoutMs: WAIT_MS })
  t.teardown(async () => { await view.close() })
  const viewChanges: ViewChange[] = []
  view.on('change', c => { viewChanges.push(c) })
  await until(() => app.provider.synced, s => s, 'the stock client of B to sync')
  const initial = await until(() => replicaHas(app.replica, 'line-1/temp', 21.5), v => v !== undefined, "line-1/temp in the app's doc")
  t.deepEqual(initial?.reading, { value: 21.5, unit: 'C', ts: TS0 })
  t.is(initial?.writer, a.peerId)
  await view.synced
  t.like(view.latest('line-1/temp'), { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0, writer: a.peerId, t: atBOf.get('line-1/temp') })
  t.deepEqual(view.sensors('line-2/'), ['line-2/pressure', 'line-2/state'])

  // ... and a reading ingested at A after the app connected arrives live, through B.
  const late = [{ sensor: 'line-3/temp', value: 30.25, unit: 'C', ts: TS0 + 2 }, { sensor: 'line-1/temp', value: 22, unit: 'C', ts: TS0 + 3 }]
  const posted2 = await a.post<IngestReply>('/v1/readings?echo=1', late)
  t.is(posted2.status, 200, posted2.text)
  t.is(posted2.body.accepted, 2)
  const tOf = new Map((posted2.body.readings ?? []).map(r => [r.sensor, r.t]))
  t.is(tOf.size, 2, `echo=1 lists the readings written: ${posted2.text}`)
  for (const r of late) {
    const got = await until(() => replicaHas(app.replica, r.sensor, r.value), v => v !== undefined, `${r.sensor} = ${r.value} (ingested at A) in the doc of B's app`)
    t.deepEqual(got?.reading, { value: r.value, unit: r.unit, ts: r.ts })
    t.is(got?.writer, a.peerId)
    t.is(got?.t, tOf.get(r.sensor))
    const change = await until(() => viewChanges.find(c => c.sensor === r.sensor && c.reading?.t === tOf.get(r.sensor)), c => c !== undefined, `a change event of ${r.sensor} from the client view of B`)
    t.like(change?.reading, { sensor: r.sensor, value: r.value, unit: r.unit, ts: r.ts, writer: a.peerId })
    t.like(view.latest(r.sensor), { value: r.value, t: tOf.get(r.sensor) })
  }
  t.is(view.status, 'connected')
  t.deepEqual(app.replica.list(), [...new Set([...batch, ...late].map(r => r.sensor))].sort(), "the app's doc holds the region's sensors")
  t.deepEqual(app.invalid, [], 'every update the app received decodes as region state')
  t.is(view.stats().invalidUpdates, 0)

  // Deduplication looks at the winner whoever wrote it: A's reading posted again at B is a duplicate.
  const again = await b.post<IngestReply>('/v1/readings', [late[0]])
  t.is(again.status, 200, again.text)
  t.deepEqual(again.body, { accepted: 0, duplicates: 1 })
  const still = await b.get<SensorReply>(sensorPath(late[0].sensor))
  t.like(still.body, { t: tOf.get(late[0].sensor), writer: a.peerId })
})

// ---------------------------------------------------------------------------------------- 2

test.serial('readings published over MQTT at gateway A (bare number and envelope) are served by gateway B; a malformed payload is counted and A keeps going', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => { await broker.stop() })
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-mqa-'), tempDir(t, 'em-e2e-mqb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA, mqtt: broker.url })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  await until(async () => metric(await metricsOf(a), 'edge_mesh_mqtt_connected'), v => v === 1, 'A to be connected to the broker')

  const pub = await mqtt.connectAsync(broker.url, { clientId: `e2e-publisher-${process.pid}`, reconnectPeriod: 0 })
  t.teardown(async () => { await pub.endAsync(true) })
  const topic = `sensors/${REGION}/line-1/temp`

  await pub.publishAsync(topic, '20.5', { qos: 1 })
  const bare = await readUntil(b, 'line-1/temp', 20.5)
  t.is(bare.writer, a.peerId)
  t.is(bare.unit, undefined)
  t.is(bare.ts, undefined)

  await pub.publishAsync(topic, JSON.stringify({ value: 21.5, unit: 'C', ts: TS0 }), { qos: 1 })
  const env = await readUntil(b, 'line-1/temp', 21.5)
  t.is(env.unit, 'C')
  t.is(env.ts, TS0)
  t.is(env.writer, a.peerId)

  const before = await metricsOf(a)
  t.is(metric(before, 'edge_mesh_mqtt_malformed_total'), 0, 'no malformed message yet')
  await pub.publishAsync(topic, 'not json {', { qos: 1 })
  const malformed = await until(async () => metric(await metricsOf(a), 'edge_mesh_mqtt_malformed_total'), v => v !== undefined && v >= 1, 'A to count the malformed payload')
  t.is(malformed, 1)

  // A keeps working: a good message after the bad one arrives, the bad one changed nothing.
  await pub.publishAsync(`sensors/${REGION}/line-1/rpm`, '1450', { qos: 1 })
  const rpm = await readUntil(b, 'line-1/rpm', 1450)
  t.is(rpm.writer, a.peerId)
  const health = await a.get<{ status: string }>('/health')
  t.is(health.status, 200)
  t.deepEqual(health.body, { status: 'ok' })
  const temp = await a.get<SensorReply>(sensorPath('line-1/temp'))
  t.is(temp.body.value, 21.5, 'the malformed payload was not applied')
  const after = await metricsOf(a)
  t.is(metric(after, 'edge_mesh_readings_accepted_total{source="mqtt"}'), 3, 'three good MQTT readings accepted')
  t.is(metric(after, 'edge_mesh_mqtt_malformed_total'), 1)
  t.true(a.running, `A still runs${a.diagnostics()}`)
  t.deepEqual(await a.stop(), { code: 0, signal: null }, `A with MQTT ingest stops cleanly on SIGTERM${a.diagnostics()}`)
})

// ---------------------------------------------------------------------------------------- 3

test.serial('bad HTTP input gets the documented JSON errors (400, 413, 415, 404) and changes nothing; the gateway still answers /health', async t => {
  const dir = await tempDir(t, 'em-e2e-bad-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir, bodyLimit: '64k' })
  const json = { 'content-type': 'application/json' }

  assertError(t, await a.post('/v1/readings', '[{"sensor": "line-1/temp", "value": ', json), 400, 'EM_ERR_INVALID_BODY', 'truncated JSON')
  assertError(t, await a.post('/v1/readings', 'not json at all', json), 400, 'EM_ERR_INVALID_BODY', 'not JSON')
  assertError(t, await a.post('/v1/readings', [{ sensor: 'line-1/temp' }]), 400, 'EM_ERR_INVALID_BODY', 'missing value')
  assertError(t, await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 1, ts: 'yesterday' }]), 400, 'EM_ERR_INVALID_BODY', 'ts not a number')
  assertError(t, await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 1, ts: 12 }]), 400, 'EM_ERR_INVALID_BODY', 'ts out of range')
  assertError(t, await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 1, colour: 'red' }]), 400, 'EM_ERR_INVALID_BODY', 'unknown field')
  assertError(t, await a.post('/v1/readings', { sensor: 'line-1/temp', value: 1 }), 400, 'EM_ERR_INVALID_BODY', 'not an array')
  // All or nothing: a good reading in a batch with a bad one is not written.
  const mixed = await a.post('/v1/readings', [{ sensor: 'line-1/good', value: 1 }, { sensor: 'line-1/bad' }])
  assertError(t, mixed, 400, 'EM_ERR_INVALID_BODY', 'a batch with one bad reading')

  const big = Array.from({ length: 2000 }, (_, i) => ({ sensor: `bulk/sensor-${i}`, value: i, unit: 'C' }))
  t.true(JSON.stringify(big).length > 64 * 1024)
  assertError(t, await a.post('/v1/readings', big), 413, 'EM_ERR_PAYLOAD_TOO_LARGE', 'a body over --body-limit 64k')

  assertError(t, await a.post('/v1/readings', JSON.stringify([{ sensor: 'line-1/temp', value: 1 }]), { 'content-type': 'text/plain' }), 415, 'EM_ERR_UNSUPPORTED_MEDIA_TYPE', 'text/plain')

  assertError(t, await a.get(sensorPath('line-9/nothing')), 404, 'EM_ERR_NOT_FOUND', 'an unknown sensor')
  assertError(t, await a.get(sensorPath('line-1/good')), 404, 'EM_ERR_NOT_FOUND', 'the good reading of the refused batch')

  const listed = await a.get<{ sensors: string[] }>('/v1/sensors?prefix=')
  t.is(listed.status, 200, listed.text)
  t.deepEqual(listed.body.sensors, [], 'no bad request wrote anything')

  const health = await a.get<{ status: string }>('/health')
  t.is(health.status, 200, health.text)
  t.deepEqual(health.body, { status: 'ok' })
  const ok = await a.post<IngestReply>('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
  t.is(ok.status, 200, `a good batch after the bad ones: ${ok.text}`)
  t.deepEqual(ok.body, { accepted: 1, duplicates: 0 })
  const m = await metricsOf(a)
  t.is(metric(m, 'edge_mesh_http_errors_total{code="EM_ERR_PAYLOAD_TOO_LARGE"}'), 1)
  t.is(metric(m, 'edge_mesh_http_errors_total{code="EM_ERR_UNSUPPORTED_MEDIA_TYPE"}'), 1)
  t.true(a.running, `A still runs${a.diagnostics()}`)
})

// ---------------------------------------------------------------------------------------- 4

test.serial('gateway B serves reads and takes readings while its only peer A is down (SIGKILL), durably; A restarted from its data dir gets them', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-outa-'), tempDir(t, 'em-e2e-outb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })

  const posted = await a.post<IngestReply>('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0 }])
  t.is(posted.status, 200, posted.text)
  await readUntil(b, 'line-1/temp', 21.5)
  await until(async () => await b.get<ReadyReply>('/ready'), r => r.status === 200 && r.body.peers >= 1, 'B to report A as a connected peer')

  const killed = await a.kill('SIGKILL')
  t.is(killed.signal, 'SIGKILL')

  // B alone: reads, liveness, readiness with 0 peers.
  const read = await b.get<SensorReply>(sensorPath('line-1/temp'))
  t.is(read.status, 200, read.text)
  t.like(read.body, { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0, writer: a.peerId })
  const health = await b.get('/health')
  t.is(health.status, 200, health.text)
  const ready = await until(async () => await b.get<ReadyReply>('/ready'), r => r.body.peers === 0, 'B to notice that A is gone')
  t.is(ready.status, 200, ready.text)
  t.like(ready.body, { ready: true, storage: 'open', mesh: 'started', peers: 0, regions: [REGION] })

  // B takes readings with no peer: acknowledged once durable on its own disk...
  const during = await b.post<IngestReply>('/v1/readings', [{ sensor: 'line-2/temp', value: 19, unit: 'C', ts: TS0 + 10 }])
  t.is(during.status, 200, during.text)
  t.deepEqual(during.body, { accepted: 1, duplicates: 0 })

  // ... which a SIGKILL of B cannot take away: B restarted (A still down) has both readings.
  t.is((await b.kill('SIGKILL')).signal, 'SIGKILL')
  const b2 = await startGateway(t, { name: 'B2', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  t.is(b2.peerId, b.peerId, 'B keeps its identity across the restart')
  const own = await b2.get<SensorReply>(sensorPath('line-2/temp'))
  t.is(own.status, 200, `B's acknowledged reading after SIGKILL and restart: ${own.text}`)
  t.like(own.body, { value: 19, unit: 'C', ts: TS0 + 10, writer: b.peerId })
  const fromA = await b2.get<SensorReply>(sensorPath('line-1/temp'))
  t.is(fromA.status, 200, `A's reading, from B's disk, while every peer is down: ${fromA.text}`)
  t.like(fromA.body, { value: 21.5, writer: a.peerId })
  const ready2 = await b2.get<ReadyReply>('/ready')
  t.is(ready2.body.peers, 0, ready2.text)
  const during2 = await b2.post<IngestReply>('/v1/readings', [{ sensor: 'line-2/rpm', value: 900 }])
  t.is(during2.status, 200, during2.text)

  // A comes back from its data dir on its address: B's readings reach it.
  const a2 = await startGateway(t, { name: 'A2', regions: [REGION], data: dirA, listen: [a.listenAddr] })
  t.is(a2.peerId, a.peerId, 'A keeps its identity across the restart')
  const mine = await a2.get<SensorReply>(sensorPath('line-1/temp'))
  t.is(mine.status, 200, `A's own reading after SIGKILL and restart: ${mine.text}`)
  t.like(mine.body, { value: 21.5, writer: a.peerId })
  const got = await readUntil(a2, 'line-2/temp', 19)
  t.like(got, { unit: 'C', ts: TS0 + 10, writer: b.peerId, t: own.body.t })
  const rpm = await readUntil(a2, 'line-2/rpm', 900)
  t.is(rpm.writer, b.peerId)
})

// ---------------------------------------------------------------------------------------- 5

test.serial('a duplicate reading (same sensor and device ts) is applied once; an older device ts and an idempotent repeat are not applied either', async t => {
  const dir = await tempDir(t, 'em-e2e-dup-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir })
  const reading = { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0 }

  const first = await a.post<IngestReply>('/v1/readings', [reading])
  t.is(first.status, 200, first.text)
  t.deepEqual(first.body, { accepted: 1, duplicates: 0 })
  const before = await a.get<SensorReply>(sensorPath(reading.sensor))
  t.is(before.status, 200, before.text)

  const second = await a.post<IngestReply>('/v1/readings', [reading])
  t.is(second.status, 200, second.text)
  t.deepEqual(second.body, { accepted: 0, duplicates: 1 })
  const after = await a.get<SensorReply>(sensorPath(reading.sensor))
  t.is(after.body.t, before.body.t, 'the HLC t of the sensor is unchanged by the duplicate')
  t.is(after.body.value, 21.5)

  // The same device ts with another value is still the same reading; an older ts is stale.
  const again = await a.post<IngestReply>('/v1/readings', [{ ...reading, value: 99 }, { ...reading, value: 98, ts: TS0 - 1000 }])
  t.is(again.status, 200, again.text)
  t.deepEqual(again.body, { accepted: 0, duplicates: 2 })
  // Twice in one batch: written once.
  const twice = await a.post<IngestReply>('/v1/readings', [{ sensor: 'line-1/rpm', value: 1, ts: TS0 }, { sensor: 'line-1/rpm', value: 1, ts: TS0 }])
  t.is(twice.status, 200, twice.text)
  t.deepEqual(twice.body, { accepted: 1, duplicates: 1 })
  const last = await a.get<SensorReply>(sensorPath(reading.sensor))
  t.is(last.body.t, before.body.t)
  t.is(last.body.value, 21.5)

  // An Idempotency-Key repeat is answered with the first result and writes nothing (no device ts here).
  const key = { 'idempotency-key': `e2e-${process.pid}-1` }
  const k1 = await a.post<IngestReply>('/v1/readings', [{ sensor: 'line-2/count', value: 7 }], key)
  t.is(k1.status, 200, k1.text)
  t.deepEqual(k1.body, { accepted: 1, duplicates: 0 })
  const c1 = await a.get<SensorReply>(sensorPath('line-2/count'))
  const k2 = await a.post<IngestReply>('/v1/readings', [{ sensor: 'line-2/count', value: 7 }], key)
  t.is(k2.status, 200, k2.text)
  t.deepEqual(k2.body, k1.body)
  const c2 = await a.get<SensorReply>(sensorPath('line-2/count'))
  t.is(c2.body.t, c1.body.t, 'the repeat with the same Idempotency-Key wrote nothing')

  t.is(metric(await metricsOf(a), 'edge_mesh_readings_duplicates_total'), 4)
})

// ---------------------------------------------------------------------------------------- 6

interface AckedReading { sensor: string, value: number, ts: number }

/**
 * Posts batches from `workers` concurrent loops at `gw`; after `afterBatches` acknowledged batches
 * sends `signal`; each loop stops at its first refusal or network error after the signal (one
 * before it fails the test) or after a bounded number of batches. Resolves with every reading
 * acknowledged (200).
 */
async function ingestUntilSignal (gw: GatewayProcess, signal: NodeJS.Signals, prefix: string, afterBatches: number): Promise<{ acked: AckedReading[], batches: number, refusals: number }> {
  const WORKERS = 4
  const BATCH = 25
  const MAX_BATCHES_PER_WORKER = 400
  const acked: AckedReading[] = []
  let batches = 0
  let refusals = 0
  let sent = false
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; i < MAX_BATCHES_PER_WORKER; i++) {
      const batch = Array.from({ length: BATCH }, (_, j) => ({ sensor: `${prefix}/w${w}/b${i}/s${j}`, value: i * 1000 + j, ts: TS0 + i }))
      let reply: GatewayReply<IngestReply> | undefined
      try {
        reply = await gw.post<IngestReply>('/v1/readings', batch)
      } catch (err) {
        if (!sent) throw err
      }
      if (reply === undefined || reply.status !== 200) {
        if (!sent) throw new Error(`worker ${w} batch ${i} refused before ${signal}: ${reply?.status} ${reply?.text}`)
        refusals++
        return
      }
      if (reply.body.accepted !== BATCH) throw new Error(`worker ${w} batch ${i}: ${reply.text}`)
      acked.push(...batch)
      batches++
      if (!sent && batches >= afterBatches) {
        sent = true
        gw.child.kill(signal)
      }
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => { await worker(w) }))
  if (!sent) throw new Error(`${signal} was never sent: ${batches} batches acknowledged`)
  return { acked, batches, refusals }
}

/** Checks that `gw` holds every reading of `acked` (all ids listed; values and device ts of a sample). */
async function assertAllAcked (t: ExecutionContext, gw: GatewayProcess, prefix: string, acked: AckedReading[], writer: string): Promise<void> {
  const listed = await gw.get<{ sensors: string[], truncated: boolean }>(`/v1/sensors?prefix=${encodeURIComponent(prefix + '/')}&limit=10000`)
  t.is(listed.status, 200, listed.text)
  t.false(listed.body.truncated)
  const present = new Set(listed.body.sensors)
  const missing = acked.filter(r => !present.has(r.sensor)).map(r => r.sensor)
  t.deepEqual(missing.slice(0, 20), [], `${missing.length} of ${acked.length} acknowledged readings lost`)
  const step = Math.max(1, Math.floor(acked.length / 50))
  for (let i = 0; i < acked.length; i += step) {
    const r = acked[i]
    const got = await gw.get<SensorReply>(sensorPath(r.sensor))
    t.is(got.status, 200, `${r.sensor}: ${got.text}`)
    t.like(got.body, { value: r.value, ts: r.ts, writer })
  }
}

test.serial('SIGTERM while batches are in flight: the gateway exits 0, and a restart from its data dir has every acknowledged reading', async t => {
  const dir = await tempDir(t, 'em-e2e-term-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir })
  const { acked, batches, refusals } = await ingestUntilSignal(a, 'SIGTERM', 'term', 20)
  const exit = await a.waitForExit()
  t.deepEqual(exit, { code: 0, signal: null }, `a clean shutdown exits 0${a.diagnostics()}`)
  t.true(a.events.some(e => e.event === 'stopped'), `the stopped line is printed: ${JSON.stringify(a.events)}`)
  t.log(`${acked.length} readings acknowledged in ${batches} batches; ${refusals} requests refused after SIGTERM`)

  const a2 = await startGateway(t, { name: 'A2', regions: [REGION], data: dir })
  t.is(a2.peerId, a.peerId, 'same identity from the same data dir')
  await assertAllAcked(t, a2, 'term', acked, a.peerId)
  // The device timestamps survived too: an acknowledged batch sent again is all duplicates.
  const resent = await a2.post<IngestReply>('/v1/readings', acked.slice(0, 25))
  t.is(resent.status, 200, resent.text)
  t.deepEqual(resent.body, { accepted: 0, duplicates: 25 })
})

test.serial('SIGKILL while batches are in flight: a restart from the data dir has every reading that was acknowledged', async t => {
  const dir = await tempDir(t, 'em-e2e-kill-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir })
  const { acked, batches, refusals } = await ingestUntilSignal(a, 'SIGKILL', 'kill', 20)
  t.is((await a.waitForExit()).signal, 'SIGKILL')
  t.log(`${acked.length} readings acknowledged in ${batches} batches; ${refusals} requests cut by SIGKILL`)
  const a2 = await startGateway(t, { name: 'A2', regions: [REGION], data: dir })
  t.is(a2.peerId, a.peerId)
  await assertAllAcked(t, a2, 'kill', acked, a.peerId)
})

// ---------------------------------------------------------------------------------------- 7

/** One Server-Sent Event of GET /v1/stream. */
interface StreamEvent {
  event: string
  data: { sensor: string, value: unknown, unit?: string, ts?: number, t: string, writer: string, reason: string }
}

interface EventStream {
  events: StreamEvent[]
  /** Blocks that were not a well-formed change event (comments aside). */
  garbage: string[]
  ended: boolean
}

/**
 * Opens GET /v1/stream`query` at `gw` and collects its events in the background until the stream
 * ends (the gateway stops) or the test ends (the request is aborted in teardown).
 */
async function openStream (t: ExecutionContext, gw: GatewayProcess, query: string): Promise<EventStream> {
  const ac = new AbortController()
  t.teardown(() => { ac.abort() })
  const res = await fetch(gw.url + '/v1/stream' + query, { signal: ac.signal })
  if (res.status !== 200 || res.body === null) throw new Error(`${gw.label()}: GET /v1/stream${query} answered ${res.status}: ${await res.text()}`)
  t.regex(res.headers.get('content-type') ?? '', /^text\/event-stream/)
  const stream: EventStream = { events: [], garbage: [], ended: false }
  const body = res.body
  void (async () => {
    const decoder = new TextDecoder()
    let buf = ''
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true })
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const lines = block.split('\n').filter(l => !l.startsWith(':'))
          if (lines.length === 0) continue
          const event = lines.find(l => l.startsWith('event: '))?.slice(7)
          const data = lines.filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n')
          try {
            stream.events.push({ event: event ?? 'message', data: JSON.parse(data) as StreamEvent['data'] })
          } catch {
            stream.garbage.push(block)
          }
        }
      }
    } catch {
      // Aborted at teardown, or the gateway went away.
    } finally {
      stream.ended = true
    }
  })()
  return stream
}

test.serial('the change stream (SSE) of gateway B carries readings ingested at A, filtered by prefix', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-ssea-'), tempDir(t, 'em-e2e-sseb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  const line1 = await openStream(t, b, `?prefix=${encodeURIComponent('line-1/')}`)
  const everything = await openStream(t, b, '')

  const posted = await a.post<IngestReply>('/v1/readings?echo=1', [
    { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0 },
    { sensor: 'line-2/temp', value: 19 }
  ])
  t.is(posted.status, 200, posted.text)
  const tOf = new Map((posted.body.readings ?? []).map(r => [r.sensor, r.t]))
  const seen = (s: EventStream, sensor: string): StreamEvent | undefined => s.events.find(e => e.data.sensor === sensor)

  const temp = await until(() => seen(line1, 'line-1/temp'), e => e !== undefined, "line-1/temp on B's line-1/ stream")
  t.deepEqual(temp, { event: 'change', data: { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: TS0, t: tOf.get('line-1/temp') as string, writer: a.peerId, reason: 'write' } })
  const other = await until(() => seen(everything, 'line-2/temp'), e => e !== undefined, "line-2/temp on B's unfiltered stream")
  t.like(other?.data, { value: 19, writer: a.peerId, t: tOf.get('line-2/temp'), reason: 'write' })
  t.truthy(seen(everything, 'line-1/temp'))

  // A marker after: once it is on the filtered stream, everything before it has been too.
  const marker = await a.post('/v1/readings', [{ sensor: 'line-1/marker', value: true }])
  t.is(marker.status, 200, marker.text)
  await until(() => seen(line1, 'line-1/marker'), e => e !== undefined, "line-1/marker on B's line-1/ stream")
  t.deepEqual(line1.events.map(e => e.data.sensor), ['line-1/temp', 'line-1/marker'], 'the prefix filter lets only line-1/ through')
  t.deepEqual([line1.garbage, everything.garbage], [[], []])
  t.false(line1.ended || everything.ended)
  // Open streams do not hold a shutdown: B exits 0 and ends them.
  t.deepEqual(await b.stop(), { code: 0, signal: null }, `B stops cleanly with two streams open${b.diagnostics()}`)
  await until(() => line1.ended && everything.ended, e => e, 'both streams to end')
})

// ---------------------------------------------------------------------------------------- 8

test.serial('MQTT messages published while gateway A is down (SIGKILL) are ingested once it restarts from its data dir', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => { await broker.stop() })
  const dir = await tempDir(t, 'em-e2e-mqrs-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir, mqtt: broker.url })
  await until(async () => metric(await metricsOf(a), 'edge_mesh_mqtt_connected'), v => v === 1, 'A to be connected to the broker')
  const pub = await mqtt.connectAsync(broker.url, { clientId: `e2e-publisher-rs-${process.pid}`, reconnectPeriod: 0 })
  t.teardown(async () => { await pub.endAsync(true) })

  // With a device ts: the kill may come after the reading is durable but before its PUBACK is
  // sent, and then the broker delivers it again to A2, which must see a duplicate (QoS 1 is
  // at-least-once; only a device ts or an idempotency key makes a redelivery recognisable).
  await pub.publishAsync(`sensors/${REGION}/line-1/temp`, JSON.stringify({ value: 20, ts: TS0 - 1000 }), { qos: 1 })
  await readUntil(a, 'line-1/temp', 20)
  t.is((await a.kill('SIGKILL')).signal, 'SIGKILL')

  // QoS 1 while A is away: the broker keeps them for A's persistent session.
  const away = [
    { topic: `sensors/${REGION}/line-1/temp`, payload: { value: 22, unit: 'C', ts: TS0 } },
    { topic: `sensors/${REGION}/line-2/temp`, payload: 5 },
    { topic: `sensors/${REGION}/line-3/deep/nested/temp`, payload: { value: 7.5, unit: 'C' } }
  ]
  for (const m of away) await pub.publishAsync(m.topic, JSON.stringify(m.payload), { qos: 1 })

  const a2 = await startGateway(t, { name: 'A2', regions: [REGION], data: dir, mqtt: broker.url })
  t.is(a2.peerId, a.peerId)
  const temp = await readUntil(a2, 'line-1/temp', 22)
  t.like(temp, { unit: 'C', ts: TS0, writer: a.peerId })
  await readUntil(a2, 'line-2/temp', 5)
  const deep = await readUntil(a2, 'line-3/deep/nested/temp', 7.5)
  t.is(deep.unit, 'C')
  t.is(metric(await metricsOf(a2), 'edge_mesh_readings_accepted_total{source="mqtt"}'), away.length)
})

// ---------------------------------------------------------------------------------------- 9

test.serial('one full batch of 10000 readings posted at gateway A all reach gateway B', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-biga-'), tempDir(t, 'em-e2e-bigb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  const N = 10_000
  const label = 'x'.repeat(200)
  const batch = Array.from({ length: N }, (_, i) => ({ sensor: `bulk/${String(i).padStart(5, '0')}`, value: { i, label }, unit: 'u', ts: TS0 + i }))
  const body = JSON.stringify(batch)
  t.true(body.length > 1024 * 1024 && body.length < 4 * 1024 * 1024, `body of ${body.length} bytes: over 1 MiB, under the default limit`)
  const posted = await a.post<IngestReply>('/v1/readings', body, { 'content-type': 'application/json' })
  t.is(posted.status, 200, posted.text)
  t.deepEqual(posted.body, { accepted: N, duplicates: 0 })

  const listed = await until(
    async () => await b.get<{ sensors: string[], truncated: boolean }>('/v1/sensors?prefix=bulk/&limit=10000'),
    r => r.status === 200 && r.body.sensors.length === N,
    `all ${N} readings at B`
  )
  t.deepEqual(listed.body.sensors, batch.map(r => r.sensor))
  for (const i of [0, 1, 4999, N - 1]) {
    const got = await b.get<SensorReply>(sensorPath(batch[i].sensor))
    t.like(got.body, { value: { i, label }, unit: 'u', ts: TS0 + i, writer: a.peerId })
  }
})

// ---------------------------------------------------------------------------------------- 10

test.serial('a stock y-websocket client of gateway B reconnects after B restarts on the same port and gets what it missed, without being refused', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-rca-'), tempDir(t, 'em-e2e-rcb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  const first = await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
  t.is(first.status, 200, first.text)

  const app = connectStockApp(t, b)
  await until(() => replicaHas(app.replica, 'line-1/temp', 21.5), v => v !== undefined, "line-1/temp in the doc of B's app")

  const exit = await b.stop()
  t.deepEqual(exit, { code: 0, signal: null }, `B stops cleanly${b.diagnostics()}`)
  await until(() => app.provider.wsconnected, c => !c, 'the app to see B go away')
  const missed = await a.post('/v1/readings', [{ sensor: 'line-2/temp', value: 19 }, { sensor: 'line-1/temp', value: 22 }])
  t.is(missed.status, 200, missed.text)

  const b2 = await startGateway(t, { name: 'B2', regions: [REGION], data: dirB, bootstrap: [a.addr], http: new URL(b.url).host })
  t.is(b2.url, b.url, 'B2 listens where B did')
  await until(() => replicaHas(app.replica, 'line-2/temp', 19), v => v !== undefined, "line-2/temp (written while B was down) in the doc of B's app")
  await until(() => replicaHas(app.replica, 'line-1/temp', 22), v => v !== undefined, "line-1/temp's new value in the doc of B's app")
  t.true(app.provider.wsconnected)
  const m = await metricsOf(b2)
  t.is(metric(m, 'edge_mesh_app_refused_updates_total'), 0, 'the reconnecting app sent nothing B refused')
  t.is(metric(m, 'edge_mesh_app_invalid_messages_total'), 0)
  t.deepEqual(app.invalid, [])
})

// ---------------------------------------------------------------------------------------- 11

test.serial("compaction of gateway A's log reaches a stock client of B, which still reconnects to B without being refused", async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-cpa-'), tempDir(t, 'em-e2e-cpb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  const app = connectStockApp(t, b)
  await until(() => app.provider.synced, s => s, 'the stock client of B to sync')

  // 12 batches of 1000 over 10 sensors: the own log outgrows 2 × 10 + 4096 readings and is compacted.
  const SENSORS = 10
  const ROUNDS = 12
  for (let round = 0; round < ROUNDS; round++) {
    const batch = Array.from({ length: 1000 }, (_, i) => ({ sensor: `hot/s${i % SENSORS}`, value: round * 1000 + i }))
    const posted = await a.post<IngestReply>('/v1/readings', batch)
    t.is(posted.status, 200, posted.text)
  }
  const finalValue = (k: number): number => (ROUNDS - 1) * 1000 + (1000 - SENSORS) + k
  await until(async () => metric(await metricsOf(a), 'edge_mesh_compaction_pause_seconds_count'), v => v !== undefined && v >= 1, 'A to compact its log')
  for (let k = 0; k < SENSORS; k++) {
    const sensor = `hot/s${k}`
    const atA = await a.get<SensorReply>(sensorPath(sensor))
    t.is(atA.body.value, finalValue(k), `${sensor} at A`)
    const atB = await readUntil(b, sensor, finalValue(k))
    t.is(atB.t, atA.body.t)
    const inApp = await until(() => replicaHas(app.replica, sensor, finalValue(k)), v => v !== undefined, `${sensor} = ${finalValue(k)} in the doc of B's app`)
    t.is(inApp?.t, atA.body.t)
  }

  // B restarts where it was; the app's reconnect repeats what it learnt (deletions included).
  t.deepEqual(await b.stop(), { code: 0, signal: null }, `B stops cleanly${b.diagnostics()}`)
  await until(() => app.provider.wsconnected, c => !c, 'the app to see B go away')
  const b2 = await startGateway(t, { name: 'B2', regions: [REGION], data: dirB, bootstrap: [a.addr], http: new URL(b.url).host })
  const marker = await a.post('/v1/readings', [{ sensor: 'hot/marker', value: 1 }])
  t.is(marker.status, 200, marker.text)
  await until(() => replicaHas(app.replica, 'hot/marker', 1), v => v !== undefined, "hot/marker in the doc of B's app after the reconnect")
  for (let k = 0; k < SENSORS; k++) t.is(replicaHas(app.replica, `hot/s${k}`, finalValue(k))?.writer, a.peerId)
  const m = await metricsOf(b2)
  t.is(metric(m, 'edge_mesh_app_refused_updates_total'), 0, 'the reconnecting app sent nothing B refused')
  t.deepEqual(app.invalid, [])
})

// ---------------------------------------------------------------------------------------- 12

test.serial('the same sensor written at A and B at once converges to one winner at both read APIs and in an app', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-cfa-'), tempDir(t, 'em-e2e-cfb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  await until(async () => await b.get<ReadyReply>('/ready'), r => r.body.peers >= 1, 'B to connect to A')
  const app = connectStockApp(t, b)

  const SENSOR = 'shared/setpoint'
  const acks: Array<{ value: number, t: string, writer: string }> = []
  for (let round = 0; round < 5; round++) {
    const replies = await Promise.all([a, b].map(async (gw, i) => {
      const value = round * 10 + i
      const r = await gw.post<IngestReply>('/v1/readings?echo=1', [{ sensor: SENSOR, value }])
      t.is(r.status, 200, r.text)
      return { value, t: r.body.readings?.[0]?.t ?? '', writer: gw.peerId }
    }))
    acks.push(...replies)
  }
  const winner = acks.reduce((w, x) => x.t > w.t || (x.t === w.t && x.writer > w.writer) ? x : w)
  for (const gw of [a, b]) {
    const got = await until(async () => await gw.get<SensorReply>(sensorPath(SENSOR)), r => r.status === 200 && r.body.t === winner.t && r.body.writer === winner.writer, `${gw.label()} to hold the greatest (t, writer) of ${SENSOR}`)
    t.is(got.body.value, winner.value)
  }
  const inApp = await until(() => replicaHas(app.replica, SENSOR, winner.value), v => v !== undefined, `the winner of ${SENSOR} in the doc of B's app`)
  t.like(inApp, { t: winner.t, writer: winner.writer })
})

// ---------------------------------------------------------------------------------------- 13

test.serial('a second gateway on a data dir in use exits 1 before ready, and the first keeps serving its readings', async t => {
  const dir = await tempDir(t, 'em-e2e-lock-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir })
  const posted = await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
  t.is(posted.status, 200, posted.text)
  const err = await t.throwsAsync(startGateway(t, { name: 'A-twin', regions: [REGION], data: dir }))
  t.regex(err?.message ?? '', /exited before ready \(code 1, signal null\)/)
  t.regex(err?.message ?? '', /failed to start/)
  t.true((err?.message ?? '').includes(dir), 'the failure (its log on stderr) names the data dir')
  const read = await a.get<SensorReply>(sensorPath('line-1/temp'))
  t.is(read.status, 200, read.text)
  t.is(read.body.value, 21.5)
  const more = await a.post('/v1/readings', [{ sensor: 'line-1/rpm', value: 1450 }])
  t.is(more.status, 200, more.text)
})

// ---------------------------------------------------------------------------------------- 14

test.serial('a gateway holding two regions takes and serves each by name; a peer holding one of them gets only that one', async t => {
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-rga-'), tempDir(t, 'em-e2e-rgb-')])
  const OTHER = 'plant-2'
  const a = await startGateway(t, { name: 'A', regions: [REGION, OTHER], data: dirA })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })

  assertError(t, await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 1 }]), 400, 'EM_ERR_INVALID_OPTIONS', 'no region named with two held')
  assertError(t, await a.post('/v1/readings?region=plant-9', [{ sensor: 'line-1/temp', value: 1 }]), 404, 'EM_ERR_NOT_FOUND', 'a region not held')
  const one = await a.post<IngestReply>(`/v1/readings?region=${REGION}`, [{ sensor: 'line-1/temp', value: 21.5 }])
  t.is(one.status, 200, one.text)
  const two = await a.post<IngestReply>(`/v1/regions/${OTHER}/readings`, [{ sensor: 'line-1/temp', value: 35 }])
  t.is(two.status, 200, two.text)

  t.is((await a.get<SensorReply>(sensorPath('line-1/temp', `?region=${REGION}`))).body.value, 21.5)
  t.is((await a.get<SensorReply>(sensorPath('line-1/temp', `?region=${OTHER}`))).body.value, 35)
  assertError(t, await a.get(sensorPath('line-1/temp')), 400, 'EM_ERR_INVALID_OPTIONS', 'a read naming no region with two held')
  const listed = await a.get<{ region: string, sensors: string[] }>(`/v1/sensors?region=${OTHER}`)
  t.deepEqual(listed.body, { region: OTHER, sensors: ['line-1/temp'], truncated: false })

  const atB = await readUntil(b, 'line-1/temp', 21.5)
  t.is(atB.writer, a.peerId)
  assertError(t, await b.get(sensorPath('line-1/temp', `?region=${OTHER}`)), 404, 'EM_ERR_NOT_FOUND', `B does not hold ${OTHER}`)

  // Each region doc has its own app endpoint.
  const app = connectStockApp(t, a, OTHER)
  const inApp = await until(() => replicaHas(app.replica, 'line-1/temp', 35), v => v !== undefined, `line-1/temp in the ${OTHER} doc of A's app`)
  t.is(inApp?.writer, a.peerId)
  t.deepEqual(app.replica.list(), ['line-1/temp'])
})

// ---------------------------------------------------------------------------------------- 15

/** Writes a libp2p private network key file (`/key/swarm/psk/1.0.0/`, base16) and returns its path. */
async function swarmKey (dir: string, name: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`)
  return file
}

test.serial('gateways sharing a --psk replicate; one with another key never joins', async t => {
  const [dirA, dirB, dirC, keys] = await Promise.all([tempDir(t, 'em-e2e-pka-'), tempDir(t, 'em-e2e-pkb-'), tempDir(t, 'em-e2e-pkc-'), tempDir(t, 'em-e2e-keys-')])
  const [key, otherKey] = await Promise.all([swarmKey(keys, 'site.key'), swarmKey(keys, 'other.key')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA, psk: key })
  const c = await startGateway(t, { name: 'C', regions: [REGION], data: dirC, psk: otherKey, bootstrap: [a.addr] })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, psk: key, bootstrap: [a.addr] })

  const posted = await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
  t.is(posted.status, 200, posted.text)
  const atB = await readUntil(b, 'line-1/temp', 21.5)
  t.is(atB.writer, a.peerId)
  // C has been dialling A since before B; B already has the reading: give C a few more sync
  // periods, then it must still have neither a peer nor the reading.
  const end = Date.now() + 3000
  while (Date.now() < end) {
    const ready = await c.get<ReadyReply>('/ready')
    t.is(ready.body.peers, 0, `C (another key) is connected to nobody: ${ready.text}`)
    await delay(250)
  }
  assertError(t, await c.get(sensorPath('line-1/temp')), 404, 'EM_ERR_NOT_FOUND', 'C never got the reading')
  t.is((await a.get<ReadyReply>('/ready')).body.peers, 1, 'A is connected to B only')
})

// ---------------------------------------------------------------------------------------- 16

test.serial('under --max-pending, concurrent batches are answered 200 or 429 with Retry-After, never lost: retried, all are stored', async t => {
  const dir = await tempDir(t, 'em-e2e-bp-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir, extraArgs: ['--max-pending', '1000'] })
  const BATCHES = 30
  const SIZE = 1000
  const MAX_ATTEMPTS = 500
  const replies: Array<{ status: number, retryAfter: string | null, code?: string }> = []
  await Promise.all(Array.from({ length: BATCHES }, async (_, k) => {
    const batch = Array.from({ length: SIZE }, (_, i) => ({ sensor: `bp/${String(k).padStart(2, '0')}/${i}`, value: i }))
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const r = await a.post<IngestReply & ErrorReply>('/v1/readings', batch)
      replies.push({ status: r.status, retryAfter: r.headers.get('retry-after'), code: r.body.code })
      if (r.status === 200) {
        t.deepEqual(r.body, { accepted: SIZE, duplicates: 0 })
        return
      }
      if (r.status !== 429) throw new Error(`batch ${k}: ${r.status} ${r.text}`)
      await delay(20)
    }
    throw new Error(`batch ${k} still refused after ${MAX_ATTEMPTS} attempts`)
  }))
  const refused = replies.filter(r => r.status === 429)
  t.log(`${BATCHES} batches of ${SIZE}: ${refused.length} answers 429 before all were taken`)
  for (const r of refused) {
    t.is(r.code, 'EM_ERR_OVERLOADED')
    t.regex(r.retryAfter ?? '', /^[1-9]\d*$/, 'Retry-After in whole seconds, at least 1')
  }
  for (let k = 0; k < BATCHES; k++) {
    const listed = await a.get<{ sensors: string[] }>(`/v1/sensors?prefix=bp/${String(k).padStart(2, '0')}/&limit=10000`)
    t.is(listed.body.sensors.length, SIZE, `batch ${k} stored whole`)
  }
  const m = await metricsOf(a)
  t.is(metric(m, 'edge_mesh_readings_accepted_total{source="http"}'), BATCHES * SIZE)
  t.is(metric(m, 'edge_mesh_readings_rejected_total{reason="EM_ERR_OVERLOADED"}') ?? 0, refused.length * SIZE, 'refused readings counted by reason')
})

// ---------------------------------------------------------------------------------------- known failures
//
test.serial('sensor ids "." and ".." are refused at ingest (URL parsing would make them unreadable by GET /v1/sensors/:id)', async t => {
  const dir = await tempDir(t, 'em-e2e-dot-')
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dir })
  for (const sensor of ['.', '..']) {
    const posted = await a.post<{ error: string, code: string }>('/v1/readings', [{ sensor, value: 1 }])
    t.is(posted.status, 400, posted.text)
    t.is(posted.body.code, 'EM_ERR_INVALID_SENSOR', posted.text)
  }
})

test.serial('a retained MQTT message (no device ts) sent again on a gateway restart does not overwrite newer readings', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => { await broker.stop() })
  const [dirA, dirB] = await Promise.all([tempDir(t, 'em-e2e-rta-'), tempDir(t, 'em-e2e-rtb-')])
  const a = await startGateway(t, { name: 'A', regions: [REGION], data: dirA, mqtt: broker.url })
  const b = await startGateway(t, { name: 'B', regions: [REGION], data: dirB, bootstrap: [a.addr] })
  await until(async () => metric(await metricsOf(a), 'edge_mesh_mqtt_connected'), v => v === 1, 'A to be connected to the broker')
  const pub = await mqtt.connectAsync(broker.url, { clientId: `e2e-publisher-rt-${process.pid}`, reconnectPeriod: 0 })
  t.teardown(async () => { await pub.endAsync(true) })

  // A device's "last known value", retained by the broker, with no device timestamp.
  await pub.publishAsync(`sensors/${REGION}/line-1/temp`, '20', { qos: 1, retain: true })
  await readUntil(b, 'line-1/temp', 20)
  // A newer reading of the same sensor arrives at B over HTTP.
  const newer = await b.post('/v1/readings', [{ sensor: 'line-1/temp', value: 25 }])
  t.is(newer.status, 200, newer.text)
  await readUntil(a, 'line-1/temp', 25)

  // A restarts; its subscription gets the retained message again, then a fresh marker.
  t.deepEqual(await a.stop(), { code: 0, signal: null })
  const a2 = await startGateway(t, { name: 'A2', regions: [REGION], data: dirA, mqtt: broker.url, listen: [a.listenAddr] })
  await pub.publishAsync(`sensors/${REGION}/line-1/marker`, '1', { qos: 1 })
  await readUntil(a2, 'line-1/marker', 1)
  await readUntil(b, 'line-1/marker', 1)
  const atA = await a2.get<SensorReply>(sensorPath('line-1/temp'))
  const atB = await b.get<SensorReply>(sensorPath('line-1/temp'))
  t.is(atA.body.value, 25, `A after its restart: ${atA.text}`)
  t.is(atB.body.value, 25, `B after A's restart: ${atB.text}`)
})
