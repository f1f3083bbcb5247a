/**
 * bench:mesh — replication over the libp2p gossip mesh, all peers on 127.0.0.1 in one process per
 * scenario (one clock for latencies), against raw gossipsub measured in the same run.
 *
 *   mesh-propagation  10 peers in one region, a random mesh (each peer dials 2-3 earlier ones), in
 *                     worker threads (bench/mesh-worker.ts). One peer writes readings at a fixed
 *                     offered rate (putMany per timer tick); latency is put → visible (the frame
 *                     applied) at each of the 9 others. The raw baseline: 10 more peers, same
 *                     settings, topology and threads, replaying the mesh run's frames (same
 *                     sizes, same times) as plain bytes on another topic, publish → receive;
 *                     then the raw run once more (`rawRepeat*`): how far two runs of the same
 *                     work differ, the noise against which to read the mesh/raw ratio. These
 *                     three runs make a round; the line pools `--rounds` rounds (default 5).
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
 *   npm run bench:mesh -- --rounds 1            one mesh run and one raw run per rate, as before 2026-11-30
 *   npm run bench:mesh -- --threads 1           all propagation peers on one thread
 *   npm run bench:mesh -- --only mesh-heal      one scenario
 *   npm run bench:mesh -- --warmup 0            no unmeasured load before the propagation runs (default 2 s)
 *   node bench/mesh.ts --child mesh-propagation --rate 10000 --raw-work-us 1
 *                                               one line, the raw peers spinning 1 µs per reading of
 *                                               each frame (a synthetic apply): how much per-reading
 *                                               work the transport leaves room for
 *   node bench/mesh.ts --child mesh-propagation --rate 10000 --mesh-no-apply
 *                                               one line, the mesh peers' validators accepting each
 *                                               measured frame without applying it (the warm-up's frames
 *                                               are applied), and no periodic anti-entropy: the mesh's
 *                                               latency with a free apply (the writer's work, the flush
 *                                               and the transport); `viewsEqual` is false
 *   npm run bench:mesh -- --only mesh-heal --heal-sensors 30000 --heal-writes 300000 --heal-sync-ms 10000
 *                                               a heal whose deltas are over the 1 MiB frame limit
 *
 * Peers run in one process on purpose: on a 2-core machine, the same scenario with each peer in its
 * own process was several times slower at 10k readings/s (10 processes contending for 2 cores);
 * two worker threads match the two cores (bench/README.md).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { createMeshPeer, type MeshPeer, type MeshPeerInit, type MeshStats } from '@edge-mesh/mesh'
import type { Change } from '@edge-mesh/region-state'
import { prng } from '@edge-mesh/testkit'
import { REGION, SENSORS, TICK_MS, TOPIC, type FrameRecord, type Kind, type ReceiverReport } from './mesh-worker.ts'
import { BenchRun, lastJsonLine, round, sleep } from './lib.ts'

const PEERS = 10
/** Anti-entropy period in the heal scenario (the default, 10 s, in the propagation one). */
const HEAL_SYNC_MS = 1000
const HEAL_WRITES = 100_000
const HEAL_BATCH = 100
/**
 * Seconds of unmeasured load before each propagation run (`--warmup`), mesh and raw alike: the
 * writer at the run's rate (the raw run: the same frames replayed). V8 compiles a function with its
 * optimising tiers only after it has run many times, on background threads that share the cores
 * with the peers; the raw run, which comes second, reuses the transport code the mesh run got
 * compiled, while the mesh run would pay for compiling it and its own code during measurement.
 */
const WARMUP_SECONDS = 2
/**
 * Rounds of a propagation scenario (`--rounds`): each a mesh run of `--seconds`, then the raw
 * baseline replaying that run's frames, then the raw run once more; latencies are pooled over the
 * rounds. A single 5 s run's p99 is set by the few worst stalls of a shared machine in those
 * seconds: two raw runs of the same frames differed in p99 by up to 2.7x (bench/README.md).
 * Alternating the sides in rounds gives both the same spread of moments, and more samples.
 */
const ROUNDS = 5
const WARMUP_SETTLE_MS = 500

interface Job { bench: string, args: string[], label: string }

const run = new BenchRun('mesh')
const progress = run.progress

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

/** Garbage-collection pauses, [start, ms], of every peer thread, merged where they overlap. */
function pauseUnion (pauses: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const [start, ms] of [...pauses].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1)
    if (last !== undefined && start <= last[0] + last[1]) last[1] = Math.max(last[1], start + ms - last[0])
    else out.push([start, ms])
  }
  return out
}

/**
 * The share of the slowest 1 % of deliveries' time (publish → visible, per frame and peer) during
 * which a peer thread was collecting garbage: how much of the tail the collector explains.
 */
function tailGcShare (deliveries: Array<[number, number]>, pauses: Array<[number, number]>): number {
  const slow = [...deliveries].sort((a, b) => (b[1] - b[0]) - (a[1] - a[0])).slice(0, Math.max(1, Math.ceil(deliveries.length / 100)))
  const union = pauseUnion(pauses)
  let inGc = 0
  let total = 0
  for (const [from, to] of slow) {
    total += to - from
    for (const [start, ms] of union) inGc += Math.max(0, Math.min(to, start + ms) - Math.max(from, start))
  }
  return total > 0 ? round(inGc / total, 2) : 0
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
 * CPU seconds of this process's V8 helper threads (Linux names them `V8Worker`: concurrent and
 * parallel garbage collection, background compilation), from /proc/self/task (clock ticks of 1/100 s).
 */
function v8HelperCpu (): number {
  let ticks = 0
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        if (!readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('V8')) continue
        const f = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
        const fields = f.slice(f.lastIndexOf(')') + 2).split(' ')
        ticks += Number(fields[11]) + Number(fields[12])
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return NaN
  }
  return ticks / 100
}

/**
 * Over a section of the run: event-loop utilisation, this process's CPU (all threads, in cores),
 * the part of it used by V8's helper threads (`v8Cores`), and what the rest of the machine used
 * meanwhile (`otherCores`: other processes, which make the numbers noisy; `stealCores`: taken by
 * the hypervisor).
 */
function meter (): () => { elu: number, cpuCores: number, v8Cores: number, otherCores: number, stealCores: number } {
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  const v80 = v8HelperCpu()
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
      v8Cores: round((v8HelperCpu() - v80) / wall, 2),
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

// ------------------------------------------------------------------ mesh-propagation

/** Latency samples, each with a weight (the readings it stands for). */
class Samples {
  private lat: Float64Array
  private w: Float64Array
  n = 0
  constructor (capacity: number = 1024) {
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

  addAll (lat: Float64Array, weight?: Float64Array): void {
    for (let i = 0; i < lat.length; i++) this.add(lat[i], weight?.[i] ?? 1)
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
async function drain (what: string, count: () => Promise<number>, expected: number, quietMs: number = 3000): Promise<number> {
  let last = await count()
  let lastChange = performance.now()
  const t0 = performance.now()
  while (last < expected && performance.now() - lastChange <= quietMs && performance.now() - t0 < 30_000) {
    await sleep(20)
    const c = await count()
    if (c !== last) { last = c; lastChange = performance.now() }
  }
  if (last < expected) progress(`${what}: ${last}/${expected} after waiting`)
  return last
}

/** A worker thread hosting some of the peers (bench/mesh-worker.ts), driven by request and answer. */
class PeerHost {
  private readonly worker: Worker
  private next = 1
  private readonly waiting = new Map<number, { op: string, resolve: (r: Record<string, unknown>) => void, reject: (e: Error) => void }>()
  constructor () {
    this.worker = new Worker(new URL('./mesh-worker.ts', import.meta.url), { workerData: { benchMeshWorker: true } })
    this.worker.on('message', (m: { id: number, ok: boolean, error?: string } & Record<string, unknown>) => {
      const w = this.waiting.get(m.id)
      this.waiting.delete(m.id)
      if (m.ok) w?.resolve(m)
      else w?.reject(new Error(`worker op ${w.op} failed: ${m.error ?? '(no error text)'}`))
    })
    this.worker.on('error', err => { for (const w of this.waiting.values()) w.reject(err); this.waiting.clear() })
  }

  async call<T = Record<string, unknown>> (op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { op, resolve: resolve as (r: Record<string, unknown>) => void, reject })
      this.worker.postMessage({ id, op, ...args })
    })
  }

  async terminate (): Promise<void> { await this.worker.terminate() }
}

type Use = ReturnType<ReturnType<typeof meter>>

async function propagation (rate: number, seconds: number, rounds: number, threads: number, rawWorkUs: number = 0, warmupSeconds: number = WARMUP_SECONDS, meshNoApply: boolean = false): Promise<Record<string, unknown>> {
  const rnd = prng(7)
  const topo = randomMesh(PEERS, rnd)
  const adj = neighbours(topo)
  const degree = Object.fromEntries(adj.map((s, i) => [i, s.size]))
  // The writer: the last peer, which dialled 2 or 3 others and was dialled by none.
  const pub = PEERS - 1
  const hosts = Array.from({ length: threads }, () => new PeerHost())
  const hostOf = (i: number): PeerHost => hosts[i % threads]
  const all = async <T>(op: string, args: Record<string, unknown> = {}): Promise<T[]> => Promise.all(hosts.map(async h => h.call<T>(op, args)))
  const sum = async (kind: Kind): Promise<number> => (await all<{ seen: number }>('seen', { kind })).reduce((n, r) => n + r.seen, 0)
  const stats = async (kind: Kind): Promise<Record<string, number>> => {
    const out: Record<string, number> = {}
    for (const r of await all<{ stats: Record<string, number> }>('stats', { kind })) for (const [k, v] of Object.entries(r.stats)) out[k] = (out[k] ?? 0) + v
    return out
  }
  const maxElu = async (): Promise<number> => {
    const e = (await all<{ elu: number }>('elu')).map(r => round(r.elu, 2))
    progress(`event-loop utilisation per worker: ${e.join(', ')}`)
    return Math.max(...e)
  }
  progress(`mesh-propagation ${rate}/s: ${PEERS} mesh peers and ${PEERS} raw peers in ${threads} worker thread(s); topology ${JSON.stringify(topo)}`)
  try {
    for (const kind of ['mesh', 'raw'] as const) {
      const addrs: string[] = []
      for (let i = 0; i < PEERS; i++) {
        addrs.push((await hostOf(i).call<{ addr: string }>('start', { kind, index: i, bootstrap: topo[i].map(j => addrs[j]), noAntiEntropy: kind === 'mesh' && meshNoApply })).addr)
      }
    }
    const formStart = performance.now()
    await all('formed', { kind: 'mesh', degree })
    await all('formed', { kind: 'raw', degree })
    progress(`gossip meshes formed (${Math.round(performance.now() - formStart)} ms)`)

    // ---- warm-up
    const writerHost = hostOf(pub)
    // Writes that must reach everyone before the clock starts.
    for (let k = 0; k < 20; k++) {
      await writerHost.call('put', { index: pub, sensor: `warm/${k}`, value: -1 })
      await sleep(10)
    }
    {
      const t0 = performance.now()
      while (!(await all<{ present: boolean }>('has', { sensor: 'warm/19', except: pub })).every(r => r.present)) {
        if (performance.now() - t0 > 15_000) throw new Error('timed out waiting for the warm-up writes')
        await sleep(20)
      }
    }
    // Unmeasured load first (see WARMUP_SECONDS); its frames are replayed the same way before the first raw run.
    let warmFrames: Array<{ t: number, size: number }> = []
    if (warmupSeconds > 0) {
      warmFrames = (await writerHost.call<{ frames: Array<{ t: number, size: number }> }>('warm', { writer: pub, rate, seconds: warmupSeconds })).frames
      await sleep(WARMUP_SETTLE_MS)
    }

    // ---- the rounds: a mesh run, then the raw baseline replaying its frames, then the raw run once more
    // Pooled over the rounds. put → visible, per reading: a frame's readings are visible when the
    // receiver's validator returns (it applies the frame and calls the 'change' listeners); each
    // putMany batch in the frame counts for its readings. Stages: putMany → publish (the flush
    // window), publish → the receiver's validator (gossipsub and the transport, what the raw
    // baseline measures), and the validator itself (decode, check, apply), per (frame, peer).
    const perReading = new Samples(rounds * seconds * rate / 50 * (PEERS - 1))
    const perBatch = new Samples()
    const netStage = new Samples()
    const applyStage = new Samples()
    const flushStage = new Samples()
    const schedLag = new Samples()
    const rawLat = new Samples()
    const rawFrameLat = new Samples()
    const repeatLat = new Samples()
    const deliveries: Array<[number, number]> = []
    const perPeer = new Map<number, number>()
    const meshGc: Array<[number, number]> = []
    const rawGc: Array<[number, number]> = []
    const roundP99 = { mesh: [] as number[], raw: [] as number[], repeat: [] as number[] }
    const use = { mesh: [] as Use[], raw: [] as Use[] }
    const elus = { mesh: [] as number[], raw: [] as number[], repeat: [] as number[] }
    let written = 0
    let writeMs = 0
    let putMs = 0
    let applyMs = 0
    let seen = 0
    let rawSeen = 0
    let rawExpected = 0
    let meshWire = 0
    let rawWire = 0
    let msgsIn = 0
    let rawMsgsIn = 0
    const frames: FrameRecord[] = []
    const before = await stats('mesh')
    // Armed after the warm-up: with --mesh-no-apply the warm-up's frames are still applied, so that
    // the receivers hold views as full as in a plain run and only the measured applies are left out.
    await all('arm', { kind: 'mesh', writer: pub, noApply: meshNoApply })

    /** One raw run: `frames` replayed, publish → receive at every other raw peer. */
    const rawRun = async (what: string, replayed: FrameRecord[], start: number) => {
      await all('resetSeen', { kind: 'raw' })
      const wire0 = await wchar()
      const m = meter()
      await all('record', { on: true })
      await hostOf(pub).call('replay', { writer: pub, frames: replayed.map(f => ({ t: f.at - start, size: f.size })) })
      const expected = replayed.length * (PEERS - 1)
      const got = await drain(`the ${what} deliveries`, async () => sum('raw'), expected)
      const elu = await maxElu()
      await all('record', { on: false })
      const cpu = m()
      const wire = (await wchar()) - wire0
      const collected = await all<{ reports: ReceiverReport[], gc: Array<[number, number]> }>('collect', { kind: 'raw' })
      const reports = collected.flatMap(r => r.reports)
      // Weighted by the readings each frame carried, so that the quantiles compare with the mesh's.
      const lat = new Samples()
      for (const r of reports) lat.addAll(r.lat, r.weight)
      const l = lat.summary()
      progress(`${what}: ${replayed.length} frames, ${got}/${expected} deliveries, p50 ${l.p50} ms p99 ${l.p99} ms; max ELU ${elu}, other processes ${cpu.otherCores} cores`)
      return { got, expected, elu, cpu, wire, reports, gc: collected.flatMap(r => r.gc), lat: l }
    }

    for (let k = 0; k < rounds; k++) {
      const tag = rounds > 1 ? ` (round ${k + 1} of ${rounds})` : ''
      // -- the mesh run
      await all('resetSeen', { kind: 'mesh' })
      const w0 = await wchar()
      const m = meter()
      await all('record', { on: true })
      // Each round writes another sequence of sensors.
      const w = await writerHost.call<{ written: number, writeMs: number, putMs: number, schedLag: Float64Array, flush: Float64Array, frames: FrameRecord[], start: number }>('write', { writer: pub, rate, seconds, seed: 7 + k })
      applyMs += (await all<{ applyMs: number }>('seen', { kind: 'mesh' })).reduce((n, r) => n + r.applyMs, 0)
      await drain(`the mesh deliveries${tag}`, async () => sum('mesh'), w.frames.length * (PEERS - 1))
      elus.mesh.push(await maxElu())
      await all('record', { on: false })
      use.mesh.push(m())
      meshWire += (await wchar()) - w0
      const collected = await all<{ reports: ReceiverReport[], gc: Array<[number, number]> }>('collect', { kind: 'mesh' })
      for (const c of collected) meshGc.push(...c.gc)
      const frameByKey = new Map(w.frames.map(f => [f.key, f]))
      const thisRound = new Samples()
      let seenNow = 0
      for (const r of collected.flatMap(c => c.reports)) {
        msgsIn += r.msgsIn
        let got = 0
        for (const [key, t0, ms] of r.validations) {
          const f = frameByKey.get(key)
          if (f === undefined) continue
          deliveries.push([f.at, t0 + ms])
          got += f.readings
          for (const [putAt, n] of f.batches) {
            perReading.add(t0 + ms - putAt, n)
            thisRound.add(t0 + ms - putAt, n)
            perBatch.add(t0 + ms - putAt)
          }
          netStage.add(t0 - f.at)
          applyStage.add(ms)
        }
        seenNow += got
        perPeer.set(r.index, (perPeer.get(r.index) ?? 0) + got)
      }
      seen += seenNow
      written += w.written
      writeMs += w.writeMs
      putMs += w.putMs
      frames.push(...w.frames)
      flushStage.addAll(w.flush)
      schedLag.addAll(w.schedLag)
      const roundLat = thisRound.summary()
      roundP99.mesh.push(roundLat.p99)
      progress(`mesh${tag}: ${w.written} readings in ${Math.round(w.writeMs)} ms, ${w.frames.length} frames, ${seenNow}/${w.written * (PEERS - 1)} readings delivered, p50 ${roundLat.p50} ms p99 ${roundLat.p99} ms; max ELU ${elus.mesh.at(-1)}, other processes ${use.mesh.at(-1)?.otherCores} cores`)

      // -- the raw baseline: the same frames (sizes, times) as plain bytes on RAW_TOPIC
      await all('arm', { kind: 'raw', writer: pub, readings: w.frames.map(f => f.readings), workUs: rawWorkUs })
      if (k === 0) {
        await hostOf(pub).call('replay', { writer: pub, warm: true })
        const t0 = performance.now()
        while ((await sum('raw')) < 20 * (PEERS - 1)) {
          if (performance.now() - t0 > 15_000) throw new Error('timed out waiting for the raw warm-up')
          await sleep(20)
        }
        if (warmFrames.length > 0) await hostOf(pub).call('replay', { writer: pub, frames: warmFrames })
      }
      // Every measured run starts half a second after the load before it ended, whichever side
      // that load was: neither inherits the other's collection work more than the other does.
      await sleep(WARMUP_SETTLE_MS)
      const raw = await rawRun(`raw${tag}`, w.frames, w.start)
      rawSeen += raw.got
      rawExpected += raw.expected
      rawWire += raw.wire
      elus.raw.push(raw.elu)
      use.raw.push(raw.cpu)
      rawGc.push(...raw.gc)
      roundP99.raw.push(raw.lat.p99)
      for (const r of raw.reports) { rawLat.addAll(r.lat, r.weight); rawFrameLat.addAll(r.batchLat); rawMsgsIn += r.msgsIn }

      // The raw run once more, the same frames: how far two runs of the same work differ here (the
      // measurement's own noise, against which to read p99Ms / rawP99Ms).
      await sleep(WARMUP_SETTLE_MS)
      const repeated = await rawRun(`raw, repeated${tag}`, w.frames, w.start)
      elus.repeat.push(repeated.elu)
      roundP99.repeat.push(repeated.lat.p99)
      for (const r of repeated.reports) repeatLat.addAll(r.lat, r.weight)
      if (k + 1 < rounds) await sleep(WARMUP_SETTLE_MS)
    }
    const otherCores = Math.max(...use.mesh.map(u => u.otherCores), ...use.raw.map(u => u.otherCores))
    if (otherCores > 0.25) progress('warning: other processes used the CPU during this run; its latencies are noisy')
    const d = await stats('mesh')
    const expected = written * (PEERS - 1)
    const digests = Object.values(Object.assign({}, ...(await all<{ digests: Record<string, string> }>('digest')).map(r => r.digests)) as Record<string, string>)
    const viewsEqual = digests.every(x => x === digests[0])
    const meshLat = perReading.summary()
    const batchLat = perBatch.summary()
    const rawL = rawLat.summary()
    const rawF = rawFrameLat.summary()
    const rep = repeatLat.summary()
    const frameBytes = frames.reduce((n, f) => n + f.size, 0)
    const fl = flushStage.summary()
    const net = netStage.summary()
    const ap = applyStage.summary()
    const mean = (us: Use[], k: keyof Use): number => round(us.reduce((n, u) => n + u[k], 0) / us.length, 2)
    if (rounds > 1) progress(`pooled over ${rounds} rounds: mesh p50 ${meshLat.p50} ms p99 ${meshLat.p99} ms; raw p50 ${rawL.p50} ms p99 ${rawL.p99} ms; raw repeated p99 ${rep.p99} ms`)
    return {
      bench: 'mesh-propagation',
      peers: PEERS,
      ratePerSec: rate,
      seconds,
      rounds,
      warmupSeconds,
      threads,
      readings: written,
      achievedPerSec: Math.round(written / writeMs * 1000),
      p50Ms: meshLat.p50,
      p99Ms: meshLat.p99,
      maxMs: meshLat.max,
      rawP50Ms: rawL.p50,
      rawP99Ms: rawL.p99,
      rawMaxMs: rawL.max,
      rawRepeatP50Ms: rep.p50,
      rawRepeatP99Ms: rep.p99,
      rawRepeatElu: Math.max(...elus.repeat),
      roundP99Ms: roundP99.mesh,
      rawRoundP99Ms: roundP99.raw,
      rawRepeatRoundP99Ms: roundP99.repeat,
      ...(rawWorkUs > 0 ? { rawWorkUs } : {}),
      ...(meshNoApply ? { meshNoApply } : {}),
      frames: frames.length,
      delivered: round(seen / expected, 4),
      viewsEqual,
      minPeerDelivered: round(Math.min(...perPeer.values()) / written, 4),
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
      applyCores: round(applyMs / writeMs, 3),
      putCores: round(putMs / writeMs, 3),
      meanFrameBytes: Math.round(frameBytes / Math.max(1, frames.length)),
      maxFrameBytes: Math.max(0, ...frames.map(f => f.size)),
      tickMs: TICK_MS,
      publisherDegree: adj[pub].size,
      maxHops: maxHops(adj, pub),
      otherFramesOut: (d.framesOut - before.framesOut) - frames.length,
      cascadeSyncs: d.cascadeSyncs - before.cascadeSyncs,
      syncRounds: d.syncRounds - before.syncRounds,
      syncBytes: d.syncBytesOut - before.syncBytesOut,
      wireMB: round(meshWire / 2 ** 20, 2),
      rawWireMB: round(rawWire / 2 ** 20, 2),
      msgsIn,
      rawMsgsIn,
      elu: Math.max(...elus.mesh),
      cpuCores: mean(use.mesh, 'cpuCores'),
      v8Cores: mean(use.mesh, 'v8Cores'),
      otherCores: mean(use.mesh, 'otherCores'),
      rawElu: Math.max(...elus.raw),
      rawCpuCores: mean(use.raw, 'cpuCores'),
      rawV8Cores: mean(use.raw, 'v8Cores'),
      rawOtherCores: mean(use.raw, 'otherCores'),
      gcMs: Math.round(meshGc.reduce((n, g) => n + g[1], 0)),
      rawGcMs: Math.round(rawGc.reduce((n, g) => n + g[1], 0)),
      tailGcShare: tailGcShare(deliveries, meshGc),
      stealCores: round(Math.max(...use.mesh.map(u => u.stealCores), ...use.raw.map(u => u.stealCores)), 2)
    }
  } finally {
    await Promise.all(hosts.map(async h => h.call('stop').catch(() => {})))
    await Promise.all(hosts.map(async h => h.terminate()))
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
    ? await propagation(arg('--rate', 1000), arg('--seconds', 5), arg('--rounds', ROUNDS), arg('--threads', 2), arg('--raw-work-us', 0), arg('--warmup', WARMUP_SECONDS), args.includes('--mesh-no-apply'))
    : await heal({ links: arg('--links', 1), sensors: arg('--sensors', SENSORS), writes: arg('--writes', HEAL_WRITES), syncIntervalMs: arg('--sync-ms', HEAL_SYNC_MS) })
  run.print(line)
  // libp2p leaves sockets and timers behind for a moment after stop(): do not wait for them.
  process.exit(0)
}

async function runChild (job: Job): Promise<Record<string, unknown>> {
  return await lastJsonLine(process.execPath, [fileURLToPath(import.meta.url), '--child', job.bench, ...job.args], job.label)
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  if (args[0] === '--child') return child(args)
  const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 5
  if (!(seconds > 0 && seconds <= 600)) throw new Error('--seconds must be between 0 and 600')
  const threads = args.includes('--threads') ? Number(args[args.indexOf('--threads') + 1]) : 2
  if (!(Number.isInteger(threads) && threads >= 1 && threads <= 10)) throw new Error('--threads must be an integer from 1 to 10')
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined
  const num = (name: string, dflt: number): number => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt
  const warmup = num('--warmup', WARMUP_SECONDS)
  if (!(warmup >= 0 && warmup <= 60)) throw new Error('--warmup must be between 0 and 60')
  const rounds = num('--rounds', ROUNDS)
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20)) throw new Error('--rounds must be an integer from 1 to 20')
  const healArgs = ['--sensors', String(num('--heal-sensors', SENSORS)), '--writes', String(num('--heal-writes', HEAL_WRITES)), '--sync-ms', String(num('--heal-sync-ms', HEAL_SYNC_MS))]
  const jobs: Job[] = [
    { bench: 'mesh-propagation', args: ['--rate', '1000', '--seconds', String(seconds), '--rounds', String(rounds), '--threads', String(threads), '--warmup', String(warmup)], label: 'mesh-propagation 1000/s' },
    { bench: 'mesh-propagation', args: ['--rate', '10000', '--seconds', String(seconds), '--rounds', String(rounds), '--threads', String(threads), '--warmup', String(warmup)], label: 'mesh-propagation 10000/s' },
    { bench: 'mesh-heal', args: ['--links', '1', ...healArgs], label: 'mesh-heal, 1 link' },
    { bench: 'mesh-heal', args: ['--links', '2', ...healArgs], label: 'mesh-heal, 2 links' }
  ].filter(j => only === undefined || j.bench === only)
  if (jobs.length === 0) throw new Error(`unknown scenario ${only}`)
  const lines: Array<Record<string, unknown>> = []
  for (const job of jobs) {
    progress(`running ${job.label}`)
    const line = await runChild(job)
    lines.push(line)
    run.print(line)
  }
  await run.save(lines, { seconds, rounds })
}

await main()
