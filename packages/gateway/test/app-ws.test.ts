/**
 * App subscriptions (src/app-ws.ts) on a plain node:http server with a real RegionState (no
 * mesh), against the STOCK y-websocket client (WebsocketProvider over `ws`) and raw `ws` clients
 * for what a stock client never sends. The client doc is decoded by piping its updates into a
 * read-only RegionState.
 *
 * Every wait is a bounded poll on an observable condition (waitFor, 10 s); no duration is asserted.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { createRegionState, type RegionState } from '@edge-mesh/region-state'
import { activeResources, waitFor, waitForNoResourcesBeyond } from '@edge-mesh/testkit'
import { attachAppSockets, type AppSockets, type AppSocketsInit } from '../src/app-ws.ts'

const REGION = 'eu-west'
const PATH = '/v1/docs'

interface LogLine { level: number, msg: string, [key: string]: unknown }

interface Gateway {
  server: http.Server
  sockets: AppSockets
  port: number
  url: string
  logs: LogLine[]
}

async function startGateway (t: ExecutionContext, regions: RegionState[], opts: Partial<AppSocketsInit> = {}): Promise<Gateway> {
  const byName = new Map(regions.map(r => [r.region, r]))
  const logs: LogLine[] = []
  const logger = pino({ level: 'debug' }, { write: (s: string) => { logs.push(JSON.parse(s) as LogLine) } })
  const server = http.createServer((_req, res) => { res.statusCode = 404; res.end() })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  let sockets: AppSockets | undefined
  t.teardown(async () => {
    await sockets?.close()
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })
  sockets = attachAppSockets({ server, path: PATH, region: name => byName.get(name), logger, ...opts })
  const { port } = server.address() as AddressInfo
  return { server, sockets, port, url: `ws://127.0.0.1:${port}${PATH}`, logs }
}

function writerRegion (t: ExecutionContext, writer: string = 'gw-a'): RegionState {
  const r = createRegionState({ region: REGION, writer, maintenanceIntervalMs: 0 })
  t.teardown(() => { r.close() })
  return r
}

interface StockClient {
  doc: Y.Doc
  provider: WebsocketProvider
  /** The client doc, decoded: every update of the doc applied to a read-only region state. */
  replica: RegionState
  /** Updates of the client doc the replica refused. */
  invalid: unknown[]
  /** Reasons of the permission-denied messages the client received. */
  denied: string[]
  /** 'connected' status events seen. */
  connects: () => number
}

function stockClient (t: ExecutionContext, url: string, region: string = REGION): StockClient {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, region, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    connect: true,
    disableBc: true
  })
  const replica = createRegionState({ region, readOnly: true, maintenanceIntervalMs: 0 })
  const invalid: unknown[] = []
  doc.on('update', (u: Uint8Array) => {
    try {
      replica.applyUpdate(u)
    } catch (err) {
      invalid.push(err)
    }
  })
  const denied: string[] = []
  // The stock handler only prints a console warning: record the reason instead.
  provider.messageHandlers[messageAuth] = (_enc, dec) => {
    if (decoding.readVarUint(dec) === 0) denied.push(decoding.readVarString(dec))
  }
  let connects = 0
  provider.on('status', e => { if (e.status === 'connected') connects++ })
  t.teardown(() => {
    provider.destroy()
    doc.destroy()
    replica.close()
  })
  return { doc, provider, replica, invalid, denied, connects: () => connects }
}

interface RawClient {
  ws: WebSocket
  messages: Uint8Array[]
  closed: { code: number } | undefined
}

async function rawClient (t: ExecutionContext, url: string, region: string = REGION): Promise<RawClient> {
  const ws = new WebSocket(`${url}/${region}`)
  const c: RawClient = { ws, messages: [], closed: undefined }
  ws.on('message', (data: Buffer) => { c.messages.push(new Uint8Array(data)) })
  ws.on('close', code => { c.closed = { code } })
  ws.on('error', () => {})
  t.teardown(() => { ws.terminate() })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('error', reject)
  })
  return c
}

/** The status code of a WebSocket upgrade request for `path` (101 if it was accepted). */
async function upgradeStatus (port: number, path: string): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') }
    })
    req.on('response', res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('upgrade', (_res, socket) => { socket.destroy(); resolve(101) })
    req.on('error', reject)
    req.end()
  })
}

const valueOf = (r: RegionState, sensor: string): unknown => r.get(sensor)?.value
const observers = (r: RegionState, event: 'update' | 'change'): number => r._observers.get(event)?.size ?? 0

/** The message types of the messages a raw client received (sync messages as 's<syncType>'). */
function typesOf (messages: Uint8Array[]): string[] {
  return messages.map(m => {
    const dec = decoding.createDecoder(m)
    const type = decoding.readVarUint(dec)
    return type === 0 ? `s${decoding.readVarUint(dec)}` : String(type)
  })
}

/** The awareness states carried by the awareness messages among `messages`, by client id (last one wins). */
function awarenessStatesIn (messages: Uint8Array[]): Map<number, unknown> {
  const states = new Map<number, unknown>()
  for (const m of messages) {
    const dec = decoding.createDecoder(m)
    if (decoding.readVarUint(dec) !== 1) continue
    const upd = decoding.createDecoder(decoding.readVarUint8Array(dec))
    const n = decoding.readVarUint(upd)
    for (let i = 0; i < n; i++) {
      const id = decoding.readVarUint(upd)
      decoding.readVarUint(upd)
      states.set(id, JSON.parse(decoding.readVarString(upd)))
    }
  }
  return states
}

function frame (write: (enc: encoding.Encoder) => void): Uint8Array {
  const enc = encoding.createEncoder()
  write(enc)
  return encoding.toUint8Array(enc)
}

test('a stock y-websocket client syncs the readings the region already holds', async t => {
  const region = writerRegion(t)
  region.put('line-3/temp', 21.5)
  region.putMany([{ sensor: 'line-3/rpm', value: 1450 }, { sensor: 'line-4/state', value: { ok: true } }])
  region.delete('line-4/state')
  const gw = await startGateway(t, [region])
  const app = stockClient(t, gw.url)
  await waitFor(() => app.provider.synced, 'the stock client synced')
  await waitFor(() => app.replica.list().length === 2, 'the client doc shows both live readings', { explain: () => app.replica.list() })
  t.deepEqual(app.replica.list(), region.list())
  for (const s of region.list()) {
    t.deepEqual(app.replica.get(s)?.value, region.get(s)?.value)
    t.is(app.replica.get(s)?.t, region.get(s)?.t)
    t.is(app.replica.get(s)?.writer, 'gw-a')
  }
  t.is(app.replica.get('line-4/state'), undefined, 'the deleted sensor stays deleted')
  t.deepEqual(app.invalid, [])
  t.like(gw.sockets.stats(), { clients: 1, refusedUpdates: 0, invalidMessages: 0, dropped: 0 })
})

test('a reading put on the gateway after the sync reaches the stock client live', async t => {
  const region = writerRegion(t)
  region.put('line-3/temp', 20)
  const gw = await startGateway(t, [region])
  const app = stockClient(t, gw.url)
  await waitFor(() => app.provider.synced && app.replica.get('line-3/temp') !== undefined, 'initial sync')
  region.put('line-3/temp', 22.25)
  region.put('line-9/new', 'hello')
  await waitFor(() => valueOf(app.replica, 'line-3/temp') === 22.25 && valueOf(app.replica, 'line-9/new') === 'hello',
    'both live writes in the client doc', { explain: () => app.replica.list() })
  // A reading applied from another gateway (a remote update) is forwarded too.
  const other = writerRegion(t, 'gw-b')
  other.on('update', (u, local) => { if (local) region.applyUpdate(u) })
  other.put('line-7/from-b', 7)
  await waitFor(() => valueOf(app.replica, 'line-7/from-b') === 7, 'a remote reading in the client doc')
  t.is(app.replica.get('line-7/from-b')?.writer, 'gw-b')
  t.deepEqual(app.invalid, [])
})

test('a write made in the app doc is refused: region unchanged, refusedUpdates 1, the app gets permission denied and stays connected', async t => {
  const region = writerRegion(t)
  region.put('line-3/temp', 21.5)
  const gw = await startGateway(t, [region])
  const app = stockClient(t, gw.url)
  await waitFor(() => app.provider.synced && app.replica.get('line-3/temp') !== undefined, 'initial sync')
  const before = region.encodeStateAsUpdate()

  // A well-formed reading chunk, written into the app's doc by a writer of its own.
  const forger = writerRegion(t, 'app-forger')
  forger.on('update', (u, local) => { if (local) Y.applyUpdate(app.doc, u) })
  forger.put('line-3/temp', 99)
  t.is(valueOf(app.replica, 'line-3/temp'), 99, 'the forged reading wins in the app doc')

  await waitFor(() => app.denied.length === 1, 'the app received permission denied', { explain: () => gw.sockets.stats() })
  t.is(gw.sockets.stats().refusedUpdates, 1)
  t.deepEqual(region.encodeStateAsUpdate(), before, 'the region doc is unchanged')
  t.is(valueOf(region, 'line-3/temp'), 21.5)
  t.deepEqual(region.list(), ['line-3/temp'])
  const warn = gw.logs.find(l => l.level === 40 && l.region === REGION)
  t.truthy(warn, 'the refusal is logged at warn')

  // Still connected: the next reading arrives.
  t.true(app.provider.wsconnected)
  region.put('line-5/after', 5)
  await waitFor(() => valueOf(app.replica, 'line-5/after') === 5, 'a reading after the refusal')
  t.is(gw.sockets.stats().clients, 1)
  t.is(gw.sockets.stats().invalidMessages, 0)
})

test('a stock client that reconnects repeats the deletions it learnt (compaction) and is not refused', async t => {
  const region = writerRegion(t)
  for (let i = 0; i < 20; i++) region.put('line-3/temp', i)
  t.truthy(region.compactStep(), 'a compaction step ran')
  t.true(Y.decodeUpdate(region.encodeStateAsUpdate()).ds.clients.size > 0, 'the region doc has deletions')
  const gw = await startGateway(t, [region])
  const app = stockClient(t, gw.url)
  await waitFor(() => app.provider.synced && valueOf(app.replica, 'line-3/temp') === 19, 'initial sync')

  const messagesBefore = gw.sockets.stats().messagesIn
  app.provider.ws?.close()
  // On open the client sends step 1 and its awareness state; it answers our step 1 with step 2.
  await waitFor(() => app.connects() >= 2 && app.provider.synced && gw.sockets.stats().messagesIn >= messagesBefore + 3,
    'reconnected, resynced and the step 2 reply received', { explain: () => gw.sockets.stats() })
  region.put('line-3/temp', 100)
  await waitFor(() => valueOf(app.replica, 'line-3/temp') === 100, 'a live reading after the reconnect')
  t.is(gw.sockets.stats().refusedUpdates, 0)
  t.deepEqual(app.denied, [])
  t.deepEqual(app.invalid, [])
})

test('awareness is relayed between the apps of a region, answered on query, and removed when an app leaves', async t => {
  const region = writerRegion(t)
  const gw = await startGateway(t, [region])
  const a = stockClient(t, gw.url)
  const b = stockClient(t, gw.url)
  await waitFor(() => a.provider.synced && b.provider.synced, 'both clients synced')
  // (A fresh state has clock 0, which y-protocols never applies remotely: each app sets a field.)
  a.provider.awareness.setLocalStateField('user', 'alice')
  b.provider.awareness.setLocalStateField('user', 'bob')
  await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user === 'alice', 'b sees alice')
  await waitFor(() => a.provider.awareness.getStates().get(b.doc.clientID)?.user === 'bob', 'a sees bob')

  // A raw client announces a state of its own, then asks for every state.
  const raw = await rawClient(t, gw.url)
  const rawAwareness = new Awareness(new Y.Doc())
  t.teardown(() => { rawAwareness.destroy() })
  rawAwareness.setLocalState({ user: 'raw' })
  raw.ws.send(frame(enc => {
    encoding.writeVarUint(enc, 1)
    encoding.writeVarUint8Array(enc, encodeAwarenessUpdate(rawAwareness, [rawAwareness.clientID]))
  }))
  await waitFor(() => b.provider.awareness.getStates().get(rawAwareness.clientID)?.user === 'raw', 'b sees the raw client')
  await waitFor(() => a.provider.awareness.getStates().get(rawAwareness.clientID)?.user === 'raw', 'a sees the raw client')
  const seen = raw.messages.length
  raw.ws.send(frame(enc => { encoding.writeVarUint(enc, 3) }))
  await waitFor(() => raw.messages.length > seen, 'an answer to the awareness query')
  const answered = awarenessStatesIn(raw.messages.slice(seen))
  t.deepEqual(answered.get(a.doc.clientID), { user: 'alice' })
  t.deepEqual(answered.get(rawAwareness.clientID), { user: 'raw' })

  // The raw client vanishes without saying goodbye: the gateway removes its state.
  raw.ws.terminate()
  await waitFor(() => !b.provider.awareness.getStates().has(rawAwareness.clientID), 'b no longer sees the raw client')
  t.true(a.provider.awareness.getStates().has(b.doc.clientID), 'the others are still there')
  t.is(gw.sockets.stats().invalidMessages, 0)
})

test('garbage, text and oversized frames close only their own connection; the gateway keeps serving', async t => {
  const region = writerRegion(t)
  const gw = await startGateway(t, [region], { maxMessageBytes: 4096 })
  const app = stockClient(t, gw.url)
  await waitFor(() => app.provider.synced, 'the stock client synced')
  const cases: Array<{ what: string, send: (ws: WebSocket) => void, code: number }> = [
    { what: 'random bytes', send: ws => { ws.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])) }, code: 1008 },
    { what: 'an unknown message type', send: ws => { ws.send(Uint8Array.from([7])) }, code: 1008 },
    { what: 'a sync update that is not a Yjs update', send: ws => { ws.send(frame(e => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, Uint8Array.from([9, 9, 9])) })) }, code: 1008 },
    { what: 'a sync message with trailing bytes', send: ws => { ws.send(frame(e => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, Uint8Array.from([0, 0])); encoding.writeUint8(e, 1) })) }, code: 1008 },
    { what: 'an awareness update that is not JSON', send: ws => { ws.send(frame(e => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, frame(u => { encoding.writeVarUint(u, 1); encoding.writeVarUint(u, 5); encoding.writeVarUint(u, 1); encoding.writeVarString(u, '{nope') })) })) }, code: 1008 },
    { what: 'an auth message (gateway to app only)', send: ws => { ws.send(frame(e => { encoding.writeVarUint(e, 2); encoding.writeVarUint(e, 0); encoding.writeVarString(e, 'x') })) }, code: 1008 },
    { what: 'a text frame', send: ws => { ws.send('hello') }, code: 1003 },
    { what: 'a frame over maxMessageBytes', send: ws => { ws.send(new Uint8Array(8192)) }, code: 1009 }
  ]
  for (const [i, c] of cases.entries()) {
    const raw = await rawClient(t, gw.url)
    c.send(raw.ws)
    await waitFor(() => raw.closed !== undefined, `${c.what}: the connection is closed`)
    t.is(raw.closed?.code, c.code, c.what)
    t.is(gw.sockets.stats().invalidMessages, i + 1, c.what)
  }
  region.put('line-3/temp', 1)
  await waitFor(() => valueOf(app.replica, 'line-3/temp') === 1, 'the stock client still gets live readings')
  t.true(app.provider.wsconnected)
  t.is(gw.sockets.stats().refusedUpdates, 0)
  await waitFor(() => gw.sockets.stats().clients === 1, 'only the stock client left')
})

test('an unknown region gets 404; other upgrade paths get 404 only when nobody else listens', async t => {
  const region = writerRegion(t)
  const gw = await startGateway(t, [region])
  t.is(await upgradeStatus(gw.port, `${PATH}/${REGION}`), 101)
  t.is(await upgradeStatus(gw.port, `${PATH}/us-east`), 404)
  t.is(await upgradeStatus(gw.port, `${PATH}/`), 404)
  t.is(await upgradeStatus(gw.port, `${PATH}/${REGION}/more`), 404)
  t.is(await upgradeStatus(gw.port, '/elsewhere'), 404, 'nobody else handles it')
  const other = (req: http.IncomingMessage, socket: import('node:stream').Duplex): void => {
    if (req.url === '/elsewhere') socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  }
  gw.server.on('upgrade', other)
  t.teardown(() => { gw.server.off('upgrade', other) })
  t.is(await upgradeStatus(gw.port, '/elsewhere'), 418, 'left to the other listener')
  t.is(await upgradeStatus(gw.port, `${PATH}/us-east`), 404)
  // A stock client of an unknown region never syncs (and keeps retrying with backoff).
  const lost = stockClient(t, gw.url, 'us-east')
  await waitFor(() => lost.provider.wsUnsuccessfulReconnects >= 1, 'the client saw its connection fail')
  t.false(lost.provider.synced)
})

test('a slow consumer is terminated and counted; the region keeps its readers', async t => {
  const region = writerRegion(t)
  const gw = await startGateway(t, [region], { maxBufferedBytes: 256 * 1024 })
  const app = stockClient(t, gw.url)
  await waitFor(() => app.provider.synced, 'the stock client synced')
  const slow = await rawClient(t, gw.url)
  await waitFor(() => gw.sockets.stats().clients === 2, 'two clients')
  slow.ws.pause()
  const big = 'x'.repeat(60_000)
  for (let i = 0; i < 2000 && gw.sockets.stats().dropped === 0; i++) {
    region.put('line-1/blob', big + String(i))
    await yieldToLoop()
  }
  t.is(gw.sockets.stats().dropped, 1, 'the paused client was dropped')
  await waitFor(() => gw.sockets.stats().clients === 1, 'one client left')
  region.put('line-2/after', 2)
  await waitFor(() => valueOf(app.replica, 'line-2/after') === 2, 'the reading client still gets live readings')
  t.true(app.provider.wsconnected)
  t.truthy(gw.logs.find(l => l.level === 40 && typeof l.buffered === 'number'), 'the drop is logged at warn')
})

test('the sync step 2 of a region larger than maxBufferedBytes is not taken for a slow consumer', async t => {
  const region = writerRegion(t)
  const big = 'y'.repeat(60_000)
  for (let i = 0; i < 200; i++) region.put(`line-${i}/blob`, big) // about 12 MB: more than loopback socket buffers hold
  const gw = await startGateway(t, [region], { maxBufferedBytes: 64 * 1024 })
  const raw = await rawClient(t, gw.url)
  const inBefore = gw.sockets.stats().messagesIn
  raw.ws.send(frame(enc => {
    encoding.writeVarUint(enc, 0)
    encoding.writeVarUint(enc, 0)
    encoding.writeVarUint8Array(enc, Y.encodeStateVector(new Y.Doc()))
  }))
  raw.ws.pause()
  await waitFor(() => gw.sockets.stats().messagesIn > inBefore, 'the gateway answered the step 1')
  region.put('line-0/small', 1) // an update to send while the step 2 is still buffered
  t.is(gw.sockets.stats().dropped, 0)
  raw.ws.resume()
  await waitFor(() => typesOf(raw.messages).join() === 's0,s1,s2', 'step 1, step 2 and the update received', { explain: () => typesOf(raw.messages) })
  t.is(gw.sockets.stats().dropped, 0)
  t.is(gw.sockets.stats().clients, 1)
})

test('invalid options are refused with EM_ERR_INVALID_OPTIONS', t => {
  const server = http.createServer()
  const logger = pino({ level: 'silent' })
  const base = { server, region: () => undefined, logger }
  for (const init of [{ ...base, path: 'v1/docs' }, { ...base, path: '/v1/docs/' }, { ...base, path: '/v1', maxBufferedBytes: 0 }, { ...base, path: '/v1', maxMessageBytes: 1.5 }]) {
    const err = t.throws(() => attachAppSockets(init))
    t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS'), JSON.stringify({ path: init.path }))
  }
  t.is(server.listenerCount('upgrade'), 0)
})

test.serial('close() disconnects every app, unsubscribes from the region, removes its listener and leaves no open handles', async t => {
  const baseline = activeResources()
  const region = writerRegion(t)
  region.put('line-3/temp', 1)
  t.is(observers(region, 'update'), 0)
  const server = http.createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })
  const sockets = attachAppSockets({ server, path: PATH, region: name => name === REGION ? region : undefined, logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await sockets.close() })
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}${PATH}`

  // The last app leaving unsubscribes (and drops the region's awareness).
  const first = await rawClient(t, url)
  await waitFor(() => observers(region, 'update') === 1, 'subscribed to the region')
  first.ws.close()
  await waitFor(() => observers(region, 'update') === 0 && sockets.stats().clients === 0, 'unsubscribed after the last app left')

  const app = stockClient(t, url)
  app.provider.awareness.setLocalStateField('user', 'alice')
  await waitFor(() => app.provider.synced && valueOf(app.replica, 'line-3/temp') === 1, 'the stock client synced')
  const raw = await rawClient(t, url)
  t.is(sockets.stats().clients, 2)
  t.is(server.listenerCount('upgrade'), 1)

  await sockets.close()
  t.is(server.listenerCount('upgrade'), 0)
  t.is(sockets.stats().clients, 0)
  t.is(observers(region, 'update'), 0)
  await waitFor(() => raw.closed !== undefined && !app.provider.wsconnected, 'both apps saw the connection close')
  t.is(raw.closed?.code, 1001)
  app.provider.destroy()
  app.doc.destroy() // also destroys the provider's Awareness and its timer
  await sockets.close() // idempotent
  server.closeAllConnections()
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  await waitForNoResourcesBeyond(baseline)
  t.pass()
})
