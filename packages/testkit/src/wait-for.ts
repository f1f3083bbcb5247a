/**
 * A bounded poll on an observable condition, for tests: a bound on a wait, never a timing
 * assertion.
 *
 *   await waitFor(() => view.latest('line-1/a') !== undefined, 'the reading in the view', { explain: () => view.stats() })
 */
import { setTimeout as delay } from 'node:timers/promises'

export interface WaitForInit {
  /** Bound on the wait, ms. @default 10000 */
  withinMs?: number
  /** Pause between two checks, ms. @default 20 */
  everyMs?: number
  /** What the timeout error shows as the last state (JSON). */
  explain?: () => unknown
}

/**
 * Checks `cond` every `everyMs` until it holds; after `withinMs` rejects with an error naming
 * `what` (and the last `explain()`).
 */
export async function waitFor (cond: () => boolean | Promise<boolean>, what: string, init: WaitForInit = {}): Promise<void> {
  const withinMs = init.withinMs ?? 10_000
  const end = Date.now() + withinMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) {
      const detail = init.explain !== undefined ? `; last state: ${JSON.stringify(init.explain())}` : ''
      throw new Error(`timed out after ${withinMs} ms waiting for: ${what}${detail}`)
    }
    await delay(init.everyMs ?? 20)
  }
}
