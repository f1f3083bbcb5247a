/**
 * bench:state — region state over per-writer logs with compaction and LevelDB persistence,
 * against a plain Y.Map measured in the same run.
 *
 * Prints one JSON line per scenario on stdout (progress goes to stderr) and writes
 * bench/results/state.json. Each scenario runs in its own child process (node --expose-gc) so
 * heap figures do not mix.
 *
 *   npm run bench:state                      all scenarios
 *   npm run bench:state -- --quick           1/10 of the writes (a smoke run)
 *   npm run bench:state -- --only state-1w-10k
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import { createRegionState, type RegionState } from '@edge-mesh/region-state'
import { openPersistence, type BoundRegion, type Persistence } from '@edge-mesh/persistence'
import { prng } from '@edge-mesh/testkit'

interface Scenario {
  bench: string
  sensors: number
  writers: number
  writes: number
}

const SCENARIOS: Scenario[] = [
  { bench: 'state-baseline-ymap', sensors: 10_000, writers: 1, writes: 1_000_000 },
  { bench: 'state-1w-10k', sensors: 10_000, writers: 1, writes: 5_000_000 },
  { bench: 'state-3w-10k', sensors: 10_000, writers: 3, writes: 3_000_000 },
  { bench: 'state-1w-100k', sensors: 100_000, writers: 1, writes: 5_000_000 }
]
const BATCH = 100
const MB = 1024 * 1024
const here = dirname(fileURLToPath(import.meta.url))

const progress = (msg: string): void => { process.stderr.write(`[bench:state] ${msg}\n`) }

function gcHeapMB (): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  gc()
  gc()
  // The heap and what lives outside it: typed arrays (the view's table) and buffers.
  const m = process.memoryUsage()
  return (m.heapUsed + m.external) / MB
}

function structsOf (doc: Y.Doc): number {
  let n = 0
  for (const list of doc.store.clients.values()) n += list.length
  return n
}

async function dirMB (dir: string): Promise<number> {
  let total = 0
  for (const f of await readdir(dir)) total += (await stat(join(dir, f))).size
  return total / MB
}


const round = (x: number, d: number = 1): number => Math.round(x * 10 ** d) / 10 ** d

async function runBaseline (sc: Scenario): Promise<Record<string, unknown>> {
  const doc = new Y.Doc()
  const map = doc.getMap('r')
  const rnd = prng(1)
  const sensors = Array.from({ length: sc.sensors }, (_, i) => `sensor-${i}`)
  const t0 = performance.now()
  for (let w = 0; w < sc.writes; w += BATCH) {
    doc.transact(() => {
      for (let j = 0; j < BATCH; j++) map.set(sensors[Math.floor(rnd() * sc.sensors)], { v: rnd(), t: '019a8f3c2b1a0001', w: 'gw-a' })
    })
  }
  const dt = performance.now() - t0
  const heap = gcHeapMB()
  const structs = structsOf(doc)
  const update = Y.encodeStateAsUpdate(doc)
  const r0 = performance.now()
  Y.applyUpdate(new Y.Doc(), update)
  const reloadMs = performance.now() - r0
  return {
    bench: sc.bench,
    sensors: sc.sensors,
    writers: 1,
    writes: sc.writes,
    writesPerSec: Math.round(sc.writes / dt * 1000),
    heapMB1M: round(heap),
    heapMBEnd: round(heap),
    structs1M: structs,
    structsEnd: structs,
    maxCompactionPauseMs: 0,
    reloadMs: Math.round(reloadMs),
    diskMB: round(update.length / MB, 2),
    note: 'in memory; diskMB is the encoded state size'
  }
}

interface Replica {
  region: RegionState
  store: Persistence
  bound: BoundRegion
  dir: string
}

async function openReplica (dir: string, writer: string): Promise<Replica> {
  const store = await openPersistence({ path: dir })
  const region = createRegionState({ region: 'bench', writer, hlc: store.clock, maintenanceIntervalMs: 0 })
  const bound = await store.bind(region)
  return { region, store, bound, dir }
}

async function runLogs (sc: Scenario): Promise<Record<string, unknown>> {
  const root = await mkdtemp(join(tmpdir(), 'em-bench-state-'))
  try {
    const writerIds = Array.from({ length: sc.writers }, (_, i) => `12D3KooWBenchWriter${i}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`)
    const replicas: Replica[] = []
    for (let i = 0; i < sc.writers; i++) replicas.push(await openReplica(join(root, `r${i}`), writerIds[i]))
    // Exchange every local update with the other replicas at once (a perfect network).
    for (const a of replicas) {
      a.region.on('update', (u, local) => {
        if (!local) return
        for (const b of replicas) if (b !== a) b.region.applyUpdate(u)
      })
    }
    const rnd = prng(2)
    const sensors = Array.from({ length: sc.sensors }, (_, i) => `sensor-${i}`)
    const third = Math.floor(sc.sensors / sc.writers)
    const batch: Array<{ sensor: string, value: number }> = new Array(BATCH)
    let heapMB1M = 0
    let structs1M = 0
    let diskMB1M = 0
    let paused = 0
    const t0 = performance.now()
    let lastReport = t0
    for (let w = 0; w < sc.writes; w += BATCH) {
      const wi = (w / BATCH) % sc.writers
      const rep = replicas[wi]
      for (let j = 0; j < BATCH; j++) {
        // Each writer owns a share of the sensors; 5% of its writes go to any sensor (failover).
        const own = sc.writers === 1 || rnd() >= 0.05
        const k = own ? wi * third + Math.floor(rnd() * third) : Math.floor(rnd() * sc.sensors)
        batch[j] = { sensor: sensors[k], value: rnd() }
      }
      rep.region.putMany(batch)
      // Backpressure, as the gateway applies it: wait for LevelDB when the queue is long.
      if (rep.store.stats().queuedBytes > 8 * MB) await rep.bound.whenDurable()
      if (w + BATCH === 1_000_000 || (sc.writes < 1_000_000 && w + BATCH === sc.writes)) {
        const p0 = performance.now()
        for (const r of replicas) await r.bound.whenDurable()
        heapMB1M = gcHeapMB()
        structs1M = structsOf(replicas[0].region.doc)
        await replicas[0].bound.snapshot()
        await replicas[0].store.compactStorage()
        diskMB1M = await dirMB(replicas[0].dir)
        paused += performance.now() - p0
      }
      const now = performance.now()
      if (now - lastReport > 2000) {
        lastReport = now
        progress(`${sc.bench}: ${((w + BATCH) / 1e6).toFixed(1)}M / ${sc.writes / 1e6}M writes`)
      }
    }
    for (const r of replicas) await r.bound.whenDurable()
    const dt = performance.now() - t0 - paused
    const heapMBEnd = gcHeapMB()
    const structsEnd = structsOf(replicas[0].region.doc)
    const maxPause = Math.max(...replicas.map(r => r.region.stats().maxCompactionPauseMs))
    const views = replicas.map(r => JSON.stringify(r.region.list().map(s => [s, r.region.winner(s)?.t])))
    const converged = views.every(v => v === views[0])
    const before = replicas[0].region.list().map(s => replicas[0].region.get(s)?.t)
    for (const r of replicas) {
      await r.bound.snapshot()
      await r.store.compactStorage()
    }
    const diskMB = await dirMB(replicas[0].dir)
    for (const r of replicas) {
      await r.store.close()
      r.region.close()
    }
    // Reload replica 0 from LevelDB (snapshot and log tail) into a fresh region.
    const r0 = performance.now()
    const reloaded = await openReplica(replicas[0].dir, writerIds[0])
    const reloadMs = performance.now() - r0
    const after = reloaded.region.list().map(s => reloaded.region.get(s)?.t)
    const restored = JSON.stringify(before) === JSON.stringify(after)
    await reloaded.store.close()
    reloaded.region.close()
    return {
      bench: sc.bench,
      sensors: sc.sensors,
      writers: sc.writers,
      writes: sc.writes,
      writesPerSec: Math.round(sc.writes / dt * 1000),
      heapMB1M: round(heapMB1M),
      heapMBEnd: round(heapMBEnd),
      structs1M,
      structsEnd,
      maxCompactionPauseMs: round(maxPause, 2),
      reloadMs: Math.round(reloadMs),
      diskMB: round(diskMB, 2),
      diskMB1M: round(diskMB1M, 2),
      converged,
      restored
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

async function child (name: string, scale: number): Promise<void> {
  const base = SCENARIOS.find(s => s.bench === name)
  if (base === undefined) throw new Error(`unknown scenario ${name}`)
  const sc = { ...base, writes: Math.max(BATCH * base.writers, Math.round(base.writes * scale / (BATCH * base.writers)) * BATCH * base.writers) }
  const line = sc.bench === 'state-baseline-ymap' ? await runBaseline(sc) : await runLogs(sc)
  process.stdout.write(JSON.stringify(line) + '\n')
}

async function runChild (name: string, scale: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=4096', fileURLToPath(import.meta.url), '--child', name, '--scale', String(scale)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.on('error', reject)
    p.on('exit', code => {
      if (code !== 0) reject(new Error(`scenario ${name} exited with ${code}`))
      else resolve(JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>)
    })
  })
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const scale = args.includes('--quick') ? 0.1 : Number(args[args.indexOf('--scale') + 1] ?? 1) || 1
  if (args[0] === '--child') return child(args[1], scale)
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined
  const lines: Array<Record<string, unknown>> = []
  for (const sc of SCENARIOS) {
    if (only !== undefined && sc.bench !== only && sc.bench !== 'state-baseline-ymap') continue
    progress(`running ${sc.bench} (${Math.round(sc.writes * scale).toLocaleString('en')} writes)`)
    const line = await runChild(sc.bench, scale)
    lines.push(line)
    process.stdout.write(JSON.stringify(line) + '\n')
  }
  const baseline = lines.find(l => l.bench === 'state-baseline-ymap')
  const summary = lines.map(l => ({
    ...l,
    ...(baseline !== undefined && l !== baseline ? { ratioToBaseline: round((l.writesPerSec as number) / (baseline.writesPerSec as number), 2) } : {})
  }))
  await mkdir(join(here, 'results'), { recursive: true })
  await writeFile(join(here, 'results', 'state.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, scale, results: summary }, null, 2) + '\n')
}

await main()
