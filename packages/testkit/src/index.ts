/**
 * @packageDocumentation
 *
 * Deterministic helpers for tests, benchmarks, the demo and the chaos harness, so that every run
 * can be replayed from a seed; the bounded poll the tests wait with ({@link waitFor}) and their
 * leak check ({@link waitForNoResourcesBeyond}).
 */
export { waitFor, type WaitForInit } from './wait-for.ts'
export { activeResources, waitForNoResourcesBeyond } from './active-resources.ts'

/** mulberry32: a small, fast seeded PRNG returning floats in [0, 1). */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** A physical clock the caller moves by hand, in either direction. */
export interface FakeClock {
  ms: number
  readonly now: () => number
}

export function fakeClock (ms: number): FakeClock {
  const clock: FakeClock = { ms, now: () => clock.ms }
  return clock
}
