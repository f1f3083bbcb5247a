/**
 * A bounded poll for multi-process tests: a bound on a wait, never a timing assertion.
 *
 *   const r = await until(() => b.get('/v1/sensors/x'), r => r.status === 200, 'x at B', 60_000)
 */
import { setTimeout as delay } from 'node:timers/promises'

/** How often {@link until} reads again, ms. */
export const POLL_EVERY_MS = 100

/**
 * Polls `read` until `ok(value)` holds and returns that value; after `withinMs` throws with `what`
 * and the last value read (or the last error).
 */
export async function until<T> (read: () => Promise<T> | T, ok: (value: T) => boolean, what: string, withinMs: number): Promise<T> {
  const end = Date.now() + withinMs
  let last: T | undefined
  let lastError: unknown
  for (;;) {
    try {
      last = await read()
      lastError = undefined
      if (ok(last)) return last
    } catch (err) {
      lastError = err
    }
    if (Date.now() > end) {
      const seen = lastError !== undefined ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}` : `last value: ${describeValue(last)}`
      throw new Error(`timed out after ${withinMs} ms waiting for ${what}; ${seen}`)
    }
    await delay(POLL_EVERY_MS)
  }
}

/** A short description of a polled value: an HTTP reply as its status and text, anything else as JSON. */
export function describeValue (v: unknown): string {
  if (v !== null && typeof v === 'object' && 'status' in v && 'text' in v) {
    const r = v as { status: unknown, text: unknown }
    return `HTTP ${String(r.status)} ${String(r.text).slice(0, 800)}`
  }
  try {
    return JSON.stringify(v)?.slice(0, 800) ?? String(v)
  } catch {
    return String(v)
  }
}
