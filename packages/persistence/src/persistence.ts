import { Level } from 'level'
import { ClosedError, CorruptRecordError, EdgeMeshError, InvalidOptionsError } from '@edge-mesh/errors'
import { createHlc, isTimestamp, type Hlc, type HlcInit } from '@edge-mesh/hlc'
import { decodeViewSnapshot, type RegionState } from '@edge-mesh/region-state'
import {
  HLC_KEY, metaKey, seqOfUpdateKey, snapshotDocKey, snapshotMetaKey, snapshotViewKey, updateKey, updatePrefix,
  type SnapshotMeta
} from './keys.ts'

export interface PersistenceInit {
  /** Directory of the LevelDB database (created if missing). */
  path: string
  /**
   * fsync every batch. Without it an acknowledged write survives a crash of the process
   * (kill -9), since it is in the OS page cache; with it, also a crash of the machine.
   * @default false
   */
  sync?: boolean
  /** Options of the node clock; its state is restored from and persisted to this database. */
  clock?: Omit<HlcInit, 'last'>
  /**
   * A region is snapshotted when its update log holds more than
   * `max(snapshotMinBytes, snapshotRatio × last snapshot size)` bytes.
   * @default 4 MiB
   */
  snapshotMinBytes?: number
  /** @default 1 */
  snapshotRatio?: number
  /** Snapshot every bound region on close, so the next start replays nothing. @default true */
  snapshotOnClose?: boolean
  /**
   * What to do with a record that cannot be decoded on load: `fail` refuses to load the region
   * (CorruptRecordError naming the key); `skip` leaves the record out, counts it, and goes on
   * (peers can re-supply what it held).
   * @default 'fail'
   */
  onCorrupt?: 'fail' | 'skip'
  /**
   * Called after every completed LevelDB batch write, with its duration (for latency metrics).
   * Errors it throws are ignored.
   */
  onBatch?: (batch: BatchInfo) => void
}

/** A completed LevelDB batch write, as reported to {@link PersistenceInit.onBatch}. */
export interface BatchInfo {
  /** Milliseconds the write took. */
  ms: number
  /** Operations in the batch (update records, snapshot parts and the clock record). */
  ops: number
  /** Bytes of updates and snapshots in the batch. */
  bytes: number
}

export interface LoadReport {
  snapshot: boolean
  /** Update records replayed after the snapshot. */
  records: number
  /** Records left out under `onCorrupt: 'skip'`. */
  skipped: number
  skippedKeys: string[]
  ms: number
}

export interface BoundRegionStats {
  region: string
  /** Update records and bytes written since the last snapshot. */
  tailRecords: number
  tailBytes: number
  snapshotBytes: number
  snapshots: number
  lastSeq: number
  /** An automatic snapshot is scheduled or being written. */
  snapshotPending: boolean
}

/** A region whose updates are persisted. */
export interface BoundRegion {
  readonly region: RegionState
  readonly loaded: LoadReport
  /** Resolves when every update this region emitted so far is in a completed LevelDB write. */
  whenDurable (): Promise<void>
  /** Writes a snapshot now (after the updates queued before it) and trims the log. */
  snapshot (): Promise<void>
  stats (): BoundRegionStats
}

export interface PersistenceStats {
  /** Bytes of updates waiting for the next LevelDB batch. */
  queuedBytes: number
  batches: number
  /** Milliseconds the last LevelDB batch write took. */
  lastBatchMs: number
}

/**
 * `open`; `closing` once close() began (updates are no longer persisted); `closed`; or `failed`
 * after a batch write failed (every later whenDurable() rejects).
 */
export type PersistenceStatus = 'open' | 'closing' | 'closed' | 'failed'

/** The LevelDB store of one node: its clock and the regions it holds. */
export interface Persistence {
  readonly path: string
  /** The node clock, restored from the database; its state is written with every batch. */
  readonly clock: Hlc
  /**
   * Loads a region's persisted state (snapshot, then the log after it) into a fresh
   * RegionState, then persists every update it emits.
   */
  bind (region: RegionState): Promise<BoundRegion>
  /** Resolves when everything queued so far, for every region, is written. */
  whenDurable (): Promise<void>
  getMeta (name: string): Promise<Uint8Array | undefined>
  putMeta (name: string, value: Uint8Array): Promise<void>
  stats (): PersistenceStats
  /** Whether the store takes writes (for readiness checks and for refusing ingest). */
  status (): PersistenceStatus
  /**
   * Asks LevelDB to compact its files now, so that the space of trimmed log records is
   * reclaimed at once instead of by background compaction later.
   */
  compactStorage (): Promise<void>
  /** Flushes, snapshots bound regions (unless disabled) and closes the database. */
  close (): Promise<void>
}

interface QueuedOp {
  type: 'put' | 'del'
  key: string
  value?: Uint8Array
}

interface Waiter {
  ticket: number
  resolve: () => void
  reject: (err: Error) => void
}

const utf8 = new TextEncoder()
const utf8d = new TextDecoder()

class RegionBinding implements BoundRegion {
  readonly region: RegionState
  loaded: LoadReport = { snapshot: false, records: 0, skipped: 0, skippedKeys: [], ms: 0 }
  seq = 0
  tailRecords = 0
  tailBytes = 0
  snapshotBytes = 0
  snapshots = 0
  snapshotScheduled = false
  /** The snapshot being taken, if any. */
  snapshotRunning: Promise<void> | undefined
  /** Ticket of the last update this region queued. */
  lastTicket = 0
  detach: () => void = () => {}
  private readonly store: LevelPersistence

  constructor (store: LevelPersistence, region: RegionState) {
    this.store = store
    this.region = region
  }

  async whenDurable (): Promise<void> {
    return this.store.waitFor(this.lastTicket)
  }

  async snapshot (): Promise<void> {
    await this.store.snapshot(this)
  }

  stats (): BoundRegionStats {
    return {
      region: this.region.region,
      tailRecords: this.tailRecords,
      tailBytes: this.tailBytes,
      snapshotBytes: this.snapshotBytes,
      snapshots: this.snapshots,
      lastSeq: this.seq,
      snapshotPending: this.snapshotScheduled || this.snapshotRunning !== undefined
    }
  }
}

class LevelPersistence implements Persistence {
  readonly path: string
  readonly clock: Hlc
  private readonly db: Level<string, Uint8Array>
  private readonly sync: boolean
  private readonly snapshotMinBytes: number
  private readonly snapshotRatio: number
  private readonly snapshotOnClose: boolean
  private readonly onCorrupt: 'fail' | 'skip'
  private readonly bindings = new Map<string, RegionBinding>()
  private queue: QueuedOp[] = []
  private queuedBytes = 0
  private ticket = 0
  private durableTicket = 0
  private waiters: Waiter[] = []
  private flushing: Promise<void> | undefined
  private failed: Error | undefined
  private closed = false
  private closing = false
  private batches = 0
  private lastBatchMs = 0
  private readonly onBatch: ((batch: BatchInfo) => void) | undefined

  constructor (init: PersistenceInit, db: Level<string, Uint8Array>, clock: Hlc) {
    this.path = init.path
    this.db = db
    this.clock = clock
    this.sync = init.sync ?? false
    this.snapshotMinBytes = init.snapshotMinBytes ?? 4 * 1024 * 1024
    this.snapshotRatio = init.snapshotRatio ?? 1
    this.snapshotOnClose = init.snapshotOnClose ?? true
    this.onCorrupt = init.onCorrupt ?? 'fail'
    this.onBatch = init.onBatch
  }

  async bind (region: RegionState): Promise<BoundRegion> {
    this.assertOpen()
    const name = region.region
    if (this.bindings.has(name)) throw new InvalidOptionsError(`region ${name} is already bound to this store`, { region: name })
    const binding = new RegionBinding(this, region)
    this.bindings.set(name, binding)
    try {
      binding.loaded = await this.load(binding)
    } catch (err) {
      this.bindings.delete(name)
      throw err
    }
    const onUpdate = (update: Uint8Array): void => { this.append(binding, update) }
    region.on('update', onUpdate)
    binding.detach = () => { region.off('update', onUpdate) }
    return binding
  }

  private corrupt (key: string, err: unknown, report: LoadReport): void {
    if (this.onCorrupt === 'fail') {
      throw new CorruptRecordError(`record ${key} could not be loaded`, { key, path: this.path }, { cause: err })
    }
    report.skipped++
    report.skippedKeys.push(key)
  }

  private async load (binding: RegionBinding): Promise<LoadReport> {
    const t0 = performance.now()
    const region = binding.region
    const name = region.region
    const report: LoadReport = { snapshot: false, records: 0, skipped: 0, skippedKeys: [], ms: 0 }
    let fromSeq = 0
    const metaBytes = await this.db.get(snapshotMetaKey(name))
    if (metaBytes !== undefined) {
      let part = snapshotMetaKey(name)
      try {
        const meta = JSON.parse(utf8d.decode(metaBytes)) as SnapshotMeta
        if (meta.v !== 1 || !Number.isInteger(meta.seq)) throw new Error('unknown snapshot meta')
        const [doc, view] = await this.db.getMany([snapshotDocKey(name), snapshotViewKey(name)])
        if (doc === undefined || view === undefined) throw new Error('snapshot parts are missing')
        part = snapshotViewKey(name)
        const readings = decodeViewSnapshot(view)
        part = snapshotDocKey(name)
        region.loadSnapshot(doc, readings)
        fromSeq = meta.seq
        binding.seq = meta.seq
        binding.snapshotBytes = doc.length + view.length
        report.snapshot = true
      } catch (err) {
        this.corrupt(part, err, report)
      }
    }
    const prefix = updatePrefix(name)
    for await (const [key, value] of this.db.iterator({ gt: updateKey(name, fromSeq), lt: prefix + '~' })) {
      const seq = seqOfUpdateKey(key)
      try {
        region.replayUpdate(value)
        report.records++
        binding.tailRecords++
        binding.tailBytes += value.length
      } catch (err) {
        this.corrupt(key, err, report)
      }
      if (seq > binding.seq) binding.seq = seq
    }
    report.ms = performance.now() - t0
    return report
  }

  private append (binding: RegionBinding, update: Uint8Array): void {
    if (this.closed) return
    binding.seq++
    binding.tailRecords++
    binding.tailBytes += update.length
    this.queue.push({ type: 'put', key: updateKey(binding.region.region, binding.seq), value: update })
    this.queuedBytes += update.length
    binding.lastTicket = ++this.ticket
    this.scheduleFlush()
    if (!binding.snapshotScheduled && binding.snapshotRunning === undefined &&
      binding.tailBytes > Math.max(this.snapshotMinBytes, this.snapshotRatio * binding.snapshotBytes)) {
      // Not from inside the 'update' event: the emitting call finishes first.
      binding.snapshotScheduled = true
      setImmediate(() => {
        binding.snapshotScheduled = false
        if (!this.closing) this.snapshot(binding).catch(() => { /* a failed batch is reported to whenDurable callers */ })
      })
    }
  }

  private scheduleFlush (): void {
    if (this.flushing !== undefined) return
    this.flushing = new Promise<void>(resolve => { queueMicrotask(resolve) }).then(async () => this.flushLoop())
  }

  private async flushLoop (): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const ops = this.queue
        const upTo = this.ticket
        const bytes = this.queuedBytes
        this.queue = []
        this.queuedBytes = 0
        ops.push({ type: 'put', key: HLC_KEY, value: utf8.encode(this.clock.last()) })
        const t0 = performance.now()
        try {
          await this.db.batch(ops as Array<{ type: 'put', key: string, value: Uint8Array }>, { sync: this.sync })
        } catch (err) {
          this.failed = err as Error
          for (const w of this.waiters.splice(0)) w.reject(err as Error)
          return
        }
        this.lastBatchMs = performance.now() - t0
        this.batches++
        if (this.onBatch !== undefined) {
          try {
            this.onBatch({ ms: this.lastBatchMs, ops: ops.length, bytes })
          } catch {}
        }
        this.durableTicket = upTo
        if (this.waiters.length > 0) {
          const still: Waiter[] = []
          for (const w of this.waiters) {
            if (w.ticket <= upTo) w.resolve()
            else still.push(w)
          }
          this.waiters = still
        }
      }
    } finally {
      this.flushing = undefined
    }
  }

  async waitFor (ticket: number): Promise<void> {
    if (this.failed !== undefined) throw this.failed
    if (ticket <= this.durableTicket) return
    return new Promise<void>((resolve, reject) => { this.waiters.push({ ticket, resolve, reject }) })
  }

  async whenDurable (): Promise<void> {
    return this.waitFor(this.ticket)
  }

  /** Takes a snapshot of the region now; if one is under way, waits for it and then takes another. */
  async snapshot (binding: RegionBinding): Promise<void> {
    while (binding.snapshotRunning !== undefined) await binding.snapshotRunning.catch(() => {})
    const run = this.takeSnapshot(binding)
    binding.snapshotRunning = run
    try {
      await run
    } finally {
      binding.snapshotRunning = undefined
    }
  }

  private async takeSnapshot (binding: RegionBinding): Promise<void> {
    const name = binding.region.region
    // The doc part is taken now, at `seq`; the view is encoded in slices after.
    const seq = binding.seq
    const parts = binding.region.encodeSnapshot()
    binding.tailRecords = 0
    binding.tailBytes = 0
    const { doc, view } = await parts
    const meta: SnapshotMeta = { v: 1, seq, docBytes: doc.length, viewBytes: view.length, at: Date.now() }
    this.queue.push(
      { type: 'put', key: snapshotDocKey(name), value: doc },
      { type: 'put', key: snapshotViewKey(name), value: view },
      { type: 'put', key: snapshotMetaKey(name), value: utf8.encode(JSON.stringify(meta)) }
    )
    this.queuedBytes += doc.length + view.length
    const ticket = ++this.ticket
    this.scheduleFlush()
    binding.snapshotBytes = doc.length + view.length
    await this.waitFor(ticket)
    binding.snapshots++
    await this.db.clear({ gte: updatePrefix(name), lte: updateKey(name, seq) })
  }

  async getMeta (name: string): Promise<Uint8Array | undefined> {
    this.assertOpen()
    return this.db.get(metaKey(name))
  }

  async putMeta (name: string, value: Uint8Array): Promise<void> {
    this.assertOpen()
    await this.db.put(metaKey(name), value, { sync: true })
  }

  stats (): PersistenceStats {
    return { queuedBytes: this.queuedBytes, batches: this.batches, lastBatchMs: this.lastBatchMs }
  }

  status (): PersistenceStatus {
    return this.closed ? 'closed' : this.closing ? 'closing' : this.failed !== undefined ? 'failed' : 'open'
  }

  async compactStorage (): Promise<void> {
    this.assertOpen()
    await this.whenDurable()
    // level's Node build is classic-level, which has compactRange; its portable type does not say so.
    await (this.db as unknown as { compactRange: (start: string, end: string) => Promise<void> }).compactRange('', '~')
  }

  private assertOpen (): void {
    if (this.closed) throw new ClosedError(`persistence at ${this.path}`, { path: this.path })
  }

  async close (): Promise<void> {
    if (this.closed || this.closing) return
    this.closing = true
    for (const b of this.bindings.values()) b.detach()
    for (const b of this.bindings.values()) {
      while (b.snapshotRunning !== undefined) await b.snapshotRunning.catch(() => {})
      if (this.snapshotOnClose && b.tailRecords > 0) await this.snapshot(b)
    }
    await this.whenDurable().catch(() => {})
    while (this.flushing !== undefined) await this.flushing
    this.closed = true
    await this.db.close()
  }
}

/** Opens (or creates) the LevelDB store at `init.path` and restores the node clock from it. */
export async function openPersistence (init: PersistenceInit): Promise<Persistence> {
  if (typeof init.path !== 'string' || init.path.length === 0) throw new InvalidOptionsError('path must be a non-empty string')
  if (init.onCorrupt !== undefined && init.onCorrupt !== 'fail' && init.onCorrupt !== 'skip') {
    throw new InvalidOptionsError("onCorrupt must be 'fail' or 'skip'", { onCorrupt: init.onCorrupt })
  }
  for (const k of ['snapshotMinBytes', 'snapshotRatio'] as const) {
    const v = init[k]
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new InvalidOptionsError(`${k} must be a non-negative number`, { [k]: v })
  }
  // Check the clock options before the database is opened (and locked).
  createHlc(init.clock)
  const db = new Level<string, Uint8Array>(init.path, { keyEncoding: 'utf8', valueEncoding: 'view' })
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause
    const why = cause instanceof Error ? cause.message : String(err)
    if (/\block\b/i.test(why)) {
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', `the LevelDB at ${init.path} is in use by another process (its lock is held): one data dir per running peer`, { path: init.path }, { cause: err })
    }
    throw new EdgeMeshError('EM_ERR_UNAVAILABLE', `the LevelDB at ${init.path} failed to open: ${why}`, { path: init.path }, { cause: err })
  }
  try {
    let last: string | undefined
    const stored = await db.get(HLC_KEY)
    if (stored !== undefined) {
      const s = utf8d.decode(stored)
      if (!isTimestamp(s)) throw new CorruptRecordError(`record ${HLC_KEY} is not an HLC timestamp`, { key: HLC_KEY, path: init.path })
      last = s
    }
    return new LevelPersistence(init, db, createHlc({ ...init.clock, last }))
  } catch (err) {
    await db.close()
    throw err
  }
}
