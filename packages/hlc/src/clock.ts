/**
 * The hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014)
 * over the encoding in `timestamp.ts`.
 */
import { ClockDriftError, InvalidOptionsError, InvalidTimestampError } from '@edge-mesh/errors'
import {
  MAX_LOGICAL, MAX_WALL, ZERO_TIMESTAMP, assertTimestamp, isTimestamp, wallHex, wallOf
} from './timestamp.ts'

export interface HlcInit {
  /** Physical clock in ms. @default Date.now */
  now?: () => number
  /** Largest amount a remote timestamp's wall may be ahead of the local physical clock. @default 60_000 */
  maxDriftMs?: number
  /** Restored state (a timestamp from `last()` that was persisted); the clock never issues anything <= it. @default ZERO_TIMESTAMP */
  last?: string
}

export interface Hlc {
  /** A new timestamp for a local event: strictly greater than every timestamp this clock issued, received or was restored to. */
  now (): string
  /** Merge a remote timestamp (standard HLC receive rule) and return a new timestamp strictly greater than both `remote` and everything before. Throws ClockDriftError (state unchanged) when wallOf(remote) > physical now + maxDriftMs. Throws InvalidTimestampError for malformed input. */
  receive (remote: string): string
  /** Throws ClockDriftError if `remote` is beyond the drift bound; never changes state. */
  checkDrift (remote: string): void
  /** Advance the clock so it never issues anything <= t (no drift check: for restoring persisted state and max timestamps loaded from disk). */
  restore (t: string): void
  /** The greatest timestamp issued, received or restored: the state to persist. */
  last (): string
  readonly maxDriftMs: number
}

const DEFAULT_MAX_DRIFT_MS = 60_000
/** Character codes of the lowercase hex digits. */
const HEX_CODES: readonly number[] = Array.from('0123456789abcdef', c => c.charCodeAt(0))

/**
 * Creates a clock. Its methods do not use `this`, so they may be passed around detached.
 *
 * When the logical counter would pass 0xffff (more than 65 536 events within one
 * millisecond, or a physical clock that stands still), the clock advances wall by
 * 1 ms and resets logical to 0 rather than stalling; wall then runs slightly ahead
 * of physical time until the physical clock catches up. If the physical clock goes
 * backwards the clock keeps its wall and counts up logical, so it only moves forward.
 */
export function createHlc (init: HlcInit = {}): Hlc {
  if (init.now !== undefined && typeof init.now !== 'function') {
    throw new InvalidOptionsError('now must be a function returning milliseconds')
  }
  if (init.maxDriftMs !== undefined &&
    (typeof init.maxDriftMs !== 'number' || !Number.isFinite(init.maxDriftMs) || init.maxDriftMs < 0)) {
    throw new InvalidOptionsError('maxDriftMs must be a non-negative finite number', { maxDriftMs: init.maxDriftMs })
  }
  if (init.last !== undefined && !isTimestamp(init.last)) {
    throw new InvalidOptionsError('last must be a valid timestamp', { last: init.last })
  }
  const physicalNow = init.now ?? Date.now
  const maxDriftMs = init.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS
  const initial = init.last ?? ZERO_TIMESTAMP

  // State as numbers, plus the encoded string.
  let lastWall = wallOf(initial)
  let lastLogical = parseInt(initial.slice(12), 16)
  let lastString = initial
  // The wall's 12 hex digits as character codes, set when the wall changes: a timestamp is then
  // made in one String.fromCharCode, without the temporaries of toString and padStart.
  let w0 = 0; let w1 = 0; let w2 = 0; let w3 = 0; let w4 = 0; let w5 = 0
  let w6 = 0; let w7 = 0; let w8 = 0; let w9 = 0; let w10 = 0; let w11 = 0
  function setWallDigits (hex: string): void {
    w0 = hex.charCodeAt(0); w1 = hex.charCodeAt(1); w2 = hex.charCodeAt(2); w3 = hex.charCodeAt(3)
    w4 = hex.charCodeAt(4); w5 = hex.charCodeAt(5); w6 = hex.charCodeAt(6); w7 = hex.charCodeAt(7)
    w8 = hex.charCodeAt(8); w9 = hex.charCodeAt(9); w10 = hex.charCodeAt(10); w11 = hex.charCodeAt(11)
  }
  setWallDigits(initial)

  /** Floored so injected fractional clocks still give integer walls. */
  function physical (): number {
    return Math.floor(physicalNow())
  }

  /** Commits (wall, logical), carrying logical overflow into wall, and returns the encoding. */
  function issue (wall: number, logical: number): string {
    if (logical > MAX_LOGICAL) {
      wall += 1
      logical = 0
    }
    if (wall !== lastWall) {
      if (wall > MAX_WALL) {
        throw new InvalidTimestampError('the clock has reached the largest encodable timestamp', { wall })
      }
      setWallDigits(wallHex(wall))
      lastWall = wall
    }
    lastLogical = logical
    lastString = String.fromCharCode(w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11,
      HEX_CODES[logical >> 12], HEX_CODES[(logical >> 8) & 15], HEX_CODES[(logical >> 4) & 15], HEX_CODES[logical & 15])
    return lastString
  }

  function checkDriftAt (remote: string, now: number): void {
    const remoteWall = wallOf(remote)
    if (remoteWall > now + maxDriftMs) throw new ClockDriftError(remoteWall, now, maxDriftMs, { remote })
  }

  return {
    maxDriftMs,

    now (): string {
      const p = physical()
      return p > lastWall ? issue(p, 0) : issue(lastWall, lastLogical + 1)
    },

    receive (remote: string): string {
      assertTimestamp(remote)
      const p = physical()
      checkDriftAt(remote, p)
      const remoteWall = wallOf(remote)
      const remoteLogical = parseInt(remote.slice(12), 16)
      const wall = Math.max(lastWall, remoteWall, p)
      let logical: number
      if (wall === lastWall && wall === remoteWall) logical = Math.max(lastLogical, remoteLogical) + 1
      else if (wall === lastWall) logical = lastLogical + 1
      else if (wall === remoteWall) logical = remoteLogical + 1
      else logical = 0
      return issue(wall, logical)
    },

    checkDrift (remote: string): void {
      assertTimestamp(remote)
      checkDriftAt(remote, physical())
    },

    restore (t: string): void {
      assertTimestamp(t)
      if (t > lastString) {
        lastWall = wallOf(t)
        lastLogical = parseInt(t.slice(12), 16)
        setWallDigits(t)
        lastString = t
      }
    },

    last (): string {
      return lastString
    }
  }
}
