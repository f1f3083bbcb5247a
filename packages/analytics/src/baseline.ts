/**
 * The anomaly rule: an exponentially weighted mean and variance per sensor (O(1) state), and a
 * z-score test of each new numeric reading against the baseline of the readings before it.
 *
 * For a reading x of a sensor that has already fed n samples into its baseline (mean m, variance v,
 * std s = sqrt(v)):
 *
 * 1. x is flagged when n >= minSamples, s > 0 and |x - m| > threshold * s; then z = (x - m) / s,
 *    and the flag reports m and s (the baseline before x).
 * 2. The baseline is then updated with x' = x, or, for a flagged reading, x clipped to
 *    m ± threshold * s (so one spike cannot blow up the variance and hide the next one, while a
 *    lasting level shift still moves the baseline and stops being flagged):
 *      w  = max(alpha, 1 / (n + 1))          alpha = 1 - 2^(-1 / halfLifeSamples)
 *      d  = x' - m
 *      m' = m + w * d
 *      v' = (1 - w) * (v + w * d * d)
 *      n' = n + 1
 *    With w = 1 / (n + 1) this is the exact running mean and population variance, so the first
 *    samples give an unbiased start; once n + 1 > 1 / alpha the weights are exponential: a sample's
 *    weight halves every halfLifeSamples samples.
 *
 * A constant signal (s = 0) is never flagged: it has no scale to measure a deviation against.
 */

/** The persisted state of one sensor's baseline. */
export interface Baseline {
  /** Numeric samples fed so far. */
  n: number
  mean: number
  /** Exponentially weighted population variance. */
  variance: number
}

export interface AnomalyRule {
  threshold: number
  alpha: number
  minSamples: number
}

export interface Flag {
  z: number
  mean: number
  std: number
}

/** The exponential weight of a new sample for a half-life in samples. */
export function alphaForHalfLife (halfLifeSamples: number): number {
  return 1 - 2 ** (-1 / halfLifeSamples)
}

export function emptyBaseline (): Baseline {
  return { n: 0, mean: 0, variance: 0 }
}

/** Tests `x` against the baseline, then feeds it in (updates `b` in place). Returns the flag, if any. */
export function observe (b: Baseline, x: number, rule: AnomalyRule): Flag | undefined {
  const std = Math.sqrt(b.variance)
  const dev = x - b.mean
  let flag: Flag | undefined
  let fed = x
  if (b.n >= rule.minSamples && std > 0 && Math.abs(dev) > rule.threshold * std) {
    flag = { z: dev / std, mean: b.mean, std }
    fed = b.mean + Math.sign(dev) * rule.threshold * std
  }
  const w = Math.max(rule.alpha, 1 / (b.n + 1))
  const d = fed - b.mean
  b.mean += w * d
  b.variance = (1 - w) * (b.variance + w * d * d)
  b.n++
  return flag
}
