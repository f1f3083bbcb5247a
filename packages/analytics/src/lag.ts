/**
 * Replication lag as the analytics peer sees it: for each reading it observes, the time it
 * observed it minus the wall time of the reading's HLC timestamp (the clock of the gateway that
 * took the reading in). Each region keeps its most recent samples in a fixed ring, so the
 * quantiles cover a bounded recent window (at most `maxSamples` samples, none older than
 * `windowMs`) in O(maxSamples) memory whatever the rate.
 */
import { InvalidOptionsError } from '@edge-mesh/errors'

export interface LagWindowInit {
  /** Samples kept per region (a ring: the oldest are overwritten). @default 2048 */
  maxSamples?: number
  /** Samples older than this are left out of the quantiles, ms. @default 60000 */
  windowMs?: number
}

/** Quantiles of a region's recent lag samples; `null` when there is none in the window. */
export interface LagSummary {
  samples: number
  p50Ms: number | null
  p99Ms: number | null
  maxMs: number | null
}

/** One region's ring of (observed at, lag) samples. */
class LagRing {
  private readonly at: Float64Array
  private readonly lag: Float64Array
  private next = 0
  private size = 0

  constructor (capacity: number) {
    this.at = new Float64Array(capacity)
    this.lag = new Float64Array(capacity)
  }

  add (at: number, lagMs: number): void {
    this.at[this.next] = at
    this.lag[this.next] = lagMs
    this.next = (this.next + 1) % this.at.length
    if (this.size < this.at.length) this.size++
  }

  /** The lags of the samples observed at `since` or later, unsorted. */
  since (since: number): Float64Array {
    const out = new Float64Array(this.size)
    let n = 0
    for (let i = 0; i < this.size; i++) {
      if (this.at[i] >= since) out[n++] = this.lag[i]
    }
    return out.subarray(0, n)
  }
}

/** The value at quantile `q` (0..1) of sorted `xs` (nearest rank). */
export function quantile (xs: Float64Array, q: number): number {
  if (xs.length === 0) return NaN
  const rank = Math.ceil(q * xs.length)
  return xs[Math.min(xs.length - 1, Math.max(0, rank - 1))]
}

/** Lag samples per region, each region a bounded ring. */
export class LagWindow {
  readonly maxSamples: number
  readonly windowMs: number
  private readonly rings = new Map<string, LagRing>()

  constructor (init: LagWindowInit = {}) {
    this.maxSamples = init.maxSamples ?? 2048
    this.windowMs = init.windowMs ?? 60_000
    if (!Number.isSafeInteger(this.maxSamples) || this.maxSamples < 1) throw new InvalidOptionsError('lag.maxSamples must be a positive integer', { maxSamples: this.maxSamples })
    if (!(this.windowMs > 0)) throw new InvalidOptionsError('lag.windowMs must be positive', { windowMs: this.windowMs })
  }

  /** Records one sample: a reading of `region` observed at `at` (ms) with lag `lagMs` (negative lags count as 0). */
  add (region: string, at: number, lagMs: number): void {
    let ring = this.rings.get(region)
    if (ring === undefined) this.rings.set(region, ring = new LagRing(this.maxSamples))
    ring.add(at, lagMs > 0 ? lagMs : 0)
  }

  /** p50, p99 and max of the region's samples observed within `windowMs` before `now`. */
  summary (region: string, now: number): LagSummary {
    const ring = this.rings.get(region)
    const xs = ring?.since(now - this.windowMs)
    if (xs === undefined || xs.length === 0) return { samples: 0, p50Ms: null, p99Ms: null, maxMs: null }
    xs.sort()
    return { samples: xs.length, p50Ms: quantile(xs, 0.5), p99Ms: quantile(xs, 0.99), maxMs: xs[xs.length - 1] }
  }

  /** Forgets a region's samples. */
  delete (region: string): void {
    this.rings.delete(region)
  }
}
