/**
 * End to end: the analytics peer (`edge-mesh analytics`, test/helpers/analytics-process.ts) as a
 * child process beside four `edge-mesh gateway` processes, two regions of two gateways each, with
 * writer authorization (`--writer`) on every gateway and real LevelDB data dirs, over TCP on
 * 127.0.0.1:
 *
 * - the analytics peer discovers both regions from the gateways' announcements (it is told no
 *   region), follows them, and records every reading: its history and its 1-minute aggregates
 *   (per sensor and per region) equal a recomputation from the readings ingested and their HLC
 *   timestamps (`?echo=1`); its live stream carries them; it never published a frame;
 * - cut off from one region (the test-only partition control of the analytics peer), it lags
 *   behind; once healed its view of that region converges with the gateways';
 * - a write forged with the analytics peer's own key (a writable mesh peer started in this process
 *   on a copy of its data dir) is refused by every gateway and applied by none.
 *
 * The four gateways and the analytics peer are shared by the tests, which run serially in order.
 * Every wait is a bounded poll of an observable condition; no duration is asserted.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { wallOf } from '@edge-mesh/hlc'
import { createMeshPeer, loadOrCreatePeerKey, type MeshPeer } from '@edge-mesh/mesh'
import { GatewayProcess, type GatewayReply } from './helpers/gateway-process.ts'
import { AnalyticsProcess, type Reply, type TeardownHost } from './helpers/analytics-process.ts'
import { until as untilWithin } from './helpers/until.ts'
import type { RegionReport } from '@edge-mesh/analytics'

const R1 = 'site-a'
const R2 = 'site-b'
const WAIT_MS = 40_000
const WINDOW_MS = 60_000

interface IngestReply { accepted: number, duplicates: number, readings?: Array<{ sensor: string, t: string }> }
interface SensorReply { sensor: string, value: unknown, unit?: string, t: string, writer: string }
interface LatestReply { region: string, sensors: Array<{ sensor: string, value: unknown, unit?: string, t: string, at: number, writer: string, ageMs: number }>, truncated: boolean }
interface HistoryPoint { t: string, at: number, value: unknown, unit?: string, ts?: number, writer: string }
interface WindowAggregate { start: number, count: number, min: number, max: number, mean: number, last: number }
/** A row of GET /v1/regions, as the analytics package types it. */
type RegionRow = RegionReport
interface PeersReply { peerId: string, peers: string[], announced: Record<string, string[]>, following: string[] }

/** A reading as ingested, with the HLC timestamp the gateway gave it. */
interface Ingested { region: string, sensor: string, value: number | string, unit?: string, t: string, writer: string }

// ------------------------------------------------------------------ helpers

const until = async <T>(read: () => Promise<T> | T, ok: (value: T) => boolean, what: string, withinMs: number = WAIT_MS): Promise<T> => await untilWithin(read, ok, what, withinMs)


/** The value of a sample in Prometheus text (`name{labels}` as printed), undefined if absent. */
function metric (text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1))
  return undefined
}

const q = (params: Record<string, string | number>): string => '?' + new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString()

/** History entries in one key order, for comparisons. */
const point = (p: HistoryPoint | Ingested): Record<string, unknown> => ({
  t: p.t, at: 'at' in p ? p.at : wallOf(p.t), value: p.value, unit: p.unit, writer: p.writer
})

/** The windows of `readings` (numeric ones), as the store defines them: last = greatest (t, writer[, sensor]). */
function windowsOf (readings: Ingested[]): WindowAggregate[] {
  const byStart = new Map<number, Ingested[]>()
  for (const r of readings) {
    if (typeof r.value !== 'number') continue
    const start = Math.floor(wallOf(r.t) / WINDOW_MS) * WINDOW_MS
    let list = byStart.get(start)
    if (list === undefined) byStart.set(start, list = [])
    list.push(r)
  }
  return [...byStart].sort((a, b) => a[0] - b[0]).map(([start, list]) => {
    const values = list.map(r => r.value as number)
    const newest = [...list].sort((a, b) => a.t !== b.t ? (a.t < b.t ? -1 : 1) : a.writer !== b.writer ? (a.writer < b.writer ? -1 : 1) : (a.sensor < b.sensor ? -1 : 1)).at(-1) as Ingested
    return {
      start,
      count: list.length,
      min: Math.min(...values),
      max: Math.max(...values),
      mean: values.reduce((s, v) => s + v, 0) / values.length,
      last: newest.value as number
    }
  })
}

// ------------------------------------------------------------------ the shared cluster

interface Site { region: string, gateways: GatewayProcess[] }

interface Cluster {
  sites: Site[]
  gateways: GatewayProcess[]
  analytics: AnalyticsProcess
  analyticsDir: string
  /** Every reading ingested so far, in order. */
  ingested: Ingested[]
  round: number
}

const cleanups: Array<() => Promise<void>> = []
/** Stops what the cluster started, last started first, when the file's tests are done. */
const host: TeardownHost = { teardown: fn => { cleanups.push(async () => { await fn() }) } }
let cluster: Cluster | undefined
let clusterError: unknown

async function tempDir (prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A gateway data dir with its key made in advance, so that its peer id is known before it starts. */
async function identity (prefix: string): Promise<{ dir: string, peerId: string }> {
  const dir = await tempDir(prefix)
  return { dir, peerId: peerIdFromPrivateKey(await loadOrCreatePeerKey(dir)).toString() }
}

async function startGateway (name: string, region: string, dir: string, writers: string[], bootstrap: string[]): Promise<GatewayProcess> {
  // GatewayProcess registers its stop with `teardown`, which the cluster's host provides.
  return await GatewayProcess.start(host as unknown as ExecutionContext, {
    name,
    regions: [region],
    data: dir,
    bootstrap,
    logLevel: 'warn',
    extraArgs: writers.flatMap(w => ['--writer', `${region}=${w}`])
  })
}

test.before(async () => {
  try {
    const ids = await Promise.all(['em-an-a1-', 'em-an-a2-', 'em-an-b1-', 'em-an-b2-'].map(identity))
    const writersA = [ids[0].peerId, ids[1].peerId]
    const writersB = [ids[2].peerId, ids[3].peerId]
    // One mesh: a2 and b1 join a1, b2 joins b1 and a1.
    const a1 = await startGateway('a1', R1, ids[0].dir, writersA, [])
    const [a2, b1] = await Promise.all([
      startGateway('a2', R1, ids[1].dir, writersA, [a1.addr]),
      startGateway('b1', R2, ids[2].dir, writersB, [a1.addr])
    ])
    const b2 = await startGateway('b2', R2, ids[3].dir, writersB, [b1.addr, a1.addr])
    const gateways = [a1, a2, b1, b2]
    for (const [i, g] of gateways.entries()) if (g.peerId !== ids[i].peerId) throw new Error(`${g.label()} did not use the key made for it`)
    const analyticsDir = await tempDir('em-an-analytics-')
    const analytics = await AnalyticsProcess.start(host, {
      name: 'analytics',
      data: analyticsDir,
      bootstrap: gateways.map(g => g.addr),
      control: true,
      logLevel: 'warn'
    })
    cluster = { sites: [{ region: R1, gateways: [a1, a2] }, { region: R2, gateways: [b1, b2] }], gateways, analytics, analyticsDir, ingested: [], round: 0 }
  } catch (err) {
    clusterError = err
  }
})

test.after.always(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => {})
})

function ready (t: ExecutionContext): Cluster {
  if (cluster === undefined) {
    t.fail(`the cluster did not start: ${clusterError instanceof Error ? clusterError.stack ?? clusterError.message : String(clusterError)}`)
    throw new Error('no cluster')
  }
  return cluster
}

/** Sensors written by a gateway: its own ids, so that every reading it writes wins its sensor. */
const sensorsOf = (g: GatewayProcess): string[] => [`${g.name}/temp`, `${g.name}/flow`, `${g.name}/state`]

/**
 * One round: every gateway of `sites` writes one reading of each of its sensors (numbers, and a
 * string for `*​/state`); returns them with their HLC timestamps.
 */
async function ingestRound (c: Cluster, sites: Site[]): Promise<Ingested[]> {
  const k = ++c.round
  const out: Ingested[] = []
  await Promise.all(sites.flatMap(site => site.gateways.map(async (g, gi) => {
    const batch = sensorsOf(g).map((sensor, si) => sensor.endsWith('/state')
      ? { sensor, value: k % 3 === 0 ? 'alarm' : 'ok' }
      // Multiples of 0.5: sums and means are exact in float64.
      : { sensor, value: (gi * 10 + si) + ((k * 7) % 11) * 0.5, unit: si === 0 ? 'C' : 'l/min' })
    const r = await g.post<IngestReply>(`/v1/readings${q({ region: site.region, echo: 1 })}`, batch)
    if (r.status !== 200 || r.body.readings?.length !== batch.length) throw new Error(`${g.label()}: ingest answered ${r.status}: ${r.text}`)
    const tOf = new Map(r.body.readings.map(x => [x.sensor, x.t]))
    for (const b of batch) out.push({ region: site.region, sensor: b.sensor, value: b.value, unit: 'unit' in b ? b.unit : undefined, t: tOf.get(b.sensor) as string, writer: g.peerId })
  })))
  c.ingested.push(...out)
  return out
}

/** Waits until the analytics replica of each region holds exactly `readings` (sensor, value, t, writer) for their sensors. */
async function analyticsHolds (c: Cluster, readings: Ingested[], what: string): Promise<void> {
  for (const region of new Set(readings.map(r => r.region))) {
    const want = readings.filter(r => r.region === region)
    await until(async () => await c.analytics.get<LatestReply>(`/v1/latest${q({ region })}`), r => {
      if (r.status !== 200) return false
      const have = new Map(r.body.sensors.map(s => [s.sensor, s]))
      return want.every(w => have.get(w.sensor)?.t === w.t && have.get(w.sensor)?.writer === w.writer && JSON.stringify(have.get(w.sensor)?.value) === JSON.stringify(w.value))
    }, `the analytics replica of ${region} to hold ${what}`)
  }
}

// ------------------------------------------------------------------ 1

test.serial('the analytics peer discovers both regions from announcements, records every reading, and its history and aggregates equal a recomputation from the ingested readings', async t => {
  const c = ready(t)
  const an = c.analytics
  const peers = await until(async () => await an.get<PeersReply>('/v1/peers'), r => r.status === 200 && r.body.following.includes(R1) && r.body.following.includes(R2) &&
    c.gateways.every(g => r.body.peers.includes(g.peerId)), 'the analytics peer to follow both regions (it was given none) and be connected to every gateway')
  t.is(peers.body.peerId, an.peerId)
  t.deepEqual(peers.body.following, [R1, R2])

  // A live stream, narrowed to one region, open before the readings.
  const stream = an.stream(`/v1/stream${q({ region: R1 })}`)
  // Each round waits until the analytics replica holds it, so every reading wins its sensor there
  // when it arrives (by gossip or by sync) and is observed.
  let last: Ingested[] = []
  for (let round = 0; round < 4; round++) {
    last = await ingestRound(c, c.sites)
    await analyticsHolds(c, last, `round ${c.round}`)
  }
  const ingested = c.ingested

  // History per sensor: every reading, in (t, writer) order, with its wall time, unit and writer.
  for (const site of c.sites) {
    for (const g of site.gateways) {
      for (const sensor of sensorsOf(g)) {
        const want = ingested.filter(r => r.region === site.region && r.sensor === sensor).map(point)
        const got = await until(async () => await an.get<{ points: HistoryPoint[] }>(`/v1/history${q({ region: site.region, sensor })}`),
          r => r.status === 200 && r.body.points.length >= want.length, `the history of ${site.region}/${sensor} to hold ${want.length} readings`)
        t.deepEqual(got.body.points.map(point), want, `history of ${site.region}/${sensor}`)
        const desc = await an.get<{ points: HistoryPoint[] }>(`/v1/history${q({ region: site.region, sensor, order: 'desc', limit: 1 })}`)
        t.deepEqual(desc.body.points.map(point), want.slice(-1), `the newest reading of ${sensor}`)
      }
    }
  }

  // Aggregates per sensor and per region, recomputed from the readings and their HLC wall times.
  for (const site of c.sites) {
    const mine = ingested.filter(r => r.region === site.region)
    for (const g of site.gateways) {
      for (const sensor of sensorsOf(g)) {
        const got = await until(async () => await an.get<{ windowMs: number, windows: WindowAggregate[] }>(`/v1/aggregates${q({ region: site.region, sensor })}`), r => r.status === 200, `aggregates of ${sensor}`)
        t.is(got.body.windowMs, WINDOW_MS)
        t.deepEqual(got.body.windows, windowsOf(mine.filter(r => r.sensor === sensor)), `windows of ${site.region}/${sensor}`)
      }
    }
    const region = await an.get<{ sensor: null, windows: WindowAggregate[] }>(`/v1/aggregates${q({ region: site.region })}`)
    t.is(region.status, 200, region.text)
    t.is(region.body.sensor, null)
    t.deepEqual(region.body.windows, windowsOf(mine), `region windows of ${site.region}`)
    t.true(region.body.windows.reduce((n, w) => n + w.count, 0) === mine.filter(r => typeof r.value === 'number').length)
  }

  // A time range: [from, to) over the wall times of the readings.
  const s0 = sensorsOf(c.sites[0].gateways[0])[0]
  const series = ingested.filter(r => r.region === R1 && r.sensor === s0)
  const from = wallOf(series[1].t)
  const to = wallOf(series[3].t)
  const ranged = await an.get<{ points: HistoryPoint[] }>(`/v1/history${q({ region: R1, sensor: s0, from, to })}`)
  t.deepEqual(ranged.body.points.map(point), series.filter(r => wallOf(r.t) >= from && wallOf(r.t) < to).map(point))

  // Regions: freshness and replication lag, announcers.
  const regions = await until(async () => await an.get<{ regions: RegionRow[] }>('/v1/regions'),
    r => r.status === 200 && r.body.regions.length === 2 && r.body.regions.every(row => row.announcedBy.length === 2), 'both regions announced by both of their gateways')
  for (const row of regions.body.regions) {
    const site = c.sites.find(s => s.region === row.region) as Site
    const mine = ingested.filter(r => r.region === row.region)
    t.true(row.following)
    t.is(row.sensors, site.gateways.length * 3)
    t.deepEqual([...row.announcedBy].sort(), site.gateways.map(g => g.peerId).sort())
    t.is(row.lastAt, Math.max(...mine.map(r => wallOf(r.t))), `${row.region}: lastAt is the newest reading's wall time`)
    t.true(row.newestAgeMs !== null && row.newestAgeMs >= 0)
    t.true(row.lagSamples >= mine.length, `${row.region}: a lag sample per observed reading (${row.lagSamples})`)
    t.true(row.lagP50Ms !== null && row.lagP99Ms !== null && row.lagP50Ms >= 0 && row.lagP99Ms >= row.lagP50Ms, JSON.stringify(row))
  }

  // The live stream carried the readings of its region, as the gateways wrote them (in the order
  // their frames arrived, which differs between gateways), and a summary.
  for (const r of last.filter(x => x.region === R1)) {
    const e = await stream.find(ev => ev.event === 'reading' && (ev.data as { sensor: string, t: string }).sensor === r.sensor && (ev.data as { t: string }).t === r.t, `a reading event of ${r.sensor}`)
    t.like(e.data, { region: R1, sensor: r.sensor, value: r.value, t: r.t, at: wallOf(r.t), writer: r.writer })
  }
  t.false(stream.events.some(e => e.event === 'reading' && (e.data as { region: string }).region !== R1), 'only readings of the region asked for')
  const summary = await stream.next(ev => ev.event === 'regions', 'a regions event')
  t.deepEqual((summary.data as { regions: RegionRow[] }).regions.map(r => r.region), [R1, R2])

  // Read-only: it published no gossip frame and no announcement, and counts what it observed.
  const m = await an.get('/metrics')
  t.is(m.status, 200)
  const text = m.text
  t.true((metric(text, 'edge_mesh_analytics_readings_observed_total') ?? 0) >= ingested.length)
  t.is(metric(text, 'edge_mesh_analytics_readings_recorded_total'), ingested.length)
  t.is(metric(text, 'edge_mesh_analytics_regions_followed'), 2)
  t.true((metric(text, 'edge_mesh_analytics_lag_seconds_count') ?? 0) >= ingested.length)
  t.true((metric(text, 'edge_mesh_gossip_frames_total{direction="in"}') ?? 0) > 0)
  t.is(metric(text, 'edge_mesh_gossip_frames_total{direction="out"}') ?? 0, 0, 'no frame published')
  t.is(metric(text, 'edge_mesh_announcements_total{direction="out"}') ?? 0, 0, 'no announcement published')

  // Clear errors.
  const noSensor = await an.get<{ code: string }>(`/v1/history${q({ region: R1 })}`)
  t.is(noSensor.status, 400)
  t.is(noSensor.body.code, 'EM_ERR_INVALID_OPTIONS')
  const unknown = await an.get<{ code: string }>(`/v1/history${q({ region: 'nowhere', sensor: s0 })}`)
  t.is(unknown.status, 404)
  t.is(unknown.body.code, 'EM_ERR_NOT_FOUND')
})

// ------------------------------------------------------------------ 2

test.serial('after a partition between the analytics peer and one region heals, its view of that region converges with the gateways\'', async t => {
  const c = ready(t)
  const an = c.analytics
  const [siteA, siteB] = c.sites
  const cut = siteB.gateways.map(g => g.peerId)
  // Whatever the first test left, the replica holds the last round before the cut.
  const before = await ingestRound(c, c.sites)
  await analyticsHolds(c, before, 'the round before the partition')

  const applied = await an.partition(cut)
  t.deepEqual([...applied.deny].sort(), [...cut].sort())
  await until(async () => await an.get<PeersReply>('/v1/peers'), r => r.status === 200 && cut.every(p => !r.body.peers.includes(p)), 'the analytics peer to be cut off from both gateways of the region')

  // Two rounds while cut off: the other region still flows; this one replicates between its gateways only.
  let during: Ingested[] = []
  for (let i = 0; i < 2; i++) {
    during = await ingestRound(c, c.sites)
    await analyticsHolds(c, during.filter(r => r.region === siteA.region), 'the region that is not cut off')
  }
  for (const r of during.filter(x => x.region === siteB.region)) {
    for (const g of siteB.gateways) {
      await until(async () => await g.get<SensorReply>(`/v1/sensors/${encodeURIComponent(r.sensor)}${q({ region: siteB.region })}`), x => x.status === 200 && x.body.t === r.t, `${g.label()} to hold ${r.sensor} of the last round`)
    }
  }
  const stale = await an.get<LatestReply>(`/v1/latest${q({ region: siteB.region })}`)
  t.is(stale.status, 200)
  const preCut = new Map(before.filter(r => r.region === siteB.region).map(r => [r.sensor, r.t]))
  for (const s of stale.body.sensors) t.is(preCut.get(s.sensor), s.t, `cut off, the analytics peer still holds ${s.sensor} from before the partition`)

  const healed = await an.partition([])
  t.deepEqual(healed.deny, [])

  // Converged: every sensor the gateways hold, with the same value, timestamp and writer.
  const list = await siteB.gateways[0].get<{ sensors: string[] }>(`/v1/sensors${q({ region: siteB.region })}`)
  t.is(list.status, 200, list.text)
  t.is(list.body.sensors.length, siteB.gateways.length * 3)
  const want = new Map<string, SensorReply>()
  for (const sensor of list.body.sensors) {
    const replies = await Promise.all(siteB.gateways.map(async g => await g.get<SensorReply>(`/v1/sensors/${encodeURIComponent(sensor)}${q({ region: siteB.region })}`)))
    t.true(replies.every(r => r.status === 200 && r.body.t === replies[0].body.t), `the gateways agree on ${sensor}`)
    want.set(sensor, replies[0].body)
  }
  const converged = await until(async () => await an.get<LatestReply>(`/v1/latest${q({ region: siteB.region })}`), r => r.status === 200 &&
    r.body.sensors.length === want.size && r.body.sensors.every(s => s.t === want.get(s.sensor)?.t), `the analytics view of ${siteB.region} to converge`)
  for (const s of converged.body.sensors) {
    const g = want.get(s.sensor) as SensorReply
    t.deepEqual({ value: s.value, unit: s.unit, t: s.t, writer: s.writer }, { value: g.value, unit: g.unit, t: g.t, writer: g.writer }, s.sensor)
  }
  // The readings that won after the heal were observed and recorded.
  for (const r of during.filter(x => x.region === siteB.region)) {
    const h = await until(async () => await an.get<{ points: HistoryPoint[] }>(`/v1/history${q({ region: siteB.region, sensor: r.sensor, order: 'desc', limit: 1 })}`),
      x => x.status === 200 && x.body.points[0]?.t === r.t, `the history of ${r.sensor} to end with the reading written during the partition`)
    t.deepEqual(h.body.points.map(point), [point(r)])
  }
  const peers = await until(async () => await an.get<PeersReply>('/v1/peers'), r => r.status === 200 && cut.every(p => r.body.peers.includes(p)), 'the analytics peer to be connected again')
  t.true(peers.body.following.includes(siteB.region))
})

// ------------------------------------------------------------------ 3

test.serial('a write forged with the analytics peer\'s own key is refused by every gateway of the region and applied by none', async t => {
  const c = ready(t)
  const an = c.analytics
  const site = c.sites[0]
  const [g1, g2] = site.gateways
  const exit = await an.stop()
  t.is(exit.code, 0, `the analytics peer stops cleanly on SIGTERM${an.diagnostics()}`)
  t.true(an.events.some(e => e.event === 'stopped'))

  // The same key, in a writable peer holding the region: what a compromised analytics host could do.
  const copy = await tempDir('em-an-forger-')
  await cp(c.analyticsDir, copy, { recursive: true })
  const forger: MeshPeer = await createMeshPeer({ regions: [site.region], dataDir: copy, bootstrap: site.gateways.map(g => g.addr), syncIntervalMs: 500 })
  t.teardown(async () => { await forger.stop() })
  t.is(forger.peerId, an.peerId, 'the forger has the analytics peer\'s identity')
  const target = sensorsOf(g1)[0]
  const honestBefore = c.ingested.filter(r => r.sensor === target).at(-1) as Ingested
  await until(() => site.gateways.every(g => forger.connectedPeers().includes(g.peerId)) && forger.region(site.region).get(target)?.t === honestBefore.t,
    ok => ok, 'the forger to be connected to both gateways and synced')

  /** Frames and sync messages a gateway refused, from its /metrics (both counters are always exported). */
  const refusals = async (g: GatewayProcess): Promise<number> => {
    const text = (await g.get('/metrics')).text
    const frames = metric(text, 'edge_mesh_gossip_unauthorized_frames_total')
    const sync = metric(text, 'edge_mesh_sync_invalid_messages_total')
    if (frames === undefined || sync === undefined) throw new Error(`${g.label()} exports no writer authorization counters`)
    return frames + sync
  }
  // Forge: a new sensor and an overwrite of a gateway's sensor, again and again (at most 50
  // times), until both gateways counted refusals.
  let writes = 0
  await until(async () => {
    if (writes < 50) {
      forger.region(site.region).put('forged/x', writes)
      forger.region(site.region).put(target, 9999)
      writes++
    }
    return (await Promise.all(site.gateways.map(refusals))).every(n => n > 0)
  }, ok => ok, 'both gateways to refuse the forged writes', WAIT_MS)
  t.is(forger.region(site.region).get('forged/x')?.writer, an.peerId, 'the forger did write')

  // Replication between the gateways goes on: an honest reading written after the forged ones.
  const honest = await g1.post<IngestReply>(`/v1/readings${q({ region: site.region, echo: 1 })}`, [{ sensor: 'honest/after', value: 1 }])
  t.is(honest.status, 200, honest.text)
  const honestT = honest.body.readings?.[0].t
  t.is(typeof honestT, 'string', honest.text)
  await until(async () => await g2.get<SensorReply>(`/v1/sensors/${encodeURIComponent('honest/after')}${q({ region: site.region })}`), r => r.status === 200 && r.body.t === honestT, `${g2.label()} to hold the honest reading`)

  for (const g of site.gateways) {
    const forged = await g.get<{ code: string }>(`/v1/sensors/${encodeURIComponent('forged/x')}${q({ region: site.region })}`)
    t.is(forged.status, 404, `${g.label()} never applied the forged sensor: ${forged.text}`)
    t.is(forged.body.code, 'EM_ERR_NOT_FOUND')
    const kept = await g.get<SensorReply>(`/v1/sensors/${encodeURIComponent(target)}${q({ region: site.region })}`)
    t.like(kept.body, { value: honestBefore.value, t: honestBefore.t, writer: g1.peerId }, `${g.label()} kept the honest ${target}`)
    t.true(await refusals(g) > 0, `${g.label()} counted refused frames or sync messages`)
  }
  // The other region's gateways never held the region at all.
  for (const g of c.sites[1].gateways) {
    const r: GatewayReply<{ code: string }> = await g.get(`/v1/sensors/${encodeURIComponent('forged/x')}${q({ region: site.region })}`)
    t.is(r.status, 404)
  }
})
