/**
 * bench:analytics — the analytics peer following a loaded mesh, as an operator runs it:
 * three `edge-mesh gateway` child processes (one region each, one mesh) and one
 * `edge-mesh analytics` child process, on 127.0.0.1 with LevelDB data dirs.
 *
 *   analytics-follow  each gateway takes a batch of 100 readings every 30 ms over HTTP (10k
 *                     readings/s in total, 1000 sensors per region, on schedule, at most 20
 *                     requests outstanding per gateway) for `--seconds` (default 30) after a
 *                     3 s warm-up. The analytics peer discovers the three regions by itself.
 *                     Keys: `readingsPerSec` (readings the analytics peer recorded per second over
 *                     the measured period), `lagP99Ms` / `lagP50Ms` (ingest at a gateway — the
 *                     reading's HLC time — to observed at the analytics peer, read from its
 *                     `edge_mesh_analytics_lag_seconds` histogram: the bucket counts of the
 *                     measured period and the drain after it, linearly interpolated within a
 *                     bucket), `recordedLagP50Ms` / `recordedLagP99Ms` (ingest to queryable: one
 *                     batch in 10 is posted with ?echo=1 and its last reading looked up in the
 *                     peer's /v1/history every 50 ms until it shows; `probes` samples,
 *                     `probesUnresolved` still missing at the end of the drain), `rssMB` (the
 *                     analytics peer's peak RSS, sampled every 250 ms),
 *                     `ingestedPerSec` (readings acknowledged by the gateways), `observed` /
 *                     `recorded` / `dropped` (the peer's counts from the end of the warm-up to
 *                     the end of the drain), `observedRatio` (observed / ingested), `recordedAll`
 *                     (everything acknowledged since the start was recorded or counted as
 *                     dropped within 30 s of the end), `storeQueueMax` (the most readings queued
 *                     in its store at a sample), `failedRequests`.
 *
 * Prints one JSON line on stdout (progress on stderr) and writes bench/results/analytics.json.
 *
 *   npm run bench:analytics                  30 s at 10k readings/s
 *   npm run bench:analytics -- --seconds 10
 *
 * (package.json: "bench:analytics": "node bench/analytics.ts")
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { wallOf } from '@edge-mesh/hlc'
import { prng } from '@edge-mesh/testkit'
import { BenchRun, EDGE_MESH_CLI, round, rssMB, sleep, startProc, stopProc, type Proc } from './lib.ts'

const REGIONS = ['bench-0', 'bench-1', 'bench-2']
const SENSORS_PER_REGION = 1000
const BATCH = 100
const EVERY_MS = 30
const MAX_INFLIGHT = 20
const WARMUP_MS = 3000
const DRAIN_MS = 30_000
/** One batch in this many is posted with ?echo=1, and its last reading probed at the analytics peer. */
const PROBE_EVERY = 10
const MAX_PROBES = 16

const run = new BenchRun('analytics')
const progress = run.progress

// ------------------------------------------------------------------ metrics

interface Scrape { recorded: number, observed: number, dropped: number, queue: number, buckets: Array<[number, number]> }

/** The analytics peer's counters and its lag histogram (cumulative bucket counts by upper bound, s). */
async function scrape (url: string): Promise<Scrape> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const value = (name: string): number => {
    let sum = 0
    for (const line of text.split('\n')) if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
    return sum
  }
  const buckets: Array<[number, number]> = []
  for (const m of text.matchAll(/^edge_mesh_analytics_lag_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) {
    buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])])
  }
  return {
    recorded: value('edge_mesh_analytics_readings_recorded_total'),
    observed: value('edge_mesh_analytics_readings_observed_total'),
    dropped: value('edge_mesh_analytics_readings_dropped_total'),
    queue: value('edge_mesh_analytics_store_queue_readings'),
    buckets
  }
}

/** Quantile `q` of the samples between two scrapes of a histogram, ms, interpolated within its bucket. */
function histogramQuantile (a: Scrape, b: Scrape, q: number): number {
  const counts = b.buckets.map(([le, n], i) => [le, n - (a.buckets[i]?.[1] ?? 0)] as [number, number])
  const total = counts.at(-1)?.[1] ?? 0
  if (total === 0) return NaN
  const rank = q * total
  let lower = 0
  let below = 0
  for (const [le, cum] of counts) {
    if (cum >= rank) {
      if (le === Infinity) return lower * 1000
      const inBucket = cum - below
      return (lower + (le - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1)) * 1000
    }
    lower = le
    below = cum
  }
  return lower * 1000
}

/** Nearest-rank quantile of `xs` (sorted in place). */
function quantileOf (xs: number[], q: number): number {
  if (xs.length === 0) return NaN
  xs.sort((a, b) => a - b)
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]
}

/** A reading acknowledged by a gateway, awaited in the analytics peer's history. */
interface Probe { region: string, sensor: string, t: string }

// ------------------------------------------------------------------ the run

async function follow (dir: string, seconds: number): Promise<Record<string, unknown>> {
  progress(`analytics-follow: ${REGIONS.length} regions, ${Math.round(REGIONS.length * BATCH * 1000 / EVERY_MS)} readings/s offered for ${seconds} s`)
  const gateways: Proc[] = []
  let analytics: Proc | undefined
  try {
    for (const [i, region] of REGIONS.entries()) {
      const args = ['gateway', '--json', '--region', region, '--data', join(dir, `gw-${i}`), '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0', '--log-level', 'warn']
      if (i > 0) args.push('--bootstrap', gateways[0].addrs[0])
      gateways.push(await startProc([EDGE_MESH_CLI, ...args], `gateway ${region}`))
    }
    const an = analytics = await startProc([EDGE_MESH_CLI, 'analytics', '--json', '--data', join(dir, 'analytics'), '--http', '127.0.0.1:0', '--log-level', 'warn',
      ...gateways.flatMap(g => ['--bootstrap', g.addrs[0]])], 'analytics')
    const discoverEnd = Date.now() + 30_000
    for (;;) {
      const peers = await (await fetch(`${an.http}/v1/peers`)).json() as { following: string[] }
      if (REGIONS.every(r => peers.following.includes(r))) break
      if (Date.now() > discoverEnd) throw new Error(`the analytics peer follows only ${JSON.stringify(peers.following)} after 30 s`)
      await sleep(200)
    }
    progress('the analytics peer follows the three regions')

    const rnd = prng(7)
    const level = new Float64Array(REGIONS.length * SENSORS_PER_REGION).map(() => 20 + rnd() * 10)
    const sensorIds = Array.from({ length: SENSORS_PER_REGION }, (_, i) => `line-${i % 20}/sensor-${i}`)
    // Each batch takes the next BATCH sensors of its region in turn: no sensor twice in a batch,
    // so every reading is the newest of its sensor when the analytics peer applies its frame.
    const cursor = gateways.map(() => 0)
    const body = (g: number): string => JSON.stringify(Array.from({ length: BATCH }, () => {
      const s = cursor[g]
      cursor[g] = (cursor[g] + 1) % SENSORS_PER_REGION
      const k = g * SENSORS_PER_REGION + s
      level[k] += (rnd() - 0.5) * 0.2
      return { sensor: sensorIds[s], value: Math.round(level[k] * 100) / 100, unit: 'C' }
    }))
    const sent = gateways.map(() => 0)
    const inflight = gateways.map(() => new Set<Promise<void>>())
    let ok = 0
    let failed = 0
    let okAtMark = 0
    let rssPeak = 0
    let queueMax = 0
    const start = performance.now()
    const markAt = start + WARMUP_MS
    const endAt = markAt + seconds * 1000
    let mark: Scrape | undefined
    let marked = false
    let nextSample = start
    let nextProgress = markAt + 5000
    // Ingest to queryable: probed readings are looked up in the peer's history until they show.
    const probes = new Set<Probe>()
    const recordedLags: number[] = []
    let probing = true
    const prober = (async () => {
      while (probing || probes.size > 0) {
        for (const pr of [...probes]) {
          const url = `${an.http}/v1/history?region=${pr.region}&sensor=${encodeURIComponent(pr.sensor)}&order=desc&limit=1`
          const res = await fetch(url, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
          if (res === undefined || !res.ok) continue
          const newest = ((await res.json()) as { points: Array<{ t: string }> }).points[0]
          if (newest !== undefined && newest.t >= pr.t) {
            recordedLags.push(Date.now() - wallOf(pr.t))
            probes.delete(pr)
          }
        }
        await sleep(50)
      }
    })()
    while (performance.now() < endAt) {
      const due = Math.floor((performance.now() - start) / EVERY_MS)
      for (const [g, gw] of gateways.entries()) {
        while (sent[g] < due && inflight[g].size < MAX_INFLIGHT) {
          const probe = marked && sent[g] % PROBE_EVERY === 0 && probes.size < MAX_PROBES
          const p: Promise<void> = fetch(`${gw.http}/v1/readings${probe ? '?echo=1' : ''}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(g) })
            .then(async res => {
              if (!res.ok) {
                failed++
                await res.arrayBuffer()
                return
              }
              ok++
              if (!probe) {
                await res.arrayBuffer()
                return
              }
              const last = ((await res.json()) as { readings: Array<{ sensor: string, t: string }> }).readings.at(-1)
              if (last !== undefined) probes.add({ region: REGIONS[g], sensor: last.sensor, t: last.t })
            }, () => { failed++ })
            .finally(() => { inflight[g].delete(p) })
          inflight[g].add(p)
          sent[g]++
        }
      }
      const now = performance.now()
      if (!marked && now >= markAt) {
        marked = true
        okAtMark = ok
        mark = await scrape(an.http)
      }
      if (now >= nextSample) {
        nextSample = now + 250
        rssPeak = Math.max(rssPeak, await rssMB(an.child.pid) || 0)
      }
      if (now >= nextProgress) {
        nextProgress = now + 5000
        const s = await scrape(an.http)
        queueMax = Math.max(queueMax, s.queue)
        progress(`${Math.round((now - markAt) / 1000)} s: ${ok * BATCH} acknowledged, ${s.recorded} recorded, store queue ${s.queue}, analytics RSS ${await rssMB(an.child.pid)} MB`)
      }
      await sleep(2)
    }
    await Promise.all(inflight.flatMap(s => [...s]))
    const atEnd = await scrape(an.http)
    const measuredS = (performance.now() - markAt) / 1000
    const m0 = mark as Scrape
    // Drain: everything acknowledged reaches the peer and its store.
    const acked = ok * BATCH
    let last = atEnd
    const drainEnd = Date.now() + DRAIN_MS
    // (A frame lost and made up by sync can bring several readings of a sensor at once, of which
    // only the newest is observed: then the counts stop short of `acked`, and the drain ends when
    // they have not moved for a second with the store's queue empty.)
    let still = 0
    while (last.recorded + last.dropped < acked && still < 4 && Date.now() < drainEnd) {
      await sleep(250)
      rssPeak = Math.max(rssPeak, await rssMB(an.child.pid) || 0)
      const next = await scrape(an.http)
      still = next.recorded === last.recorded && next.observed === last.observed && next.queue === 0 ? still + 1 : 0
      last = next
      queueMax = Math.max(queueMax, last.queue)
    }
    // The probes still out wait for the drain too, within its bound.
    while (probes.size > 0 && Date.now() < drainEnd) await sleep(100)
    probing = false
    const unresolved = probes.size
    probes.clear()
    await prober
    return {
      bench: 'analytics-follow',
      regions: REGIONS.length,
      readingsPerSec: Math.round((atEnd.recorded - m0.recorded) / measuredS),
      lagP99Ms: round(histogramQuantile(m0, last, 0.99)),
      rssMB: round(rssPeak),
      lagP50Ms: round(histogramQuantile(m0, last, 0.5)),
      recordedLagP50Ms: round(quantileOf(recordedLags, 0.5)),
      recordedLagP99Ms: round(quantileOf(recordedLags, 0.99)),
      probes: recordedLags.length,
      probesUnresolved: unresolved,
      ingestedPerSec: Math.round((ok - okAtMark) * BATCH / measuredS),
      offeredPerSec: Math.round(REGIONS.length * BATCH * 1000 / EVERY_MS),
      seconds,
      sensorsPerRegion: SENSORS_PER_REGION,
      ingested: (ok - okAtMark) * BATCH,
      observed: last.observed - m0.observed,
      recorded: last.recorded - m0.recorded,
      dropped: last.dropped - m0.dropped,
      observedRatio: round((last.observed - m0.observed) / Math.max(1, (ok - okAtMark) * BATCH), 4),
      recordedAll: last.recorded + last.dropped >= acked,
      storeQueueMax: queueMax,
      failedRequests: failed
    }
  } finally {
    if (analytics !== undefined) await stopProc(analytics)
    for (const g of gateways.reverse()) await stopProc(g)
  }
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 30
  if (!(seconds > 0 && seconds <= 3600)) throw new Error('--seconds must be between 0 and 3600')
  const dir = await mkdtemp(join(tmpdir(), 'edge-mesh-bench-analytics-'))
  let line: Record<string, unknown>
  try {
    line = await follow(dir, seconds)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  run.print(line)
  await run.save([line])
}

await main()
