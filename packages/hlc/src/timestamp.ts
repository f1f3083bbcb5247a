/**
 * The HLC timestamp encoding: a fixed-width string of 16 lowercase hex digits
 * (12 for the wall milliseconds, 4 for the logical counter) and its 8-byte
 * big-endian binary form. Both sort, lexicographically, in HLC order.
 */
import { InvalidTimestampError } from '@edge-mesh/errors'

/** A decoded HLC timestamp. wall: physical milliseconds since the Unix epoch, integer 0 .. 2^48-1. logical: integer 0 .. 65535. */
export interface Timestamp { readonly wall: number, readonly logical: number }

export const MAX_LOGICAL = 0xffff
export const MAX_WALL = 2 ** 48 - 1
/** 12 lowercase hex digits of wall + 4 lowercase hex digits of logical. */
export const TIMESTAMP_STRING_LENGTH = 16
/** wall as 6 bytes big-endian, then logical as 2 bytes big-endian. */
export const TIMESTAMP_BYTE_LENGTH = 8
export const ZERO_TIMESTAMP: string = '0000000000000000'

const TIMESTAMP_RE = /^[0-9a-f]{16}$/
const TWO_32 = 2 ** 32

/** 12 hex digits of a wall already known to be in range. @internal */
export function wallHex (wall: number): string {
  return wall.toString(16).padStart(12, '0')
}

/** 4 hex digits of a logical counter already known to be in range. @internal */
export function logicalHex (logical: number): string {
  return logical.toString(16).padStart(4, '0')
}

/** Throws InvalidTimestampError unless `s` is a valid encoded timestamp. @internal */
export function assertTimestamp (s: unknown): asserts s is string {
  if (!isTimestamp(s)) {
    throw new InvalidTimestampError(`a timestamp must be ${TIMESTAMP_STRING_LENGTH} lowercase hex characters`,
      { timestamp: typeof s === 'string' ? s.slice(0, 64) : typeof s })
  }
}

export function encodeTimestamp (ts: Timestamp): string {
  const { wall, logical } = ts
  if (!Number.isInteger(wall) || wall < 0 || wall > MAX_WALL) {
    throw new InvalidTimestampError(`wall must be an integer in 0 .. ${MAX_WALL}`, { wall })
  }
  if (!Number.isInteger(logical) || logical < 0 || logical > MAX_LOGICAL) {
    throw new InvalidTimestampError(`logical must be an integer in 0 .. ${MAX_LOGICAL}`, { logical })
  }
  return wallHex(wall) + logicalHex(logical)
}

export function decodeTimestamp (s: string): Timestamp {
  assertTimestamp(s)
  return { wall: parseInt(s.slice(0, 12), 16), logical: parseInt(s.slice(12), 16) }
}

/** True when `s` is exactly 16 lowercase hex characters. Never throws. */
export function isTimestamp (s: unknown): s is string {
  return typeof s === 'string' && s.length === TIMESTAMP_STRING_LENGTH && TIMESTAMP_RE.test(s)
}

/** Wall milliseconds of an encoded timestamp. `t` is assumed valid (NaN otherwise). */
export function wallOf (t: string): number {
  return parseInt(t.slice(0, 12), 16)
}

/** Orders encoded timestamps; lexicographic string order is HLC order. */
export function compareTimestamps (a: string, b: string): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Writes the 8-byte form of `t` at `target[offset]`. Throws InvalidTimestampError
 * if `t` is malformed and RangeError if fewer than 8 bytes remain in `target`.
 */
export function writeTimestampBytes (t: string, target: Uint8Array, offset: number): void {
  assertTimestamp(t)
  if (!Number.isInteger(offset) || offset < 0 || offset + TIMESTAMP_BYTE_LENGTH > target.length) {
    throw new RangeError(`need ${TIMESTAMP_BYTE_LENGTH} bytes at offset ${offset} of a ${target.length}-byte array`)
  }
  // Split the 48-bit wall into 16 + 32 bits so every bit operation stays within 32 bits.
  const hi = parseInt(t.slice(0, 4), 16)
  const lo = parseInt(t.slice(4, 12), 16)
  const logical = parseInt(t.slice(12), 16)
  target[offset] = hi >>> 8
  target[offset + 1] = hi & 0xff
  target[offset + 2] = lo >>> 24
  target[offset + 3] = (lo >>> 16) & 0xff
  target[offset + 4] = (lo >>> 8) & 0xff
  target[offset + 5] = lo & 0xff
  target[offset + 6] = logical >>> 8
  target[offset + 7] = logical & 0xff
}

/** Reads the 8-byte form at `source[offset]`. Throws InvalidTimestampError if fewer than 8 bytes remain. */
export function readTimestampBytes (source: Uint8Array, offset: number): string {
  if (!Number.isInteger(offset) || offset < 0 || offset + TIMESTAMP_BYTE_LENGTH > source.length) {
    throw new InvalidTimestampError(`a timestamp needs ${TIMESTAMP_BYTE_LENGTH} bytes`,
      { offset, length: source.length })
  }
  const hi = (source[offset] << 8) | source[offset + 1]
  // Multiply the top byte instead of shifting it: `<< 24` would go negative above 0x7f.
  const lo = source[offset + 2] * 0x1000000 + ((source[offset + 3] << 16) | (source[offset + 4] << 8) | source[offset + 5])
  const logical = (source[offset + 6] << 8) | source[offset + 7]
  return wallHex(hi * TWO_32 + lo) + logicalHex(logical)
}
