/**
 * Checks of query arguments: every failure is an InvalidOptionsError (EM_ERR_INVALID_OPTIONS,
 * HTTP 400), naming the argument.
 */
import { InvalidOptionsError } from '@edge-mesh/errors'
import { MAX_WALL } from '@edge-mesh/hlc'
import { isValidRegionName, isValidSensorId } from '@edge-mesh/region-state'

/** Default `limit` of history and anomaly queries. */
export const DEFAULT_LIMIT = 1000
/** Largest `limit` of any query (and the default of aggregate queries). */
export const MAX_LIMIT = 100_000

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

export function invalid (message: string, details: Record<string, unknown> = {}): never {
  throw new InvalidOptionsError(message, details)
}

export function checkKeys (q: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(q)) {
    if (!allowed.includes(k)) invalid(`${what}: unknown option "${k}"`, { option: k })
  }
}

export function checkRegion (region: unknown): string {
  if (!isValidRegionName(region)) invalid('region must be 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit', { region: typeof region === 'string' ? region.slice(0, 80) : typeof region })
  return region
}

export function checkSensor (sensor: unknown): string {
  if (!isValidSensorId(sensor)) invalid('sensor must be a sensor id: 1-256 characters, no control characters', { sensor: typeof sensor === 'string' ? sensor.slice(0, 80) : typeof sensor })
  return sensor
}

export function checkLimit (limit: unknown, dflt: number): number {
  if (limit === undefined) return dflt
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    invalid(`limit must be an integer from 1 to ${MAX_LIMIT}`, { limit })
  }
  return limit
}

export function checkOrder (order: unknown): boolean {
  if (order === undefined || order === 'asc') return false
  if (order === 'desc') return true
  return invalid("order must be 'asc' or 'desc'", { order })
}

/** from/to as validated numbers; `to` undefined when unbounded (or past the largest wall time). */
export function checkRange (q: { from?: unknown, to?: unknown }): { from: number, to: number | undefined } {
  for (const k of ['from', 'to'] as const) {
    const v = q[k]
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      invalid(`${k} must be a non-negative integer (wall ms)`, { [k]: v })
    }
  }
  const from = (q.from ?? 0) as number
  const to = q.to as number | undefined
  if (to !== undefined && from > to) invalid('from must not be after to', { from, to })
  return { from, to: to === undefined || to > MAX_WALL ? undefined : to }
}

export function checkQuery (q: unknown, what: string): Record<string, unknown> {
  if (!isPlainObject(q)) invalid(`${what}: the query must be an object`)
  return q
}
