/**
 * The analytics store: history, window aggregates and anomaly flags of every reading an analytics
 * peer observes, in one LevelDB database. Key layout: keys.ts; the anomaly rule: baseline.ts.
 *
 * Writes: `record()` checks and enqueues synchronously; one worker loop takes the queue in
 * group-committed batches (everything queued while a batch is written goes into the next one, up
 * to `maxBatchReadings`). Per batch it looks up the history keys of possible duplicates (readings
 * not newer than the newest one recorded for their sensor) with one `hasMany`, then the windows
 * that may exist but are missing from the in-memory cache with one `getMany`; it applies the
 * readings in order to the windows, sensor states and baselines, and writes history, windows,
 * anomalies and sensor states in one LevelDB batch. Retention runs in the same loop, in bounded steps between batches, so no write, cache
 * entry or deletion ever races another.
 */
import { Level } from 'level'
import { ClosedError, CorruptRecordError, EdgeMeshError, InvalidOptionsError, InvalidSensorError, InvalidTimestampError, InvalidValueError } from '@edge-mesh/errors'
import { MAX_WALL, isTimestamp, wallOf } from '@edge-mesh/hlc'
import { fromStored, type JsonValue } from '@edge-mesh/reading'
import { isValidRegionName, isValidSensorId, isValidWriterId } from '@edge-mesh/region-state'
import { DEFAULT_LIMIT, MAX_LIMIT, checkKeys, checkLimit, checkOrder, checkQuery, checkRange, checkRegion, checkSensor, invalid, isPlainObject } from './query-args.ts'
import { alphaForHalfLife, emptyBaseline, observe, type AnomalyRule, type Baseline } from './baseline.ts'
import {
  ANOMALY_GLOBAL_PREFIX, FORMAT_KEY, SENSOR_STATE_PREFIX, SEP, anomalyKeys, anomalyRegionPrefix, anomalySensorPrefix,
  historyKey, historyPrefix, ms12, parseGlobalAnomalyKey, parseSensorStateKey, prefixEnd, regionWindowPrefix,
  sensorStateKey, sensorWindowPrefix
} from './keys.ts'
import { addToWindow, decodeWindow, encodeWindow, type WindowState } from './window.ts'

export interface AnomalyInit {
  /** A reading is flagged when |value - mean| / std exceeds this. @default 3.5 */
  threshold?: number
  /** Half-life of the exponentially weighted baseline, in samples. @default 30 */
  halfLifeSamples?: number
  /** Numeric samples a sensor must have fed before its readings can be flagged. @default 20 */
  minSamples?: number
}

export interface AnalyticsStoreInit {
  /** Directory of the LevelDB database (created if missing). */
  path: string
  /** History, windows and anomalies older than `now() - retentionMs` are deleted. @default 7 days */
  retentionMs?: number
  /** Length of an aggregate window, ms. Fixed for a database: reopening with another value is refused. @default 60_000 */
  windowMs?: number
  anomaly?: AnomalyInit
  /** The store's clock (retention, `lastRecordedAt`), ms. @default Date.now */
  now?: () => number
  /** Readings accepted by `record()` and not yet written; beyond it `record()` throws EM_ERR_OVERLOADED. @default 100_000 */
  maxPendingWrites?: number
  /** Bytes of JSON values accepted and not yet written; beyond it `record()` throws EM_ERR_OVERLOADED. @default 64 MiB */
  maxPendingBytes?: number
  /** Most readings in one LevelDB batch. @default 2000 */
  maxBatchReadings?: number
  /** Windows (sensor and region) kept in memory; others are read back from LevelDB when a reading needs them. @default 20_000 */
  maxCachedWindows?: number
  /** Period of the retention pass; 0 runs it only on open and from `runRetention()`. @default 60_000 */
  retentionIntervalMs?: number
  /** Most records deleted in one retention batch. @default 1000 */
  retentionBatch?: number
  /** fsync every batch. @default false */
  sync?: boolean
  /**
   * Called after each batch is written with the anomalies it flagged, in the order of their
   * readings (not called for a batch that flagged none). An error it throws is ignored.
   */
  onAnomalies?: (anomalies: readonly Anomaly[]) => void
}

/** A reading as a region state's 'change' event shows it (`change.new`). */
export interface Observation {
  sensor: string
  /** HLC timestamp, 16 lowercase hex digits. */
  t: string
  writer: string
  /** The stored value (a bare value or a `{ value, unit?, ts? }` envelope, see @edge-mesh/reading). */
  value: unknown
}

export interface TimeRange {
  /** Inclusive lower bound, wall ms. @default 0 */
  from?: number
  /** Exclusive upper bound, wall ms. @default no bound */
  to?: number
}

export interface HistoryQuery extends TimeRange {
  region: string
  sensor: string
  /** @default 1000, at most 100_000 */
  limit?: number
  /** 'asc': oldest first; 'desc': newest first (with `limit`: the newest). @default 'asc' */
  order?: 'asc' | 'desc'
}

export interface HistoryEntry {
  t: string
  /** Wall time of `t`, ms. */
  at: number
  value: JsonValue
  unit?: string
  ts?: number
  writer: string
}

export interface AggregatesQuery extends TimeRange {
  region: string
  /** Absent: the region-wide series, over all the region's sensors. */
  sensor?: string
  /** @default 100_000 (the maximum) */
  limit?: number
}

export interface WindowAggregate {
  /** Window start, wall ms; the window is [start, start + windowMs). */
  start: number
  count: number
  min: number
  max: number
  mean: number
  /** The value of the reading with the greatest t in the window. */
  last: number
}

export interface AnomaliesQuery extends TimeRange {
  region?: string
  /** Needs `region`. */
  sensor?: string
  /** @default 1000, at most 100_000 */
  limit?: number
  /** @default 'asc' */
  order?: 'asc' | 'desc'
}

export interface Anomaly {
  region: string
  sensor: string
  /** Wall time of `t`, ms. */
  at: number
  t: string
  writer: string
  value: number
  /** The baseline the value was tested against. */
  mean: number
  std: number
  /** (value - mean) / std */
  z: number
}

export interface RegionSummary {
  region: string
  /** Sensors with readings within the retention horizon. */
  sensors: number
  /** Wall time of the newest reading recorded, ms. */
  lastAt: number
  /** Store clock when a reading of the region was last written, ms. */
  lastRecordedAt: number
}

export interface SensorSummary {
  sensor: string
  lastAt: number
  lastRecordedAt: number
  /** Numeric samples fed into the anomaly baseline. */
  samples: number
}

export interface AnalyticsStats {
  /** Readings accepted by `record()`. */
  received: number
  /** Readings written to history (duplicates excluded). */
  recorded: number
  /** Readings seen again (same region, sensor, t, writer) and not recorded twice. */
  duplicates: number
  /** Readings older than the retention horizon when recorded, left out. */
  expired: number
  /** `record()` calls refused for overload. */
  refused: number
  /** Accepted and not yet written. */
  pending: number
  pendingBytes: number
  /** LevelDB batches of readings written. */
  batches: number
  lastBatchMs: number
  /** Anomalies flagged. */
  anomalies: number
  /** Records deleted by retention (history entries, windows, anomalies, sensor states). */
  retentionDeleted: number
  retentionBatches: number
  retentionPasses: number
  /** Possible duplicates looked up in LevelDB. */
  duplicateChecks: number
  /** Windows read back from LevelDB (not in the cache). */
  windowLoads: number
  cachedWindows: number
  regions: number
  sensors: number
  status: AnalyticsStatus
}

/** `failed` after a LevelDB write failed: `record()` throws EM_ERR_UNAVAILABLE and `flush()` rejects. */
export type AnalyticsStatus = 'open' | 'closing' | 'closed' | 'failed'

export interface AnalyticsStore {
  readonly path: string
  readonly windowMs: number
  readonly retentionMs: number
  /**
   * Enqueues one observed reading (synchronous). Throws EM_ERR_OVERLOADED (details.retryAfterMs)
   * when `maxPendingWrites` or `maxPendingBytes` would be passed, EM_ERR_CLOSED after close,
   * EM_ERR_UNAVAILABLE after a failed write, and a typed error for a malformed observation
   * (EM_ERR_INVALID_VALUE, EM_ERR_INVALID_SENSOR, EM_ERR_INVALID_TIMESTAMP). A reading older than
   * the retention horizon is left out (counted in `expired`).
   */
  record (region: string, obs: Observation): void
  /** Resolves when everything recorded before the call is written. */
  flush (): Promise<void>
  history (q: HistoryQuery): Promise<HistoryEntry[]>
  aggregates (q: AggregatesQuery): Promise<WindowAggregate[]>
  anomalies (q?: AnomaliesQuery): Promise<Anomaly[]>
  /** Regions with readings within the retention horizon, by name. */
  regions (): RegionSummary[]
  /** The sensors of a region, by id (`[]` for an unknown region). */
  sensors (region: string): SensorSummary[]
  /** Runs a retention pass now (after the one running, if any) and resolves when it is done. */
  runRetention (): Promise<void>
  stats (): AnalyticsStats
  status (): AnalyticsStatus
  /** Writes everything recorded, stops retention and closes the database. */
  close (): Promise<void>
}

const DAY_MS = 86_400_000

interface SensorState {
  readonly region: string
  readonly sensor: string
  /** Greatest (t, writer) recorded; '' when none. */
  lastT: string
  lastW: string
  lastAt: number
  lastRecordedAt: number
  /** Readings recorded (any value). */
  count: number
  base: Baseline
  /** A lower bound of the oldest history entry's wall time and the oldest window start (0: unknown). */
  oldest: number
}

interface RegionInfo {
  readonly sensors: Map<string, SensorState>
  lastAt: number
  lastRecordedAt: number
}

interface Pending {
  region: string
  sensor: string
  t: string
  writer: string
  json: string
  num: number | undefined
  ticket: number
}

interface Waiter {
  ticket: number
  resolve: () => void
  reject: (err: Error) => void
}

type BatchOp = { type: 'put', key: string, value: string } | { type: 'del', key: string }

function after (t: string, w: string, thanT: string, thanW: string): boolean {
  return t !== thanT ? t > thanT : w > thanW
}

// ------------------------------------------------------------------ the store

class LevelAnalyticsStore implements AnalyticsStore {
  readonly path: string
  readonly windowMs: number
  readonly retentionMs: number
  private readonly db: Level<string, string>
  private readonly now: () => number
  private readonly rule: AnomalyRule
  private readonly maxPendingWrites: number
  private readonly maxPendingBytes: number
  private readonly maxBatchReadings: number
  private readonly maxCachedWindows: number
  private readonly retentionBatch: number
  private readonly sync: boolean

  private readonly regionsMap = new Map<string, RegionInfo>()
  private sensorCount = 0
  /** Window key -> state; insertion order is recency (least recently used first). */
  private readonly cache = new Map<string, WindowState>()

  private queue: Pending[] = []
  private pending = 0
  private pendingBytes = 0
  private ticket = 0
  private writtenTicket = 0
  private waiters: Waiter[] = []

  private loop: Promise<void> | undefined
  private retentionWanted = false
  private retentionWaiters: Array<() => void> = []
  private pass: AsyncGenerator<void, void, void> | undefined
  private passWaiters: Array<() => void> = []
  private timer: NodeJS.Timeout | undefined

  private failed: Error | undefined
  private closing = false
  private closed = false

  private readonly counters = {
    received: 0, recorded: 0, duplicates: 0, expired: 0, refused: 0, batches: 0, lastBatchMs: 0, anomalies: 0,
    retentionDeleted: 0, retentionBatches: 0, retentionPasses: 0, duplicateChecks: 0, windowLoads: 0
  }

  private readonly onAnomalies: ((anomalies: readonly Anomaly[]) => void) | undefined

  constructor (init: Required<Omit<AnalyticsStoreInit, 'anomaly' | 'retentionIntervalMs' | 'onAnomalies'>> & Pick<AnalyticsStoreInit, 'onAnomalies'> & { rule: AnomalyRule }, db: Level<string, string>) {
    this.onAnomalies = init.onAnomalies
    this.path = init.path
    this.db = db
    this.windowMs = init.windowMs
    this.retentionMs = init.retentionMs
    this.now = init.now
    this.rule = init.rule
    this.maxPendingWrites = init.maxPendingWrites
    this.maxPendingBytes = init.maxPendingBytes
    this.maxBatchReadings = init.maxBatchReadings
    this.maxCachedWindows = init.maxCachedWindows
    this.retentionBatch = init.retentionBatch
    this.sync = init.sync
  }

  // ---------------------------------------------------------------- loading

  async loadSensorStates (): Promise<void> {
    const prefix = SENSOR_STATE_PREFIX
    for await (const [key, text] of this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
      const ids = parseSensorStateKey(key)
      let st: SensorState | undefined
      if (ids !== undefined) {
        try {
          const j = JSON.parse(text) as Record<string, unknown>
          if (j.v === 1 && isTimestamp(j.t) && typeof j.w === 'string' && typeof j.r === 'number' && typeof j.c === 'number' &&
            typeof j.n === 'number' && typeof j.m === 'number' && typeof j.q === 'number') {
            st = {
              region: ids.region,
              sensor: ids.sensor,
              lastT: j.t,
              lastW: j.w,
              lastAt: wallOf(j.t),
              lastRecordedAt: j.r,
              count: j.c,
              base: { n: j.n, mean: j.m, variance: j.q },
              oldest: 0
            }
          }
        } catch {}
      }
      if (st === undefined) throw new CorruptRecordError(`sensor state record ${JSON.stringify(key)} could not be decoded`, { key, path: this.path })
      this.addSensor(st)
    }
  }

  private addSensor (st: SensorState): void {
    let info = this.regionsMap.get(st.region)
    if (info === undefined) {
      info = { sensors: new Map(), lastAt: 0, lastRecordedAt: 0 }
      this.regionsMap.set(st.region, info)
    }
    info.sensors.set(st.sensor, st)
    this.sensorCount++
    if (st.lastAt > info.lastAt) info.lastAt = st.lastAt
    if (st.lastRecordedAt > info.lastRecordedAt) info.lastRecordedAt = st.lastRecordedAt
  }

  startTimer (intervalMs: number): void {
    if (intervalMs <= 0) return
    this.timer = setInterval(() => { this.requestRetention() }, intervalMs)
    this.timer.unref()
  }

  // ---------------------------------------------------------------- recording

  record (region: string, obs: Observation): void {
    if (this.closed || this.closing) throw new ClosedError(`analytics store at ${this.path}`, { path: this.path })
    if (this.failed !== undefined) {
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', `the analytics store at ${this.path} failed: ${this.failed.message}`, { path: this.path })
    }
    if (!isValidRegionName(region)) throw new InvalidValueError('region must be a valid region name', { field: 'region', region: String(region).slice(0, 80) })
    if (!isPlainObject(obs)) throw new InvalidValueError('an observation must be an object { sensor, t, writer, value }', { region })
    const { sensor, t, writer, value } = obs
    if (!isValidSensorId(sensor)) throw new InvalidSensorError('sensor must be 1-256 characters without control characters', { region, sensor: String(sensor).slice(0, 80) })
    if (!isTimestamp(t)) throw new InvalidTimestampError('t must be 16 lowercase hex characters', { region, sensor })
    if (!isValidWriterId(writer)) throw new InvalidValueError('writer must be 1-128 characters without control characters', { field: 'writer', region, sensor })
    if (wallOf(t) < this.now() - this.retentionMs) {
      this.counters.expired++
      return
    }
    let json: string | undefined
    try {
      json = JSON.stringify(value)
    } catch (err) {
      throw new InvalidValueError(`value is not JSON-compatible: ${(err as Error).message}`, { field: 'value', region, sensor })
    }
    if (json === undefined) throw new InvalidValueError('value is not JSON-compatible', { field: 'value', region, sensor })
    if (json.length > this.maxPendingBytes) {
      throw new EdgeMeshError('EM_ERR_VALUE_TOO_LARGE', `value is ${json.length} characters of JSON, over maxPendingBytes ${this.maxPendingBytes}`, { region, sensor, bytes: json.length, limit: this.maxPendingBytes })
    }
    if (this.pending >= this.maxPendingWrites || this.pendingBytes + json.length > this.maxPendingBytes) {
      this.counters.refused++
      throw new EdgeMeshError('EM_ERR_OVERLOADED', 'the analytics store write queue is full',
        { pending: this.pending, pendingBytes: this.pendingBytes, retryAfterMs: Math.max(10, Math.ceil(this.counters.lastBatchMs)) })
    }
    const decoded = fromStored(value).value
    const num = typeof decoded === 'number' && Number.isFinite(decoded) ? decoded : undefined
    this.queue.push({ region, sensor, t, writer, json, num, ticket: ++this.ticket })
    this.pending++
    this.pendingBytes += json.length
    this.counters.received++
    this.kick()
  }

  async flush (): Promise<void> {
    if (this.failed !== undefined) throw this.failed
    const ticket = this.ticket
    if (ticket <= this.writtenTicket) return
    return new Promise<void>((resolve, reject) => { this.waiters.push({ ticket, resolve, reject }) })
  }

  private kick (): void {
    if (this.loop !== undefined || this.failed !== undefined) return
    this.loop = new Promise<void>(resolve => { queueMicrotask(resolve) }).then(async () => this.work())
  }

  /** The one worker: batches of readings, interleaved with retention steps. */
  private async work (): Promise<void> {
    try {
      for (;;) {
        let did = false
        if (this.queue.length > 0) {
          await this.writeBatch()
          did = true
        }
        if (this.pass === undefined && this.retentionWanted && !this.closing) {
          this.retentionWanted = false
          this.passWaiters = this.retentionWaiters
          this.retentionWaiters = []
          this.pass = this.retentionPass(Math.max(0, this.now() - this.retentionMs))
        }
        const pass = this.pass
        if (pass !== undefined) {
          const step = await pass.next()
          if (step.done === true && this.pass === pass) this.endPass(true)
          did = true
        }
        if (!did) break
      }
    } catch (err) {
      this.fail(err as Error)
    } finally {
      this.loop = undefined
    }
  }

  private endPass (completed: boolean): void {
    this.pass = undefined
    if (completed) this.counters.retentionPasses++
    for (const resolve of this.passWaiters.splice(0)) resolve()
  }

  private fail (err: Error): void {
    this.failed = err
    for (const w of this.waiters.splice(0)) w.reject(err)
    if (this.pass !== undefined) this.endPass(false)
    for (const resolve of this.retentionWaiters.splice(0)) resolve()
  }

  private async writeBatch (): Promise<void> {
    const items = this.queue.length <= this.maxBatchReadings ? this.queue : this.queue.slice(0, this.maxBatchReadings)
    this.queue = items === this.queue ? [] : this.queue.slice(items.length)
    const t0 = performance.now()

    // 1. Possible duplicates (not newer than their sensor's newest recorded reading) are looked
    //    up in LevelDB; then the windows of the others that the cache does not hold.
    const n = items.length
    const keys: string[] = new Array(n)
    const ats: number[] = new Array(n)
    const starts: number[] = new Array(n)
    const sensorWindowKeys: string[] = new Array(n)
    const regionWindowKeys: string[] = new Array(n)
    const dup: boolean[] = new Array(n).fill(false)
    const inBatch = new Set<string>()
    const checkKeys: string[] = []
    const checkIdx: number[] = []
    for (let i = 0; i < n; i++) {
      const it = items[i]
      const hk = historyKey(it.region, it.sensor, it.t, it.writer)
      keys[i] = hk
      const at = wallOf(it.t)
      ats[i] = at
      if (it.num !== undefined) {
        const start = this.windowStart(at)
        const hex = ms12(start)
        starts[i] = start
        sensorWindowKeys[i] = sensorWindowPrefix(it.region, it.sensor) + hex
        regionWindowKeys[i] = regionWindowPrefix(it.region) + hex
      }
      if (inBatch.has(hk)) {
        dup[i] = true
        continue
      }
      inBatch.add(hk)
      const st = this.regionsMap.get(it.region)?.sensors.get(it.sensor)
      if (st !== undefined && !after(it.t, it.writer, st.lastT, st.lastW)) {
        checkKeys.push(hk)
        checkIdx.push(i)
      }
    }
    if (checkKeys.length > 0) {
      const exists = await this.db.hasMany(checkKeys)
      this.counters.duplicateChecks += checkKeys.length
      for (let j = 0; j < checkIdx.length; j++) if (exists[j]) dup[checkIdx[j]] = true
    }
    // A window after the one holding the newest reading recorded (of the sensor, of the region)
    // cannot be in LevelDB yet: in-order readings cost no reads.
    const load = new Set<string>()
    for (let i = 0; i < n; i++) {
      const it = items[i]
      if (dup[i] || it.num === undefined) continue
      const start = starts[i]
      const info = this.regionsMap.get(it.region)
      if (info === undefined || start > this.windowStart(info.lastAt)) continue
      const rk = regionWindowKeys[i]
      if (!this.cache.has(rk)) load.add(rk)
      const st = info.sensors.get(it.sensor)
      if (st === undefined || start > this.windowStart(st.lastAt)) continue
      const sk = sensorWindowKeys[i]
      if (!this.cache.has(sk)) load.add(sk)
    }
    const fetched = new Map<string, WindowState | undefined>()
    if (load.size > 0) {
      const loadKeys = [...load]
      const loaded = await this.db.getMany(loadKeys)
      this.counters.windowLoads += loadKeys.length
      for (let j = 0; j < loadKeys.length; j++) {
        const text = loaded[j]
        fetched.set(loadKeys[j], text === undefined ? undefined : decodeWindow(loadKeys[j], text))
      }
    }

    // 2. Apply in order.
    const ops: BatchOp[] = []
    const dirtyWindows = new Set<string>()
    const dirtySensors = new Set<SensorState>()
    const now = this.now()
    let recorded = 0
    let duplicates = 0
    const flagged: Anomaly[] = []
    let bytes = 0
    for (let i = 0; i < n; i++) {
      const it = items[i]
      bytes += it.json.length
      if (dup[i]) {
        duplicates++
        continue
      }
      const at = ats[i]
      const st = this.sensorState(it.region, it.sensor)
      const info = this.regionsMap.get(it.region) as RegionInfo
      ops.push({ type: 'put', key: keys[i], value: it.json })
      recorded++
      st.count++
      if (after(it.t, it.writer, st.lastT, st.lastW)) {
        st.lastT = it.t
        st.lastW = it.writer
        st.lastAt = at
        if (at > info.lastAt) info.lastAt = at
      }
      st.lastRecordedAt = now
      info.lastRecordedAt = now
      if (at < st.oldest) st.oldest = at
      dirtySensors.add(st)
      if (it.num === undefined) continue
      if (starts[i] < st.oldest) st.oldest = starts[i]
      this.addToCachedWindow(sensorWindowKeys[i], fetched, it, undefined)
      this.addToCachedWindow(regionWindowKeys[i], fetched, it, it.sensor)
      dirtyWindows.add(sensorWindowKeys[i])
      dirtyWindows.add(regionWindowKeys[i])
      const flag = observe(st.base, it.num, this.rule)
      if (flag !== undefined) {
        const a: Anomaly = { region: it.region, sensor: it.sensor, at, t: it.t, writer: it.writer, value: it.num, mean: flag.mean, std: flag.std, z: flag.z }
        const text = JSON.stringify(a)
        for (const key of anomalyKeys(a)) ops.push({ type: 'put', key, value: text })
        flagged.push(a)
      }
    }
    for (const wk of dirtyWindows) ops.push({ type: 'put', key: wk, value: encodeWindow(this.cache.get(wk) as WindowState) })
    for (const st of dirtySensors) {
      ops.push({
        type: 'put',
        key: sensorStateKey(st.region, st.sensor),
        value: JSON.stringify({ v: 1, t: st.lastT, w: st.lastW, r: st.lastRecordedAt, c: st.count, n: st.base.n, m: st.base.mean, q: st.base.variance })
      })
    }

    // 3. One batch.
    if (ops.length > 0) await this.db.batch(ops, { sync: this.sync })
    this.counters.recorded += recorded
    this.counters.duplicates += duplicates
    this.counters.anomalies += flagged.length
    this.counters.batches++
    this.counters.lastBatchMs = performance.now() - t0
    if (flagged.length > 0 && this.onAnomalies !== undefined) {
      try {
        this.onAnomalies(flagged)
      } catch { /* the listener's failure is not the store's */ }
    }
    this.pending -= items.length
    this.pendingBytes -= bytes
    const upTo = items[items.length - 1].ticket
    this.writtenTicket = upTo
    if (this.waiters.length > 0) {
      const still: Waiter[] = []
      for (const w of this.waiters) {
        if (w.ticket <= upTo) w.resolve()
        else still.push(w)
      }
      this.waiters = still
    }
    // Every cached window is now also in LevelDB: the least recently used can go.
    if (this.cache.size > this.maxCachedWindows) {
      let excess = this.cache.size - this.maxCachedWindows
      for (const k of this.cache.keys()) {
        if (excess-- <= 0) break
        this.cache.delete(k)
      }
    }
  }

  /** Adds a numeric reading to a window: from the cache, else as read from LevelDB (absent: a new window); it becomes the most recently used. */
  private addToCachedWindow (key: string, fetched: Map<string, WindowState | undefined>, it: Pending, sensor: string | undefined): void {
    let w = this.cache.get(key)
    if (w === undefined) w = fetched.get(key)
    else this.cache.delete(key)
    this.cache.set(key, addToWindow(w, it.num as number, it.t, it.writer, sensor))
  }

  private windowStart (at: number): number {
    return at - (at % this.windowMs)
  }

  private sensorState (region: string, sensor: string): SensorState {
    const st = this.regionsMap.get(region)?.sensors.get(sensor)
    if (st !== undefined) return st
    const fresh: SensorState = {
      region, sensor, lastT: '', lastW: '', lastAt: 0, lastRecordedAt: 0, count: 0, base: emptyBaseline(), oldest: Infinity
    }
    this.addSensor(fresh)
    return fresh
  }

  // ---------------------------------------------------------------- retention

  private requestRetention (): void {
    if (this.closing || this.closed || this.failed !== undefined) return
    this.retentionWanted = true
    this.kick()
  }

  async runRetention (): Promise<void> {
    this.assertOpen()
    if (this.failed !== undefined) throw this.failed
    const done = new Promise<void>(resolve => { this.retentionWaiters.push(resolve) })
    this.requestRetention()
    await done
    if (this.failed !== undefined) throw this.failed
  }

  /** Deletes everything older than `cutoff` in batches of at most `retentionBatch` records, yielding after each. */
  private async * retentionPass (cutoff: number): AsyncGenerator<void, void, void> {
    const max = this.retentionBatch
    // Windows end at start + windowMs: those ending at or before the cutoff go.
    const windowBound = ms12(Math.max(0, cutoff - this.windowMs + 1))
    const deleteRange = async function * (this: LevelAnalyticsStore, gte: string, lt: string): AsyncGenerator<void, void, void> {
      for (;;) {
        const keys = await this.db.keys({ gte, lt, limit: max }).all()
        if (keys.length === 0) return
        await this.db.batch(keys.map(key => ({ type: 'del' as const, key })), { sync: this.sync })
        this.counters.retentionDeleted += keys.length
        this.counters.retentionBatches++
        yield
        if (keys.length < max) return
      }
    }.bind(this)

    for (const [region, info] of [...this.regionsMap]) {
      for (const st of [...info.sensors.values()]) {
        const expired = (): boolean => this.windowStart(st.lastAt) + this.windowMs <= cutoff
        if ((st.oldest >= cutoff && !expired()) || info.sensors.get(st.sensor) !== st) continue
        const hp = historyPrefix(region, st.sensor)
        yield * deleteRange(hp, hp + ms12(cutoff))
        const wp = sensorWindowPrefix(region, st.sensor)
        yield * deleteRange(wp, wp + windowBound)
        // Readings may have come in between the steps, but none older than the cutoff.
        if (info.sensors.get(st.sensor) !== st) continue
        if (expired()) {
          // Everything of the sensor has expired (its newest window too): forget it.
          await this.db.del(sensorStateKey(region, st.sensor), { sync: this.sync })
          this.counters.retentionDeleted++
          this.counters.retentionBatches++
          info.sensors.delete(st.sensor)
          this.sensorCount--
          yield
          continue
        }
        const [h] = await this.db.keys({ gte: hp, lt: prefixEnd(hp), limit: 1 }).all()
        const [w] = await this.db.keys({ gte: wp, lt: prefixEnd(wp), limit: 1 }).all()
        st.oldest = Math.min(
          h === undefined ? Infinity : parseInt(h.slice(hp.length, hp.length + 12), 16),
          w === undefined ? Infinity : parseInt(w.slice(wp.length, wp.length + 12), 16))
      }
      const rp = regionWindowPrefix(region)
      yield * deleteRange(rp, rp + windowBound)
      if (info.sensors.size === 0 && this.regionsMap.get(region) === info) {
        this.regionsMap.delete(region)
      } else {
        info.lastAt = 0
        info.lastRecordedAt = 0
        for (const st of info.sensors.values()) {
          if (st.lastAt > info.lastAt) info.lastAt = st.lastAt
          if (st.lastRecordedAt > info.lastRecordedAt) info.lastRecordedAt = st.lastRecordedAt
        }
      }
    }
    // Cached windows that ended before the cutoff were deleted above.
    for (const k of [...this.cache.keys()]) {
      const start = parseInt(k.slice(k.lastIndexOf(SEP) + 1), 16)
      if (start + this.windowMs <= cutoff) this.cache.delete(k)
    }
    // Anomalies: three keys each, found through the time index.
    const ag = ANOMALY_GLOBAL_PREFIX
    for (;;) {
      const keys = await this.db.keys({ gte: ag, lt: ag + ms12(cutoff), limit: Math.max(1, Math.floor(max / 3)) }).all()
      if (keys.length === 0) break
      const ops: BatchOp[] = []
      for (const key of keys) {
        const parts = parseGlobalAnomalyKey(key)
        if (parts === undefined) ops.push({ type: 'del', key })
        else for (const k of anomalyKeys(parts)) ops.push({ type: 'del', key: k })
      }
      await this.db.batch(ops, { sync: this.sync })
      this.counters.retentionDeleted += keys.length
      this.counters.retentionBatches++
      yield
    }
  }

  // ---------------------------------------------------------------- queries

  private assertOpen (): void {
    if (this.closed || this.closing) throw new ClosedError(`analytics store at ${this.path}`, { path: this.path })
  }

  async history (query: HistoryQuery): Promise<HistoryEntry[]> {
    const q = checkQuery(query, 'history')
    checkKeys(q, ['region', 'sensor', 'from', 'to', 'limit', 'order'], 'history')
    const region = checkRegion(q.region)
    const sensor = checkSensor(q.sensor)
    const { from, to } = checkRange(q)
    const limit = checkLimit(q.limit, DEFAULT_LIMIT)
    const reverse = checkOrder(q.order)
    this.assertOpen()
    if (from > MAX_WALL) return []
    const prefix = historyPrefix(region, sensor)
    const out: HistoryEntry[] = []
    const it = this.db.iterator({ gte: prefix + ms12(from), lt: to === undefined ? prefixEnd(prefix) : prefix + ms12(to), limit, reverse })
    for await (const [key, text] of it) {
      const t = key.slice(prefix.length, prefix.length + 16)
      const writer = key.slice(prefix.length + 17)
      let stored: unknown
      try {
        stored = JSON.parse(text)
      } catch (err) {
        throw new CorruptRecordError(`history record ${JSON.stringify(key)} is not JSON`, { key }, { cause: err })
      }
      const r = fromStored(stored)
      const e: HistoryEntry = { t, at: wallOf(t), value: r.value, writer }
      if (r.unit !== undefined) e.unit = r.unit
      if (r.ts !== undefined) e.ts = r.ts
      out.push(e)
    }
    return out
  }

  async aggregates (query: AggregatesQuery): Promise<WindowAggregate[]> {
    const q = checkQuery(query, 'aggregates')
    checkKeys(q, ['region', 'sensor', 'from', 'to', 'limit'], 'aggregates')
    const region = checkRegion(q.region)
    const sensor = q.sensor === undefined ? undefined : checkSensor(q.sensor)
    const { from, to } = checkRange(q)
    const limit = checkLimit(q.limit, MAX_LIMIT)
    this.assertOpen()
    if (from > MAX_WALL) return []
    const prefix = sensor === undefined ? regionWindowPrefix(region) : sensorWindowPrefix(region, sensor)
    // Every window overlapping [from, to): starts from the window holding `from`, starts before `to`.
    const out: WindowAggregate[] = []
    const it = this.db.iterator({ gte: prefix + ms12(this.windowStart(from)), lt: to === undefined ? prefixEnd(prefix) : prefix + ms12(to), limit })
    for await (const [key, text] of it) {
      const w = decodeWindow(key, text)
      out.push({ start: parseInt(key.slice(prefix.length), 16), count: w.c, min: w.lo, max: w.hi, mean: w.sum / w.c, last: w.last })
    }
    return out
  }

  async anomalies (query: AnomaliesQuery = {}): Promise<Anomaly[]> {
    const q = checkQuery(query, 'anomalies')
    checkKeys(q, ['region', 'sensor', 'from', 'to', 'limit', 'order'], 'anomalies')
    const region = q.region === undefined ? undefined : checkRegion(q.region)
    const sensor = q.sensor === undefined ? undefined : checkSensor(q.sensor)
    if (sensor !== undefined && region === undefined) invalid('anomalies: sensor needs region')
    const { from, to } = checkRange(q)
    const limit = checkLimit(q.limit, DEFAULT_LIMIT)
    const reverse = checkOrder(q.order)
    this.assertOpen()
    if (from > MAX_WALL) return []
    const prefix = region === undefined
      ? ANOMALY_GLOBAL_PREFIX
      : sensor === undefined ? anomalyRegionPrefix(region) : anomalySensorPrefix(region, sensor)
    const out: Anomaly[] = []
    const it = this.db.iterator({ gte: prefix + ms12(from), lt: to === undefined ? prefixEnd(prefix) : prefix + ms12(to), limit, reverse })
    for await (const [key, text] of it) {
      try {
        out.push(JSON.parse(text) as Anomaly)
      } catch (err) {
        throw new CorruptRecordError(`anomaly record ${JSON.stringify(key)} is not JSON`, { key }, { cause: err })
      }
    }
    return out
  }

  regions (): RegionSummary[] {
    const out: RegionSummary[] = []
    for (const [region, info] of this.regionsMap) {
      out.push({ region, sensors: info.sensors.size, lastAt: info.lastAt, lastRecordedAt: info.lastRecordedAt })
    }
    return out.sort((a, b) => a.region < b.region ? -1 : a.region > b.region ? 1 : 0)
  }

  sensors (region: string): SensorSummary[] {
    checkRegion(region)
    const info = this.regionsMap.get(region)
    if (info === undefined) return []
    const out: SensorSummary[] = []
    for (const st of info.sensors.values()) {
      out.push({ sensor: st.sensor, lastAt: st.lastAt, lastRecordedAt: st.lastRecordedAt, samples: st.base.n })
    }
    return out.sort((a, b) => a.sensor < b.sensor ? -1 : a.sensor > b.sensor ? 1 : 0)
  }

  stats (): AnalyticsStats {
    return {
      ...this.counters,
      pending: this.pending,
      pendingBytes: this.pendingBytes,
      cachedWindows: this.cache.size,
      regions: this.regionsMap.size,
      sensors: this.sensorCount,
      status: this.status()
    }
  }

  status (): AnalyticsStatus {
    return this.closed ? 'closed' : this.closing ? 'closing' : this.failed !== undefined ? 'failed' : 'open'
  }

  async close (): Promise<void> {
    if (this.closed || this.closing) return
    this.closing = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.retentionWanted = false
    for (const resolve of this.retentionWaiters.splice(0)) resolve()
    // The worker writes what is queued; a retention pass in progress is stopped after its current step.
    const pass = this.pass
    if (pass !== undefined) {
      this.endPass(false)
      while (this.loop !== undefined) await this.loop
      await pass.return()
    }
    await this.flush().catch(() => {})
    while (this.loop !== undefined) await this.loop
    this.closed = true
    await this.db.close()
  }
}

// ------------------------------------------------------------------ open

function positive (name: string, v: unknown, integer: boolean, min: number = 0): void {
  if (v === undefined) return
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= min - (integer ? 1 : 0) || (integer && !Number.isSafeInteger(v))) {
    throw new InvalidOptionsError(`${name} must be ${integer ? 'an integer' : 'a number'} ${min > 0 ? `>= ${min}` : '> 0'}`, { [name]: v })
  }
}

/** Opens (or creates) the store at `init.path`, loads the sensor states and starts retention. */
export async function openAnalyticsStore (init: AnalyticsStoreInit): Promise<AnalyticsStore> {
  if (!isPlainObject(init)) throw new InvalidOptionsError('init must be an object')
  if (typeof init.path !== 'string' || init.path.length === 0) throw new InvalidOptionsError('path must be a non-empty string')
  if (init.now !== undefined && typeof init.now !== 'function') throw new InvalidOptionsError('now must be a function returning milliseconds')
  positive('retentionMs', init.retentionMs, true, 1)
  positive('windowMs', init.windowMs, true, 1)
  positive('maxPendingWrites', init.maxPendingWrites, true, 1)
  positive('maxPendingBytes', init.maxPendingBytes, true, 1)
  positive('maxBatchReadings', init.maxBatchReadings, true, 1)
  positive('maxCachedWindows', init.maxCachedWindows, true, 1)
  positive('retentionBatch', init.retentionBatch, true, 1)
  if (init.onAnomalies !== undefined && typeof init.onAnomalies !== 'function') throw new InvalidOptionsError('onAnomalies must be a function')
  if (init.retentionIntervalMs !== undefined && !(Number.isSafeInteger(init.retentionIntervalMs) && init.retentionIntervalMs >= 0)) {
    throw new InvalidOptionsError('retentionIntervalMs must be a non-negative integer', { retentionIntervalMs: init.retentionIntervalMs })
  }
  const anomaly: AnomalyInit = init.anomaly ?? {}
  if (!isPlainObject(anomaly as unknown)) throw new InvalidOptionsError('anomaly must be an object')
  positive('anomaly.threshold', anomaly.threshold, false)
  positive('anomaly.halfLifeSamples', anomaly.halfLifeSamples, false)
  positive('anomaly.minSamples', anomaly.minSamples, true, 1)
  const windowMs = init.windowMs ?? 60_000
  if (windowMs > MAX_WALL) throw new InvalidOptionsError('windowMs is too large', { windowMs })

  const db = new Level<string, string>(init.path, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause
    const why = cause instanceof Error ? cause.message : String(err)
    if (/\block\b/i.test(why)) {
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', `the LevelDB at ${init.path} is in use by another process (its lock is held)`, { path: init.path }, { cause: err })
    }
    throw new EdgeMeshError('EM_ERR_UNAVAILABLE', `the LevelDB at ${init.path} failed to open: ${why}`, { path: init.path }, { cause: err })
  }
  try {
    const format = await db.get(FORMAT_KEY)
    if (format === undefined) {
      await db.put(FORMAT_KEY, JSON.stringify({ v: 1, windowMs }), { sync: true })
    } else {
      let stored: { v?: unknown, windowMs?: unknown }
      try {
        stored = JSON.parse(format) as typeof stored
      } catch (err) {
        throw new CorruptRecordError('the format record is not JSON', { key: FORMAT_KEY, path: init.path }, { cause: err })
      }
      if (stored.v !== 1) throw new CorruptRecordError(`unknown analytics format version ${String(stored.v)}`, { key: FORMAT_KEY, path: init.path })
      if (stored.windowMs !== windowMs) {
        throw new InvalidOptionsError(`the store at ${init.path} holds ${String(stored.windowMs)} ms windows, not ${windowMs}: open it with that windowMs or use a new directory`,
          { stored: stored.windowMs, windowMs })
      }
    }
    const store = new LevelAnalyticsStore({
      path: init.path,
      windowMs,
      retentionMs: init.retentionMs ?? 7 * DAY_MS,
      now: init.now ?? Date.now,
      maxPendingWrites: init.maxPendingWrites ?? 100_000,
      maxPendingBytes: init.maxPendingBytes ?? 64 * 1024 * 1024,
      maxBatchReadings: init.maxBatchReadings ?? 2000,
      maxCachedWindows: init.maxCachedWindows ?? 20_000,
      retentionBatch: init.retentionBatch ?? 1000,
      sync: init.sync ?? false,
      ...(init.onAnomalies !== undefined ? { onAnomalies: init.onAnomalies } : {}),
      rule: {
        threshold: anomaly.threshold ?? 3.5,
        alpha: alphaForHalfLife(anomaly.halfLifeSamples ?? 30),
        minSamples: anomaly.minSamples ?? 20
      }
    }, db)
    await store.loadSensorStates()
    store.startTimer(init.retentionIntervalMs ?? 60_000)
    store.runRetention().catch(() => { /* a failure marks the store failed: stats().status, flush() */ })
    return store
  } catch (err) {
    await db.close()
    throw err
  }
}
