/**
 * Writes bench/RESULTS.md from bench/results/*.json: each figure beside its same-run baseline and
 * the ratio, with the machine, Node version, commit and date of the run that produced it. Run by
 * `npm run bench` at the end; on its own: `npx node bench/results-md.ts`. A results file that is
 * missing is listed as not run.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

type Line = Record<string, unknown>
interface ResultsFile { date?: string, node?: string, commit?: string, machine?: { cores?: number, cpu?: string, memoryMB?: number }, results?: Line[], summary?: Line }

async function load (name: string): Promise<ResultsFile | undefined> {
  try {
    return JSON.parse(await readFile(join(here, 'results', `${name}.json`), 'utf8')) as ResultsFile
  } catch {
    return undefined
  }
}

const num = (x: unknown): number | undefined => typeof x === 'number' && Number.isFinite(x) ? x : undefined
const fmt = (x: unknown): string => {
  const n = num(x)
  if (n === undefined) return x === undefined ? '–' : String(x)
  return Math.abs(n) >= 1000 ? Math.round(n).toLocaleString('en-US') : String(Math.round(n * 100) / 100)
}
const ratio = (a: unknown, b: unknown): string => {
  const x = num(a)
  const y = num(b)
  if (x === undefined || y === undefined || y === 0) return '–'
  const r = x / y
  return `${r >= 0.1 ? Math.round(r * 100) / 100 : Number(r.toPrecision(2))}×`
}

interface Row { figure: string, value: unknown, baseline?: unknown, baselineName?: string, target?: string }

function table (rows: Row[], baselineHeader: string = 'baseline (same run)'): string {
  const out = [`| figure | edge-mesh | ${baselineHeader} | ratio | target |`, '|---|---|---|---|---|']
  for (const r of rows) {
    const base = r.baseline === undefined ? '–' : `${fmt(r.baseline)}${r.baselineName !== undefined ? ` (${r.baselineName})` : ''}`
    out.push(`| ${r.figure} | ${fmt(r.value)} | ${base} | ${r.baseline === undefined ? '–' : ratio(r.value, r.baseline)} | ${r.target ?? ''} |`)
  }
  return out.join('\n')
}

function origin (f: ResultsFile | undefined): string {
  if (f === undefined) return '_not run: no results file_'
  const m = f.machine
  const parts = [
    f.date !== undefined ? `run ${f.date.slice(0, 16).replace('T', ' ')} UTC` : undefined,
    f.node !== undefined ? `Node ${f.node}` : undefined,
    f.commit !== undefined ? `commit ${f.commit}` : undefined,
    m !== undefined ? `${m.cores ?? '?'} cores${m.cpu !== undefined ? ` (${m.cpu})` : ''}, ${m.memoryMB ?? '?'} MB` : undefined
  ].filter(x => x !== undefined)
  return parts.length === 0 ? '_no run details recorded_' : `_${parts.join(', ')}_`
}

const find = (f: ResultsFile | undefined, pred: (l: Line) => boolean): Line => f?.results?.find(pred) ?? {}

async function main (): Promise<void> {
  const [state, mesh, broker, gateway, analytics, chaos] = await Promise.all(['state', 'mesh', 'broker', 'gateway', 'analytics', 'chaos'].map(load))
  const sections: string[] = []

  const ymap = find(state, l => l.bench === 'state-baseline-ymap')
  const s10k = find(state, l => l.bench === 'state-1w-10k')
  const s3w = find(state, l => l.bench === 'state-3w-10k')
  const s100k = find(state, l => l.bench === 'state-1w-100k')
  sections.push(`## Region state (\`npm run bench:state\`)\n\n${origin(state)}\n\n${table([
    { figure: 'writes/s, 10k sensors, 1 writer (LevelDB in the loop)', value: s10k.writesPerSec, baseline: ymap.writesPerSec, baselineName: 'plain Y.Map, in memory', target: '≥ 300k and ≥ 0.5× baseline' },
    { figure: 'heap MB at the end (after 1M: ' + fmt(s10k.heapMB1M) + ')', value: s10k.heapMBEnd, baseline: ymap.heapMBEnd, baselineName: 'Y.Map after 1M writes', target: 'flat' },
    { figure: 'Yjs structs at the end', value: s10k.structsEnd, baseline: ymap.structsEnd, baselineName: 'Y.Map after 1M writes', target: 'flat' },
    { figure: 'writes/s, 10k sensors, 3 writers exchanging updates', value: s3w.writesPerSec, baseline: ymap.writesPerSec },
    { figure: 'writes/s, 100k sensors, 1 writer', value: s100k.writesPerSec, baseline: ymap.writesPerSec, target: '≥ 200k' },
    { figure: 'longest compaction pause, 100k sensors (ms)', value: s100k.maxCompactionPauseMs, target: '≤ 20' },
    { figure: 'reload, 100k sensors (ms)', value: s100k.reloadMs, baseline: ymap.reloadMs, baselineName: 'Y.Map, 10k sensors, 1M writes', target: '≤ 1000' }
  ])}`)

  const p1k = find(mesh, l => l.bench === 'mesh-propagation' && l.ratePerSec === 1000)
  const p10k = find(mesh, l => l.bench === 'mesh-propagation' && l.ratePerSec === 10000)
  const h1 = find(mesh, l => l.bench === 'mesh-heal' && l.links === 1)
  const h2 = find(mesh, l => l.bench === 'mesh-heal' && l.links === 2)
  const pooled = typeof p10k.rounds === 'number' && p10k.rounds > 1
    ? `\n\nPropagation figures pool ${p10k.rounds} rounds of ${p10k.seconds} s per side (a mesh run, the raw run replaying its frames, the raw run again; bench/README.md, "Rounds").`
    : ''
  sections.push(`## Mesh (\`npm run bench:mesh\`)\n\n${origin(mesh)}${pooled}\n\n${table([
    { figure: 'put → visible p50 (ms), 10 peers, 1k readings/s', value: p1k.p50Ms, baseline: p1k.rawP50Ms, baselineName: 'raw gossipsub, same frames' },
    { figure: 'put → visible p99 (ms), 10 peers, 1k readings/s', value: p1k.p99Ms, baseline: p1k.rawP99Ms, baselineName: 'raw gossipsub' },
    { figure: 'put → visible p50 (ms), 10 peers, 10k readings/s', value: p10k.p50Ms, baseline: p10k.rawP50Ms, baselineName: 'raw gossipsub', target: '≤ 10' },
    { figure: 'put → visible p99 (ms), 10 peers, 10k readings/s', value: p10k.p99Ms, baseline: p10k.rawP99Ms, baselineName: 'raw gossipsub', target: '≤ 1.5× raw' },
    { figure: 'the noise floor: raw gossipsub p99 (ms) run again, 10k readings/s', value: p10k.rawRepeatP99Ms, baseline: p10k.rawP99Ms, baselineName: 'raw gossipsub, its first run' },
    { figure: 'heal after 2 × 100k writes: converge (ms), 1 link', value: h1.convergeMs, target: '≤ 1000' },
    { figure: 'heal: bytes exchanged, 1 link', value: h1.bytes, baseline: h1.minimalBytes, baselineName: 'the compacted deltas', target: '≤ 1.5× minimal' },
    { figure: 'heal: converge (ms), 2 links', value: h2.convergeMs, target: '≤ 1000' },
    { figure: 'heal: bytes exchanged, 2 links', value: h2.bytes, baseline: h2.minimalBytes, baselineName: 'the compacted deltas', target: '≤ 1.5× minimal' }
  ])}`)

  const b1k = find(broker, l => l.bench === 'broker-relay' && l.ratePerSec === 1000)
  const b10k = find(broker, l => l.bench === 'broker-relay' && l.ratePerSec === 10000)
  sections.push(`## Central broker relay (\`npm run bench:broker\`), against mesh propagation at the same rates\n\n${origin(broker)} (mesh: ${origin(mesh).replace(/_/g, '')})\n\nThe mesh figure is put → visible at every one of 9 other peers; the broker's is publish → received by all 3 subscribers through one mosquitto. Separate runs: compare with care.\n\n${table([
    { figure: 'p50 (ms), 1k readings/s', value: p1k.p50Ms, baseline: b1k.p50Ms, baselineName: 'mosquitto, 1 → 3' },
    { figure: 'p99 (ms), 1k readings/s', value: p1k.p99Ms, baseline: b1k.p99Ms, baselineName: 'mosquitto, 1 → 3' },
    { figure: 'p50 (ms), 10k readings/s', value: p10k.p50Ms, baseline: b10k.p50Ms, baselineName: 'mosquitto, 1 → 3' },
    { figure: 'p99 (ms), 10k readings/s', value: p10k.p99Ms, baseline: b10k.p99Ms, baselineName: 'mosquitto, 1 → 3' }
  ], 'central broker (its own run)')}`)

  const gi = find(gateway, l => l.bench === 'gateway-ingest')
  const gr = find(gateway, l => l.bench === 'gateway-read')
  const gs = find(gateway, l => l.bench === 'gateway-soak')
  sections.push(`## Gateway (\`npm run bench:gateway\`)\n\n${origin(gateway)}\n\n${table([
    { figure: 'HTTP ingest, readings/s acknowledged once durable (batches of 1000)', value: gi.readingsPerSec, baseline: gi.baselineReadingsPerSec, baselineName: 'bare fastify parsing the same bodies, no state', target: '≥ 100k' },
    { figure: 'HTTP ingest p99 (ms)', value: gi.p99Ms, baseline: gi.baselineP99Ms, baselineName: 'bare fastify' },
    { figure: 'sensors recovered after kill -9 / acknowledged', value: `${fmt(gi.recoveredSensors)} / ${fmt(gi.sensorsAcked)}` },
    { figure: 'reads p50 (ms) at 10k req/s', value: gr.p50Ms, baseline: gr.baselineP50Ms, baselineName: 'bare fastify reading a Map' },
    { figure: 'reads p99 (ms) at 10k req/s', value: gr.p99Ms, baseline: gr.baselineP99Ms, baselineName: 'bare fastify reading a Map', target: '≤ 1' },
    { figure: `soak RSS MB after ${fmt(gs.minutes)} min at 10k readings/s`, value: gs.rssMBEnd, baseline: gs.rssMBStart, baselineName: 'RSS after minute 1', target: '≤ 150, within 10 % of minute 1' }
  ])}`)

  const af = find(analytics, l => l.bench === 'analytics-follow')
  sections.push(`## Analytics peer (\`npm run bench:analytics\`)\n\n${origin(analytics)}\n\n${table([
    { figure: `readings/s followed, ${fmt(af.regions)} regions`, value: af.readingsPerSec, baseline: af.ingestedPerSec, baselineName: 'acknowledged at the gateways' },
    { figure: 'lag p99, ingest → observed at analytics (ms)', value: af.lagP99Ms },
    { figure: 'lag p99, ingest → in history (ms)', value: af.recordedLagP99Ms },
    { figure: 'analytics RSS MB', value: af.rssMB }
  ])}`)

  const cs = chaos?.summary ?? {}
  sections.push(`## Chaos (\`npm run chaos\`)\n\n${origin(chaos)}\n\n${table([
    { figure: 'seeds', value: cs.seeds },
    { figure: 'fault steps', value: cs.faults },
    { figure: 'acknowledged readings', value: cs.acked },
    { figure: 'lost', value: cs.lost, target: '0' },
    { figure: 'divergent replicas', value: cs.divergentReplicas, target: '0' },
    { figure: 'slowest convergence after the last heal (ms)', value: cs.maxConvergeMs },
    { figure: 'readings fenced (the gateway beyond the drift bound)', value: cs.fenced }
  ])}`)

  const cpu = cpus()
  const md = `# Benchmark results

Written by \`npx node bench/results-md.ts\` (the end of \`npm run bench\`) from \`bench/results/*.json\`.
Each benchmark measures its baseline in the same run, on the same machine, so compare the
ratios: these machines are shared and noisy. How each figure is measured: [bench/README.md](README.md).

This file was written on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${cpu.length} cores (${cpu[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 20)} MB.

${sections.join('\n\n')}
`
  await writeFile(join(here, 'RESULTS.md'), md)
  process.stderr.write('[bench] wrote bench/RESULTS.md\n')
}

await main()
