/**
 * Leak checks for tests: the process's active resources (sockets, timers, servers, ...) counted by
 * kind, and a bounded wait until none outnumbers the count taken before the test opened anything.
 *
 *   const baseline = activeResources()
 *   // ... open, use and close a server and its clients ...
 *   await waitForNoResourcesBeyond(baseline)
 */
import { waitFor, type WaitForInit } from './wait-for.ts'

/** `process.getActiveResourcesInfo()` counted by kind (`TCPSocketWrap`, `Timeout`, ...). */
export function activeResources (): Map<string, number> {
  const counts = new Map<string, number>()
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1)
  return counts
}

/**
 * Waits until no kind of active resource is more numerous than in `baseline`; the timeout error
 * shows both counts.
 */
export async function waitForNoResourcesBeyond (baseline: ReadonlyMap<string, number>, init: WaitForInit = {}): Promise<void> {
  await waitFor(() => [...activeResources()].every(([kind, n]) => n <= (baseline.get(kind) ?? 0)),
    'no resource beyond the ones open before the test', { explain: () => ({ baseline: [...baseline], now: [...activeResources()] }), ...init })
}
