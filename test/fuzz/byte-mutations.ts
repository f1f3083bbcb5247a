/**
 * Mutated valid inputs for the fuzz tests: a corpus of valid encodings, and fast-check arbitraries
 * that take one of them and apply 1 to `maxMutations` edits: flip a bit, set a byte, insert random
 * bytes, delete a range, truncate, duplicate a range, splice with another corpus entry (a prefix of
 * one, the rest of the other), and replace an unsigned LEB128 varint (a length prefix, count or
 * type) with another value, an overlong encoding of the same value, or an unterminated one. A
 * corpus entry may list the offsets of its known length prefixes, which then get the varint edit
 * more often than a random offset would.
 *
 * Positions are generated as plain naturals and taken modulo the length at the time of the edit,
 * so every edit applies to any input and shrinks well. The output is bounded: at most
 * `maxMutations × 64` bytes longer than the longest corpus entry.
 */
import fc from 'fast-check'

/** A valid input, with the offsets of the varints in it that are length prefixes or counts. */
export interface CorpusEntry {
  bytes: Uint8Array
  prefixes: readonly number[]
}

export type Mutation =
  | { kind: 'flip', at: number, bit: number }
  | { kind: 'set', at: number, value: number }
  | { kind: 'insert', at: number, bytes: Uint8Array }
  | { kind: 'delete', at: number, length: number }
  | { kind: 'truncate', at: number }
  | { kind: 'duplicate', at: number, length: number }
  | { kind: 'splice', at: number, other: number, from: number }
  | { kind: 'varint', at: number, prefix: boolean, value: VarintEdit }

/** What a varint becomes. */
export type VarintEdit =
  | { to: 'value', value: number }
  | { to: 'delta', delta: number }
  | { to: 'overlong', extra: number }
  | { to: 'unterminated' }

/** Values that length prefixes and counts are often checked against. */
const INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x3fff, 0x4000, 0xffff, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]

const varintEditArb: fc.Arbitrary<VarintEdit> = fc.oneof(
  fc.constantFrom(...INTERESTING).map(value => ({ to: 'value' as const, value })),
  fc.nat({ max: 1 << 20 }).map(value => ({ to: 'value' as const, value })),
  fc.integer({ min: -3, max: 3 }).filter(d => d !== 0).map(delta => ({ to: 'delta' as const, delta })),
  fc.integer({ min: 1, max: 12 }).map(extra => ({ to: 'overlong' as const, extra })),
  fc.constant({ to: 'unterminated' as const })
)

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 32 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), other: fc.nat(), from: fc.nat() }),
  { arbitrary: fc.record({ kind: fc.constant('varint' as const), at: fc.nat(), prefix: fc.boolean(), value: varintEditArb }), weight: 3 }
)

/** Unsigned LEB128 of a non-negative integer up to 2^53. */
export function varuintBytes (v: number): number[] {
  const out: number[] = []
  while (v > 0x7f) {
    out.push((v % 128) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

/** The varint at `at` (at most 8 bytes of it): its value and length; an unterminated one runs to the end. */
function readVarint (bytes: Uint8Array, at: number): { value: number, length: number } {
  let value = 0
  let mult = 1
  let i = at
  while (i < bytes.length && i - at < 8) {
    const b = bytes[i++]
    value += (b & 0x7f) * mult
    mult *= 128
    if (b < 0x80) break
  }
  return { value, length: i - at }
}

function replace (bytes: Uint8Array, at: number, length: number, by: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(bytes.length - length + by.length)
  out.set(bytes.subarray(0, at))
  out.set(by, at)
  out.set(bytes.subarray(at + length), at + by.length)
  return out
}

function editVarint (bytes: Uint8Array, at: number, edit: VarintEdit): Uint8Array {
  const { value, length } = readVarint(bytes, at)
  let by: number[]
  switch (edit.to) {
    case 'value': by = varuintBytes(edit.value); break
    case 'delta': by = varuintBytes(Math.max(0, value + edit.delta)); break
    case 'overlong': {
      // The same value with `extra` more bytes: continuation bits on, zero payload.
      by = varuintBytes(value)
      by[by.length - 1] |= 0x80
      for (let i = 1; i < edit.extra; i++) by.push(0x80)
      by.push(0)
      break
    }
    case 'unterminated': by = varuintBytes(value).map(b => b | 0x80); break
  }
  return replace(bytes, at, length, by)
}

/** Applies one edit; `corpus` is the source of splices. */
export function applyMutation (input: CorpusEntry, bytes: Uint8Array, m: Mutation, corpus: readonly CorpusEntry[]): Uint8Array {
  const n = bytes.length
  const pos = (x: number): number => n === 0 ? 0 : x % (n + 1)
  const inside = (x: number): number => n === 0 ? 0 : x % n
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return bytes
      const out = bytes.slice()
      out[inside(m.at)] ^= 1 << m.bit
      return out
    }
    case 'set': {
      if (n === 0) return Uint8Array.of(m.value)
      const out = bytes.slice()
      out[inside(m.at)] = m.value
      return out
    }
    case 'insert': return replace(bytes, pos(m.at), 0, m.bytes)
    case 'delete': {
      const at = inside(m.at)
      return replace(bytes, at, Math.min(m.length, n - at), [])
    }
    case 'truncate': return bytes.slice(0, inside(m.at))
    case 'duplicate': {
      const at = inside(m.at)
      const range = bytes.slice(at, at + m.length)
      return replace(bytes, at, 0, range)
    }
    case 'splice': {
      const other = corpus[m.other % corpus.length].bytes
      const from = other.length === 0 ? 0 : m.from % (other.length + 1)
      const out = new Uint8Array(pos(m.at) + other.length - from)
      out.set(bytes.subarray(0, pos(m.at)))
      out.set(other.subarray(from), pos(m.at))
      return out
    }
    case 'varint': {
      if (n === 0) return Uint8Array.from(varuintBytes(m.value.to === 'value' ? m.value.value : 1))
      // A known prefix offset while the input still has the entry's length (before edits moved it).
      const known = m.prefix && input.prefixes.length > 0 && n === input.bytes.length
      const at = known ? input.prefixes[m.at % input.prefixes.length] : inside(m.at)
      return editVarint(bytes, at, m.value)
    }
  }
}

/** One corpus entry, with 1 to `maxMutations` edits applied in order. */
export function mutatedArb (corpus: readonly CorpusEntry[], maxMutations: number = 4): fc.Arbitrary<Uint8Array> {
  if (corpus.length === 0) throw new Error('an empty corpus')
  return fc.record({
    entry: fc.nat({ max: corpus.length - 1 }),
    mutations: fc.array(mutationArb, { minLength: 1, maxLength: maxMutations })
  }).map(({ entry, mutations }) => {
    const input = corpus[entry]
    let bytes = input.bytes
    for (const m of mutations) bytes = applyMutation(input, bytes, m, corpus)
    return bytes
  })
}

/** A corpus entry unchanged. */
export function validArb (corpus: readonly CorpusEntry[]): fc.Arbitrary<Uint8Array> {
  return fc.nat({ max: corpus.length - 1 }).map(i => corpus[i].bytes.slice())
}

/**
 * `bytes` as a view in the middle of a larger buffer filled with `fill`, as a network stack hands
 * them over: a decoder must read only its view.
 */
export function inLargerBuffer (bytes: Uint8Array, before: number, after: number, fill: number): Uint8Array {
  const backing = new Uint8Array(before + bytes.length + after).fill(fill)
  backing.set(bytes, before)
  return backing.subarray(before, before + bytes.length)
}

/** Bytes, or (one time in four) the same bytes as a view inside a larger buffer. */
export function maybeEmbedded (arb: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const embedded = fc.record({ bytes: arb, before: fc.nat({ max: 16 }), after: fc.integer({ min: 1, max: 64 }), fill: fc.nat({ max: 255 }) })
    .map(({ bytes, before, after, fill }) => inLargerBuffer(bytes, before, after, fill))
  return fc.oneof({ arbitrary: arb, weight: 3 }, { arbitrary: embedded, weight: 1 })
}
