/**
 * The plan of one chaos seed, a pure function of the seed and the profile: which regions each
 * gateway holds, each gateway's clock offset (one of them beyond the HLC drift bound), and the
 * fault schedule. Everything random in a chaos run comes from here or from {@link subSeed}, so a
 * failing seed is replayed by running it again (the interleaving with real processes still varies).
 */
import { prng } from '@edge-mesh/testkit'

export const REGIONS = ['r1', 'r2'] as const
export const GATEWAYS = 5
/** The HLC's default drift bound (packages/hlc/src/clock.ts), ms. */
export const MAX_DRIFT_MS = 60_000
/** Largest skew of an ordinary gateway's clock, ms (either way): two of them differ by at most the drift bound. */
export const SKEW_MS = 30_000

export interface ChaosProfile {
  /** `--profile` of run.ts. */
  name: 'short' | 'long'
  /** Fault steps per seed, inclusive range. */
  steps: [number, number]
  /** Wait after each step, ms, inclusive range. */
  stepWaitMs: [number, number]
  /** Sensors per region. */
  sensorsPerRegion: number
  /** Bound on the wait for convergence after the final heal, ms. */
  convergeTimeoutMs: number
  /** Pause of each gateway's ingest between batches, ms, inclusive range. */
  ingestPauseMs: [number, number]
  /** Sensors each reader reads per round, and its pause between rounds, ms. */
  readsPerRound: number
  readPauseMs: [number, number]
}

/** The CI profile: short seeds, lighter load (the machine runs other test files beside it). */
export const SHORT_PROFILE: ChaosProfile = {
  name: 'short', steps: [6, 8], stepWaitMs: [250, 600], sensorsPerRegion: 16, convergeTimeoutMs: 30_000,
  ingestPauseMs: [60, 160], readsPerRound: 2, readPauseMs: [100, 200]
}
/** The long-run profile (`npm run chaos`). */
export const LONG_PROFILE: ChaosProfile = {
  name: 'long', steps: [6, 10], stepWaitMs: [250, 800], sensorsPerRegion: 24, convergeTimeoutMs: 45_000,
  ingestPauseMs: [40, 120], readsPerRound: 3, readPauseMs: [60, 140]
}

export type FaultStep =
  | { kind: 'partition', sides: [number[], number[]], waitMs: number }
  | { kind: 'heal', waitMs: number }
  | { kind: 'kill', gateway: number, waitMs: number }
  | { kind: 'restart', gateway: number, waitMs: number }
  /** The gateway's last batch posted again, to `to` (itself or another holder of the region). */
  | { kind: 'duplicate', gateway: number, to: number, idempotent: boolean, waitMs: number }
  /** Two readings of one sensor with device ts posted newest first: to `gateway`, then to `to`. */
  | { kind: 'reorder', gateway: number, to: number, region: string, sensor: number, waitMs: number }

export interface SeedPlan {
  seed: number
  /** Regions held by each gateway. */
  regions: string[][]
  /** Clock offset of each gateway, ms. */
  offsets: number[]
  /** The gateway whose clock is beyond the drift bound: its readings are fenced by the mesh. */
  skewed: number
  steps: FaultStep[]
}

/** A 32-bit seed for stream `n` of `seed` (ingest drivers, readers, ...), independent of the plan's. */
export function subSeed (seed: number, n: number): number {
  let h = (seed >>> 0) ^ Math.imul(n + 1, 0x9e3779b1)
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** Region layouts of the 5 gateways (shuffled per seed): 2 regions, some gateways hold both. */
const LAYOUTS: string[][][] = [
  [['r1'], ['r1'], ['r1'], ['r2'], ['r2', 'r1']],
  [['r1', 'r2'], ['r1'], ['r1'], ['r2'], ['r2']],
  [['r1', 'r2'], ['r1', 'r2'], ['r1'], ['r2'], ['r1']],
  [['r1'], ['r2'], ['r1', 'r2'], ['r2'], ['r1', 'r2']]
]

export function planSeed (seed: number, profile: ChaosProfile): SeedPlan {
  const rnd = prng(seed)
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1))
      ;[xs[i], xs[j]] = [xs[j], xs[i]]
    }
    return xs
  }

  const regions = shuffle(pick(LAYOUTS).map(r => [...r].sort()))
  // The skewed gateway: one whose absence leaves at least 2 other holders of each region, so
  // that "identical views" compares at least two replicas everywhere.
  const holders = (r: string, without: number): number => regions.filter((rs, i) => i !== without && rs.includes(r)).length
  const candidates = regions.map((_, i) => i).filter(i => REGIONS.every(r => holders(r, i) >= 2))
  const skewed = pick(candidates)
  const offsets = regions.map((_, i) => i === skewed ? int(2 * MAX_DRIFT_MS, 3 * MAX_DRIFT_MS) : int(-SKEW_MS, SKEW_MS))

  const n = int(profile.steps[0], profile.steps[1])
  const wait = (): number => int(profile.stepWaitMs[0], profile.stepWaitMs[1])
  // Positions of the faults every seed has: a partition first, then a kill, a duplicate, a reorder.
  const slots = shuffle(Array.from({ length: n - 1 }, (_, i) => i + 1))
  const forced = new Map<number, FaultStep['kind']>([[0, 'partition'], [slots[0], 'kill'], [slots[1], 'duplicate'], [slots[2], 'reorder']])
  const down = new Set<number>()
  let partitioned = false
  const steps: FaultStep[] = []
  const all = regions.map((_, i) => i)
  const up = (): number[] => all.filter(i => !down.has(i))
  const holdersOf = (r: string): number[] => all.filter(i => regions[i].includes(r))
  for (let i = 0; i < n; i++) {
    let kind = forced.get(i)
    if (kind === 'kill' && (down.size >= 2 || up().length === 0)) kind = 'restart'
    if (kind === undefined) {
      const options: Array<[FaultStep['kind'], number]> = [
        ['partition', 3], ['heal', partitioned ? 2 : 0], ['kill', down.size < 2 ? 2 : 0], ['restart', down.size > 0 ? 3 : 0],
        ['duplicate', 2], ['reorder', 2]
      ]
      let x = rnd() * options.reduce((s, [, w]) => s + w, 0)
      kind = options.find(([, w]) => (x -= w) < 0)?.[0] ?? 'duplicate'
    }
    switch (kind) {
      case 'partition': {
        // A random split into two non-empty sides (one side may be a single gateway).
        const order = shuffle([...all])
        const cut = int(1, all.length - 1)
        steps.push({ kind, sides: [order.slice(0, cut).sort(), order.slice(cut).sort()], waitMs: wait() })
        partitioned = true
        break
      }
      case 'heal':
        steps.push({ kind, waitMs: wait() })
        partitioned = false
        break
      case 'kill': {
        const g = pick(up())
        down.add(g)
        steps.push({ kind, gateway: g, waitMs: wait() })
        break
      }
      case 'restart': {
        const g = pick([...down].sort())
        down.delete(g)
        steps.push({ kind, gateway: g, waitMs: wait() })
        break
      }
      case 'duplicate': {
        const g = pick(up())
        const to = rnd() < 0.5 ? g : pick(holdersOf(regions[g][0]).filter(h => !down.has(h)))
        steps.push({ kind, gateway: g, to, idempotent: rnd() < 0.3, waitMs: wait() })
        break
      }
      case 'reorder': {
        const g = pick(up())
        const region = pick(regions[g])
        const to = rnd() < 0.5 ? g : pick(holdersOf(region).filter(h => !down.has(h)))
        steps.push({ kind, gateway: g, to, region, sensor: int(0, profile.sensorsPerRegion - 1), waitMs: wait() })
        break
      }
    }
  }
  return { seed, regions, offsets, skewed, steps }
}

/** One line per step, for failure messages and the progress log. */
export function describeStep (s: FaultStep): string {
  switch (s.kind) {
    case 'partition': return `partition [${s.sides[0].map(g => 'g' + g).join(',')}] | [${s.sides[1].map(g => 'g' + g).join(',')}]`
    case 'heal': return 'heal'
    case 'kill': return `SIGKILL g${s.gateway}`
    case 'restart': return `restart g${s.gateway}`
    case 'duplicate': return `post g${s.gateway}'s last batch again to g${s.to}${s.idempotent ? ' (same Idempotency-Key)' : ''}`
    case 'reorder': return `readings of ${s.region}/s${s.sensor} posted newest first to g${s.gateway} then g${s.to}`
  }
}

export function describePlan (p: SeedPlan): string {
  const gws = p.regions.map((r, i) => `g${i}[${r.join('+')}] ${p.offsets[i] >= 0 ? '+' : ''}${p.offsets[i]}ms${i === p.skewed ? ' (beyond the drift bound)' : ''}`)
  return `seed ${p.seed}: ${gws.join(', ')}\n` + p.steps.map((s, i) => `  ${i + 1}. ${describeStep(s)} (then ${s.waitMs} ms)`).join('\n')
}
