/**
 * bench:compaction — what the compaction ratio trades: dead readings kept in the writer's log
 * (memory) against survivors copied forward (write amplification: each copy is a new chunk that
 * every replica receives, checks, merges and persists).
 *
 * One writer, 10k sensors written at random in putMany batches of 100, no persistence. The first
 * half of the writes brings the log to its steady state; the second half is measured. One JSON
 * line per ratio, and bench/results/compaction.json.
 *
 *   npm run bench:compaction                      ratios 2, 3 and 4, 400k writes each
 *   npm run bench:compaction -- --writes 1000000
 *
 * Keys: `ratio`, `sensors`, `writes` (measured half), `copiedPct` (readings that compaction copied
 * forward, per 100 readings written), `updateMB` (bytes of the writer's updates: its writes and
 * its compaction steps, what every other replica receives), `updateBytesPerWrite`,
 * `ownLogReadings` (at the end), `structs` (in the Yjs store), `compactions`,
 * `maxCompactionPauseMs`, `writesPerSec` (the whole loop: writes and inline compaction).
 */
import { performance } from 'node:perf_hooks'
import { createRegionState } from '@edge-mesh/region-state'
import { prng } from '@edge-mesh/testkit'
import { BenchRun, round } from './lib.ts'

const SENSORS = 10_000
const BATCH = 100
const WRITER = '12D3KooWK8gBpHv1LRWKLMJnNS4oj4t54tmsL2WqXCoDWWHdWijw'

const run = new BenchRun('compaction')

function measure (ratio: number, writes: number): Record<string, unknown> {
  const rnd = prng(7)
  const sensors = Array.from({ length: SENSORS }, (_, i) => `line-${i % 50}/sensor-${i}`)
  const region = createRegionState({ region: 'bench', writer: WRITER, maintenanceIntervalMs: 0, compaction: { ratio } })
  let recording = false
  let copied = 0
  let compactions = 0
  let maxPause = 0
  let bytes = 0
  region.on('compaction', s => {
    if (!recording) return
    copied += s.kept
    compactions++
    maxPause = Math.max(maxPause, s.pauseMs)
  })
  region.on('update', (u, local) => { if (local && recording) bytes += u.length })
  let t0 = 0
  for (let w = 0; w < 2 * writes; w += BATCH) {
    if (w === writes) {
      recording = true
      t0 = performance.now()
    }
    region.putMany(Array.from({ length: BATCH }, () => ({ sensor: sensors[Math.floor(rnd() * SENSORS)], value: rnd() })))
  }
  const ms = performance.now() - t0
  const stats = region.stats()
  region.close()
  return {
    bench: 'compaction',
    ratio,
    sensors: SENSORS,
    writes,
    copiedPct: round(100 * copied / writes, 1),
    updateMB: round(bytes / 2 ** 20, 2),
    updateBytesPerWrite: round(bytes / writes, 1),
    ownLogReadings: stats.ownLogReadings,
    structs: stats.structs,
    compactions,
    maxCompactionPauseMs: round(maxPause, 1),
    writesPerSec: Math.round(writes / ms * 1000)
  }
}

const args = process.argv.slice(2)
const writes = args.includes('--writes') ? Number(args[args.indexOf('--writes') + 1]) : 400_000
if (!(Number.isInteger(writes) && writes >= 10 * BATCH && writes % BATCH === 0)) throw new Error(`--writes must be a multiple of ${BATCH}, at least ${10 * BATCH}`)
const lines: Array<Record<string, unknown>> = []
for (const ratio of [2, 3, 4]) {
  run.progress(`ratio ${ratio}: ${2 * writes} writes, the second half measured`)
  const line = measure(ratio, writes)
  run.print(line)
  lines.push(line)
}
await run.save(lines, { writes })
