/**
 * The client view against a real server: a node:http server with the gateway's app endpoint
 * (attachAppSockets) over a writer RegionState, no mesh. One test uses a hand-made y-websocket
 * server that sends an update a region doc must not hold.
 *
 * Every wait is a bounded poll on an observable condition (waitFor, 10 s); no duration is asserted.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import WebSocket, { WebSocketServer } from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { toStored } from '@edge-mesh/reading'
import { createRegionState, type RegionState } from '@edge-mesh/region-state'
import { activeResources, fakeClock, waitFor, waitForNoResourcesBeyond } from '@edge-mesh/testkit'
import { attachAppSockets, type AppSockets } from '../../gateway/src/app-ws.ts'
import { connectRegion, type ConnectRegionInit, type RegionView, type ViewChange } from '../src/index.ts'

const REGION = 'eu-west'
const PATH = '/v1/docs'

interface Gateway {
  sockets: AppSockets
  port: number
  url: string
  /** Closes the endpoint and the HTTP server (the teardown does it too). */
  stop: () => Promise<void>
}

/** A node:http server with the app endpoint over `region`, on `port` (0: any free one). */
async function startGateway (t: ExecutionContext, region: RegionState, port: number = 0): Promise<Gateway> {
  const server = http.createServer((_req, res) => { res.statusCode = 404; res.end() })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  let sockets: AppSockets | undefined
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await sockets?.close()
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    })()
    return stopped
  }
  t.teardown(stop)
  sockets = attachAppSockets({ server, path: PATH, region: name => name === region.region ? region : undefined, logger: pino({ level: 'silent' }) })
  const actual = (server.address() as AddressInfo).port
  return { sockets, port: actual, url: `ws://127.0.0.1:${actual}${PATH}`, stop }
}

function writerRegion (t: ExecutionContext, init: { writer?: string, now?: () => number } = {}): RegionState {
  const r = createRegionState({ region: REGION, writer: init.writer ?? 'gw-a', now: init.now, maintenanceIntervalMs: 0 })
  t.teardown(() => { r.close() })
  return r
}

function view (t: ExecutionContext, init: Partial<ConnectRegionInit> & { url: string }): RegionView {
  const v = connectRegion({ region: REGION, WebSocket, ...init })
  t.teardown(async () => { await v.close() })
  return v
}

test('latest() gives the decoded reading after the first sync, with the default global WebSocket', async t => {
  const region = writerRegion(t)
  region.put('line-3/temp', toStored({ sensor: 'line-3/temp', value: 21.5, unit: 'C', ts: 1_700_000_000_000 }))
  region.put('line-3/rpm', toStored({ sensor: 'line-3/rpm', value: 1450 }))
  region.put('line-4/obj', toStored({ sensor: 'line-4/obj', value: { value: 2 } }))
  const gw = await startGateway(t, region)
  const v = connectRegion({ url: gw.url, region: REGION }) // Node >= 22 has a global WebSocket
  t.teardown(async () => { await v.close() })
  await v.synced
  t.is(v.status, 'connected')
  const temp = v.latest('line-3/temp')
  t.like(temp, { sensor: 'line-3/temp', value: 21.5, unit: 'C', ts: 1_700_000_000_000, t: region.get('line-3/temp')?.t, writer: 'gw-a' })
  t.true(typeof temp?.ageMs === 'number' && temp.ageMs >= 0)
  t.deepEqual(Object.keys(temp ?? {}), ['sensor', 'value', 'unit', 'ts', 't', 'writer', 'ageMs'])
  const rpm = v.latest('line-3/rpm')
  t.is(rpm?.value, 1450)
  t.false(rpm !== undefined && ('unit' in rpm || 'ts' in rpm), 'no unit or ts when the reading has none')
  t.deepEqual(v.latest('line-4/obj')?.value, { value: 2 }, 'an object value with a "value" key survives the envelope')
  t.is(v.latest('line-9/none'), undefined)
  t.like(v.stats(), { sensors: 3, invalidUpdates: 0, connects: 1 })
})

test('change events arrive live: writes with the reading, deletions without', async t => {
  const region = writerRegion(t)
  region.put('line-3/temp', 20)
  const gw = await startGateway(t, region)
  const v = view(t, { url: gw.url })
  await v.synced
  const changes: ViewChange[] = []
  v.on('change', c => { changes.push(c) })
  region.put('line-3/temp', toStored({ sensor: 'line-3/temp', value: 22, unit: 'C' }))
  await waitFor(() => changes.length === 1, 'a change for the write')
  t.like(changes[0], { sensor: 'line-3/temp', local: false, reading: { sensor: 'line-3/temp', value: 22, unit: 'C', writer: 'gw-a' } })
  t.is(changes[0].reading?.t, region.get('line-3/temp')?.t)

  // A reading from another gateway, applied to this one, is forwarded too.
  const other = writerRegion(t, { writer: 'gw-b' })
  other.on('update', (u, local) => { if (local) region.applyUpdate(u) })
  other.put('line-5/remote', 5)
  await waitFor(() => changes.length === 2, 'a change for the remote write')
  t.like(changes[1], { sensor: 'line-5/remote', reading: { value: 5, writer: 'gw-b' } })

  region.delete('line-3/temp')
  await waitFor(() => changes.length === 3, 'a change for the deletion')
  t.deepEqual(changes[2], { sensor: 'line-3/temp', reading: undefined, local: false })
  t.is(v.latest('line-3/temp'), undefined)

  const off = (c: ViewChange): void => { changes.push(c) }
  v.on('change', off)
  v.off('change', off)
  region.put('line-6/x', 6)
  await waitFor(() => v.latest('line-6/x') !== undefined, 'the last write')
  t.is(changes.length, 4, 'a listener that was removed is not called')
})

test('freshness() and newestAgeMs() follow the app clock', async t => {
  const clock = fakeClock(1_800_000_000_000)
  const region = writerRegion(t, { now: clock.now })
  const gw = await startGateway(t, region)
  const v = view(t, { url: gw.url, now: clock.now })
  await v.synced
  t.is(v.newestAgeMs(), undefined, 'no reading yet')
  region.put('line-1/a', 1)
  clock.ms += 1000
  region.put('line-2/b', 2)
  await waitFor(() => v.latest('line-2/b') !== undefined, 'both readings in the view')
  clock.ms += 3000
  t.deepEqual(v.freshness('line-1/a', 5000), { ageMs: 4000, fresh: true })
  t.deepEqual(v.freshness('line-2/b', 2000), { ageMs: 3000, fresh: false })
  t.deepEqual(v.freshness('line-2/b', 3000), { ageMs: 3000, fresh: true })
  t.is(v.freshness('line-9/none', 1000), undefined)
  t.is(v.newestAgeMs(), 3000)
  region.delete('line-2/b')
  await waitFor(() => v.latest('line-2/b') === undefined, 'the deletion in the view')
  t.is(v.newestAgeMs(), 4000, 'the newest live reading is line-1/a again')
  const err = t.throws(() => v.freshness('line-1/a', -1))
  t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS'))
})

test('readings expire from the view with retentionMs, with a change event', async t => {
  const clock = fakeClock(1_800_000_000_000)
  const region = writerRegion(t, { now: clock.now })
  const gw = await startGateway(t, region)
  const v = view(t, { url: gw.url, now: clock.now, retentionMs: 60_000 })
  await v.synced
  const changes: ViewChange[] = []
  v.on('change', c => { changes.push(c) })
  region.put('line-1/a', 1)
  await waitFor(() => v.latest('line-1/a') !== undefined, 'the reading in the view')
  clock.ms += 61_000
  t.is(v.latest('line-1/a'), undefined, 'expired readings are not read')
  await waitFor(() => changes.length === 2, 'the expiry change (the maintenance timer runs every second)')
  t.deepEqual(changes[1], { sensor: 'line-1/a', reading: undefined, local: false })
  t.is(v.newestAgeMs(), undefined)
})

test('a view whose clock is far behind the gateway still shows its readings (age 0)', async t => {
  const ahead = (): number => Date.now() + 10 * 60_000 // far beyond a gateway's 60 s drift bound
  const region = writerRegion(t, { now: ahead })
  region.put('line-1/a', 1)
  const gw = await startGateway(t, region)
  const errors: unknown[] = []
  const v = view(t, { url: gw.url, onError: err => { errors.push(err) } })
  await v.synced
  await waitFor(() => v.latest('line-1/a') !== undefined, 'the reading in the view', { explain: () => errors.map(String) })
  t.is(v.latest('line-1/a')?.ageMs, 0)
  region.put('line-1/a', 2)
  await waitFor(() => v.latest('line-1/a')?.value === 2, 'a live reading from the future')
  t.deepEqual(errors, [])
  t.is(v.stats().invalidUpdates, 0)
})

test('sensors(prefix) lists the live sensors, sorted', async t => {
  const region = writerRegion(t)
  for (const s of ['line-3/temp', 'line-1/rpm', 'line-3/humidity', 'hall/door', 'line-3/gone']) region.put(s, 1)
  region.delete('line-3/gone')
  const gw = await startGateway(t, region)
  const v = view(t, { url: gw.url })
  await v.synced
  await waitFor(() => v.sensors().length === 4, 'four live sensors')
  t.deepEqual(v.sensors(), ['hall/door', 'line-1/rpm', 'line-3/humidity', 'line-3/temp'])
  t.deepEqual(v.sensors('line-3/'), ['line-3/humidity', 'line-3/temp'])
  t.deepEqual(v.sensors('nothing/'), [])
})

test('the view reconnects after the gateway restarts on the same port and resyncs what it missed', async t => {
  const region = writerRegion(t)
  region.put('line-1/a', 1)
  const gw = await startGateway(t, region)
  const v = view(t, { url: gw.url, maxBackoffMs: 300 })
  const statuses: string[] = []
  v.on('status', s => { statuses.push(s) })
  await v.synced
  await gw.stop()
  await waitFor(() => v.status !== 'connected', 'the view saw the gateway go', { explain: () => statuses })
  region.put('line-1/a', 2) // written while the view is away
  region.put('line-2/b', 'while down')

  const again = await startGateway(t, region, gw.port)
  await waitFor(() => v.status === 'connected' && v.latest('line-2/b')?.value === 'while down' && v.latest('line-1/a')?.value === 2,
    'reconnected and resynced', { explain: () => ({ status: v.status, sensors: v.sensors(), stats: v.stats() }) })
  region.put('line-3/c', 3)
  await waitFor(() => v.latest('line-3/c')?.value === 3, 'live again')
  t.true(v.stats().connects >= 2)
  t.true(statuses.includes('disconnected'))
  t.is(again.sockets.stats().refusedUpdates, 0, 'the resync sent nothing the gateway lacks')
  t.is(v.stats().invalidUpdates, 0)
})

test('close() disconnects from the gateway and frees the view; reads keep the last state', async t => {
  const region = writerRegion(t)
  region.put('line-1/a', 1)
  const gw = await startGateway(t, region)
  const v = view(t, { url: gw.url })
  await v.synced
  await waitFor(() => gw.sockets.stats().clients === 1, 'the gateway sees the app')
  const statuses: string[] = []
  v.on('status', s => { statuses.push(s) })
  await v.close()
  t.is(v.status, 'disconnected')
  t.deepEqual(statuses, ['disconnected'])
  await waitFor(() => gw.sockets.stats().clients === 0, 'the gateway saw the app leave')
  t.is(v.latest('line-1/a')?.value, 1)
  await v.close() // idempotent
})

test('synced rejects with EM_ERR_UNAVAILABLE when the region never syncs, and with EM_ERR_CLOSED on close', async t => {
  const region = writerRegion(t)
  const gw = await startGateway(t, region)
  const lost = view(t, { url: gw.url, region: 'us-east', syncTimeoutMs: 300, maxBackoffMs: 100 })
  const err = await t.throwsAsync(lost.synced)
  t.true(isEdgeMeshError(err, 'EM_ERR_UNAVAILABLE'), String(err))
  t.not(lost.status, 'connected')
  const early = view(t, { url: gw.url, region: 'us-east' })
  const closing = early.close()
  const closed = await t.throwsAsync(early.synced)
  t.true(isEdgeMeshError(closed, 'EM_ERR_CLOSED'), String(closed))
  await closing
})

test('an update the view must refuse is counted and reported through onError, never thrown', async t => {
  // A hand-made y-websocket server: answers with a step 2 holding a Y.Map (not a writer log),
  // then a valid reading from a writer region.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>(resolve => { wss.once('listening', resolve) })
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise<void>(resolve => { wss.close(() => { resolve() }) })
  })
  const bad = new Y.Doc()
  bad.getMap('m').set('x', 1)
  const good = writerRegion(t)
  good.put('line-1/a', 1)
  const frame = (syncType: number, update: Uint8Array): Uint8Array => {
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, 0)
    encoding.writeVarUint(enc, syncType)
    encoding.writeVarUint8Array(enc, update)
    return encoding.toUint8Array(enc)
  }
  wss.on('connection', ws => {
    ws.send(frame(1, Y.encodeStateAsUpdate(bad)))
    ws.send(frame(2, good.encodeStateAsUpdate()))
  })
  const errors: unknown[] = []
  const v = view(t, { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, onError: err => { errors.push(err) } })
  v.on('change', () => { throw new Error('a listener that throws') })
  await v.synced
  await waitFor(() => v.latest('line-1/a') !== undefined, 'the valid reading in the view', { explain: () => ({ errors: errors.map(String), stats: v.stats() }) })
  t.is(v.stats().invalidUpdates, 1)
  t.true(isEdgeMeshError(errors[0], 'EM_ERR_INVALID_UPDATE'), String(errors[0]))
  t.is((errors[1] as Error).message, 'a listener that throws', 'a throwing listener is reported, not rethrown')
  t.is(v.status, 'connected')
})

test('bad options are refused with EM_ERR_INVALID_OPTIONS before anything connects', t => {
  const cases: Array<Partial<ConnectRegionInit>> = [
    { url: 'not a url' },
    { url: 'ftp://127.0.0.1/v1/docs' },
    { url: 'ws://127.0.0.1:1/v1/docs', region: 'bad region!' },
    { url: 'ws://127.0.0.1:1/v1/docs', syncTimeoutMs: 0 },
    { url: 'ws://127.0.0.1:1/v1/docs', retentionMs: -5 }
  ]
  for (const c of cases) {
    const err = t.throws(() => connectRegion({ region: REGION, WebSocket, url: '', ...c }))
    t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS'), JSON.stringify(c))
  }
})

test.serial('a closed view leaves no open handles', async t => {
  const baseline = activeResources()
  const region = writerRegion(t)
  region.put('line-1/a', 1)
  const gw = await startGateway(t, region)
  const v = connectRegion({ url: gw.url, region: REGION, WebSocket })
  await v.synced
  await v.close()
  await gw.stop()
  await waitForNoResourcesBeyond(baseline)
  t.pass()
})
