/**
 * Shared test helpers for @edge-mesh/region-state: a fake physical clock, region factories with the
 * maintenance timer off, replica wiring, state fingerprints, and a hand-written chunk encoder that
 * follows the layout documented at the top of src/chunk.ts (independent of the package's encoder).
 */
import * as Y from 'yjs'
import {
  createRegionState, decodeChunk, type RegionState, type RegionStateInit, type RegionStats, type Reading, type ReadingView
} from '../src/index.ts'
import { prng } from '@edge-mesh/testkit'
export { prng }

export const T0 = 1_700_000_000_000

/** A physical clock the test moves by hand. */
export interface FakeClock {
  ms: number
  readonly now: () => number
}

export function fakeClock (ms: number = T0): FakeClock {
  const clock: FakeClock = { ms, now: () => clock.ms }
  return clock
}

/** A region on the given clock with the maintenance timer disabled. */
export function region (clock: FakeClock, init: Partial<RegionStateInit> = {}): RegionState {
  return createRegionState({ region: 'eu-west', writer: 'gw-a', now: clock.now, maintenanceIntervalMs: 0, ...init })
}

/** Forwards every local update of each region to all the others. */
export function connect (...regions: RegionState[]): void {
  for (const from of regions) {
    from.on('update', (update, local) => {
      if (!local) return
      for (const to of regions) if (to !== from) to.applyUpdate(update)
    })
  }
}

/** Collects a region's local updates, in order. */
export function recordLocalUpdates (r: RegionState): Uint8Array[] {
  const out: Uint8Array[] = []
  r.on('update', (update, local) => { if (local) out.push(update) })
  return out
}

/** Every sensor id that occurs in any writer log (`w/...` root array) of a region's doc. */
export function sensorsInDoc (r: RegionState): Set<string> {
  const out = new Set<string>()
  for (const name of r.doc.share.keys()) {
    if (!name.startsWith('w/')) continue
    for (const chunk of r.doc.getArray<Uint8Array>(name).toArray()) {
      for (const reading of decodeChunk(chunk).readings) out.add(reading.sensor)
    }
  }
  return out
}

/**
 * The winners (tombstones included) of every sensor that occurs in the region's doc or in `extra`,
 * sorted by sensor: the view as far as it can be observed through the public API.
 */
export function winners (r: RegionState, extra: Iterable<string> = []): Reading[] {
  const sensors = [...new Set([...sensorsInDoc(r), ...extra])].sort()
  const out: Reading[] = []
  for (const s of sensors) {
    const w = r.winner(s)
    if (w !== undefined) out.push(w)
  }
  return out
}

export interface Fingerprint {
  sv: number[]
  stats: RegionStats
  list: string[]
  winners: Reading[]
  hlc: string
}

/** Everything observable about a region's state, to compare before and after a refused operation. */
export function fingerprint (r: RegionState): Fingerprint {
  return { sv: Array.from(r.encodeStateVector()), stats: r.stats(), list: r.list(), winners: winners(r), hlc: r.hlc.last() }
}

/** get() of each sensor. */
export function views (r: RegionState, sensors: Iterable<string>): Array<ReadingView | undefined> {
  return Array.from(sensors, s => r.get(s))
}

/** The chunks of a writer log in a region's doc. */
export function logOf (r: RegionState, writer: string): Uint8Array[] {
  return r.doc.getArray<Uint8Array>('w/' + writer).toArray()
}

/** A Yjs update of a plain doc that appends the given elements to root array `name`. */
export function plainArrayUpdate (name: string, elements: unknown[]): Uint8Array {
  const doc = new Y.Doc()
  doc.getArray(name).push(elements)
  return Y.encodeStateAsUpdate(doc)
}

// ------------------------------------------------------------------ hand-built chunks

export const KIND = { tombstone: 0, null: 1, false: 2, true: 3, number: 4, string: 5, json: 6 } as const

export interface RawReading {
  sensor: string
  t: string
  kind: number
  /** number for kind 4, string for kinds 5 and 6 */
  payload?: number | string
}

const utf8 = new TextEncoder()

export function pushVaruint (out: number[], v: number): void {
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
}

export function pushStr (out: number[], s: string): void {
  const bytes = utf8.encode(s)
  pushVaruint(out, bytes.length)
  for (const b of bytes) out.push(b)
}

export function pushTimestamp (out: number[], t: string): void {
  for (let i = 0; i < 16; i += 2) out.push(parseInt(t.slice(i, i + 2), 16))
}

export function pushReading (out: number[], r: RawReading): void {
  pushStr(out, r.sensor)
  pushTimestamp(out, r.t)
  out.push(r.kind)
  if (r.kind === KIND.number) {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setFloat64(0, r.payload as number, false)
    for (const x of b) out.push(x)
  } else if (r.kind === KIND.string || r.kind === KIND.json) {
    pushStr(out, r.payload as string)
  }
}

/** chunk := version:u8 writer:str count:varuint reading{count}, then optional extra bytes. */
export function buildChunk (writer: string, readings: RawReading[], opts: { version?: number, count?: number, trailing?: number[] } = {}): Uint8Array {
  const out: number[] = [opts.version ?? 1]
  pushStr(out, writer)
  pushVaruint(out, opts.count ?? readings.length)
  for (const r of readings) pushReading(out, r)
  if (opts.trailing !== undefined) out.push(...opts.trailing)
  return Uint8Array.from(out)
}

/** The raw form of a value as the chunk layout encodes it. */
export function rawOf (sensor: string, t: string, value: unknown, deleted: boolean = false): RawReading {
  if (deleted) return { sensor, t, kind: KIND.tombstone }
  if (value === null) return { sensor, t, kind: KIND.null }
  if (value === false) return { sensor, t, kind: KIND.false }
  if (value === true) return { sensor, t, kind: KIND.true }
  if (typeof value === 'number') return { sensor, t, kind: KIND.number, payload: value }
  if (typeof value === 'string') return { sensor, t, kind: KIND.string, payload: value }
  return { sensor, t, kind: KIND.json, payload: JSON.stringify(value) }
}

/** A value as the contract says it reads back: containers go through JSON text (so -0 inside them becomes 0). */
export function normalize<T> (value: T): T {
  return value !== null && typeof value === 'object' ? JSON.parse(JSON.stringify(value)) as T : value
}


/** A shuffled copy of `items` with some of them repeated, from `seed`. */
export function shuffleWithDuplicates<T> (items: readonly T[], seed: number, duplicateRate: number = 0.25): T[] {
  const rand = prng(seed)
  const out = [...items]
  for (const item of items) if (rand() < duplicateRate) out.push(item)
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const tmp = out[i]
    out[i] = out[j]
    out[j] = tmp
  }
  return out
}

/**
 * The first two ids `<prefix><i>` to which `hash` gives the same value, found by search (so that
 * tests of hash collisions need no constant that a change of hash would silently break).
 */
export function collidingIds (hash: (id: string) => number, prefix: string): [string, string] {
  const seen = new Map<number, string>()
  for (let i = 0; i < 1_000_000; i++) {
    const id = `${prefix}${i}`
    const h = hash(id)
    const other = seen.get(h)
    if (other !== undefined) return [other, id]
    seen.set(h, id)
  }
  throw new Error('no colliding pair among a million ids')
}
