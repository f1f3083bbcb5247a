/**
 * Window aggregates: count, min, max, sum and the last value (the value of the reading with the
 * greatest `(t, writer, sensor)` in the window), updated one reading at a time in any order, so a
 * late reading updates an older window exactly as if it had come in order.
 *
 * Stored as JSON: {"c":count,"lo":min,"hi":max,"sum":sum,"t":lastT,"w":lastWriter,"s":lastSensor,"last":last}
 * (`s` only in region windows, where readings of several sensors meet).
 */
import { CorruptRecordError } from '@edge-mesh/errors'

export interface WindowState {
  c: number
  lo: number
  hi: number
  sum: number
  t: string
  w: string
  s?: string
  last: number
}

/** `(t, writer, sensor)` order; `sensor` is '' in a sensor's own windows. */
function isAfter (t: string, w: string, s: string, than: WindowState): boolean {
  if (t !== than.t) return t > than.t
  if (w !== than.w) return w > than.w
  return s > (than.s ?? '')
}

/** The window with one more reading: `prev` updated in place, or a new window when it is undefined. */
export function addToWindow (prev: WindowState | undefined, x: number, t: string, writer: string, sensor: string | undefined): WindowState {
  if (prev === undefined) {
    const w: WindowState = { c: 1, lo: x, hi: x, sum: x, t, w: writer, last: x }
    if (sensor !== undefined) w.s = sensor
    return w
  }
  prev.c++
  if (x < prev.lo) prev.lo = x
  if (x > prev.hi) prev.hi = x
  prev.sum += x
  if (isAfter(t, writer, sensor ?? '', prev)) {
    prev.t = t
    prev.w = writer
    prev.last = x
    if (sensor !== undefined) prev.s = sensor
  }
  return prev
}

/** A sum that overflowed (readings near ±1.8e308) is kept as the string 'Infinity', '-Infinity' or 'NaN'. */
export function encodeWindow (w: WindowState): string {
  return Number.isFinite(w.sum) ? JSON.stringify(w) : JSON.stringify({ ...w, sum: String(w.sum) })
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

export function decodeWindow (key: string, text: string): WindowState {
  let w: WindowState
  try {
    w = JSON.parse(text) as WindowState
  } catch (err) {
    throw new CorruptRecordError(`window record ${JSON.stringify(key)} is not JSON`, { key }, { cause: err })
  }
  if (typeof w === 'object' && w !== null && typeof w.sum === 'string') w.sum = Number(w.sum)
  if (typeof w !== 'object' || w === null || !Number.isSafeInteger(w.c) || w.c < 1 || !isNum(w.lo) || !isNum(w.hi) ||
    typeof w.sum !== 'number' || !isNum(w.last) || typeof w.t !== 'string' || typeof w.w !== 'string') {
    throw new CorruptRecordError(`window record ${JSON.stringify(key)} does not have the window fields`, { key })
  }
  return w
}
