import * as Y from 'yjs'
import { ObservableV2 } from 'lib0/observable'
import * as decoding from 'lib0/decoding'
import {
  ClosedError, EdgeMeshError, InvalidOptionsError, InvalidUpdateError, InvalidValueError, ReadOnlyError, ValueTooLargeError
} from '@edge-mesh/errors'
import { createHlc, encodeTimestamp, type Hlc } from '@edge-mesh/hlc'
import {
  ChunkDecoder, ChunkEncoder, KIND_TOMBSTONE, ViewSnapshotEncoder, decodeViewSnapshot, isValidWriterId,
  hexValue, prepareValue, readChunkHeader, writeReading, type Reading
} from './chunk.ts'
import { HARD_MAX_VALUE_BYTES, assertJsonContainer, assertSensorId, deepFreeze, type JsonValue } from './value.ts'
import { F_DEL, F_NUM, F_OWN, R_FLAGS, R_GEN, R_HI, R_INDEX, R_LG, R_LO, R_WRITER, STRIDE, ViewTable } from './view-table.ts'

/** Transaction origin of this replica's own writes and compaction. */
export const LOCAL_ORIGIN: unique symbol = Symbol('edge-mesh:local')
/** Transaction origin of updates applied from other replicas. */
export const REMOTE_ORIGIN: unique symbol = Symbol('edge-mesh:remote')
/** Transaction origin of state loaded from storage. */
export const LOAD_ORIGIN: unique symbol = Symbol('edge-mesh:load')

export interface CompactionInit {
  /**
   * Readings a compaction step takes from the head of the writer's own log. Bounds the work, and
   * so the event-loop pause, of one step.
   * @default 4096
   */
  stepReadings?: number
  /**
   * The own log is compacted when it holds more than `ratio × live own keys + stepReadings`
   * readings. A higher ratio keeps more dead readings in the log (memory) and copies fewer
   * survivors forward (each copy is sent to and merged by every replica): with sensors updated
   * at random, about 17 % of the readings written are copied again at ratio 2, 5 % at 3, 2 % at 4
   * (docs/adr/0001-region-state-model.md).
   * @default 3
   */
  ratio?: number
}

/** The compaction settings used where `RegionStateInit.compaction` leaves them out. */
export const COMPACTION_DEFAULTS: Readonly<Required<CompactionInit>> = { stepReadings: 4096, ratio: 3 }

export interface RegionStateInit {
  /** Region (doc) name, used in errors. */
  region: string
  /** This replica's writer id: the gateway's peer id. Required unless `readOnly`. */
  writer?: string
  /**
   * A read-only replica never writes to the doc: no puts, no tombstones, no compaction.
   * @default false
   */
  readOnly?: boolean
  /** The node's hybrid logical clock, shared by its regions. @default a new clock on `now` */
  hlc?: Hlc
  /** Physical clock (ms) for ages and the retention horizon; the HLC's physical clock. @default Date.now */
  now?: () => number
  /**
   * Readings whose HLC wall time is older than `now() - retentionMs` leave the view, are not
   * carried by compaction and are refused when they arrive late.
   * @default Infinity (keep forever)
   */
  retentionMs?: number
  /** Largest encoded value accepted by local writes, in bytes (at most 1 MiB). @default 65536 */
  maxValueBytes?: number
  /** Most readings in one log chunk written by a local batch. @default 1024 */
  maxChunkReadings?: number
  compaction?: CompactionInit
  /**
   * Period of the maintenance timer that sweeps expired readings and compacts an idle log; 0
   * disables the timer (call {@link RegionState.maintain} yourself).
   * @default 1000
   */
  maintenanceIntervalMs?: number
  /** Readings examined per maintenance call for the retention sweep. @default 5000 */
  sweepBatch?: number
  /**
   * The writers allowed to write this region (writer authorization). A remote update carrying a
   * chunk of any other writer is refused whole with `EM_ERR_UNAUTHORIZED_WRITER` (state
   * unchanged). A writable replica must be one of them. @default every writer is allowed
   */
  writers?: Iterable<string>
}

/** A value as read from the view, with its freshness. */
export interface ReadingView {
  readonly sensor: string
  readonly value: JsonValue
  readonly t: string
  readonly writer: string
  /** Milliseconds between the reading's HLC wall time and now (0 if it is in the future). */
  readonly ageMs: number
}

export interface Change {
  readonly sensor: string
  /** The live reading before, undefined if the sensor was absent or deleted. */
  readonly old: Reading | undefined
  /** The live reading after, undefined if the sensor is now deleted or expired. */
  readonly new: Reading | undefined
  readonly reason: 'write' | 'delete' | 'expire'
  readonly local: boolean
}

export interface ApplyResult {
  /** Readings carried by the update that were new to this replica. */
  readings: number
  /** Keys whose winner changed. */
  changed: number
  /** True when the update left Yjs waiting for missing structs: a sync is due. */
  pending: boolean
}

export interface CompactionStats {
  readings: number
  kept: number
  pauseMs: number
}

export interface RegionStats {
  region: string
  writer: string | undefined
  readOnly: boolean
  /** Live sensors in the view. */
  sensors: number
  /** Tombstones held in the view (until the retention horizon passes them). */
  tombstones: number
  /** Keys whose winner this replica wrote. */
  ownLive: number
  /** Readings and chunks in this replica's own log. */
  ownLogReadings: number
  ownLogChunks: number
  /** Structs in the Yjs struct store, all clients. */
  structs: number
  compactions: number
  maxCompactionPauseMs: number
  expired: number
  /** Chunks that Yjs placed in a log other than their writer's (left out of the view). */
  misplacedChunks: number
  /** Chunks waiting for the item before them, whose readings are not in the view yet. */
  deferredChunks: number
  pending: boolean
}

export interface RegionStateEvents {
  /** A key's winner changed. Emitted only when someone listens. */
  change: (change: Change) => void
  /**
   * Bytes to persist (and, for local ones, to send). `local` updates are this replica's writes
   * and compaction; remote ones are the exact update applied, so that replaying them restores
   * pending structs too.
   */
  update: (update: Uint8Array, local: boolean) => void
  /** An applied update left Yjs with pending structs (a gap): sync with a peer. */
  gap: () => void
  compaction: (stats: CompactionStats) => void
}

export type WriteInput = { sensor: string, value: JsonValue } | { sensor: string, deleted: true }

interface PreparedWrite {
  sensor: string
  kind: number
  payload: number | string | undefined
  value: JsonValue
}

/** Whether a transaction changed the doc: new structs or deletions (Yjs's test for emitting 'update'). */
function transactionChanged (tr: Y.Transaction): boolean {
  if (tr.deleteSet.clients.size > 0) return true
  for (const [client, clock] of tr.afterState) if (tr.beforeState.get(client) !== clock) return true
  return false
}

/**
 * A chunk of this replica's own log, mirrored in memory: its reading count and, per reading, the
 * view slot it is the winner of plus one (0 once it lost), so that compaction finds the survivors
 * without decoding a sensor id or looking up the view.
 */
interface OwnChunk {
  readonly count: number
  readonly winners: Int32Array
  liveCount: number
}

const newOwnChunk = (count: number): OwnChunk => ({ count, winners: new Int32Array(count), liveCount: 0 })

function setLive (c: OwnChunk, i: number, slot: number): void {
  if (c.winners[i] === 0) c.liveCount++
  c.winners[i] = slot + 1
}

function clearLive (c: OwnChunk, i: number): void {
  if (c.winners[i] !== 0) {
    c.winners[i] = 0
    c.liveCount--
  }
}

/** A checked chunk of readings from another replica, to merge into the view after Yjs has integrated it. */
interface RemoteChunk {
  readonly bytes: Uint8Array
  readonly writer: string
  /** Where its readings start (after the header), and how many there are. */
  readonly body: number
  readonly count: number
}

/** A chunk whose log could not be told when it arrived. */
interface DeferredChunk {
  client: number
  clock: number
  chunk: RemoteChunk
}

/** What `inspect` found in an update: chunks to merge, chunks to defer, and the greatest timestamp ('' if none). */
interface Inspected {
  chunks: RemoteChunk[]
  deferred: DeferredChunk[]
  readings: number
  maxT: string
}

/** Readings of a remote chunk whose view slots are looked up ahead of their merge (ViewTable.prefetch). */
const MERGE_BATCH = 256

/** Stands for a parent that is a nested type, which a region doc never has. */
const NESTED = '\u0000nested'

/** The name of a root type, or NESTED for a nested one. */
function rootKeyOf (type: unknown): string | undefined {
  const t = type as Y.AbstractType<unknown> | null
  if (t === null || typeof t !== 'object') return undefined
  if (t._item !== null) return NESTED
  try {
    return Y.findRootTypeKey(t)
  } catch {
    return undefined
  }
}

/**
 * Yjs's V1 update decoder, but reading binary contents (the chunks) as views into the update
 * rather than copies, for `inspect`: its chunks are merged before the apply returns, and a chunk
 * kept for later (deferred) is copied then. Yjs copies each chunk again when it integrates the
 * update; this saves the first of the two copies of every received chunk.
 */
class ViewingUpdateDecoderV1 extends Y.UpdateDecoderV1 {
  override readBuf (): Uint8Array {
    return decoding.readVarUint8Array(this.restDecoder)
  }
}

/** What Y.decodeUpdate returns (its DeleteSet type is not exported). */
interface DecodedUpdate {
  structs: Array<Y.Item | Y.GC | Y.Skip>
  ds: { clients: Map<number, Array<{ clock: number, len: number }>> }
}

const isSafeRange = (client: number, clock: number, length: number): boolean =>
  Number.isSafeInteger(client) && Number.isSafeInteger(clock) && length >= 1 && Number.isSafeInteger(clock + length)

/**
 * Refuses an update that Yjs decodes but cannot integrate or encode again: a struct or deletion of
 * length 0, or a client id, clock or length beyond 2^53 (lib0 decodes such a varint but refuses to
 * read it back). Yjs would fail on these halfway through Y.applyUpdate, or keep them among its
 * pending structs, after which every encoding of the doc (sync, snapshots) fails.
 */
function assertEncodable (decoded: DecodedUpdate, region: string): void {
  for (const s of decoded.structs) {
    if (!isSafeRange(s.id.client, s.id.clock, s.length)) {
      throw new InvalidUpdateError('an update holds a struct of length 0 or beyond 2^53', { region, client: s.id.client, clock: s.id.clock, length: s.length })
    }
    if (s instanceof Y.Item) {
      for (const ref of [s.origin, s.rightOrigin]) {
        if (ref !== null && !isSafeRange(ref.client, ref.clock, 1)) {
          throw new InvalidUpdateError('an item refers to an id beyond 2^53', { region, client: s.id.client, clock: s.id.clock })
        }
      }
    }
  }
  for (const [client, items] of decoded.ds.clients) {
    for (const d of items) {
      if (!isSafeRange(client, d.clock, d.len)) {
        throw new InvalidUpdateError('an update deletes a range of length 0 or beyond 2^53', { region, client, clock: d.clock, length: d.len })
      }
    }
  }
}

/** True when `ref` (an item's origin or right origin) is an item of the same client at or after `id`. */
const refersForward = (ref: Y.ID | null, id: Y.ID): boolean => ref !== null && ref.client === id.client && ref.clock >= id.clock

/** Whether timestamp (hi, lo, lg) by writer `w` beats the winner of record `b` (a greater timestamp, or an equal one with a greater writer id). */
function beats (rec: Int32Array, b: number, hi: number, lo: number, lg: number, w: number, writers: ReadonlyArray<string | undefined>): boolean {
  const h = rec[b + R_HI]
  if (hi !== h) return hi > h
  const l = rec[b + R_LO]
  if (lo !== l) return lo > l
  const g = rec[b + R_LG]
  if (lg !== g) return lg > g
  const o = rec[b + R_WRITER]
  return w !== o && (writers[w] as string) > (writers[o] as string)
}

/** One of the three integers of a timestamp string (16 lowercase hex digits) kept in a slot. */
function hexInt (t: string, from: number, to: number): number {
  let v = 0
  for (let i = from; i < to; i++) v = (v << 4) | hexValue(t.charCodeAt(i))
  return v
}

/**
 * One region's sensor state. See the package README for the model; in short: every writer
 * appends its readings to its own log (`w/<writer>`) in one Y.Doc; the view holds, for every
 * sensor, the reading with the greatest `(t, writer)` ever seen, and only moves forward; log
 * deletions (compaction) are garbage collection and never change the view.
 */
export class RegionState extends ObservableV2<RegionStateEvents> {
  readonly region: string
  readonly writer: string | undefined
  readonly readOnly: boolean
  /** The writers allowed in this region, or undefined for any (see `RegionStateInit.writers`). */
  readonly writers: ReadonlySet<string> | undefined
  readonly doc: Y.Doc
  readonly hlc: Hlc
  private readonly now: () => number
  private readonly retentionMs: number
  private readonly maxValueBytes: number
  private readonly maxChunkReadings: number
  private readonly stepReadings: number
  private readonly ratio: number
  private readonly sweepBatch: number
  /** The view: per sensor, the winning reading's fields (view-table.ts). */
  private readonly table = new ViewTable<OwnChunk>()
  private readonly ownLog: Y.Array<Uint8Array> | undefined
  private readonly encoder = new ChunkEncoder(64 * 1024)
  /** The own log's chunks, oldest first, from `ownHead`. */
  private ownChunks: OwnChunk[] = []
  private ownHead = 0
  private ownLogReadings = 0
  private ownMirrorStale = false
  private ownLive = 0
  private tombstones = 0
  private compactions = 0
  private maxPauseMs = 0
  private expiredCount = 0
  private remoteChanged = false
  private readonly onLocalUpdate: (update: Uint8Array) => void
  private localDepth = 0
  /** Generation of the current apply and the keys it changed (a slot's R_GEN). */
  private gen = 1
  private changedKeys = 0
  private localUpdates: Uint8Array[] = []
  private readonly deferred = new Map<string, DeferredChunk>()
  private misplacedChunks = 0
  /** What ViewTable.prefetch read, summed (kept so that the reads are not left out). */
  private prefetched = 0
  /** The slot the retention sweep goes on from. */
  private sweepAt = 0
  private timer: ReturnType<typeof setInterval> | undefined
  private closed = false

  constructor (init: RegionStateInit) {
    super()
    if (!isValidRegionName(init.region)) {
      throw new InvalidOptionsError('region must be 1 to 64 characters of a-z, A-Z, 0-9, ".", "_" or "-", starting with a letter or digit', { region: init.region })
    }
    this.region = init.region
    this.readOnly = init.readOnly ?? false
    if (!this.readOnly && !isValidWriterId(init.writer)) {
      throw new InvalidOptionsError('a writable region needs a writer id of 1 to 128 characters', { region: init.region })
    }
    this.writer = this.readOnly ? undefined : init.writer
    if (init.writers !== undefined) {
      const writers = new Set<string>()
      for (const w of init.writers) {
        if (!isValidWriterId(w)) throw new InvalidOptionsError('writers must be writer ids of 1 to 128 characters', { region: init.region, writer: w })
        writers.add(w)
      }
      if (this.writer !== undefined && !writers.has(this.writer)) {
        throw new InvalidOptionsError(`writer ${this.writer} is not among the writers allowed in region ${init.region}`, { region: init.region, writer: this.writer })
      }
      this.writers = writers
    }
    this.now = init.now ?? Date.now
    this.hlc = init.hlc ?? createHlc({ now: this.now })
    this.retentionMs = init.retentionMs ?? Infinity
    this.maxValueBytes = init.maxValueBytes ?? 65536
    this.maxChunkReadings = init.maxChunkReadings ?? 1024
    this.stepReadings = init.compaction?.stepReadings ?? COMPACTION_DEFAULTS.stepReadings
    this.ratio = init.compaction?.ratio ?? COMPACTION_DEFAULTS.ratio
    this.sweepBatch = init.sweepBatch ?? 5000
    const positive = { maxChunkReadings: this.maxChunkReadings, stepReadings: this.stepReadings, sweepBatch: this.sweepBatch }
    for (const [k, v] of Object.entries(positive)) {
      if (!Number.isInteger(v) || v < 1) throw new InvalidOptionsError(`${k} must be a positive integer`, { [k]: v })
    }
    if (!(this.ratio >= 1)) throw new InvalidOptionsError('compaction.ratio must be at least 1', { ratio: this.ratio })
    if (!(this.retentionMs > 0)) throw new InvalidOptionsError('retentionMs must be positive', { retentionMs: this.retentionMs })
    if (!(this.maxValueBytes > 0 && this.maxValueBytes <= HARD_MAX_VALUE_BYTES)) {
      throw new InvalidOptionsError(`maxValueBytes must be between 1 and ${HARD_MAX_VALUE_BYTES}`, { maxValueBytes: this.maxValueBytes })
    }

    // A fresh client id per process: see docs/adr/0001-region-state-model.md.
    this.doc = new Y.Doc({ gc: true })
    // Yjs encodes a transaction's update only while the doc has an 'update' listener: this one
    // is attached around local transactions alone (transactLocal), so that applying a remote
    // update does not re-encode it. Whether a remote update changed anything is read off the
    // transaction (the same test Yjs makes before it emits 'update').
    this.onLocalUpdate = (update: Uint8Array) => { this.localUpdates.push(update) }
    this.doc.on('afterTransaction', (tr: Y.Transaction) => {
      if (tr.origin === REMOTE_ORIGIN && !this.remoteChanged) this.remoteChanged = transactionChanged(tr)
    })
    if (this.writer !== undefined) {
      const log = this.doc.getArray<Uint8Array>('w/' + this.writer)
      this.ownLog = log
      log.observe(event => {
        if (event.transaction.origin !== LOCAL_ORIGIN) this.ownMirrorStale = true
      })
    }
    const interval = init.maintenanceIntervalMs ?? 1000
    if (interval > 0) {
      this.timer = setInterval(() => this.maintain(), interval)
      this.timer.unref?.()
    }
  }

  // ---------------------------------------------------------------- reads

  /** The live value of a sensor with its freshness, or undefined if absent, deleted or expired. */
  get (sensor: string): ReadingView | undefined {
    const s = this.table.find(sensor)
    if (s < 0 || (this.table.rec[s * STRIDE + R_FLAGS] & F_DEL) !== 0 || this.isExpiredWall(this.wallOf(s))) return undefined
    return this.viewOf(sensor, s, this.now())
  }

  /** The winner of slot `s` as a ReadingView. */
  private viewOf (sensor: string, s: number, now: number): ReadingView {
    const wall = this.wallOf(s)
    return { sensor, value: this.table.value(s), t: this.tOf(s), writer: this.writerOf(s), ageMs: Math.max(0, now - wall) }
  }

  /** The HLC wall time (ms) of slot `s`'s winner. */
  private wallOf (s: number): number {
    const rec = this.table.rec
    return rec[s * STRIDE + R_HI] * 0x1000000 + rec[s * STRIDE + R_LO]
  }

  /** The timestamp string of slot `s`'s winner. */
  private tOf (s: number): string {
    return encodeTimestamp({ wall: this.wallOf(s), logical: this.table.rec[s * STRIDE + R_LG] })
  }

  private writerOf (s: number): string {
    return this.table.writers[this.table.rec[s * STRIDE + R_WRITER]] as string
  }

  /** The winner of slot `s` as a Reading. */
  private readingOf (s: number): Reading {
    const deleted = (this.table.rec[s * STRIDE + R_FLAGS] & F_DEL) !== 0
    return { sensor: this.table.keys[s] as string, value: deleted ? null : this.table.value(s), t: this.tOf(s), writer: this.writerOf(s), deleted }
  }

  /** The winning reading of a sensor, tombstones included (for sync diagnostics and tests). */
  winner (sensor: string): Reading | undefined {
    const s = this.table.find(sensor)
    return s < 0 ? undefined : this.readingOf(s)
  }

  /** Live sensors, optionally only those whose id starts with `prefix`, in no particular order. */
  * entries (prefix: string = ''): IterableIterator<[string, ReadingView]> {
    const now = this.now()
    const keys = this.table.keys
    for (let s = 0; s < this.table.top; s++) {
      const sensor = keys[s]
      if (sensor === undefined || !this.isListed(sensor, s, prefix)) continue
      yield [sensor, this.viewOf(sensor, s, now)]
    }
  }

  /** Live sensor ids starting with `prefix`, sorted. */
  list (prefix: string = ''): string[] {
    const out: string[] = []
    const keys = this.table.keys
    for (let s = 0; s < this.table.top; s++) {
      const sensor = keys[s]
      if (sensor !== undefined && this.isListed(sensor, s, prefix)) out.push(sensor)
    }
    return out.sort()
  }

  /** Whether a slot holds a live reading (not a tombstone, not past the horizon) of a sensor under `prefix`. */
  private isListed (sensor: string, s: number, prefix: string): boolean {
    return (this.table.rec[s * STRIDE + R_FLAGS] & F_DEL) === 0 && (prefix === '' || sensor.startsWith(prefix)) && !this.isExpiredWall(this.wallOf(s))
  }

  /** Number of live sensors (O(1) without retention; with it, a scan that skips expired ones). */
  get size (): number {
    if (this.retentionMs === Infinity) return this.table.count - this.tombstones
    let n = 0
    const keys = this.table.keys
    for (let s = 0; s < this.table.top; s++) {
      const sensor = keys[s]
      if (sensor !== undefined && this.isListed(sensor, s, '')) n++
    }
    return n
  }

  // ---------------------------------------------------------------- writes

  /** Writes a reading and returns it with its HLC timestamp. */
  put (sensor: string, value: JsonValue): Reading {
    return this.write([{ sensor, value }])[0]
  }

  /** Writes readings in one transaction (one log chunk per `maxChunkReadings`). */
  putMany (entries: ReadonlyArray<{ sensor: string, value: JsonValue }>): Reading[] {
    return this.write(entries)
  }

  /** Deletes a sensor by writing a tombstone, which carries its own HLC timestamp. */
  delete (sensor: string): Reading {
    return this.write([{ sensor, deleted: true }])[0]
  }

  /**
   * Writes puts and deletes atomically: every input is checked first, and if one breaks the
   * contract nothing is written.
   */
  write (inputs: ReadonlyArray<WriteInput>): Reading[] {
    this.assertWritable()
    const prepared: PreparedWrite[] = new Array(inputs.length)
    for (let i = 0; i < inputs.length; i++) prepared[i] = this.prepare(inputs[i])
    const writer = this.writer as string
    // The own log must be mirrored before the new chunks are added to the mirror.
    if (this.ownMirrorStale) this.rebuildOwnMirror()
    const out: Reading[] = new Array(prepared.length)
    const chunks: Uint8Array[] = []
    const homes: OwnChunk[] = []
    const enc = this.encoder
    for (let start = 0; start < prepared.length; start += this.maxChunkReadings) {
      const end = Math.min(prepared.length, start + this.maxChunkReadings)
      enc.reset()
      enc.u8(1)
      enc.str(writer)
      enc.varuint(end - start)
      for (let i = start; i < end; i++) {
        const p = prepared[i]
        const t = this.hlc.now()
        writeReading(enc, p.sensor, t, p.kind, p.payload)
        out[i] = { sensor: p.sensor, value: p.value, t, writer, deleted: p.kind === KIND_TOMBSTONE }
      }
      chunks.push(enc.toBytes())
      homes.push(newOwnChunk(end - start))
    }
    const log = this.ownLog as Y.Array<Uint8Array>
    this.transactLocal(() => {
      log.insert(log.length, chunks)
    })
    for (const c of homes) {
      this.ownChunks.push(c)
      this.ownLogReadings += c.count
    }
    const per = this.maxChunkReadings
    for (let i = 0; i < out.length; i++) this.consider(out[i], true, homes[Math.floor(i / per)], i % per)
    this.emitLocalUpdates()
    if (this.needsCompaction()) this.compactStep()
    return out
  }

  /**
   * Checks a write as `write()` would (sensor id, value contract, size), without writing: throws
   * the same typed errors. For callers that decide not to write a reading (a duplicate) yet must
   * refuse a batch holding an invalid one.
   */
  check (input: WriteInput): void {
    this.prepare(input)
  }

  private prepare (input: WriteInput): PreparedWrite {
    assertSensorId(input.sensor)
    if ('deleted' in input && input.deleted === true) {
      return { sensor: input.sensor, kind: KIND_TOMBSTONE, payload: undefined, value: null }
    }
    let value = (input as { value: JsonValue }).value
    const type = typeof value
    if (type === 'object' && value !== null) {
      assertJsonContainer(value as object)
    } else if (type === 'number') {
      if (!Number.isFinite(value)) throw new InvalidValueError(`${String(value)} is not a finite number`, { sensor: input.sensor, path: '$' })
    } else if (type === 'string') {
      if (!(value as string).isWellFormed()) throw new InvalidValueError('strings must be well-formed Unicode (no lone surrogates)', { sensor: input.sensor, path: '$' })
    } else if (type !== 'boolean' && value !== null) {
      throw new InvalidValueError(`${type} is not a JSON value`, { sensor: input.sensor, path: '$' })
    }
    const enc = prepareValue(value)
    if (enc.size > this.maxValueBytes) {
      const bytes = typeof enc.payload === 'string' ? new TextEncoder().encode(enc.payload).length : enc.size
      if (bytes > this.maxValueBytes) throw new ValueTooLargeError(bytes, this.maxValueBytes, { sensor: input.sensor })
    }
    if (enc.kind === 6) value = deepFreeze(JSON.parse(enc.payload as string) as JsonValue)
    return { sensor: input.sensor, kind: enc.kind, payload: enc.payload, value }
  }

  /**
   * Runs `f` in a transaction of this replica's own (LOCAL_ORIGIN) and collects its update for
   * emitLocalUpdates: emitted once the view has taken the transaction's readings, so that
   * whoever reacts to 'update' sees them in the view.
   */
  private transactLocal (f: () => void): void {
    // Nested calls join the outer transaction: the listener stays until the outermost returns.
    if (this.localDepth++ === 0) this.doc.on('update', this.onLocalUpdate)
    try {
      this.doc.transact(f, LOCAL_ORIGIN)
    } finally {
      if (--this.localDepth === 0) this.doc.off('update', this.onLocalUpdate)
    }
  }

  private emitLocalUpdates (): void {
    if (this.localUpdates.length === 0) return
    const updates = this.localUpdates
    this.localUpdates = []
    for (const u of updates) this.emit('update', [u, true])
  }

  private assertWritable (): void {
    if (this.closed) throw new ClosedError(`region ${this.region}`, { region: this.region })
    if (this.readOnly) throw new ReadOnlyError(`region ${this.region} is read-only here`, { region: this.region })
  }

  // ---------------------------------------------------------------- the view

  /**
   * Merges a reading into the view; true if it became the winner. `home` and `index` say where
   * the reading sits in the own log, if it does.
   */
  private consider (r: Reading, local: boolean, home?: OwnChunk, index: number = 0): boolean {
    const t = r.t
    const hi = hexInt(t, 0, 6)
    const lo = hexInt(t, 6, 12)
    if (this.isExpiredWall(hi * 0x1000000 + lo)) return false
    const lg = hexInt(t, 12, 16)
    const table = this.table
    const slot = table.find(r.sensor)
    const w = table.holdWriter(r.writer)
    try {
      if (slot >= 0 && !beats(table.rec, slot * STRIDE, hi, lo, lg, w, table.writers)) return false
      this.install(slot, r.sensor, hi, lo, lg, w, r.writer === this.writer, r.deleted, r.value, r, local, home, index)
      return true
    } finally {
      table.releaseWriter(w)
    }
  }

  /** Merges the readings of a checked remote chunk, straight from its bytes. */
  private mergeChunk (c: RemoteChunk): void {
    const dec = new ChunkDecoder(c.bytes)
    dec.pos = c.body
    dec.remaining = c.count
    const table = this.table
    const w = table.holdWriter(c.writer)
    try {
      this.mergeReadings(dec, w, c.writer === this.writer)
    } finally {
      table.releaseWriter(w)
    }
  }

  /** The merge loop of mergeChunk, with the chunk's writer held as number `w`. */
  private mergeReadings (dec: ChunkDecoder, w: number, own: boolean): void {
    const table = this.table
    const horizon = this.retentionMs === Infinity ? -1 : this.now() - this.retentionMs
    let batch = 0
    while (true) {
      if (batch === 0) {
        batch = Math.min(dec.remaining, MERGE_BATCH)
        if (batch > 1) this.prefetched += table.prefetch(dec, batch)
      }
      if (!dec.next()) break
      batch--
      const hi = dec.tHi
      const lo = dec.tLo
      const lg = dec.tLg
      if (hi * 0x1000000 + lo < horizon) continue
      const slot = table.findDecoded(dec)
      if (slot >= 0 && !beats(table.rec, slot * STRIDE, hi, lo, lg, w, table.writers)) continue
      this.install(slot, slot < 0 ? dec.sensor : '', hi, lo, lg, w, own, dec.kind === KIND_TOMBSTONE, dec.value(), undefined, false, undefined, 0)
    }
  }

  /**
   * Makes a reading the winner of its sensor: updates `slot`, or, if it is -1, creates a slot for
   * `key`; and tells the 'change' listeners. `w` is the writer's number in the table (see
   * ViewTable.writerNumber); `reading` is the reading as given, if it was given as one.
   */
  private install (
    slot: number, key: string, hi: number, lo: number, lg: number, w: number, own: boolean,
    deleted: boolean, value: JsonValue, reading: Reading | undefined, local: boolean, home: OwnChunk | undefined, index: number
  ): void {
    const listeners = this._observers.get('change')
    const observed = listeners !== undefined && listeners.size > 0
    const table = this.table
    let old: Reading | undefined
    let oldWriter = -1
    let flags = 0
    let hadOwn = false
    if (slot < 0) {
      slot = table.add(key)
    } else {
      const b = slot * STRIDE
      flags = table.rec[b + R_FLAGS]
      if (observed && (flags & F_DEL) === 0 && !this.isExpiredWall(this.wallOf(slot))) old = this.readingOf(slot)
      if ((flags & F_OWN) !== 0) {
        hadOwn = true
        const was = table.homes[slot]
        if (was !== undefined) clearLive(was, table.rec[b + R_INDEX])
        this.ownLive--
      }
      if ((flags & F_DEL) !== 0) this.tombstones--
      oldWriter = table.rec[b + R_WRITER]
    }
    const rec = table.rec
    const b = slot * STRIDE
    flags = table.setValue(slot, flags, value) & F_NUM
    if (own) flags |= F_OWN
    if (deleted) flags |= F_DEL
    rec[b + R_HI] = hi
    rec[b + R_LO] = lo
    rec[b + R_LG] = lg
    rec[b + R_FLAGS] = flags
    rec[b + R_INDEX] = index
    table.setWriter(slot, oldWriter, w)
    if (hadOwn || home !== undefined) table.homes[slot] = home
    if (home !== undefined) setLive(home, index, slot)
    if (own) this.ownLive++
    if (deleted) this.tombstones++
    if (rec[b + R_GEN] !== this.gen) {
      rec[b + R_GEN] = this.gen
      this.changedKeys++
    }
    if (observed) {
      if (old !== undefined || !deleted) {
        // Called directly: lib0's emit copies the listeners into a new array on every call.
        const sensor = table.keys[slot] as string
        const change: Change = { sensor, old, new: deleted ? undefined : (reading ?? this.readingOf(slot)), reason: deleted ? 'delete' : 'write', local }
        for (const f of listeners as Set<(c: Change) => void>) f(change)
      }
    }
  }

  private isExpiredWall (wall: number): boolean {
    return this.retentionMs !== Infinity && wall < this.now() - this.retentionMs
  }

  // ---------------------------------------------------------------- remote updates

  /**
   * Applies a Yjs update from another replica. The update is checked in full before Yjs sees it:
   * only writer logs holding valid reading chunks are accepted, and no reading may be beyond the
   * HLC drift bound. On any error (InvalidUpdateError, ClockDriftError) the state is unchanged.
   */
  applyUpdate (update: Uint8Array): ApplyResult {
    if (this.closed) throw new ClosedError(`region ${this.region}`, { region: this.region })
    return this.apply(update, false)
  }

  private apply (update: Uint8Array, load: boolean, collect: boolean = true): ApplyResult {
    const { chunks, deferred, readings, maxT } = this.inspect(update, collect)
    if (maxT !== '') {
      if (load) this.hlc.restore(maxT)
      else this.hlc.checkDrift(maxT)
    }
    const store = this.doc.store
    // Yjs merges new pending structs into the same object: compare the update it holds.
    const pendingBefore = store.pendingStructs?.update
    const pendingDsBefore = store.pendingDs
    this.remoteChanged = false
    try {
      Y.applyUpdate(this.doc, update, load ? LOAD_ORIGIN : REMOTE_ORIGIN)
    } catch (err) {
      throw new InvalidUpdateError('Yjs could not integrate the update', { region: this.region }, { cause: err })
    }
    if (maxT !== '' && !load) this.hlc.receive(maxT)
    this.gen++
    this.changedKeys = 0
    for (const c of chunks) this.mergeChunk(c)
    if (load) {
      // Replayed records are this replica's own, checked when they first arrived: a chunk whose
      // log cannot be told yet (a record lost before it) still shows its readings.
      for (const d of deferred) this.mergeChunk(d.chunk)
    } else {
      // Kept past this apply: its own bytes, not a view into the update.
      for (const d of deferred) this.deferred.set(`${d.client}:${d.clock}`, { ...d, chunk: { ...d.chunk, bytes: d.chunk.bytes.slice() } })
    }
    if (this.deferred.size > 0) this.settleDeferred()
    const pending = store.pendingStructs !== null
    if (!load && (this.remoteChanged || store.pendingStructs?.update !== pendingBefore || store.pendingDs !== pendingDsBefore)) {
      this.emit('update', [update, false])
    }
    if (pending && !load) this.emit('gap', [])
    return { readings, changed: this.changedKeys, pending }
  }

  /**
   * Merges the readings of chunks that arrived before the item they follow (so their log could not
   * be told) once Yjs has integrated them, if they are in their writer's log; a chunk found in
   * another log is left out of the view and counted.
   */
  private settleDeferred (): void {
    const store = this.doc.store
    for (const [key, d] of this.deferred) {
      if (d.clock >= Y.getState(store, d.client)) continue
      this.deferred.delete(key)
      const item = Y.getItem(store, Y.createID(d.client, d.clock))
      const parent = item instanceof Y.Item ? rootKeyOf(item.parent) : undefined
      if (parent !== 'w/' + d.chunk.writer) {
        this.misplacedChunks++
        continue
      }
      this.mergeChunk(d.chunk)
    }
  }

  /**
   * Decodes and checks an update before Yjs sees it, every reading of every new chunk included.
   * Returns the chunks new to this replica whose log is known, and, apart, those whose log cannot
   * be told yet (their left neighbour has not arrived): those wait in `deferred` until Yjs
   * integrates them. Readings are not built here: the merge reads them again from the bytes.
   */
  private inspect (update: Uint8Array, collect: boolean, v2: boolean = false): Inspected {
    let decoded: DecodedUpdate
    try {
      decoded = (v2 ? Y.decodeUpdateV2(update) : Y.decodeUpdateV2(update, ViewingUpdateDecoderV1)) as DecodedUpdate
    } catch (err) {
      throw new InvalidUpdateError('update is not a decodable Yjs update', { region: this.region }, { cause: err })
    }
    assertEncodable(decoded, this.region)
    const store = this.doc.store
    const chunks: RemoteChunk[] = []
    const deferred: DeferredChunk[] = []
    let readings = 0
    // The greatest timestamp, as the three integers of a view slot.
    let mHi = -1
    let mLo = 0
    let mLg = 0
    // The root type of each item of this update, by client, to resolve later items' parents.
    const seen = new Map<number, Array<{ clock: number, length: number, parent: string | undefined }>>()
    const parentAt = (id: Y.ID | null): string | undefined => {
      if (id === null) return undefined
      const list = seen.get(id.client)
      if (list !== undefined) {
        for (let k = list.length - 1; k >= 0; k--) {
          const e = list[k]
          if (id.clock >= e.clock && id.clock < e.clock + e.length) return e.parent
        }
      }
      if (id.clock < Y.getState(store, id.client)) {
        const item = Y.getItem(store, id)
        if (item instanceof Y.Item) return rootKeyOf(item.parent)
      }
      return undefined
    }
    for (const s of decoded.structs) {
      if (!(s instanceof Y.Item)) continue
      // Decoded, not integrated: parent is a root type name, a nested parent's ID, or null (then
      // it is the parent of the origin or of the right origin).
      const explicit = s.parent as unknown
      const where = { region: this.region, client: s.id.client, clock: s.id.clock }
      if (s.parentSub !== null || (explicit !== null && typeof explicit !== 'string')) {
        throw new InvalidUpdateError('only writer logs (root arrays named w/<writer>) are allowed in a region doc', where)
      }
      // An item's neighbours existed when it was inserted: one of its own client comes before it.
      // Yjs does not check that, and fails on a forward reference halfway through Y.applyUpdate,
      // after it has integrated the structs before it.
      if (refersForward(s.origin, s.id) || refersForward(s.rightOrigin, s.id)) {
        throw new InvalidUpdateError('an item refers to a later item of its own client as its neighbour', where)
      }
      const parent = typeof explicit === 'string' ? explicit : (parentAt(s.origin) ?? parentAt(s.rightOrigin))
      if (parent !== undefined && (parent === NESTED || !parent.startsWith('w/'))) {
        throw new InvalidUpdateError('only writer logs (root arrays named w/<writer>) are allowed in a region doc', { ...where, parent })
      }
      let list = seen.get(s.id.client)
      if (list === undefined) seen.set(s.id.client, (list = []))
      list.push({ clock: s.id.clock, length: s.length, parent })
      const content = s.content
      if (content instanceof Y.ContentDeleted) continue
      if (!(content instanceof Y.ContentBinary)) {
        throw new InvalidUpdateError(`content type ${content.constructor.name} is not allowed in a region doc`, where)
      }
      if (!collect || s.id.clock < Y.getState(store, s.id.client)) continue
      const dec = new ChunkDecoder(content.content)
      let count = 0
      let body = 0
      try {
        count = dec.readChunkHeader()
        body = dec.pos
        if (this.writers !== undefined && !this.writers.has(dec.writer)) {
          throw new EdgeMeshError('EM_ERR_UNAUTHORIZED_WRITER', `writer ${dec.writer} is not allowed to write region ${this.region}`, { ...where, writer: dec.writer })
        }
        if (parent !== undefined && parent !== 'w/' + dec.writer) {
          throw new InvalidUpdateError('chunk writer differs from the log it is in', { ...where, log: parent, writer: dec.writer })
        }
        while (dec.next()) {
          dec.checkValue()
          const hi = dec.tHi
          const lo = dec.tLo
          const lg = dec.tLg
          if (hi > mHi || (hi === mHi && (lo > mLo || (lo === mLo && lg > mLg)))) {
            mHi = hi
            mLo = lo
            mLg = lg
          }
        }
      } catch (err) {
        if (err instanceof EdgeMeshError && err.code === 'EM_ERR_UNAUTHORIZED_WRITER') throw err
        if (err instanceof EdgeMeshError) {
          throw new InvalidUpdateError(err.message, { ...err.details, ...where }, { cause: err })
        }
        throw err
      }
      const chunk: RemoteChunk = { bytes: content.content, writer: dec.writer, body, count }
      readings += count
      if (parent !== undefined) chunks.push(chunk)
      else deferred.push({ client: s.id.client, clock: s.id.clock, chunk })
    }
    const maxT = mHi < 0 ? '' : encodeTimestamp({ wall: mHi * 0x1000000 + mLo, logical: mLg })
    return { chunks, deferred, readings, maxT }
  }

  // ---------------------------------------------------------------- sync and persistence hooks

  encodeStateVector (): Uint8Array {
    return Y.encodeStateVector(this.doc)
  }

  /** The doc's state, or the part a peer with `stateVector` lacks (pending structs included). */
  encodeStateAsUpdate (stateVector?: Uint8Array): Uint8Array {
    return Y.encodeStateAsUpdate(this.doc, stateVector)
  }

  /**
   * The state to persist as a snapshot: the doc, and the view (which may hold readings that no
   * log holds any more, after a compaction overtook a gap). The doc part is taken synchronously
   * when this is called; the view is then encoded in slices of `sliceEntries`, yielding to the
   * event loop between them, so a large region does not stall it. Readings that win while the
   * slices are encoded may be included; that is harmless, since the view only moves forward.
   */
  async encodeSnapshot (sliceEntries: number = 20_000): Promise<{ doc: Uint8Array, view: Uint8Array }> {
    const doc = Y.encodeStateAsUpdate(this.doc)
    const table = this.table
    const enc = new ViewSnapshotEncoder(40 * table.count + 64)
    let i = 0
    // The table may change between slices; `top` is read again each time.
    for (let s = 0; s < table.top; s++) {
      const key = table.keys[s]
      if (key === undefined) continue
      const rec = table.rec
      const b = s * STRIDE
      enc.addParts(key, rec[b + R_HI], rec[b + R_LO], rec[b + R_LG], this.writerOf(s), (rec[b + R_FLAGS] & F_DEL) !== 0, table.value(s))
      if (++i % sliceEntries === 0) await new Promise<void>(resolve => { setImmediate(resolve) })
    }
    return { doc, view: enc.finish() }
  }

  /** Loads a persisted snapshot into a fresh region (before any write or apply). */
  loadSnapshot (doc: Uint8Array, view: Uint8Array | readonly Reading[]): void {
    const readings = view instanceof Uint8Array ? decodeViewSnapshot(view) : view
    this.apply(doc, true, false)
    // The view covers the integrated chunks; pending ones (behind a gap) may hold readings that
    // were still deferred when the snapshot was taken.
    const pending = this.doc.store.pendingStructs
    if (pending !== null) {
      const found = this.inspect(pending.update, true, true)
      for (const c of found.chunks) this.mergeChunk(c)
      for (const d of found.deferred) this.mergeChunk(d.chunk)
    }
    let maxT = ''
    for (const r of readings) {
      this.consider(r, false)
      if (r.t > maxT) maxT = r.t
    }
    if (maxT !== '') this.hlc.restore(maxT)
  }

  /** Replays a persisted update (no drift check, no 'update' event). */
  replayUpdate (update: Uint8Array): ApplyResult {
    return this.apply(update, true)
  }

  // ---------------------------------------------------------------- compaction and maintenance

  private needsCompaction (): boolean {
    return !this.readOnly && this.ownLogReadings > this.ratio * this.ownLive + this.stepReadings
  }

  /**
   * Rebuilds the mirror of the own log from the doc, after a transaction that was not this
   * replica's own touched it (loading from storage, or a sync that brought back chunks of an
   * earlier run): counts, and which readings are still winners.
   */
  private rebuildOwnMirror (): void {
    const log = this.ownLog as Y.Array<Uint8Array>
    this.table.homes.fill(undefined)
    this.ownChunks = []
    this.ownHead = 0
    this.ownLogReadings = 0
    const table = this.table
    for (const bytes of log.toArray()) {
      const dec = new ChunkDecoder(bytes)
      const chunk = newOwnChunk(dec.readChunkHeader())
      let i = 0
      while (dec.next()) {
        const slot = table.findDecoded(dec)
        const b = slot * STRIDE
        const rec = table.rec
        if (slot >= 0 && this.writerOf(slot) === dec.writer && rec[b + R_HI] === dec.tHi && rec[b + R_LO] === dec.tLo && rec[b + R_LG] === dec.tLg) {
          const was = table.homes[slot]
          if (was !== undefined) clearLive(was, rec[b + R_INDEX])
          table.homes[slot] = chunk
          rec[b + R_INDEX] = i
          setLive(chunk, i, slot)
        }
        i++
      }
      this.ownChunks.push(chunk)
      this.ownLogReadings += chunk.count
    }
    this.ownMirrorStale = false
  }

  /**
   * One bounded compaction step on this replica's own log: takes the oldest chunks (about
   * `stepReadings` readings), keeps the readings that are still winners, deletes the chunks with
   * one range delete and appends the kept readings as one chunk. Dead readings are skipped
   * without being decoded.
   */
  compactStep (): CompactionStats | undefined {
    if (this.readOnly || this.closed) return undefined
    const t0 = performance.now()
    if (this.ownMirrorStale) this.rebuildOwnMirror()
    const log = this.ownLog as Y.Array<Uint8Array>
    let n = 0
    let taken = 0
    const available = this.ownChunks.length - this.ownHead
    while (n < available && taken < this.stepReadings) taken += this.ownChunks[this.ownHead + n++].count
    if (n === 0) return undefined
    // First the survivors, from the mirror alone; then their bytes, copied from the old chunks.
    const table = this.table
    const keptSlots: number[] = []
    for (let c = 0; c < n; c++) {
      const meta = this.ownChunks[this.ownHead + c]
      if (meta.liveCount === 0) continue
      for (let i = 0; i < meta.count; i++) {
        const slot = meta.winners[i] - 1
        if (slot < 0) continue
        // Past the horizon but not swept yet: not carried; the sweep removes it from the view.
        if (this.isExpiredWall(this.wallOf(slot))) table.homes[slot] = undefined
        else keptSlots.push(slot)
      }
    }
    let replacement: Uint8Array | undefined
    let home: OwnChunk | undefined
    if (keptSlots.length > 0) {
      const old = log.slice(0, n)
      const enc = this.encoder
      enc.reset()
      enc.u8(1)
      enc.str(this.writer as string)
      enc.varuint(keptSlots.length)
      for (let c = 0; c < n; c++) {
        const meta = this.ownChunks[this.ownHead + c]
        if (meta.liveCount === 0) continue
        const bytes = old[c]
        const dec = new ChunkDecoder(bytes)
        dec.readChunkHeader()
        for (let i = 0; dec.skipNext(); i++) {
          const slot = meta.winners[i] - 1
          if (slot >= 0 && table.homes[slot] !== undefined) enc.range(bytes, dec.readingStart, dec.valueEnd)
        }
      }
      replacement = enc.toBytes()
      home = newOwnChunk(keptSlots.length)
    }
    this.transactLocal(() => {
      log.delete(0, n)
      if (replacement !== undefined) log.insert(log.length, [replacement])
    })
    this.ownHead += n
    if (this.ownHead > 1024 && this.ownHead * 2 > this.ownChunks.length) {
      this.ownChunks = this.ownChunks.slice(this.ownHead)
      this.ownHead = 0
    }
    this.ownLogReadings -= taken
    if (home !== undefined) {
      for (let i = 0; i < keptSlots.length; i++) {
        const slot = keptSlots[i]
        table.homes[slot] = home
        table.rec[slot * STRIDE + R_INDEX] = i
        setLive(home, i, slot)
      }
      this.ownChunks.push(home)
      this.ownLogReadings += home.count
    }
    this.emitLocalUpdates()
    const pauseMs = performance.now() - t0
    this.compactions++
    if (pauseMs > this.maxPauseMs) this.maxPauseMs = pauseMs
    const stats = { readings: taken, kept: keptSlots.length, pauseMs }
    if (this._observers.has('compaction')) this.emit('compaction', [stats])
    return stats
  }

  /**
   * Periodic upkeep, bounded in work: sweeps up to `sweepBatch` view entries for expired readings,
   * then runs one compaction step if the own log is over its bound.
   */
  maintain (): void {
    if (this.closed) return
    if (this.retentionMs !== Infinity) this.sweep()
    if (this.needsCompaction()) this.compactStep()
  }

  /** Examines up to `sweepBatch` slots from where the last call stopped, dropping expired ones. */
  private sweep (): void {
    const table = this.table
    for (let i = 0; i < this.sweepBatch; i++) {
      if (this.sweepAt >= table.top) {
        this.sweepAt = 0
        return
      }
      const slot = this.sweepAt++
      const key = table.keys[slot]
      if (key === undefined || !this.isExpiredWall(this.wallOf(slot))) continue
      const flags = table.rec[slot * STRIDE + R_FLAGS]
      const home = table.homes[slot]
      if (home !== undefined) clearLive(home, table.rec[slot * STRIDE + R_INDEX])
      const old = (flags & F_DEL) === 0 && this._observers.has('change') ? this.readingOf(slot) : undefined
      table.remove(slot)
      this.expiredCount++
      if ((flags & F_OWN) !== 0) this.ownLive--
      if ((flags & F_DEL) !== 0) this.tombstones--
      else if (old !== undefined) this.emit('change', [{ sensor: key, old, new: undefined, reason: 'expire', local: true }])
    }
  }

  stats (): RegionStats {
    let structs = 0
    for (const list of this.doc.store.clients.values()) structs += list.length
    if (this.ownMirrorStale && !this.readOnly) this.rebuildOwnMirror()
    return {
      region: this.region,
      writer: this.writer,
      readOnly: this.readOnly,
      sensors: this.size,
      tombstones: this.tombstones,
      ownLive: this.ownLive,
      ownLogReadings: this.ownLogReadings,
      ownLogChunks: this.ownChunks.length - this.ownHead,
      structs,
      compactions: this.compactions,
      maxCompactionPauseMs: this.maxPauseMs,
      expired: this.expiredCount,
      misplacedChunks: this.misplacedChunks,
      deferredChunks: this.deferred.size,
      pending: this.doc.store.pendingStructs !== null
    }
  }

  /** Stops the maintenance timer and frees the doc. Reads still work; writes throw ClosedError. */
  close (): void {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.doc.destroy()
    super.destroy()
  }
}

const REGION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/**
 * Region names are 1-64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit: they
 * appear in storage keys and gossip topic names.
 */
export function isValidRegionName (region: unknown): region is string {
  return typeof region === 'string' && REGION_RE.test(region)
}

export function createRegionState (init: RegionStateInit): RegionState {
  return new RegionState(init)
}
