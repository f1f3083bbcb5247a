/**
 * One chaos seed: a cluster of 5 gateway processes (2 regions, clocks skewed within ±30 s and one
 * beyond the drift bound) is started, connected and warmed up; ingest runs at every gateway and a
 * reader per gateway checks monotonic reads while the seed's fault schedule runs (partitions,
 * SIGKILL and restart, duplicated and reordered ingest); then everything heals, the harness waits
 * (bounded) for convergence and checks the invariants:
 *
 * - the views of the gateways within the drift bound are identical and equal the model built from
 *   the acknowledged readings (model.ts), so no acknowledged reading is lost;
 * - monotonic reads per reader, across the restarts of its gateway;
 * - every t a gateway acknowledges after a restart is above every t it acknowledged before;
 * - readings of the gateway beyond the drift bound are refused and counted at the receivers
 *   (`edge_mesh_gossip_invalid_frames_total` goes up) and never shown by another gateway; that
 *   gateway's acknowledged readings are reported as `fenced`, neither lost nor compared.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { prng } from '@edge-mesh/testkit'
import { ChaosCluster } from './cluster.ts'
import {
  MonotonicReads, checkHlcAcrossRestarts, checkViews, describeBackwardRead, uniqueAcked, type Acked, type InDoubt, type ReplicaView, type Shown, type ViewCheck
} from './model.ts'
import { describePlan, describeStep, planSeed, subSeed, type ChaosProfile, type FaultStep, type SeedPlan } from './plan.ts'

export interface SeedResult {
  seed: number
  profile: string
  ok: boolean
  /** Fault steps run. */
  faults: number
  /** Distinct readings acknowledged by the gateways within the drift bound (the model's input). */
  acked: number
  /** Readings acknowledged by the gateway beyond the drift bound (refused by the mesh). */
  fenced: number
  /** Readings of requests without a reply (maybe written). */
  inDoubt: number
  lost: number
  divergentReplicas: number
  /** From the final heal to identical views; null if they did not converge within the bound. */
  convergeMs: number | null
  /** Gossip frames the receivers refused as invalid (the skewed gateway's), summed over lives. */
  refusedFrames: number
  reads: number
  restarts: number
  violations: string[]
  /** The plan (gateways, offsets, fault list), for failure messages. */
  plan: string
  /** Failure details: the problems found and the stderr tails of the gateways involved. */
  details: string
  wallMs: number
}

export interface SeedRunOptions {
  profile: ChaosProfile
  /** Progress lines. @default none */
  log?: (line: string) => void
}

/** Device timestamps start here (ms since the epoch; the gateway accepts 2000..2100). */
const TS0 = 1_700_000_000_000
/** Bound on the wait for the cluster to connect and for the warm-up to replicate, ms. */
const WARMUP_TIMEOUT_MS = 30_000
/** Bound on the wait for a receiver to count the skewed gateway's frame as refused, ms. */
const REFUSAL_TIMEOUT_MS = 15_000
const POLL_MS = 200

interface Batch {
  region: string
  readings: Array<{ sensor: string, value: number, ts?: number }>
  key?: string
}

const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find(l => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

class SeedRun {
  readonly plan: SeedPlan
  readonly profile: ChaosProfile
  readonly cluster: ChaosCluster
  readonly log: (line: string) => void
  readonly acked: Acked[] = []
  readonly fenced: Acked[] = []
  readonly inDoubt: InDoubt[] = []
  readonly violations: string[] = []
  readonly readers: MonotonicReads[]
  /** The refused-frame counter last scraped, per `gateway:life`. */
  readonly refused = new Map<string, number>()
  private readonly lastBatch: Array<Batch | undefined>
  private readonly valueSeq: number[]
  private tsSeq = 0
  stopIngest = false
  stopReads = false
  /** Restarts started by the schedule. */
  readonly restarting: Array<Promise<void>> = []

  constructor (plan: SeedPlan, profile: ChaosProfile, cluster: ChaosCluster, log: (line: string) => void) {
    this.plan = plan
    this.profile = profile
    this.cluster = cluster
    this.log = log
    this.readers = plan.regions.map((_, g) => new MonotonicReads(g))
    this.lastBatch = plan.regions.map(() => undefined)
    this.valueSeq = plan.regions.map(() => 0)
  }

  get skewed (): number {
    return this.plan.skewed
  }

  /** Gateways within the drift bound. */
  get honest (): number[] {
    return this.plan.regions.map((_, g) => g).filter(g => g !== this.skewed)
  }

  sensor (i: number): string {
    return `dev-${String(i).padStart(2, '0')}/temp`
  }

  nextTs (): number {
    return TS0 + 10 * ++this.tsSeq
  }

  /** A value no other reading of the run has (gateway index × 10^6 + a counter). */
  nextValue (g: number): number {
    return g * 1_000_000 + ++this.valueSeq[g]
  }

  /** Posts a batch to gateway g with ?echo=1 and records what was acknowledged or is in doubt. */
  async post (g: number, batch: Batch): Promise<void> {
    const life = this.cluster.life(g)
    const writer = this.cluster.peerId(g)
    const headers: Record<string, string> = batch.key !== undefined ? { 'idempotency-key': batch.key } : {}
    const r = await this.cluster.request(g, 'POST', `/v1/readings?region=${batch.region}&echo=1`, batch.readings, headers)
    if (r.kind === 'refused') return
    if (r.kind === 'doubt' || r.status >= 500) {
      for (const x of batch.readings) this.inDoubt.push({ region: batch.region, sensor: x.sensor, value: x.value, writer })
      return
    }
    if (r.status === 429) return
    if (r.status !== 200) {
      this.violations.push(`g${g}: POST /v1/readings answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`)
      return
    }
    const body = r.body as { accepted: number, readings?: Array<{ sensor: string, t: string }> }
    const bySensor = new Map(batch.readings.map(x => [x.sensor, x]))
    for (const { sensor, t } of body.readings ?? []) {
      const x = bySensor.get(sensor)
      if (x === undefined) {
        this.violations.push(`g${g}: the echo names sensor ${sensor}, which the batch did not hold`)
        continue
      }
      const a: Acked = { region: batch.region, sensor, t, writer, value: x.value, gateway: g, life }
      if (g === this.skewed) this.fenced.push(a)
      else this.acked.push(a)
    }
  }

  /** The device ingest of gateway g: batches of 1-5 readings, most with a device ts, some with an Idempotency-Key. */
  async drive (g: number): Promise<void> {
    const rnd = prng(subSeed(this.plan.seed, 100 + g))
    const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1))
    let n = 0
    for (let i = 0; !this.stopIngest && i < 100_000; i++) {
      if (!this.cluster.isUp(g)) {
        await delay(100)
        continue
      }
      const regions = this.cluster.regions(g)
      const region = regions[int(0, regions.length - 1)]
      const sensors = new Set<number>()
      const k = int(1, 5)
      while (sensors.size < k) sensors.add(int(0, this.profile.sensorsPerRegion - 1))
      const batch: Batch = {
        region,
        readings: [...sensors].map(s => ({ sensor: this.sensor(s), value: this.nextValue(g), ...(rnd() < 0.7 ? { ts: this.nextTs() } : {}) })),
        key: rnd() < 0.15 ? `seed${this.plan.seed}-g${g}-${++n}` : undefined
      }
      this.lastBatch[g] = batch
      await this.post(g, batch)
      await delay(int(this.profile.ingestPauseMs[0], this.profile.ingestPauseMs[1]))
    }
  }

  /** The reader of gateway g: a few sensors every 100 ms or so, checked for monotonic t; metrics now and then. */
  async read (g: number): Promise<void> {
    const rnd = prng(subSeed(this.plan.seed, 200 + g))
    const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1))
    const mono = this.readers[g]
    const skewedId = this.cluster.peerId(this.skewed)
    for (let i = 0; !this.stopReads && i < 100_000; i++) {
      if (this.cluster.isUp(g)) {
        const life = this.cluster.life(g)
        const regions = this.cluster.regions(g)
        const region = regions[int(0, regions.length - 1)]
        for (let j = 0; j < this.profile.readsPerRound; j++) {
          const s = this.sensor(int(0, this.profile.sensorsPerRegion - 1))
          const r = await this.cluster.request(g, 'GET', `/v1/sensors/${encodeURIComponent(s)}?region=${region}`)
          if (r.kind !== 'reply' || life !== this.cluster.life(g)) continue
          if (r.status === 404) mono.observe(region, s, undefined, life)
          else if (r.status === 200) {
            const b = r.body as { t: string, writer: string }
            mono.observe(region, s, b, life)
            if (g !== this.skewed && b.writer === skewedId) {
              this.violations.push(`g${g}: read ${region}/${s} written by the gateway beyond the drift bound (t ${b.t})`)
            }
          }
        }
        if (i % 8 === 0) await this.scrapeRefused(g)
      }
      await delay(int(this.profile.readPauseMs[0], this.profile.readPauseMs[1]))
    }
  }

  /** Reads g's refused-frame counter (kept per life: a restart starts it at 0 again). */
  async scrapeRefused (g: number): Promise<number | undefined> {
    const life = this.cluster.life(g)
    const r = await this.cluster.request(g, 'GET', '/metrics')
    if (r.kind !== 'reply' || r.status !== 200 || typeof r.body !== 'string') return undefined
    const n = metric(r.body, 'edge_mesh_gossip_invalid_frames_total')
    if (n !== undefined && life === this.cluster.life(g)) this.refused.set(`${g}:${life}`, n)
    return n
  }

  refusedTotal (): number {
    let sum = 0
    for (const [k, n] of this.refused) if (Number(k.split(':')[0]) !== this.skewed) sum += n
    return sum
  }

  async applyStep (i: number, step: FaultStep): Promise<void> {
    switch (step.kind) {
      case 'partition':
        await this.cluster.partition(step.sides)
        return
      case 'heal':
        await this.cluster.partition(undefined)
        return
      case 'kill':
        await this.cluster.kill(step.gateway)
        return
      case 'restart':
        // In the background: the schedule goes on while the gateway starts (kill waits for it).
        this.restarting.push(this.cluster.restart(step.gateway).catch((err: unknown) => {
          this.violations.push(`restart of g${step.gateway} (step ${i + 1}) failed: ${err instanceof Error ? err.message : String(err)}`)
        }))
        return
      case 'duplicate': {
        const g = step.gateway
        const region = this.cluster.regions(g)[0]
        const last = this.lastBatch[g] ?? { region, readings: [{ sensor: this.sensor(0), value: this.nextValue(g), ts: this.nextTs() }] }
        const to = this.cluster.regions(step.to).includes(last.region) ? step.to : g
        if (step.idempotent) {
          const b = { ...last, key: `seed${this.plan.seed}-dup-${i}` }
          await this.post(to, b)
          await this.post(to, b)
        } else {
          await this.post(to, { region: last.region, readings: last.readings })
        }
        return
      }
      case 'reorder': {
        const s = this.sensor(step.sensor)
        const older = this.nextTs()
        const newer = this.nextTs()
        await this.post(step.gateway, { region: step.region, readings: [{ sensor: s, value: this.nextValue(step.gateway), ts: newer }] })
        const to = this.cluster.regions(step.to).includes(step.region) ? step.to : step.gateway
        await this.post(to, { region: step.region, readings: [{ sensor: s, value: this.nextValue(to), ts: older }] })
      }
    }
  }

  /** Views of the gateways within the drift bound, per region held. */
  async views (): Promise<ReplicaView[]> {
    const out: ReplicaView[] = []
    await Promise.all(this.honest.flatMap(g => this.cluster.regions(g).map(async region => {
      const view = new Map<string, Shown>()
      const list = await this.cluster.request(g, 'GET', `/v1/sensors?region=${region}&prefix=&limit=10000`)
      if (list.kind !== 'reply' || list.status !== 200) throw new Error(`g${g}: listing ${region} failed: ${JSON.stringify(list).slice(0, 300)}`)
      const ids = (list.body as { sensors: string[] }).sensors
      await Promise.all(ids.map(async id => {
        const r = await this.cluster.request(g, 'GET', `/v1/sensors/${encodeURIComponent(id)}?region=${region}`)
        if (r.kind !== 'reply' || r.status !== 200) throw new Error(`g${g}: reading ${region}/${id} failed: ${JSON.stringify(r).slice(0, 300)}`)
        const b = r.body as { value: unknown, t: string, writer: string }
        view.set(id, { value: b.value, t: b.t, writer: b.writer })
      }))
      out.push({ gateway: g, region, view })
    })))
    return out.sort((a, b) => a.gateway - b.gateway || (a.region < b.region ? -1 : 1))
  }

  /** Polls the views until they agree with the model, or `withinMs` passed; the last check. */
  async converge (withinMs: number): Promise<{ check: ViewCheck, ms: number | null }> {
    const t0 = Date.now()
    let check: ViewCheck | undefined
    for (let i = 0; i < 10_000; i++) {
      try {
        check = checkViews(await this.views(), uniqueAcked(this.acked), this.inDoubt, this.cluster.peerId(this.skewed))
        if (check.converged) return { check, ms: Date.now() - t0 }
      } catch (err) {
        check = { converged: false, lost: [], divergent: [], problems: [String(err)] }
      }
      if (Date.now() - t0 > withinMs) break
      await delay(POLL_MS)
    }
    return { check: check as ViewCheck, ms: null }
  }

  /** Polls `cond` until true or `withinMs` passed. */
  async until (cond: () => Promise<boolean>, withinMs: number): Promise<boolean> {
    const end = Date.now() + withinMs
    for (let i = 0; i < 10_000; i++) {
      if (await cond().catch(() => false)) return true
      if (Date.now() > end) return false
      await delay(POLL_MS)
    }
    return false
  }

  /**
   * Warm-up: every gateway connected to every other, one batch from each gateway within the
   * drift bound replicated everywhere, then one batch at the skewed gateway: at least one receiver
   * must count its frame as refused.
   */
  async warmUp (): Promise<void> {
    const n = this.cluster.size
    const connected = await this.until(async () => {
      const peers = await Promise.all(this.plan.regions.map(async (_, g) => {
        const r = await this.cluster.request(g, 'GET', '/ready')
        return r.kind === 'reply' ? (r.body as { peers: number }).peers : -1
      }))
      return peers.every(p => p >= n - 1)
    }, WARMUP_TIMEOUT_MS)
    if (!connected) throw new Error(`the gateways did not all connect within ${WARMUP_TIMEOUT_MS} ms`)
    for (const g of this.honest) {
      for (const region of this.cluster.regions(g)) {
        await this.post(g, { region, readings: [{ sensor: this.sensor(g), value: this.nextValue(g), ts: this.nextTs() }] })
      }
    }
    const warm = await this.converge(WARMUP_TIMEOUT_MS)
    if (warm.ms === null) throw new Error(`the warm-up did not replicate within ${WARMUP_TIMEOUT_MS} ms: ${warm.check.problems.slice(0, 5).join('; ')}`)
    const before = await Promise.all(this.honest.map(async g => await this.scrapeRefused(g) ?? 0))
    const sum = (xs: number[]): number => xs.reduce((s, x) => s + x, 0)
    const region = this.cluster.regions(this.skewed)[0]
    await this.post(this.skewed, { region, readings: [{ sensor: this.sensor(0), value: this.nextValue(this.skewed), ts: this.nextTs() }] })
    const counted = await this.until(async () => sum(await Promise.all(this.honest.map(async g => await this.scrapeRefused(g) ?? 0))) > sum(before), REFUSAL_TIMEOUT_MS)
    if (!counted) this.violations.push(`no receiver counted the skewed gateway g${this.skewed}'s frame as refused (edge_mesh_gossip_invalid_frames_total) within ${REFUSAL_TIMEOUT_MS} ms`)
  }
}

/** Runs one seed (start, warm-up, faults, heal, convergence, checks, stop) and returns its result. */
export async function runSeed (seed: number, opts: SeedRunOptions): Promise<SeedResult> {
  const t0 = Date.now()
  const log = opts.log ?? (() => {})
  const plan = planSeed(seed, opts.profile)
  const described = describePlan(plan)
  log(described)
  const cluster = await ChaosCluster.start(plan)
  const phase = (what: string): void => { log(`seed ${seed}: ${what} at ${Date.now() - t0} ms`) }
  phase('started')
  const run = new SeedRun(plan, opts.profile, cluster, log)
  let convergeMs: number | null = null
  let check: ViewCheck | undefined
  const details: string[] = []
  let restarts = 0
  try {
    try {
      await run.warmUp()
    } catch (err) {
      run.violations.push(`warm-up: ${err instanceof Error ? err.message : String(err)}`)
    }
    phase('warmed up')
    const drivers = plan.regions.map(async (_, g) => { await run.drive(g) })
    const readers = plan.regions.map(async (_, g) => { await run.read(g) })
    for (let i = 0; i < plan.steps.length; i++) {
      const step = plan.steps[i]
      log(`seed ${seed} step ${i + 1}/${plan.steps.length} at ${Date.now() - t0} ms: ${describeStep(step)}`)
      try {
        await run.applyStep(i, step)
        if (step.kind === 'restart') restarts++
      } catch (err) {
        run.violations.push(`step ${i + 1} (${describeStep(step)}) failed: ${err instanceof Error ? err.message : String(err)}`)
      }
      await delay(step.waitMs)
    }
    // Heal: ingest stops (requests in flight complete), partitions end, every gateway runs again.
    run.stopIngest = true
    await Promise.all(drivers)
    await Promise.all(run.restarting)
    await cluster.partition(undefined).catch((err: unknown) => { run.violations.push(`heal failed: ${String(err)}`) })
    phase('ingest stopped')
    await Promise.all(plan.regions.map(async (_, g) => {
      if (cluster.isUp(g)) return
      try {
        await cluster.restart(g)
        restarts++
      } catch (err) {
        run.violations.push(`final restart of g${g} failed: ${err instanceof Error ? err.message : String(err)}`)
      }
    }))
    phase('healed, waiting for convergence')
    const converged = await run.converge(opts.profile.convergeTimeoutMs)
    check = converged.check
    convergeMs = converged.ms
    phase('converged')
    run.stopReads = true
    await Promise.all(readers)
    for (const g of run.honest) await run.scrapeRefused(g)

    if (convergeMs === null) {
      run.violations.push(`views did not converge to the model within ${opts.profile.convergeTimeoutMs} ms: ${check.problems.length} problems`)
      details.push('problems:', ...check.problems)
      for (const g of check.divergent) details.push(cluster.diagnostics(g))
    }
    if (check.lost.length > 0) run.violations.push(`${check.lost.length} acknowledged readings lost, e.g. ${JSON.stringify(check.lost[0])}`)
    for (const r of run.readers) run.violations.push(...r.backward.map(describeBackwardRead))
    run.violations.push(...cluster.crashes)
    run.violations.push(...checkHlcAcrossRestarts([...uniqueAcked(run.acked), ...uniqueAcked(run.fenced)]))
  } finally {
    // Also on an unexpected error: the loops end, then the processes.
    run.stopIngest = true
    run.stopReads = true
    await cluster.close()
    phase('closed')
  }
  const violations = run.violations
  return {
    seed,
    profile: opts.profile.name,
    ok: violations.length === 0,
    faults: plan.steps.length,
    acked: uniqueAcked(run.acked).length,
    fenced: uniqueAcked(run.fenced).length,
    inDoubt: run.inDoubt.length,
    lost: check?.lost.length ?? 0,
    divergentReplicas: check?.divergent.length ?? 0,
    convergeMs,
    refusedFrames: run.refusedTotal(),
    reads: run.readers.reduce((s, r) => s + r.reads, 0),
    restarts,
    violations,
    plan: described,
    details: details.join('\n'),
    wallMs: Date.now() - t0
  }
}

/** A failure message: the seed, the plan with its fault list, the violations and details. */
export function describeFailure (r: SeedResult): string {
  return [
    `chaos seed ${r.seed} FAILED (replay: npm run chaos -- --seed ${r.seed} --profile ${r.profile}):`,
    r.plan,
    'violations:',
    ...r.violations.map(v => '  - ' + v),
    r.details
  ].join('\n')
}
