/** A physical clock the test moves by hand, in either direction. */
export interface FakeClock {
  ms: number
  readonly now: () => number
}

export function fakeClock (ms: number): FakeClock {
  const clock: FakeClock = { ms, now: () => clock.ms }
  return clock
}
