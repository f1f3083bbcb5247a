/**
 * The view's storage: one record per sensor, in flat arrays.
 *
 * A replica's view holds, per sensor, the winning reading's timestamp (as three small integers),
 * writer, flags and value. Every reading a replica merges looks its sensor up here, so with tens
 * of thousands of sensors per region (and several regions or replicas per thread) the lookup's
 * cache misses are most of what a merge costs. Kept as one object per sensor plus two hash maps
 * (by string and by hash), a lookup touched five or six places in memory and a sensor held about
 * 200 bytes of heap. Here a slot is an integer:
 *
 * - `rec` (Int32Array, STRIDE per slot): tHi, tLo, tLg, writer number, flags, position in the own
 *   log's chunk, the apply generation that last changed it, and the key's hash;
 * - `nums` (Float64Array): the value when it is a number (flag F_NUM), with no boxed number;
 * - `values`: any other value; `keys`: the sensor id; `homes`: the own-log chunk holding the winner;
 * - `index` (Int32Array): open addressing with linear probing, two ints per bucket (the key's
 *   hash, slot + 1; 0 is empty), at most 70 % full, with backward-shift deletion (no tombstones).
 *
 * A lookup reads one bucket line, one record and the key string; a sensor costs about 100 bytes.
 * Writer ids are kept once each with a count of the slots that name them (and of open holds), and
 * are forgotten when none does (a writer id comes from remote chunks: it must not accumulate).
 *
 * Keys are hashed with {@link keyHash}: for printable-ASCII ids, whose UTF-8 bytes are their
 * character codes, it equals `sensorHash`, so that a reading is found from a chunk's bytes
 * (`findDecoded`) without building its id as a string.
 */
import { sensorHash, type ChunkDecoder } from './chunk.ts'
import type { JsonValue } from './value.ts'

/** Int32 fields per record. */
export const STRIDE = 8
export const R_HI = 0
export const R_LO = 1
export const R_LG = 2
export const R_WRITER = 3
export const R_FLAGS = 4
export const R_INDEX = 5
export const R_GEN = 6
export const R_HASH = 7

/** The winner is this replica's own reading. */
export const F_OWN = 1
/** The winner is a tombstone. */
export const F_DEL = 2
/** The value is a number, in `nums`. */
export const F_NUM = 4

const MAX_LOAD = 0.7
const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/**
 * The hash of a sensor id in the view's index: `sensorHash` (FNV-1a over the bytes) for
 * printable-ASCII ids, FNV-1a over the UTF-16 code units for any other id; 30 bits.
 */
export function keyHash (key: string): number {
  const h = sensorHash(key)
  if (h >= 0) return h
  let g = FNV_OFFSET
  for (let i = 0; i < key.length; i++) g = Math.imul(g ^ key.charCodeAt(i), FNV_PRIME)
  return g & 0x3fffffff
}

export class ViewTable<H> {
  rec: Int32Array
  nums: Float64Array
  readonly keys: Array<string | undefined> = []
  readonly values: Array<JsonValue | undefined> = []
  readonly homes: Array<H | undefined> = []
  /** Slots in use. */
  count = 0
  /** Slot numbers below this have been used; `keys[s]` is undefined for a free one. */
  top = 0
  private readonly free: number[] = []
  /** Scratch for prefetch: the slot (plus one) in each reading's first bucket. */
  private found = new Int32Array(256)
  private index: Int32Array
  private mask: number
  /** Writer ids by number, the numbers by id, and how many slots name each. */
  readonly writers: Array<string | undefined> = []
  private readonly writerNumbers = new Map<string, number>()
  private writerRefs: Int32Array = new Int32Array(16)
  private readonly freeWriters: number[] = []

  constructor (capacity: number = 64) {
    this.rec = new Int32Array(capacity * STRIDE)
    this.nums = new Float64Array(capacity)
    this.index = new Int32Array(128)
    this.mask = 63
  }

  /** The slot of `key`, or -1. */
  find (key: string): number {
    return this.findHashed(key, keyHash(key))
  }

  private findHashed (key: string, h: number): number {
    const ix = this.index
    const mask = this.mask
    for (let p = h & mask; ; p = (p + 1) & mask) {
      const s1 = ix[2 * p + 1]
      if (s1 === 0) return -1
      if (ix[2 * p] === h && this.keys[s1 - 1] === key) return s1 - 1
    }
  }

  /** The slot of the decoder's current sensor id, or -1; compares bytes when the id is printable ASCII. */
  findDecoded (dec: ChunkDecoder): number {
    const h = dec.sensorHash
    if (h < 0) return this.find(dec.sensor)
    const ix = this.index
    const mask = this.mask
    const keys = this.keys
    for (let p = h & mask; ; p = (p + 1) & mask) {
      const s1 = ix[2 * p + 1]
      if (s1 === 0) return -1
      if (ix[2 * p] === h && dec.sensorIs(keys[s1 - 1] as string)) return s1 - 1
    }
  }

  /**
   * Reads, for the decoder's next `n` readings, the index bucket of each id and then the record and
   * id string of the slot found there, and leaves the decoder where it was. The merge that follows
   * finds them in the cache. One at a time, each lookup waits for its cache misses in turn (a
   * bucket, then a record, then a string); here the loads of different readings do not depend on
   * each other, so the processor overlaps their misses. Returns a number made of what was read, so
   * that the loads cannot be left out.
   */
  prefetch (dec: ChunkDecoder, n: number): number {
    const pos = dec.pos
    const remaining = dec.remaining
    const found = this.found.length >= n ? this.found : (this.found = new Int32Array(n))
    const ix = this.index
    const mask = this.mask
    let k = 0
    for (; k < n && dec.next(); k++) {
      const h = dec.sensorHash
      found[k] = h < 0 ? 0 : ix[2 * (h & mask) + 1]
    }
    const rec = this.rec
    const keys = this.keys
    let x = 0
    for (let i = 0; i < k; i++) {
      const s1 = found[i]
      if (s1 !== 0) x += rec[(s1 - 1) * STRIDE + R_HI] + (keys[s1 - 1] as string).length
    }
    dec.pos = pos
    dec.remaining = remaining
    return x
  }

  /**
   * A new slot for `key` (which must not be in the table), its record zeroed but for the hash.
   * The caller sets the winner's fields.
   */
  add (key: string): number {
    if ((this.count + 1) > MAX_LOAD * (this.mask + 1)) this.rehash(2 * (this.mask + 1))
    let s = this.free.pop()
    if (s === undefined) {
      s = this.top++
      if (s * STRIDE >= this.rec.length) this.grow(2 * (this.rec.length / STRIDE))
    }
    const h = keyHash(key)
    const b = s * STRIDE
    this.rec.fill(0, b, b + STRIDE)
    this.rec[b + R_HASH] = h
    this.nums[s] = 0
    this.keys[s] = key
    this.values[s] = undefined
    this.homes[s] = undefined
    this.place(h, s)
    this.count++
    return s
  }

  /** Frees a slot: out of the index, its writer released. */
  remove (s: number): void {
    const h = this.rec[s * STRIDE + R_HASH]
    const ix = this.index
    const mask = this.mask
    let p = h & mask
    while (ix[2 * p + 1] !== s + 1) p = (p + 1) & mask
    // Backward-shift deletion: move later entries of the probe run into the gap.
    let gap = p
    for (let q = (p + 1) & mask; ix[2 * q + 1] !== 0; q = (q + 1) & mask) {
      const home = ix[2 * q] & mask
      // The entry at q may move to the gap if its home bucket is not within (gap, q].
      const between = gap <= q ? (home > gap && home <= q) : (home > gap || home <= q)
      if (!between) {
        ix[2 * gap] = ix[2 * q]
        ix[2 * gap + 1] = ix[2 * q + 1]
        gap = q
      }
    }
    ix[2 * gap] = 0
    ix[2 * gap + 1] = 0
    this.unrefWriter(this.rec[s * STRIDE + R_WRITER])
    this.keys[s] = undefined
    this.values[s] = undefined
    this.homes[s] = undefined
    this.free.push(s)
    this.count--
  }

  /** The value of a slot's winner. */
  value (s: number): JsonValue {
    return (this.rec[s * STRIDE + R_FLAGS] & F_NUM) !== 0 ? this.nums[s] : this.values[s] as JsonValue
  }

  /** Sets a slot's value; `flags` are its flags before, returned with F_NUM set or cleared. */
  setValue (s: number, flags: number, value: JsonValue): number {
    if (typeof value === 'number') {
      this.nums[s] = value
      if ((flags & F_NUM) === 0) this.values[s] = undefined
      return flags | F_NUM
    }
    this.values[s] = value
    return flags & ~F_NUM
  }

  // ---------------------------------------------------------------- writers

  /**
   * The number of a writer id, held until {@link releaseWriter}: a merge holds its writer while it
   * installs readings, so that the number stays that writer's even if a 'change' listener meanwhile
   * overwrites every slot that named it. A number is kept while a slot names it or a hold is open.
   */
  holdWriter (writer: string): number {
    let w = this.writerNumbers.get(writer)
    if (w === undefined) {
      w = this.freeWriters.pop() ?? this.writers.length
      if (w >= this.writerRefs.length) {
        const refs = new Int32Array(this.writerRefs.length * 2)
        refs.set(this.writerRefs)
        this.writerRefs = refs
      }
      this.writers[w] = writer
      this.writerRefs[w] = 0
      this.writerNumbers.set(writer, w)
    }
    this.writerRefs[w]++
    return w
  }

  /** Ends a hold taken with {@link holdWriter}. */
  releaseWriter (w: number): void {
    this.unrefWriter(w)
  }

  /** Makes slot `s` name writer `w` instead of `old` (-1 for a new slot). */
  setWriter (s: number, old: number, w: number): void {
    this.rec[s * STRIDE + R_WRITER] = w
    if (old === w) return
    this.writerRefs[w]++
    if (old >= 0) this.unrefWriter(old)
  }

  private unrefWriter (w: number): void {
    if (--this.writerRefs[w] === 0) {
      this.writerNumbers.delete(this.writers[w] as string)
      this.writers[w] = undefined
      this.freeWriters.push(w)
    }
  }

  /** Writer ids currently kept (for tests). */
  get writerCount (): number {
    return this.writerNumbers.size
  }

  // ---------------------------------------------------------------- storage

  private place (h: number, s: number): void {
    const ix = this.index
    const mask = this.mask
    let p = h & mask
    while (ix[2 * p + 1] !== 0) p = (p + 1) & mask
    ix[2 * p] = h
    ix[2 * p + 1] = s + 1
  }

  private rehash (buckets: number): void {
    this.index = new Int32Array(2 * buckets)
    this.mask = buckets - 1
    for (let s = 0; s < this.top; s++) if (this.keys[s] !== undefined) this.place(this.rec[s * STRIDE + R_HASH], s)
  }

  private grow (capacity: number): void {
    const rec = new Int32Array(capacity * STRIDE)
    rec.set(this.rec)
    this.rec = rec
    const nums = new Float64Array(capacity)
    nums.set(this.nums)
    this.nums = nums
  }
}
