/**
 * @packageDocumentation
 *
 * A hybrid logical clock (HLC) for edge-mesh. Timestamps combine physical
 * milliseconds (48-bit wall) with a 16-bit logical counter, so they stay close
 * to real time yet are strictly increasing per clock and respect causality
 * across replicas. Every timestamp is a fixed-width string of 16 lowercase hex
 * digits (or 8 bytes) whose lexicographic order is HLC order, so it can be used
 * directly as a sort key in storage and on the wire. {@link createHlc} makes a
 * clock; {@link Hlc.receive} merges remote timestamps and rejects those more
 * than `maxDriftMs` ahead of the local physical clock with `ClockDriftError`.
 */

export {
  MAX_LOGICAL, MAX_WALL, TIMESTAMP_STRING_LENGTH, TIMESTAMP_BYTE_LENGTH, ZERO_TIMESTAMP,
  encodeTimestamp, decodeTimestamp, isTimestamp, wallOf, compareTimestamps, writeTimestampBytes, readTimestampBytes
} from './timestamp.ts'
export type { Timestamp } from './timestamp.ts'
export { createHlc } from './clock.ts'
export type { Hlc, HlcInit } from './clock.ts'
