/**
 * The analytics peer in-process (`createAnalyticsPeer`), with writable mesh peers standing in for
 * gateways: discovery through announcements, recording of every observed reading, lag, the live
 * stream (readings, anomalies, summaries), restart on its data dir, overload of its store, the
 * test-only partition control. Every wait is a bounded poll; no duration is asserted.
 */
import { setTimeout as delay } from 'node:timers/promises'
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { wallOf } from '@edge-mesh/hlc'
import { createMeshPeer, type MeshPeer, type MeshPeerInit } from '@edge-mesh/mesh'
import { createAnalyticsPeer, type AnalyticsPeer, type AnalyticsPeerInit } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const WAIT_MS = 20_000
const silent = pino({ level: 'silent' })

async function until<T> (read: () => Promise<T> | T, ok: (v: T) => boolean, what: string, withinMs: number = WAIT_MS): Promise<T> {
  const end = Date.now() + withinMs
  let last: T | undefined
  for (;;) {
    last = await read()
    if (ok(last)) return last
    if (Date.now() > end) throw new Error(`timed out after ${withinMs} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 600)}`)
    await delay(25)
  }
}

/** A writable mesh peer (a gateway's mesh part), stopped at teardown. */
async function writer (t: ExecutionContext, init: Partial<MeshPeerInit> = {}): Promise<MeshPeer> {
  const p = await createMeshPeer({ regions: ['plant-1'], listen: LOOPBACK, announceIntervalMs: 200, syncIntervalMs: 300, ...init })
  t.teardown(async () => { await p.stop() })
  return p
}

async function analytics (t: ExecutionContext, init: Partial<AnalyticsPeerInit> & { dataDir: string }): Promise<AnalyticsPeer> {
  const p = await createAnalyticsPeer({
    http: { host: '127.0.0.1', port: 0 },
    logger: silent,
    syncIntervalMs: 300,
    summaryIntervalMs: 100,
    ...init
  })
  t.teardown(async () => { await p.close() })
  return p
}

async function getJson<T> (url: string): Promise<{ status: number, body: T }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  return { status: res.status, body: await res.json() as T }
}

/** Reads an SSE stream into `events` until closed. */
function openStream (t: ExecutionContext, url: string): { events: Array<{ event: string, data: any }>, close: () => void } {
  const ctl = new AbortController()
  const events: Array<{ event: string, data: any }> = []
  void (async () => {
    const res = await fetch(url, { signal: ctl.signal })
    let buf = ''
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buf += Buffer.from(chunk).toString('utf8')
      let i: number
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i)
        buf = buf.slice(i + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) })
      }
    }
  })().catch(() => {})
  t.teardown(() => { ctl.abort() })
  return { events, close: () => { ctl.abort() } }
}

test('follows the regions announced, records every reading it observes with its lag, streams it, and never publishes', async t => {
  const w = await writer(t, { regions: ['plant-1', 'plant-2'] })
  const an = await analytics(t, { dataDir: await tempDir(t), bootstrap: w.addrs() })
  t.deepEqual(an.peers().following, [], 'told no region')
  await until(() => an.peers().following, f => f.length === 2, 'both announced regions followed')
  t.deepEqual(an.peers().following, ['plant-1', 'plant-2'])
  t.deepEqual(an.peers().announced, { 'plant-1': [w.peerId], 'plant-2': [w.peerId] })
  t.true(an.mesh.readOnly)

  const stream = openStream(t, `${an.url}/v1/stream?region=plant-2&events=reading`)
  await until(() => an.live.size, n => n === 1, 'the stream client')
  const written: Array<{ region: string, sensor: string, t: string, value: number }> = []
  for (let i = 0; i < 12; i++) {
    const region = i % 3 === 0 ? 'plant-1' : 'plant-2'
    const r = w.region(region).put(`line-${i % 2}/temp`, 20 + i)
    written.push({ region, sensor: r.sensor, t: r.t, value: 20 + i })
    // Each reading is observed before the next is written (so it wins its sensor when it arrives).
    await until(() => an.observations().observed, n => n === i + 1, `reading ${i} observed`)
  }
  await an.store.flush()
  for (const region of ['plant-1', 'plant-2']) {
    for (const sensor of ['line-0/temp', 'line-1/temp']) {
      const want = written.filter(x => x.region === region && x.sensor === sensor)
      const got = await getJson<{ points: Array<{ t: string, at: number, value: number, writer: string }> }>(`${an.url}/v1/history?region=${region}&sensor=${encodeURIComponent(sensor)}`)
      t.is(got.status, 200)
      t.deepEqual(got.body.points, want.map(x => ({ t: x.t, at: wallOf(x.t), value: x.value, writer: w.peerId })), `${region} ${sensor}`)
    }
  }
  const rows = an.regions()
  t.deepEqual(rows.map(r => [r.region, r.observed, r.sensors, r.recordedSensors]), [['plant-1', 4, 2, 2], ['plant-2', 8, 2, 2]])
  for (const row of rows) {
    t.true(row.lagSamples === row.observed && row.lagP50Ms !== null && row.lagP99Ms !== null && row.lagMaxMs !== null)
    t.true((row.lagP50Ms as number) <= (row.lagP99Ms as number) && (row.lagP99Ms as number) <= (row.lagMaxMs as number))
    t.is(row.lastAt, Math.max(...written.filter(x => x.region === row.region).map(x => wallOf(x.t))))
  }

  const streamed = await until(() => stream.events, e => e.length === 8, 'the 8 readings of plant-2 on the stream')
  t.deepEqual(streamed.map(e => [e.event, e.data.region, e.data.sensor, e.data.t, e.data.value, e.data.at, e.data.writer]),
    written.filter(x => x.region === 'plant-2').map(x => ['reading', 'plant-2', x.sensor, x.t, x.value, wallOf(x.t), w.peerId]))

  const latest = an.latest('plant-1', 'line-0/', 10)
  t.deepEqual(latest?.sensors.map(s => [s.sensor, s.value, s.t]), [['line-0/temp', 26, written[6].t]])
  t.is(an.latest('nowhere', '', 10), undefined)

  // Read-only: no frame, no announcement ever left this peer.
  const s = an.mesh.stats()
  t.is(s.framesOut, 0)
  t.is(s.announcementsOut, 0)
  t.true(s.framesIn > 0)
})

test('with a writer list, readings of other writers are refused before they are observed, and counted in /metrics', async t => {
  const allowed = await writer(t)
  const other = await writer(t, { bootstrap: allowed.addrs() })
  const an = await analytics(t, { dataDir: await tempDir(t), bootstrap: [...allowed.addrs(), ...other.addrs()], writers: { 'plant-1': [allowed.peerId] } })
  await until(() => an.mesh.connectedPeers(), c => c.includes(allowed.peerId) && c.includes(other.peerId), 'both writers connected')
  // Written one after the other, each until the analytics peer saw the allowed one or refused the other.
  const refused = (): number => an.mesh.stats().unauthorizedFrames + an.mesh.stats().invalidSyncMessages
  for (let i = 0; i < 3; i++) {
    const before = refused()
    other.region('plant-1').put('forged/temp', 100 + i)
    await until(refused, n => n > before, `write ${i} of the other writer refused`)
    allowed.region('plant-1').put('line-0/temp', 20 + i)
    await until(() => an.observations().observed, n => n === i + 1, `reading ${i} of the allowed writer observed`)
  }
  await an.store.flush()
  t.is(an.latest('plant-1', 'forged/', 10)?.sensors.length ?? 0, 0, 'nothing of the other writer is in the view')
  const forged = await getJson<{ points: unknown[] }>(`${an.url}/v1/history?region=plant-1&sensor=${encodeURIComponent('forged/temp')}`)
  t.deepEqual(forged.body.points ?? [], [], 'nor in the history')
  t.deepEqual(an.latest('plant-1', 'line-0/', 10)?.sensors.map(s => [s.sensor, s.value]), [['line-0/temp', 22]])
  const metrics = await (await fetch(`${an.url}/metrics`)).text()
  const count = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN)
  t.true(count('edge_mesh_gossip_unauthorized_frames_total') + count('edge_mesh_sync_invalid_messages_total') >= 3, metrics)
})

test('a spike after a steady signal is flagged, kept in /v1/anomalies and sent once on the stream', async t => {
  const w = await writer(t)
  const an = await analytics(t, { dataDir: await tempDir(t), bootstrap: w.addrs(), anomalyThreshold: 4 })
  await until(() => an.peers().following.length, n => n === 1, 'the region followed')
  const stream = openStream(t, `${an.url}/v1/stream?events=anomaly`)
  await until(() => an.live.size, n => n === 1, 'the stream client')
  const steady = [10, 10.5, 9.5, 10.25, 9.75]
  for (let i = 0; i < 30; i++) {
    w.region('plant-1').put('line-1/temp', steady[i % steady.length])
    await until(() => an.observations().observed, n => n === i + 1, `steady reading ${i}`)
  }
  const spike = w.region('plant-1').put('line-1/temp', 100)
  const e = await until(() => stream.events, ev => ev.length >= 1, 'an anomaly event')
  t.is(e.length, 1)
  t.like(e[0], { event: 'anomaly', data: { region: 'plant-1', sensor: 'line-1/temp', t: spike.t, value: 100, writer: w.peerId } })
  t.true(e[0].data.z > 4)
  const listed = await getJson<{ anomalies: Array<{ t: string, z: number }> }>(`${an.url}/v1/anomalies?region=plant-1`)
  t.deepEqual(listed.body.anomalies.map(a => a.t), [spike.t])
})

test('restarted on its data dir, it follows the regions it has history of at once, without an announcement', async t => {
  const wDir = await tempDir(t)
  const aDir = await tempDir(t)
  const w1 = await createMeshPeer({ regions: ['plant-1'], dataDir: wDir, listen: LOOPBACK, announceIntervalMs: 200, syncIntervalMs: 300 })
  const first = await createAnalyticsPeer({ dataDir: aDir, bootstrap: w1.addrs(), http: { host: '127.0.0.1', port: 0 }, logger: silent, syncIntervalMs: 300 })
  try {
    await until(() => first.peers().following.length, n => n === 1, 'the region followed')
    w1.region('plant-1').put('s', 1)
    await until(() => first.observations().observed, n => n === 1, 'the first reading observed')
  } finally {
    await first.close()
    await w1.stop()
  }
  // The same writer identity again, announcing nothing.
  const w2 = await writer(t, { dataDir: wDir, announceIntervalMs: 0 })
  t.is(w2.peerId, w1.peerId)
  const again = await analytics(t, { dataDir: aDir, bootstrap: w2.addrs() })
  t.is(again.peerId, first.peerId, 'the same identity')
  await until(() => again.peers().following, f => f.length === 1, 'plant-1 followed from the history')
  const r = w2.region('plant-1').put('s', 2)
  await until(() => again.latest('plant-1', '', 10)?.sensors[0]?.t, x => x === r.t, 'the new reading at the restarted peer')
  await again.store.flush()
  const h = await again.store.history({ region: 'plant-1', sensor: 's' })
  t.deepEqual(h.map(x => x.value), [1, 2], 'recorded once each across the restart')
  t.is(w2.stats().announcementsOut, 0)
})

test('when the store\'s queue is full, observed readings are counted as dropped instead of queued', async t => {
  const w = await writer(t)
  const an = await analytics(t, { dataDir: await tempDir(t), bootstrap: w.addrs(), store: { maxPendingWrites: 5 } })
  await until(() => an.peers().following.length, n => n === 1, 'the region followed')
  // One update of 200 readings: observed in one turn, far more than the queue takes.
  w.region('plant-1').putMany(Array.from({ length: 200 }, (_, i) => ({ sensor: `s${i}`, value: i })))
  await until(() => an.observations().observed, n => n === 200, 'the 200 readings observed')
  await an.store.flush()
  const o = an.observations()
  const st = an.store.stats()
  t.true(o.overloaded > 0)
  t.is(o.refused, 0)
  t.is(st.recorded + o.overloaded, 200)
  const metrics = await (await fetch(`${an.url}/metrics`)).text()
  t.true(metrics.includes(`edge_mesh_analytics_readings_dropped_total{reason="overloaded"} ${o.overloaded}\n`), 'the drops are in the metrics')
})

test('the test-only partition control exists only when asked for, cuts the peer off from the peers named and heals', async t => {
  const w = await writer(t)
  const plain = await analytics(t, { dataDir: await tempDir(t), bootstrap: w.addrs() })
  const refused = await fetch(`${plain.url}/_test/partition`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"deny":[]}' })
  t.is(refused.status, 404)

  const an = await analytics(t, { dataDir: await tempDir(t), bootstrap: w.addrs(), testHooks: { control: true } })
  await until(() => an.peers().following.length, n => n === 1, 'the region followed')
  const post = async (deny: string[]): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${an.url}/_test/partition`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deny }) })
    return { status: res.status, body: await res.json() }
  }
  const cut = await post([w.peerId])
  t.is(cut.status, 200)
  t.deepEqual(cut.body.deny, [w.peerId])
  await until(() => an.mesh.connectedPeers(), p => !p.includes(w.peerId), 'disconnected')
  await until(() => w.connectedPeers(), p => !p.includes(an.peerId), 'disconnected on the other side too')
  const r = w.region('plant-1').put('cut/s', 1)
  const healed = await post([])
  t.is(healed.status, 200)
  t.deepEqual(healed.body.deny, [])
  await until(() => an.latest('plant-1', 'cut/', 10)?.sensors[0]?.t, x => x === r.t, 'the reading after the heal')
  const bad = await post(['x'.repeat(300)])
  t.is(bad.status, 400)
})
