/**
 * Whole gateways in one process (createGateway): two gateways replicate what one of them
 * ingests, metrics and readiness reflect the mesh, close() stops everything and the data is
 * there after a restart, the app WebSocket endpoint and MQTT ingest are wired in.
 */
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import mqtt from 'mqtt'
import { createGateway, type Gateway, type GatewayInit } from '../src/gateway.ts'
import { startMosquitto } from '../../../test/helpers/mosquitto.ts'
import { postJson, REGION, startGatewayInProcess, tempDir, waitFor } from './gateway-helpers.ts'

const silent = pino({ level: 'silent' })

/** A gateway of REGION on loopback with a free HTTP port, closed when the test ends. */
const startGateway = async (t: ExecutionContext, init: Partial<GatewayInit> = {}): Promise<Gateway> =>
  await startGatewayInProcess(t, { regions: [REGION], syncIntervalMs: 1000, ...init })

/** The value of a metric line `name{labels} value` in a scrape, or undefined. */
function metric (text: string, name: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

test('a reading posted at one gateway is read at the other over HTTP; readiness and metrics follow the mesh', async t => {
  const a = await startGateway(t)
  const b = await startGateway(t, { bootstrap: a.addrs(), readyMinPeers: 1 })
  await waitFor(async () => (await fetch(`${b.url}/ready`)).status === 200, 'b is ready once connected to a')
  const ready = await (await fetch(`${b.url}/ready`)).json() as Record<string, unknown>
  t.like(ready, { ready: true, storage: 'memory', mesh: 'started', peers: 1, regions: [REGION] })

  const res = await postJson(`${a.url}/v1/readings`, [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: 1_700_000_000_000 }])
  t.is(res.status, 200)
  let seen: Record<string, unknown> = {}
  await waitFor(async () => {
    const r = await fetch(`${b.url}/v1/sensors/line-1%2Ftemp`)
    if (r.status !== 200) return false
    seen = await r.json() as Record<string, unknown>
    return true
  }, 'b serves the reading')
  t.like(seen, { sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: 1_700_000_000_000, writer: a.peerId, stale: false })

  const text = await (await fetch(`${b.url}/metrics`)).text()
  t.is(metric(text, 'edge_mesh_peers'), 1)
  t.true((metric(text, 'edge_mesh_convergence_lag_seconds_count') ?? 0) >= 1, 'the remote reading was observed')
  t.true((metric(text, 'edge_mesh_gossip_frames_total{direction="in"}') ?? 0) >= 1 || (metric(text, 'edge_mesh_sync_rounds_total') ?? 0) >= 1)
  t.is(metric(text, 'edge_mesh_region_sensors{region="site-a"}'), 1)
  for (const name of [
    'edge_mesh_readings_accepted_total', 'edge_mesh_readings_rejected_total', 'edge_mesh_readings_duplicates_total',
    'edge_mesh_gossip_frames_total', 'edge_mesh_gossip_bytes_total', 'edge_mesh_sync_rounds_total', 'edge_mesh_sync_failures_total',
    'edge_mesh_peers', 'edge_mesh_compaction_pause_seconds', 'edge_mesh_leveldb_batch_write_seconds', 'edge_mesh_region_sensors',
    'edge_mesh_region_structs', 'edge_mesh_region_own_log_readings', 'edge_mesh_convergence_lag_seconds', 'edge_mesh_app_clients',
    'edge_mesh_app_refused_updates_total', 'edge_mesh_ingest_pending_readings', 'edge_mesh_idempotency_cached_readings', 'edge_mesh_sse_clients', 'nodejs_heap_size_used_bytes'
  ]) t.true(text.includes(`# TYPE ${name} `), name)
  const aText = await (await fetch(`${a.url}/metrics`)).text()
  t.is(metric(aText, 'edge_mesh_readings_accepted_total{source="http"}'), 1)
})

test('close() stops HTTP and the mesh and flushes LevelDB: a gateway restarted on the same data dir has the same identity and the readings', async t => {
  const dir = await tempDir(t)
  const first = await createGateway({ regions: [REGION], dataDir: dir, http: { host: '127.0.0.1', port: 0 }, logger: silent })
  let closed = false
  t.teardown(async () => { if (!closed) await first.close() })
  const batch = Array.from({ length: 200 }, (_, i) => ({ sensor: `line-${i % 4}/s${i}`, value: i }))
  t.is((await postJson(`${first.url}/v1/readings`, batch)).status, 200)
  const peerId = first.peerId
  const url = first.url
  await first.close()
  closed = true
  await t.throwsAsync(fetch(`${url}/health`), undefined, 'nothing listens any more')
  t.is(first.mesh.node.status, 'stopped')
  t.is(first.mesh.store?.status(), 'closed')
  await t.notThrowsAsync(first.close(), 'close() again is a no-op')

  const again = await startGateway(t, { dataDir: dir })
  t.is(again.peerId, peerId)
  const list = await (await fetch(`${again.url}/v1/sensors?limit=1000`)).json() as { sensors: string[] }
  t.is(list.sensors.length, 200)
  const one = await (await fetch(`${again.url}/v1/sensors/line-3%2Fs199`)).json() as Record<string, unknown>
  t.is(one.value, 199)
})

test('the app WebSocket endpoint is served on the gateway HTTP server: /v1/docs/<region>', async t => {
  const gw = await startGateway(t)
  const wsUrl = gw.url.replace('http:', 'ws:') + `/v1/docs/${REGION}`
  const ws = new WebSocket(wsUrl)
  t.teardown(() => { ws.terminate() })
  const first = await new Promise<Buffer>((resolve, reject) => {
    ws.once('message', data => { resolve(data as Buffer) })
    ws.once('error', reject)
  })
  t.is(first[0], 0, 'a y-websocket sync message (sync step 1) comes first')
  await waitFor(() => gw.appSockets.stats().clients === 1, 'the app is counted')
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  t.is(metric(text, 'edge_mesh_app_clients'), 1)

  const status = await new Promise<number>((resolve, reject) => {
    const bad = new WebSocket(gw.url.replace('http:', 'ws:') + '/v1/docs/no-such-region')
    bad.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); bad.terminate() })
    bad.once('open', () => { reject(new Error('opened')) })
    bad.once('error', () => {})
  })
  t.is(status, 404)
})

test('with --mqtt a reading published to sensors/<region>/<sensor> becomes durable and readable over HTTP', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => { await broker.stop() })
  const gw = await startGateway(t, { mqtt: broker.url })
  await waitFor(() => gw.mqtt?.stats().connected === true, 'the gateway is connected to the broker')
  const pub = await mqtt.connectAsync(broker.url, { clientId: 'test-publisher' })
  t.teardown(async () => { await pub.endAsync(true) })
  await pub.publishAsync(`sensors/${REGION}/line-1/temp`, JSON.stringify({ value: 21.5, unit: 'C', ts: 1_700_000_000_000 }), { qos: 1 })
  await pub.publishAsync(`sensors/${REGION}/line-1/rpm`, '1450', { qos: 1 })
  await waitFor(async () => (await fetch(`${gw.url}/v1/sensors/line-1%2Frpm`)).status === 200, 'the readings arrive')
  const temp = await (await fetch(`${gw.url}/v1/sensors/line-1/temp`)).json() as Record<string, unknown>
  t.like(temp, { value: 21.5, unit: 'C', ts: 1_700_000_000_000 })
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  t.is(metric(text, 'edge_mesh_readings_accepted_total{source="mqtt"}'), 2)
  t.is(metric(text, 'edge_mesh_mqtt_connected'), 1)
})
