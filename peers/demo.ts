/**
 * `edge-mesh demo` (`npm start`): a local demo mesh on 127.0.0.1.
 *
 * It starts real processes: for each region two `edge-mesh gateway`s (each with its own LevelDB
 * data dir), and one `edge-mesh analytics` peer that discovers the regions by itself. Simulated
 * sensors post readings to the gateways over HTTP: slow drift, noise, now and then a spike, and
 * per region one sensor (`failover/flow`) that fails over from one gateway to the other every 30 s.
 * A status line shows, every second, the readings acknowledged per second, the fewest peers any
 * process sees, the newest reading's age per region as the analytics peer sees it, and whether
 * both gateways of each region and the analytics peer hold the same values.
 *
 * `--partition` cuts the last region off (its gateways refuse every other peer, the analytics peer
 * included) for `--partition-for` seconds, `--partition-after` seconds in; its sensors keep
 * writing, so its age on the dashboard grows, then drops once the partition heals and the views
 * converge. (The cut uses the gateways' fault-injection control, which the demo turns on.)
 *
 * Ctrl-C stops everything: the sensors, then every process (SIGTERM, so each flushes its LevelDB),
 * and removes the data unless `--data` was given.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

/** A region counts as converged when every peer holds every reading older than this. */
const CONVERGED_WITHIN_MS = 1000
const CLI = join(dirname(fileURLToPath(import.meta.url)), 'edge-mesh.ts')

const HELP = `edge-mesh demo: a local mesh of gateways and an analytics peer, with simulated sensors

Usage: edge-mesh demo [options]          (npm start -- [options])

Options:
  --regions <n>           regions (default 3), each held by two gateways
  --sensors <n>           simulated sensors per region (default 12)
  --rate <n>              readings per second per region (default 40)
  --partition             cut the last region off for a while, then heal it
  --partition-after <s>   seconds before the cut (default 15)
  --partition-for <s>     seconds the cut lasts (default 20)
  --duration <s>          stop by itself after this many seconds (default: run until Ctrl-C)
  --data <dir>            keep every process's data under <dir> (default: a temp dir, removed at exit)
  -h, --help              show this help

Examples:
  npm start
  npm start -- --partition
  npm start -- --regions 2 --sensors 50 --rate 500 --duration 60
`

interface DemoOptions {
  regions: number
  sensors: number
  rate: number
  partition: boolean
  partitionAfterS: number
  partitionForS: number
  durationS: number | undefined
  data: string | undefined
}

class UsageError extends Error {}

function parseDemoArgs (argv: string[]): DemoOptions | 'help' {
  let values: Record<string, string | boolean | undefined>
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        regions: { type: 'string' },
        sensors: { type: 'string' },
        rate: { type: 'string' },
        partition: { type: 'boolean' },
        'partition-after': { type: 'string' },
        'partition-for': { type: 'string' },
        duration: { type: 'string' },
        data: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (values.help === true) return 'help'
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const raw = values[name]
    if (raw === undefined) return dflt
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`)
    return n
  }
  return {
    regions: int('regions', 3, 1, 8),
    sensors: int('sensors', 12, 1, 10_000),
    rate: int('rate', 40, 1, 50_000),
    partition: values.partition === true,
    partitionAfterS: int('partition-after', 15, 1, 3600),
    partitionForS: int('partition-for', 20, 1, 3600),
    durationS: values.duration === undefined ? undefined : int('duration', 0, 1, 86_400),
    data: typeof values.data === 'string' ? resolve(values.data) : undefined
  }
}

// ------------------------------------------------------------------ processes

interface Proc {
  name: string
  child: ChildProcess
  http: string
  peerId: string
  addrs: string[]
  stderrTail: string[]
}

async function startProc (name: string, args: string[], env: Record<string, string> = {}): Promise<Proc> {
  const child = spawn(process.execPath, [CLI, ...args, '--json', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env }
  })
  const stderrTail: string[] = []
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', line => {
    stderrTail.push(line)
    if (stderrTail.length > 30) stderrTail.shift()
  })
  return await new Promise<Proc>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name} did not start within 60 s:\n${stderrTail.join('\n')}`))
    }, 60_000)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited ${signal !== null ? `on ${signal}` : `with status ${code}`} before it was ready:\n${stderrTail.join('\n')}`))
    })
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', line => {
      let ev: { event?: string, http?: string, peerId?: string, addrs?: string[] }
      try { ev = JSON.parse(line) } catch { return }
      if (ev.event !== 'ready' || typeof ev.http !== 'string') return
      clearTimeout(timer)
      child.removeAllListeners('exit')
      resolve({ name, child, http: ev.http, peerId: ev.peerId ?? '', addrs: ev.addrs ?? [], stderrTail })
    })
  })
}

async function stopProc (p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => { p.child.kill('SIGKILL') }, 15_000)
    p.child.once('exit', () => { clearTimeout(timer); resolve() })
    p.child.kill('SIGTERM')
  })
}

async function getJson<T> (url: string, init?: RequestInit): Promise<T | undefined> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) })
    if (!res.ok) return undefined
    return await res.json() as T
  } catch {
    return undefined
  }
}

// ------------------------------------------------------------------ simulated sensors

interface Sensor {
  id: string
  unit: string
  base: number
  amplitude: number
  periodS: number
  noise: number
  driftPerS: number
}

function makeSensors (region: number, n: number): Sensor[] {
  const kinds = [
    { name: 'temp', unit: 'C', base: 21, amplitude: 2, noise: 0.15 },
    { name: 'humidity', unit: '%', base: 45, amplitude: 6, noise: 0.6 },
    { name: 'pressure', unit: 'kPa', base: 101.3, amplitude: 0.4, noise: 0.03 },
    { name: 'vibration', unit: 'mm/s', base: 3, amplitude: 0.8, noise: 0.2 }
  ]
  return Array.from({ length: n }, (_, i) => {
    const k = kinds[i % kinds.length]
    return {
      id: `line-${Math.floor(i / kinds.length) + 1}/${k.name}`,
      unit: k.unit,
      base: k.base + region,
      amplitude: k.amplitude,
      periodS: 60 + 17 * i,
      noise: k.noise,
      driftPerS: (i % 3 - 1) * k.amplitude / 600
    }
  })
}

/** Gaussian noise (Box-Muller). */
function gauss (): number {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
}

function sample (s: Sensor, tS: number): number {
  let v = s.base + s.driftPerS * tS + s.amplitude * Math.sin(2 * Math.PI * tS / s.periodS) + s.noise * gauss()
  if (Math.random() < 0.002) v += (Math.random() < 0.5 ? -1 : 1) * 8 * (s.amplitude + s.noise)
  return Math.round(v * 1000) / 1000
}

// ------------------------------------------------------------------ the demo

interface Region {
  name: string
  gateways: Proc[]
  sensors: Sensor[]
  /** The status loop's snapshots of the newest readings (see behindMs). */
  history: Snapshot[]
}

interface SensorReply { sensor: string, t: string, writer: string }

/** sensor → "t writer" at one gateway, for every sensor it lists in the region. */
async function gatewayView (gw: Proc, region: string): Promise<Map<string, string> | undefined> {
  const list = await getJson<{ sensors: string[] }>(`${gw.http}/v1/sensors?region=${region}&limit=10000`)
  if (list === undefined) return undefined
  const out = new Map<string, string>()
  await Promise.all(list.sensors.map(async s => {
    const r = await getJson<SensorReply>(`${gw.http}/v1/sensors/${encodeURIComponent(s)}?region=${region}`)
    if (r !== undefined) out.set(s, `${r.t} ${r.writer}`)
  }))
  return out
}

/** What the most up-to-date view held, per sensor ("t writer"), at one status tick. */
interface Snapshot { at: number, best: Map<string, string> }

/**
 * How long some view has lacked a reading another view held: the status loop keeps, per region,
 * the newest reading any view showed at each tick; a view that still lacks a reading some view
 * showed `graceMs` or more ago is behind by the age of that tick. Writes never stop in the demo,
 * so views are rarely equal at one instant; "every peer holds every reading older than a second"
 * is what this checks. Returns how far behind the furthest view is (0 when none is), or
 * undefined when a view could not be read.
 */
function behindMs (views: Array<Map<string, string> | undefined>, history: Snapshot[], now: number, graceMs: number): number | undefined {
  if (views.some(v => v === undefined)) return undefined
  const all = views as Array<Map<string, string>>
  const best = new Map<string, string>()
  for (const v of all) for (const [s, x] of v) if (x > (best.get(s) ?? '')) best.set(s, x)
  history.push({ at: now, best })
  while (history.length > 0 && now - history[0].at > 10 * 60_000) history.shift()
  for (const snap of history) {
    if (now - snap.at < graceMs) break
    for (const [s, x] of snap.best) {
      if (all.some(v => (v.get(s) ?? '') < x)) return now - snap.at
    }
  }
  return 0
}

export async function runDemoCommand (argv: string[]): Promise<void> {
  let opts: DemoOptions | 'help'
  try {
    opts = parseDemoArgs(argv)
  } catch (err) {
    process.stderr.write(`edge-mesh demo: ${(err as Error).message}\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  if (opts === 'help') {
    process.stdout.write(HELP)
    return
  }
  const o = opts
  const temp = o.data === undefined
  const dataDir = o.data ?? await mkdtemp(join(tmpdir(), 'edge-mesh-demo-'))
  await mkdir(dataDir, { recursive: true })
  const say = (line: string): void => { process.stdout.write(line + '\n') }
  const procs: Proc[] = []
  const regions: Region[] = []
  let analytics: Proc | undefined
  let stopping = false
  let finished: () => void = () => {}
  const done = new Promise<void>(resolve => { finished = resolve })
  const onSignal = (): void => {
    if (stopping) process.exit(1)
    stopping = true
    say('\nstopping: sensors, then every process (flushing LevelDB)...')
    finished()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    say(`edge-mesh demo: ${o.regions} regions x 2 gateways + 1 analytics peer, ${o.sensors} sensors and ${o.rate} readings/s per region`)
    say(`data: ${dataDir}${temp ? ' (temporary)' : ''}`)
    const env: Record<string, string> = o.partition ? { EDGE_MESH_TEST_CONTROL: '1' } : {}
    for (let i = 0; i < o.regions && !stopping; i++) {
      const name = `plant-${i + 1}`
      const gateways: Proc[] = []
      for (let g = 0; g < 2 && !stopping; g++) {
        const bootstrap = [...(regions[0]?.gateways[0]?.addrs.slice(0, 1) ?? []), ...gateways.flatMap(x => x.addrs.slice(0, 1))]
        const args = ['gateway', '--region', name, '--data', join(dataDir, `${name}-gw${g + 1}`), '--http', '127.0.0.1:0',
          '--listen', '/ip4/127.0.0.1/tcp/0', ...bootstrap.flatMap(b => ['--bootstrap', b])]
        const p = await startProc(`${name} gateway ${g + 1}`, args, env)
        procs.push(p)
        gateways.push(p)
      }
      regions.push({ name, gateways, sensors: makeSensors(i, o.sensors), history: [] })
    }
    if (!stopping) {
      const bootstrap = regions.flatMap(r => r.gateways.map(g => g.addrs[0]))
      analytics = await startProc('analytics', ['analytics', '--data', join(dataDir, 'analytics'), '--http', '127.0.0.1:0',
        '--listen', '/ip4/127.0.0.1/tcp/0', ...bootstrap.flatMap(b => ['--bootstrap', b])])
      procs.push(analytics)
    }
    if (stopping) return
    say('')
    say(`dashboard:  ${analytics?.http}/`)
    for (const r of regions) say(`${r.name}:    ${r.gateways.map(g => g.http).join('   ')}`)
    say(`try:        curl ${regions[0].gateways[0].http}/v1/sensors/${encodeURIComponent(regions[0].sensors[0].id)}`)
    say('Ctrl-C stops the demo.\n')

    const t0 = Date.now()
    let acked = 0
    let ackedAtLastStatus = 0
    let lastStatusAt = t0
    let failed = 0
    let partitioned = false
    let partitionState = o.partition ? `partition of ${regions[regions.length - 1].name} in ${o.partitionAfterS}s` : ''

    // Sensors: every 100 ms, each region posts its share of readings to one of its gateways.
    const tickMs = 100
    const perTick = o.rate * tickMs / 1000
    let carry = 0
    const inflight = new Set<Promise<void>>()
    const sensorTimer = setInterval(() => {
      if (stopping) return
      carry += perTick
      const n = Math.floor(carry)
      carry -= n
      const tS = (Date.now() - t0) / 1000
      for (const [ri, r] of regions.entries()) {
        if (n === 0) continue
        const batches: Array<Array<Record<string, unknown>>> = [[], []]
        for (let k = 0; k < n; k++) {
          const s = r.sensors[Math.floor(Math.random() * r.sensors.length)]
          batches[Math.random() < 0.5 ? 0 : 1].push({ sensor: s.id, value: sample(s, tS), unit: s.unit, ts: Date.now() })
        }
        // The fail-over sensor: gateway 1 for 30 s, then gateway 2 for 30 s, and so on.
        const active = Math.floor(tS / 30) % 2
        batches[active].push({ sensor: 'failover/flow', value: Math.round((12 + ri + Math.sin(tS / 20) + 0.05 * gauss()) * 1000) / 1000, unit: 'l/s', ts: Date.now() })
        for (const [g, batch] of batches.entries()) {
          if (batch.length === 0 || inflight.size > 64) continue
          const p: Promise<void> = fetch(`${r.gateways[g].http}/v1/readings`, {
            method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch), signal: AbortSignal.timeout(5000)
          }).then(async res => {
            const body = await res.json().catch(() => ({})) as { accepted?: number }
            if (res.ok) acked += body.accepted ?? 0
            else failed += batch.length
          }, () => { failed += batch.length }).finally(() => { inflight.delete(p) })
          inflight.add(p)
        }
      }
    }, tickMs)

    // The partition: the last region's gateways refuse every other peer, then accept them again.
    const cut = regions[regions.length - 1]
    const others = procs.filter(p => !cut.gateways.includes(p)).map(p => p.peerId)
    const setPartition = async (deny: string[]): Promise<void> => {
      await Promise.all(cut.gateways.map(async g => await getJson(`${g.http}/_test/partition`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deny })
      })))
    }
    const timers: Array<ReturnType<typeof setTimeout>> = []
    if (o.partition) {
      timers.push(setTimeout(() => {
        if (stopping) return
        partitioned = true
        partitionState = `${cut.name} PARTITIONED`
        void setPartition(others)
      }, o.partitionAfterS * 1000))
      timers.push(setTimeout(() => {
        if (stopping) return
        partitioned = false
        partitionState = `${cut.name} healed`
        void setPartition([])
      }, (o.partitionAfterS + o.partitionForS) * 1000))
    }
    if (o.durationS !== undefined) timers.push(setTimeout(() => { if (!stopping) { stopping = true; finished() } }, o.durationS * 1000))

    // The status line, every second.
    let statusBusy = false
    const statusTimer = setInterval(() => {
      if (stopping || statusBusy) return
      statusBusy = true
      void (async () => {
        const now = Date.now()
        const rate = Math.round((acked - ackedAtLastStatus) * 1000 / Math.max(1, now - lastStatusAt))
        ackedAtLastStatus = acked
        lastStatusAt = now
        const ready = await Promise.all(procs.map(async p => await getJson<{ peers?: number }>(`${p.http}/ready`)))
        const peers = Math.min(...ready.map(r => r?.peers ?? 0))
        const ana = analytics === undefined ? undefined : await getJson<{ regions?: Array<Record<string, unknown>> }>(`${analytics.http}/v1/regions`)
        const parts: string[] = []
        for (const r of regions) {
          const entry = ana?.regions?.find(x => x.region === r.name)
          const age = typeof entry?.newestAgeMs === 'number' ? `${(entry.newestAgeMs / 1000).toFixed(1)}s` : '-'
          const [a, b] = await Promise.all(r.gateways.map(async g => await gatewayView(g, r.name)))
          const latest = analytics === undefined ? undefined : await getJson<{ sensors?: Array<{ sensor: string, t: string, writer: string }> }>(`${analytics.http}/v1/latest?region=${r.name}&limit=10000`)
          const fromAnalytics = latest?.sensors === undefined ? undefined : new Map(latest.sensors.map(x => [x.sensor, `${x.t} ${x.writer}`]))
          const behind = behindMs([a, b, fromAnalytics], r.history, Date.now(), CONVERGED_WITHIN_MS)
          parts.push(`${r.name} age ${age} ${behind === undefined ? 'unreachable' : behind === 0 ? 'converged' : `behind ${(behind / 1000).toFixed(1)}s`}`)
        }
        const elapsed = Math.round((Date.now() - t0) / 1000)
        const line = `[${String(elapsed).padStart(4)}s] ${String(rate).padStart(5)} readings/s acked (${acked} total${failed > 0 ? `, ${failed} refused` : ''}) | peers >= ${peers} | ${parts.join(' | ')}${partitionState !== '' ? ` | ${partitionState}` : ''}`
        say(line)
        if (!partitioned && partitionState.endsWith('healed') && parts.every(p => p.endsWith('converged'))) partitionState = `${cut.name} healed, converged`
      })().finally(() => { statusBusy = false })
    }, 1000)

    await done
    clearInterval(sensorTimer)
    clearInterval(statusTimer)
    for (const t of timers) clearTimeout(t)
    await Promise.allSettled(inflight)
  } catch (err) {
    if (stopping) {
      // Ctrl-C reaches the whole process group: a process still starting exits on it, as asked.
      say('stopped during start-up')
    } else {
      process.stderr.write(`edge-mesh demo failed: ${(err as Error).message}\n`)
      process.exitCode = 1
    }
  } finally {
    await Promise.all(procs.map(stopProc))
    if (temp) await rm(dataDir, { recursive: true, force: true })
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (procs.length > 0) say(`stopped ${procs.length} processes${temp ? ', removed the temporary data' : `; data kept in ${dataDir}`}`)
  }
}
