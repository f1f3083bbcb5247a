/**
 * bench:mesh — replication over the libp2p gossip mesh, all peers on 127.0.0.1 in one process per
 * scenario (one clock for latencies), against raw gossipsub measured in the same run.
 *
 *   mesh-propagation  10 peers in one region, a random mesh (each peer dials 2-3 earlier ones). One
 *                     peer writes readings at a fixed offered rate (putMany per timer tick); latency
 *                     is put → 'change' event at each of the 9 others. The raw baseline: 10 more
 *                     peers, same settings and topology, replaying the mesh run's frames (same
 *                     sizes, same times) as plain bytes on another topic, publish → receive.
 *   mesh-heal         two groups of 2 peers, partitioned (banned both ways); each group's writer
 *                     makes 100k writes over 10k shared sensors; once each group has converged,
 *                     heal (allow + dial) and time until all four views are identical, with the
 *                     bytes it took against the least any protocol must move (`minimalBytes`):
 *                     the compacted delta each of the four peers lacks, summed. With groups of
 *                     two that is twice the two compacted deltas (`twoDeltaBytes`), since each
 *                     side's delta has to reach both peers of the other side.
 *
 * Prints one JSON line per scenario on stdout (progress on stderr) and writes
 * bench/results/mesh.json. Each line runs in its own child process.
 *
 *   npm run bench:mesh                          everything (--seconds 5 per rate)
 *   npm run bench:mesh -- --seconds 10          longer propagation runs
 *   npm run bench:mesh -- --only mesh-heal      one scenario
 *   npm run bench:mesh -- --only mesh-heal --heal-sensors 30000 --heal-writes 300000 --heal-sync-ms 10000
 *                                               a heal whose deltas are over the 1 MiB frame limit
 *
 * Peers run in one process on purpose: on a 2-core machine, the same scenario with each peer in its
 * own process was several times slower at 10k readings/s (10 processes contending for 2 cores).
 */
import { spawn, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, totalmem, loadavg } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { createMeshPeer, regionTopic, type MeshPeer, type MeshPeerInit, type MeshStats } from '@edge-mesh/mesh'
import type { Change } from '@edge-mesh/region-state'
import { prng } from '@edge-mesh/testkit'

const here = dirname(fileURLToPath(import.meta.url))
const REGION = 'bench'
const TOPIC = regionTopic(REGION)
const RAW_TOPIC = '/edge-mesh-bench/raw'
const PEERS = 10
const SENSORS = 10_000
/** Interval of the writer's timer loop, ms: the readings due are written with one putMany per tick. */
const TICK_MS = 10
/** Anti-entropy period in the heal scenario (the default, 10 s, in the propagation one). */
const HEAL_SYNC_MS = 1000
const HEAL_WRITES = 100_000
const HEAL_BATCH = 100

interface Job { bench: string, args: string[], label: string }

/** What a gossipsub topic validator returns (the GossipSub type, reached through MeshPeer's). */
type TopicValidator = NonNullable<ReturnType<MeshPeer['node']['services']['pubsub']['topicValidators']['get']>>
const ACCEPT = 'accept' as unknown as Awaited<ReturnType<TopicValidator>>

const progress = (msg: string): void => { process.stderr.write(`[bench:mesh] ${msg}\n`) }
const round = (x: number, d: number = 1): number => Math.round(x * 10 ** d) / 10 ** d
const sleep = async (ms: number): Promise<void> => { await new Promise<void>(resolve => { setTimeout(resolve, ms) }) }

/** Polls `cond` every `everyMs` until it holds; throws after `timeoutMs`. Returns the time waited. */
async function waitFor (what: string, cond: () => boolean, timeoutMs: number, everyMs: number = 20): Promise<number> {
  const t0 = performance.now()
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
  return performance.now() - t0
}

/** Bytes this process has written with write(2) and friends, sockets included (Linux). */
async function wchar (): Promise<number> {
  try {
    const m = /wchar:\s*(\d+)/.exec(await readFile('/proc/self/io', 'utf8'))
    return m !== null ? Number(m[1]) : NaN
  } catch {
    return NaN
  }
}

/** Busy and stolen CPU time of the whole machine, in seconds (Linux /proc/stat; 100 ticks a second). */
function machineCpu (): { busy: number, steal: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = f
    return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal ?? 0) / 100 }
  } catch {
    return { busy: NaN, steal: NaN }
  }
}

/**
 * Over a section of the run: event-loop utilisation, this process's CPU (all threads, in cores),
 * and what the rest of the machine used meanwhile (`otherCores`: other processes, which make the
 * numbers noisy; `stealCores`: taken by the hypervisor).
 */
function meter (): () => { elu: number, cpuCores: number, otherCores: number, stealCores: number } {
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  const m0 = machineCpu()
  const t0 = performance.now()
  return () => {
    const wall = (performance.now() - t0) / 1000
    const elu = performance.eventLoopUtilization(elu0)
    const cpu = process.cpuUsage(cpu0)
    const own = (cpu.user + cpu.system) / 1e6
    const m1 = machineCpu()
    return {
      elu: round(elu.utilization, 2),
      cpuCores: round(own / wall, 2),
      otherCores: round(Math.max(0, (m1.busy - m0.busy - own) / wall), 2),
      stealCores: round((m1.steal - m0.steal) / wall, 2)
    }
  }
}

type Counter = 'framesOut' | 'frameBytesOut' | 'frameBytesIn' | 'syncBytesOut' | 'syncRounds' | 'cascadeSyncs' | 'oversizedUpdates' | 'syncFailures'

/** The peers in our gossip mesh for a topic (on the implementation, not the GossipSub interface). */
const meshPeersOf = (p: MeshPeer, topic: string): string[] =>
  (p.node.services.pubsub as unknown as { getMeshPeers: (topic: string) => string[] }).getMeshPeers(topic)

const sumStats = (peers: MeshPeer[], key: Counter): number =>
  peers.reduce((n, p) => n + (((p.stats() as MeshStats & Record<string, number>)[key] as number | undefined) ?? 0), 0)

function snapshot (peers: MeshPeer[]): Record<Counter, number> {
  const keys: Counter[] = ['framesOut', 'frameBytesOut', 'frameBytesIn', 'syncBytesOut', 'syncRounds', 'cascadeSyncs', 'oversizedUpdates', 'syncFailures']
  return Object.fromEntries(keys.map(k => [k, sumStats(peers, k)])) as Record<Counter, number>
}

function delta (a: Record<Counter, number>, b: Record<Counter, number>): Record<Counter, number> {
  return Object.fromEntries(Object.keys(a).map(k => [k, b[k as Counter] - a[k as Counter]])) as Record<Counter, number>
}

// ------------------------------------------------------------------ topology

/** Peer i dials min(i, 2 or 3) distinct earlier peers. */
function randomMesh (n: number, rnd: () => number): number[][] {
  const out: number[][] = []
  for (let i = 0; i < n; i++) {
    const want = Math.min(i, 2 + Math.floor(rnd() * 2))
    const picks = new Set<number>()
    while (picks.size < want) picks.add(Math.floor(rnd() * i))
    out.push([...picks].sort((a, b) => a - b))
  }
  return out
}

function neighbours (topo: number[][]): Array<Set<number>> {
  const adj = topo.map(() => new Set<number>())
  topo.forEach((earlier, i) => { for (const j of earlier) { adj[i].add(j); adj[j].add(i) } })
  return adj
}

function maxHops (adj: Array<Set<number>>, from: number): number {
  const dist = new Map<number, number>([[from, 0]])
  const queue = [from]
  while (queue.length > 0) {
    const i = queue.shift() as number
    for (const j of adj[i]) if (!dist.has(j)) { dist.set(j, (dist.get(i) as number) + 1); queue.push(j) }
  }
  return Math.max(...dist.values())
}

async function startPeers (topo: number[][], init: Omit<MeshPeerInit, 'bootstrap' | 'regions'>): Promise<MeshPeer[]> {
  const peers: MeshPeer[] = []
  for (let i = 0; i < topo.length; i++) {
    peers.push(await createMeshPeer({ ...init, regions: [REGION], bootstrap: topo[i].map(j => peers[j].addrs()[0]) }))
  }
  return peers
}

/** Every peer sees as many subscribers of `topic` as it has neighbours, and has a gossip mesh. */
async function meshFormed (peers: MeshPeer[], adj: Array<Set<number>>, topic: string): Promise<number> {
  return waitFor(`the gossipsub mesh on ${topic}`, () => peers.every((p, i) => {
    const ps = p.node.services.pubsub
    return ps.getSubscribers(topic).length >= adj[i].size && meshPeersOf(p, topic).length >= Math.min(adj[i].size, 1)
  }), 30_000)
}

// ------------------------------------------------------------------ mesh-propagation

interface FrameRecord {
  /** When the writer's mesh peer published it, ms from the start of the run. */
  t: number
  size: number
  /** Readings in it (the putMany batches written since the previous frame). */
  readings: number
}

/** A key for a frame's bytes, to match what a receiver validates with what the writer published. */
function bytesKey (b: Uint8Array): string {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (let i = 0; i < b.length; i++) {
    h1 = Math.imul(h1 ^ b[i], 16777619)
    h2 = Math.imul(h2 ^ b[i], 2246822519)
  }
  return `${b.length}:${h1 >>> 0}:${h2 >>> 0}`
}

/** Latency samples, each with a weight (the readings it stands for). */
class Samples {
  private lat: Float64Array
  private w: Float64Array
  n = 0
  constructor (capacity: number) {
    this.lat = new Float64Array(Math.max(16, capacity))
    this.w = new Float64Array(Math.max(16, capacity))
  }

  add (ms: number, weight: number = 1): void {
    if (this.n === this.lat.length) {
      const grow = (a: Float64Array): Float64Array => { const b = new Float64Array(a.length * 2); b.set(a); return b }
      this.lat = grow(this.lat)
      this.w = grow(this.w)
    }
    this.lat[this.n] = ms
    this.w[this.n++] = weight
  }

  /** Weighted quantiles (p50, p99) and the maximum, ms. */
  summary (): { p50: number, p99: number, max: number } {
    if (this.n === 0) return { p50: NaN, p99: NaN, max: NaN }
    const idx = Array.from({ length: this.n }, (_, i) => i).sort((a, b) => this.lat[a] - this.lat[b])
    let total = 0
    for (let i = 0; i < this.n; i++) total += this.w[i]
    const at = (q: number): number => {
      let acc = 0
      for (const i of idx) {
        acc += this.w[i]
        if (acc >= q * total) return this.lat[i]
      }
      return this.lat[idx[idx.length - 1]]
    }
    return { p50: round(at(0.5), 2), p99: round(at(0.99), 2), max: round(this.lat[idx[idx.length - 1]], 2) }
  }
}

/** Polls until `count()` reaches `expected` or stops moving for `quietMs` (at most 30 s). */
async function drain (what: string, count: () => number, expected: number, quietMs: number = 3000): Promise<void> {
  let last = count()
  let lastChange = performance.now()
  await waitFor(what, () => {
    const c = count()
    if (c !== last) { last = c; lastChange = performance.now() }
    return c >= expected || performance.now() - lastChange > quietMs
  }, 30_000, 20).catch(() => {})
}

async function propagation (rate: number, seconds: number): Promise<Record<string, unknown>> {
  const rnd = prng(7)
  const topo = randomMesh(PEERS, rnd)
  const adj = neighbours(topo)
  // The writer: the last peer, which dialled 2 or 3 others and was dialled by none.
  const pub = PEERS - 1
  progress(`mesh-propagation ${rate}/s: starting ${PEERS} mesh peers and ${PEERS} raw peers; topology ${JSON.stringify(topo)}`)
  const mesh = await startPeers(topo, {})
  const raw = await startPeers(topo, {})
  for (const p of raw) p.node.services.pubsub.subscribe(RAW_TOPIC)
  try {
    const formMs = await meshFormed(mesh, adj, TOPIC)
    await meshFormed(raw, adj, RAW_TOPIC)
    progress(`gossip meshes formed (${Math.round(formMs)} ms)`)

    // ---- the mesh run
    const writer = mesh[pub].region(REGION)
    const others = mesh.filter((_, i) => i !== pub)
    // Warm-up: writes that must reach everyone before the clock starts.
    for (let k = 0; k < 20; k++) {
      writer.put(`warm/${k}`, 'warm')
      await sleep(10)
    }
    await waitFor('the warm-up writes', () => others.every(p => p.region(REGION).get('warm/19') !== undefined), 15_000)
    const total = Math.round(rate * seconds)
    // put → 'change' per reading; and per batch (the first reading of each putMany a peer sees).
    const perReading = new Samples(total * others.length)
    const perBatch = new Samples(rate * seconds / 10 * others.length)
    let seen = 0
    const perPeer = new Array<number>(others.length).fill(0)
    others.forEach((p, idx) => {
      let lastBatch = -1
      p.region(REGION).on('change', (c: Change) => {
        const v = c.new?.value
        if (c.local || typeof v !== 'number') return
        const ms = performance.now() - v
        perReading.add(ms)
        if (v !== lastBatch) { lastBatch = v; perBatch.add(ms) }
        seen++
        perPeer[idx]++
      })
    })
    // Stages: putMany → publish (the flush window), publish → the receiver's validator (gossipsub
    // and the transport, what the raw baseline measures), and the validator itself (decode, check,
    // apply, 'change' events), per (frame, peer).
    const flushStage = new Samples(1024)
    const netStage = new Samples(1024)
    const applyStage = new Samples(1024)
    const ps = mesh[pub].node.services.pubsub
    const frames: FrameRecord[] = []
    const published = new Map<string, number>()
    let recStart = -1
    let pendingSince = -1
    let written = 0
    let writtenAtFrame = 0
    // Time spent in the mesh's own work: the 9 receivers' validators, and the writer's putMany.
    let applyTotal = 0
    let putTotal = 0
    const origPublish = ps.publish.bind(ps)
    ps.publish = async (topic: string, data?: Uint8Array) => {
      if (topic === TOPIC && recStart >= 0 && data !== undefined) {
        const now = performance.now()
        frames.push({ t: now - recStart, size: data.length, readings: written - writtenAtFrame })
        if (pendingSince >= 0) flushStage.add(now - pendingSince)
        published.set(bytesKey(data), now)
        pendingSince = -1
        writtenAtFrame = written
      }
      return origPublish(topic, data)
    }
    for (const p of others) {
      const validators = p.node.services.pubsub.topicValidators
      const orig = validators.get(TOPIC)
      if (orig === undefined) throw new Error('the mesh peer has no validator on its region topic')
      // Synchronous, as the mesh's own validator is.
      validators.set(TOPIC, (peer, msg) => {
        const t0 = performance.now()
        const sent = recStart >= 0 ? published.get(bytesKey(msg.data)) : undefined
        const result = orig(peer, msg)
        const t1 = performance.now()
        applyTotal += t1 - t0
        if (sent !== undefined) {
          netStage.add(t0 - sent)
          applyStage.add(t1 - t0)
        }
        return result
      })
    }
    const sensors = Array.from({ length: SENSORS }, (_, i) => `line-${i % 50}/sensor-${i}`)
    const before = snapshot(mesh)
    const w0 = await wchar()
    const m = meter()
    const schedLag = new Samples(1024)
    const start = performance.now()
    recStart = start
    await new Promise<void>(resolve => {
      const tick = (): void => {
        const now = performance.now()
        const due = Math.min(total, Math.floor((now - start) * rate / 1000))
        if (due > written) {
          // How late the oldest reading of this batch is against its due time.
          schedLag.add(now - (start + (written + 1) * 1000 / rate))
          const batch = new Array<{ sensor: string, value: number }>(due - written)
          const t = performance.now()
          for (let i = 0; i < batch.length; i++) batch[i] = { sensor: sensors[Math.floor(rnd() * SENSORS)], value: t }
          if (pendingSince < 0) pendingSince = t
          writer.putMany(batch)
          putTotal += performance.now() - t
          written = due
        }
        if (written >= total || now - start > seconds * 3000) resolve()
        else setTimeout(tick, TICK_MS)
      }
      setTimeout(tick, TICK_MS)
    })
    const writeMs = performance.now() - start
    const applyDuringWrites = applyTotal
    const expected = written * others.length
    await drain('the mesh deliveries', () => seen, expected)
    recStart = -1
    const meshUse = m()
    const meshWire = (await wchar()) - w0
    const d = delta(before, snapshot(mesh))
    const meshLat = perReading.summary()
    const batchLat = perBatch.summary()
    progress(`mesh: ${written} readings in ${Math.round(writeMs)} ms, ${frames.length} frames, ${seen}/${expected} deliveries, p50 ${meshLat.p50} ms p99 ${meshLat.p99} ms; ELU ${meshUse.elu}, other processes ${meshUse.otherCores} cores`)

    // ---- the raw baseline: the same frames (sizes, times) as plain bytes on RAW_TOPIC
    const rawPub = raw[pub].node.services.pubsub
    const rawOthers = raw.filter((_, i) => i !== pub)
    // Weighted by the readings each frame carried, so that the quantiles compare with the mesh's.
    const rawLat = new Samples(frames.length * rawOthers.length)
    const rawFrameLat = new Samples(frames.length * rawOthers.length)
    let rawSeen = 0
    let warm = 0
    for (const p of rawOthers) {
      p.node.services.pubsub.topicValidators.set(RAW_TOPIC, (_peer, msg) => {
        const now = performance.now()
        const view = new DataView(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength)
        const t = view.getFloat64(0)
        if (t < 0) {
          warm++
        } else {
          const f = frames[view.getUint32(8)]
          rawLat.add(now - t, f.readings)
          rawFrameLat.add(now - t)
          rawSeen++
        }
        return ACCEPT
      })
    }
    const fill = prng(11)
    const payload = (size: number, t: number, index: number): Uint8Array => {
      const b = new Uint8Array(Math.max(16, size))
      for (let i = 16; i < b.length; i++) b[i] = Math.floor(fill() * 256)
      const view = new DataView(b.buffer)
      view.setFloat64(0, t)
      view.setUint32(8, index)
      return b
    }
    for (let k = 0; k < 20; k++) {
      await rawPub.publish(RAW_TOPIC, payload(100, -1, 0))
      await sleep(10)
    }
    await waitFor('the raw warm-up', () => warm >= 20 * rawOthers.length, 15_000)
    const rw0 = await wchar()
    const rm = meter()
    const rstart = performance.now()
    await new Promise<void>(resolve => {
      let i = 0
      const next = (): void => {
        while (i < frames.length && performance.now() - rstart >= frames[i].t) {
          const f = frames[i]
          rawPub.publish(RAW_TOPIC, payload(f.size, performance.now(), i)).catch(err => { progress(`raw publish failed: ${String(err)}`) })
          i++
        }
        if (i >= frames.length) resolve()
        else setTimeout(next, Math.max(0, frames[i].t - (performance.now() - rstart)))
      }
      next()
    })
    const rawExpected = frames.length * rawOthers.length
    await drain('the raw deliveries', () => rawSeen, rawExpected)
    const rawUse = rm()
    const rawWire = (await wchar()) - rw0
    const rawL = rawLat.summary()
    const rawF = rawFrameLat.summary()
    progress(`raw: ${frames.length} frames, ${rawSeen}/${rawExpected} deliveries, p50 ${rawL.p50} ms p99 ${rawL.p99} ms; ELU ${rawUse.elu}, other processes ${rawUse.otherCores} cores`)
    if (Math.max(meshUse.otherCores, rawUse.otherCores) > 0.25) progress('warning: other processes used the CPU during this run; its latencies are noisy')

    const frameBytes = frames.reduce((n, f) => n + f.size, 0)
    const fl = flushStage.summary()
    const net = netStage.summary()
    const ap = applyStage.summary()
    return {
      bench: 'mesh-propagation',
      peers: PEERS,
      ratePerSec: rate,
      seconds,
      readings: written,
      achievedPerSec: Math.round(written / writeMs * 1000),
      p50Ms: meshLat.p50,
      p99Ms: meshLat.p99,
      maxMs: meshLat.max,
      rawP50Ms: rawL.p50,
      rawP99Ms: rawL.p99,
      rawMaxMs: rawL.max,
      frames: frames.length,
      delivered: round(seen / expected, 4),
      minPeerDelivered: round(Math.min(...perPeer) / written, 4),
      rawDelivered: round(rawSeen / rawExpected, 4),
      batchP50Ms: batchLat.p50,
      batchP99Ms: batchLat.p99,
      rawFrameP50Ms: rawF.p50,
      rawFrameP99Ms: rawF.p99,
      flushP50Ms: fl.p50,
      flushP99Ms: fl.p99,
      netP50Ms: net.p50,
      netP99Ms: net.p99,
      applyP50Ms: ap.p50,
      applyP99Ms: ap.p99,
      applyMaxMs: ap.max,
      schedLagP99Ms: schedLag.summary().p99,
      applyCores: round(applyDuringWrites / writeMs, 3),
      putCores: round(putTotal / writeMs, 3),
      meanFrameBytes: Math.round(frameBytes / Math.max(1, frames.length)),
      maxFrameBytes: Math.max(0, ...frames.map(f => f.size)),
      tickMs: TICK_MS,
      publisherDegree: adj[pub].size,
      maxHops: maxHops(adj, pub),
      otherFramesOut: d.framesOut - frames.length,
      cascadeSyncs: d.cascadeSyncs,
      syncRounds: d.syncRounds,
      syncBytes: d.syncBytesOut,
      wireMB: round(meshWire / 2 ** 20, 2),
      rawWireMB: round(rawWire / 2 ** 20, 2),
      elu: meshUse.elu,
      cpuCores: meshUse.cpuCores,
      otherCores: meshUse.otherCores,
      rawElu: rawUse.elu,
      rawCpuCores: rawUse.cpuCores,
      rawOtherCores: rawUse.otherCores,
      stealCores: round(Math.max(meshUse.stealCores, rawUse.stealCores), 2)
    }
  } finally {
    await Promise.all([...mesh, ...raw].map(async p => p.stop().catch(() => {})))
  }
}

// ------------------------------------------------------------------ mesh-heal

/** FNV-1a, two 32-bit lanes. */
function hash2 (s: string): [number, number] {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 16777619)
    h2 = Math.imul(h2 ^ c, 2246822519)
  }
  return [h1 >>> 0, h2 >>> 0]
}

/** An order-free digest of a view (xor of the hashes of sensor/t/writer), kept up to date from 'change' events. */
class ViewDigest {
  h1 = 0
  h2 = 0
  toggle (sensor: string, t: string, writer: string): void {
    const [a, b] = hash2(`${sensor}\u0000${t}\u0000${writer}`)
    this.h1 = (this.h1 ^ a) >>> 0
    this.h2 = (this.h2 ^ b) >>> 0
  }

  equals (o: ViewDigest): boolean { return this.h1 === o.h1 && this.h2 === o.h2 }
}

/** The full view (sorted sensors, winner t and writer), to confirm the digests at the end. */
function fullView (p: MeshPeer): string {
  const r = p.region(REGION)
  return r.list().map(s => `${s}|${r.winner(s)?.t}|${r.winner(s)?.writer}`).join('\n')
}

interface HealOptions { links: number, sensors: number, writes: number, syncIntervalMs: number }

async function heal (o: HealOptions): Promise<Record<string, unknown>> {
  const links = o.links
  const init: Omit<MeshPeerInit, 'regions'> = {
    syncIntervalMs: o.syncIntervalMs,
    // No maintenance timer: compaction still runs inline on writes, but none is started by the
    // timer after the heal (its frames would count as heal traffic).
    region: { maintenanceIntervalMs: 0 }
  }
  progress(`mesh-heal (${links} link${links > 1 ? 's' : ''}): starting 2 + 2 peers`)
  const a0 = await createMeshPeer({ ...init, regions: [REGION] })
  const b0 = await createMeshPeer({ ...init, regions: [REGION] })
  // Partition first: the groups never see each other until the heal.
  const ban = (x: MeshPeer, y: MeshPeer): void => { x.ban(y.peerId); y.ban(x.peerId) }
  ban(a0, b0)
  const a1 = await createMeshPeer({ ...init, regions: [REGION], bootstrap: a0.addrs() })
  const b1 = await createMeshPeer({ ...init, regions: [REGION], bootstrap: b0.addrs() })
  ban(a0, b1); ban(a1, b0); ban(a1, b1)
  const all = [a0, a1, b0, b1]
  try {
    const digests = all.map(() => new ViewDigest())
    let onChange = (): void => {}
    all.forEach((p, i) => {
      p.region(REGION).on('change', (c: Change) => {
        if (c.old !== undefined) digests[i].toggle(c.sensor, c.old.t, c.old.writer)
        if (c.new !== undefined) digests[i].toggle(c.sensor, c.new.t, c.new.writer)
        onChange()
      })
    })
    const pair = [[0, 1], [2, 3]]
    await waitFor('gossip meshes in both groups', () => pair.every(([i, j]) =>
      meshPeersOf(all[i], TOPIC).includes(all[j].peerId) &&
      meshPeersOf(all[j], TOPIC).includes(all[i].peerId)), 30_000)

    // Each group's writer: 100k writes over 10k shared sensors, in batches, interleaved.
    const sensors = Array.from({ length: o.sensors }, (_, i) => `line-${i % 50}/sensor-${i}`)
    const rndA = prng(21)
    const rndB = prng(22)
    const t0 = performance.now()
    for (let w = 0; w < o.writes; w += HEAL_BATCH) {
      for (const [p, rnd] of [[a0, rndA], [b0, rndB]] as const) {
        const batch = new Array<{ sensor: string, value: number }>(HEAL_BATCH)
        for (let j = 0; j < HEAL_BATCH; j++) batch[j] = { sensor: sensors[Math.floor(rnd() * o.sensors)], value: Math.round(rnd() * 1e6) / 1e3 }
        p.region(REGION).putMany(batch)
      }
      await new Promise<void>(resolve => { setImmediate(resolve) })
      if (w % 20_000 === 0) await sleep(TICK_MS)
    }
    progress(`wrote 2 × ${o.writes} readings in ${Math.round(performance.now() - t0)} ms; waiting for each group to converge`)
    const svEqual = (x: MeshPeer, y: MeshPeer): boolean =>
      Buffer.from(x.region(REGION).encodeStateVector()).equals(y.region(REGION).encodeStateVector())
    await waitFor('each group to converge', () => digests[0].equals(digests[1]) && digests[2].equals(digests[3]) &&
      svEqual(a0, a1) && svEqual(b0, b1), 60_000, 50)
    await sleep(500)
    if (fullView(a0) !== fullView(a1) || fullView(b0) !== fullView(b1)) throw new Error('a group did not converge internally')
    if (digests[0].equals(digests[2])) throw new Error('the groups already agree: no conflicts to heal')

    // What each side lacks, compacted: the least a heal has to move.
    const aToB = a0.region(REGION).encodeStateAsUpdate(b0.region(REGION).encodeStateVector()).length
    const bToA = b0.region(REGION).encodeStateAsUpdate(a0.region(REGION).encodeStateVector()).length
    // Every peer must receive what it lacks of the other group.
    let minimal = 0
    for (const p of [a0, a1]) minimal += b0.region(REGION).encodeStateAsUpdate(p.region(REGION).encodeStateVector()).length
    for (const p of [b0, b1]) minimal += a0.region(REGION).encodeStateAsUpdate(p.region(REGION).encodeStateVector()).length
    const regionStats = all.map(p => p.region(REGION).stats())
    progress(`groups converged; deltas A→B ${aToB} B, B→A ${bToA} B; healing over ${links} link(s)`)

    // Heal: allow both ways, then dial a0→b0 (and a1→b1).
    const before = snapshot(all)
    const w0 = await wchar()
    const m = meter()
    let convergedAt = -1
    const check = (): void => {
      if (convergedAt < 0 && digests.every(d => d.equals(digests[0]))) convergedAt = performance.now()
    }
    onChange = check
    const healAt = performance.now()
    for (const x of [a0, a1]) for (const y of [b0, b1]) { x.allow(y.peerId); y.allow(x.peerId) }
    const dials: Array<Promise<unknown>> = [a0.node.dial(b0.node.getMultiaddrs()[0])]
    if (links > 1) dials.push(a1.node.dial(b1.node.getMultiaddrs()[0]))
    await Promise.all(dials)
    const dialMs = performance.now() - healAt
    await waitFor('the healed views to agree', () => { check(); return convergedAt >= 0 }, 120_000, 5)
    const convergeMs = convergedAt - healAt
    const atConverge = delta(before, snapshot(all))
    const use = m()
    // Let the rounds in flight finish: until the counters are still for 500 ms (at most 10 s).
    {
      let last = JSON.stringify(snapshot(all))
      let lastChange = performance.now()
      await waitFor('the heal traffic to stop', () => {
        const now = JSON.stringify({ ...snapshot(all), syncRounds: 0 })
        if (now !== last) { last = now; lastChange = performance.now() }
        return performance.now() - lastChange > 500
      }, 10_000, 50).catch(() => 0)
    }
    const d = delta(before, snapshot(all))
    const wire = (await wchar()) - w0
    const views = all.map(fullView)
    const converged = views.every(v => v === views[0])
    // An anti-entropy round between two converged peers: what it costs when there is nothing to send.
    const idle = await a0.syncWith(a1.peerId)
    progress(`converged in ${Math.round(convergeMs)} ms; ${d.syncBytesOut + d.frameBytesOut} bytes sent (minimal ${minimal})`)
    return {
      bench: 'mesh-heal',
      peers: 4,
      links,
      writesPerGroup: o.writes,
      sensors: o.sensors,
      syncIntervalMs: o.syncIntervalMs,
      convergeMs: Math.round(convergeMs),
      dialMs: Math.round(dialMs),
      bytes: d.syncBytesOut + d.frameBytesOut,
      minimalBytes: minimal,
      bytesRatio: round((d.syncBytesOut + d.frameBytesOut) / minimal, 2),
      twoDeltaBytes: aToB + bToA,
      minimalAtoB: aToB,
      minimalBtoA: bToA,
      syncBytes: d.syncBytesOut,
      frameBytes: d.frameBytesOut,
      frameBytesDelivered: d.frameBytesIn,
      framesOut: d.framesOut,
      cascadeSyncs: d.cascadeSyncs,
      oversizedUpdates: d.oversizedUpdates,
      syncRoundsAtConverge: atConverge.syncRounds,
      syncFailures: d.syncFailures,
      bytesAtConverge: atConverge.syncBytesOut + atConverge.frameBytesOut,
      wireMB: round(wire / 2 ** 20, 2),
      idleSyncBytes: idle.bytesOut + idle.bytesIn,
      sensorsLive: regionStats[0].sensors,
      ownLogReadings: [regionStats[0].ownLogReadings, regionStats[2].ownLogReadings],
      converged,
      elu: use.elu,
      cpuCores: use.cpuCores,
      otherCores: use.otherCores,
      stealCores: use.stealCores
    }
  } finally {
    await Promise.all(all.map(async p => p.stop().catch(() => {})))
  }
}

// ------------------------------------------------------------------ driver

async function child (args: string[]): Promise<void> {
  const bench = args[1]
  const arg = (name: string, dflt: number): number => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt
  const line = bench === 'mesh-propagation'
    ? await propagation(arg('--rate', 1000), arg('--seconds', 5))
    : await heal({ links: arg('--links', 1), sensors: arg('--sensors', SENSORS), writes: arg('--writes', HEAL_WRITES), syncIntervalMs: arg('--sync-ms', HEAL_SYNC_MS) })
  process.stdout.write(JSON.stringify(line) + '\n')
  // libp2p leaves sockets and timers behind for a moment after stop(): do not wait for them.
  process.exit(0)
}

async function runChild (job: Job): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', job.bench, ...job.args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    const timer = setTimeout(() => { p.kill('SIGKILL') }, 10 * 60_000)
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.on('error', reject)
    p.on('exit', code => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`${job.label} exited with ${code}`))
      else resolve(JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>)
    })
  })
}

function gitCommit (): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return undefined
  }
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  if (args[0] === '--child') return child(args)
  const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 5
  if (!(seconds > 0 && seconds <= 600)) throw new Error('--seconds must be between 0 and 600')
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined
  const num = (name: string, dflt: number): number => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt
  const healArgs = ['--sensors', String(num('--heal-sensors', SENSORS)), '--writes', String(num('--heal-writes', HEAL_WRITES)), '--sync-ms', String(num('--heal-sync-ms', HEAL_SYNC_MS))]
  const jobs: Job[] = [
    { bench: 'mesh-propagation', args: ['--rate', '1000', '--seconds', String(seconds)], label: 'mesh-propagation 1000/s' },
    { bench: 'mesh-propagation', args: ['--rate', '10000', '--seconds', String(seconds)], label: 'mesh-propagation 10000/s' },
    { bench: 'mesh-heal', args: ['--links', '1', ...healArgs], label: 'mesh-heal, 1 link' },
    { bench: 'mesh-heal', args: ['--links', '2', ...healArgs], label: 'mesh-heal, 2 links' }
  ].filter(j => only === undefined || j.bench === only)
  if (jobs.length === 0) throw new Error(`unknown scenario ${only}`)
  const started = performance.now()
  const load = loadavg().map(x => round(x, 2))
  const lines: Array<Record<string, unknown>> = []
  for (const job of jobs) {
    progress(`running ${job.label}`)
    const line = await runChild(job)
    lines.push(line)
    process.stdout.write(JSON.stringify(line) + '\n')
  }
  const cpu = cpus()
  await mkdir(join(here, 'results'), { recursive: true })
  await writeFile(join(here, 'results', 'mesh.json'), JSON.stringify({
    date: new Date().toISOString(),
    node: process.version,
    commit: gitCommit(),
    machine: { cores: cpu.length, cpu: cpu[0]?.model, memoryMB: Math.round(totalmem() / 2 ** 20), loadavgAtStart: load },
    seconds,
    durationS: round((performance.now() - started) / 1000),
    results: lines
  }, null, 2) + '\n')
  progress(`done in ${Math.round((performance.now() - started) / 1000)} s`)
}

await main()
