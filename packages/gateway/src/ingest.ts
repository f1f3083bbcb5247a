/**
 * Ingest: the one path by which readings from devices (HTTP, MQTT) enter region state.
 *
 * A batch is all-or-nothing: every input is checked (shape with `assertReadingInput`, sensor id
 * and value by region state's contract) before one `RegionState.write` call, which is itself
 * atomic. The promise resolves only once the LevelDB batch holding the writes has completed
 * (`mesh.whenDurable(region)`, one wait per batch): that is the acknowledgement.
 *
 * Deduplication, for inputs that carry a device timestamp `ts`:
 * - the sensor's current winner (from any gateway) carries the same `ts`: a duplicate, not written;
 * - the winner carries a greater `ts`: a *stale* reading (an old one resent or overtaken), not
 *   written either; it is counted in `duplicates` too (and apart in `stats().stale`);
 * - the same sensor appears again in the batch with the same or an older `ts`: likewise.
 * Inputs without `ts` cannot be recognised and are always written, unless the batch is ingested
 * with `ifAbsent` (MQTT retained messages): then an input is written only for a sensor that has no
 * live reading yet, and is otherwise counted as stale.
 *
 * An `Idempotency-Key` makes a whole request repeatable: the first successful result for a
 * (region, key) pair is kept (at most `idempotencyKeys` pairs, each for `idempotencyTtlMs`, the
 * oldest evicted first) and returned for every repeat, whatever its body; concurrent repeats wait
 * for the same promise. A failed request is forgotten, so that it can be retried.
 *
 * Backpressure: readings written but not yet durable are counted. A batch that would take the
 * count over `maxPendingReadings` is refused with `EM_ERR_OVERLOADED` (`details.retryAfterMs`),
 * unless nothing is pending (so that one batch larger than the limit is not refused forever: the
 * HTTP and MQTT adapters bound a batch themselves). Nothing is ever queued in the ingestor: a
 * batch is written at once or refused. `pressure()` turns `high` at 80 % of the limit and back to
 * `ok` at 50 %; MQTT pauses on it. While the mesh is not started, storage is not open, or the
 * ingestor is closed, ingest is refused with `EM_ERR_UNAVAILABLE`.
 */
import { EdgeMeshError, isEdgeMeshError, type ErrorCode } from '@edge-mesh/errors'
import { assertReadingInput, deviceTsOf, toStored, type JsonValue, type ReadingInput } from '@edge-mesh/reading'
import { HARD_MAX_VALUE_BYTES, createRegionState, type Reading, type RegionState } from '@edge-mesh/region-state'

/** The outcome of one ingest call. */
export interface IngestResult {
  /** Readings written (and durable). */
  accepted: number
  /** Readings not written: duplicates and stale ones (see the module doc). */
  duplicates: number
  /** The readings written, in input order (duplicates left out), with their HLC timestamps. */
  readings: ReadonlyArray<{ readonly sensor: string, readonly t: string }>
}

/** Where a batch came from, for metrics. */
export type IngestSource = 'http' | 'mqtt'

export interface IngestOptions {
  /** Makes the request repeatable (see the module doc). */
  idempotencyKey?: string
  /** @default 'http' */
  source?: IngestSource
  /**
   * Write an input without a device `ts` only if its sensor has no live reading (a "last known
   * value" replayed by an MQTT broker must never overwrite newer readings). Inputs with `ts` are
   * deduplicated as usual. @default false
   */
  ifAbsent?: boolean
}

export type Pressure = 'ok' | 'high'

/** The part of a mesh peer ingest needs (a `MeshPeer` is one). */
export interface IngestMesh {
  region: (name: string) => RegionState
  whenDurable: (name: string) => Promise<void>
  /** libp2p's node: ingest is refused unless its status is `started`. */
  readonly node?: { readonly status: string }
  /** The LevelDB store, if any: ingest is refused unless its status is `open`. */
  readonly store?: { status: () => string } | undefined
}

/** A structured logger (pino's shape). */
export interface GatewayLogger {
  debug: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

export interface IngestorInit {
  mesh: IngestMesh
  /** Regions ingest writes to, each held by the mesh. */
  regions: string[]
  /** Readings written but not yet durable before ingest refuses batches. @default 200000 */
  maxPendingReadings?: number
  /** Idempotency keys remembered. @default 10000 */
  idempotencyKeys?: number
  /** How long an idempotency key is remembered, ms. @default 600000 (10 min) */
  idempotencyTtlMs?: number
  /**
   * Readings held by the remembered results (a result keeps each written reading's sensor and
   * timestamp, for the echo), at most: the oldest keys are forgotten first. @default 100000
   */
  idempotencyReadings?: number
  /** `retryAfterMs` of an overloaded refusal. @default 1000 */
  overloadedRetryAfterMs?: number
  /** `retryAfterMs` of an unavailable refusal. @default 5000 */
  unavailableRetryAfterMs?: number
  logger?: GatewayLogger
  /** Clock of the idempotency cache, ms. @default Date.now */
  now?: () => number
}

export interface IngestStats {
  /** Readings written and durable, by source. */
  accepted: Record<IngestSource, number>
  /** Readings not written because a reading with the same (or a newer) device `ts` was there. */
  duplicates: number
  /** Readings not written because a newer device `ts` was there (also in duplicates). */
  stale: number
  /** Readings of refused batches, by error code. */
  rejected: Partial<Record<ErrorCode, number>>
  /** Readings written, not yet durable. */
  pending: number
  /** Requests answered from the idempotency cache. */
  idempotentReplays: number
  /** Keys remembered now, and the readings their results hold (bounded by `idempotencyReadings`). */
  idempotency: { keys: number, readings: number }
  pressure: Pressure
}

export interface Ingestor {
  /** Validates, deduplicates and writes a batch; resolves once it is durable. Throws `EdgeMeshError`s. */
  ingest: (region: string, inputs: readonly unknown[], opts?: IngestOptions) => Promise<IngestResult>
  /** `high` while many readings wait for durability (see the module doc). */
  pressure: () => Pressure
  /** Calls `listener` whenever the pressure changes; returns the unsubscribe function. */
  onPressure: (listener: (pressure: Pressure) => void) => () => void
  /** Readings written, not yet durable. */
  pending: () => number
  stats: () => IngestStats
  /** `retryAfterMs` of an unavailable refusal; a read whose durability wait failed says the same. */
  readonly unavailableRetryAfterMs: number
  /** Refuses new batches (`EM_ERR_UNAVAILABLE`) and waits for those in flight to settle. */
  close: () => Promise<void>
}

const silent: GatewayLogger = { debug () {}, info () {}, warn () {}, error () {} }

/** A result to remember under an idempotency key: sensor and timestamp per reading, no values kept alive. */
function remembered (r: IngestResult): IngestResult {
  return { accepted: r.accepted, duplicates: r.duplicates, readings: r.readings.map(x => ({ sensor: x.sensor, t: x.t })) }
}

interface CacheEntry {
  result: Promise<IngestResult>
  at: number
  /** Readings the result may hold (the batch's size). */
  size: number
}

class IngestorImpl implements Ingestor {
  private readonly mesh: IngestMesh
  private readonly states = new Map<string, RegionState>()
  private readonly maxPending: number
  private readonly highWater: number
  private readonly lowWater: number
  private readonly maxKeys: number
  private readonly ttlMs: number
  private readonly overloadedRetryAfterMs: number
  readonly unavailableRetryAfterMs: number
  private readonly log: GatewayLogger
  private readonly now: () => number
  private readonly cache = new Map<string, CacheEntry>()
  private readonly maxCachedReadings: number
  private cachedReadings = 0
  private readonly listeners = new Set<(p: Pressure) => void>()
  private readonly inflight = new Set<Promise<unknown>>()
  private pendingReadings = 0
  private level: Pressure = 'ok'
  private closed = false
  private readonly counters = { http: 0, mqtt: 0, duplicates: 0, stale: 0, replays: 0 }
  private readonly rejected: Partial<Record<ErrorCode, number>> = {}

  constructor (init: IngestorInit) {
    this.mesh = init.mesh
    this.maxPending = init.maxPendingReadings ?? 200_000
    this.maxKeys = init.idempotencyKeys ?? 10_000
    this.ttlMs = init.idempotencyTtlMs ?? 600_000
    this.maxCachedReadings = init.idempotencyReadings ?? 100_000
    this.overloadedRetryAfterMs = init.overloadedRetryAfterMs ?? 1000
    this.unavailableRetryAfterMs = init.unavailableRetryAfterMs ?? 5000
    this.log = init.logger ?? silent
    this.now = init.now ?? Date.now
    const positive = { maxPendingReadings: this.maxPending, idempotencyKeys: this.maxKeys, idempotencyTtlMs: this.ttlMs, idempotencyReadings: this.maxCachedReadings }
    for (const [k, v] of Object.entries(positive)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new EdgeMeshError('EM_ERR_INVALID_OPTIONS', `${k} must be a positive integer`, { [k]: v })
    }
    this.highWater = Math.max(1, Math.ceil(this.maxPending * 0.8))
    this.lowWater = Math.floor(this.maxPending * 0.5)
    if (!Array.isArray(init.regions) || init.regions.length === 0) {
      throw new EdgeMeshError('EM_ERR_INVALID_OPTIONS', 'regions must list at least one region')
    }
    for (const name of init.regions) this.states.set(name, init.mesh.region(name))
  }

  ingest (region: string, inputs: readonly unknown[], opts?: IngestOptions): Promise<IngestResult> {
    const key = opts?.idempotencyKey
    const source = opts?.source ?? 'http'
    const ifAbsent = opts?.ifAbsent === true
    if (key === undefined) return this.guarded(region, inputs, source, ifAbsent)
    const cacheKey = region + '\n' + key
    const hit = this.cache.get(cacheKey)
    if (hit !== undefined) {
      if (this.now() - hit.at <= this.ttlMs) {
        this.counters.replays++
        return hit.result
      }
      this.forget(cacheKey)
    }
    const result = this.guarded(region, inputs, source, ifAbsent).then(remembered)
    this.remember(cacheKey, result, inputs.length)
    return result
  }

  private remember (cacheKey: string, result: Promise<IngestResult>, size: number): void {
    const at = this.now()
    this.cache.set(cacheKey, { result, at, size })
    this.cachedReadings += size
    // Oldest first: expired ones, then whatever is over the bounds (keys, readings held); the
    // newest key stays.
    for (const [k, e] of this.cache) {
      if (k === cacheKey) break
      if (this.cache.size <= this.maxKeys && this.cachedReadings <= this.maxCachedReadings && at - e.at <= this.ttlMs) break
      this.forget(k)
    }
    result.catch(() => {
      if (this.cache.get(cacheKey)?.result === result) this.forget(cacheKey)
    })
  }

  private forget (cacheKey: string): void {
    const e = this.cache.get(cacheKey)
    if (e === undefined) return
    this.cache.delete(cacheKey)
    this.cachedReadings -= e.size
  }

  /** The write happens synchronously in this call; only the durability wait is asynchronous. */
  private guarded (region: string, inputs: readonly unknown[], source: IngestSource, ifAbsent: boolean): Promise<IngestResult> {
    try {
      return this.run(region, inputs, source, ifAbsent)
    } catch (err) {
      return Promise.reject(err as Error)
    }
  }

  private run (region: string, inputs: readonly unknown[], source: IngestSource, ifAbsent: boolean): Promise<IngestResult> {
    const state = this.states.get(region)
    const n = Array.isArray(inputs) ? inputs.length : 0
    if (state === undefined) {
      throw this.reject(new EdgeMeshError('EM_ERR_NOT_FOUND', `region ${JSON.stringify(region)} is not held by this gateway`, { region, regions: [...this.states.keys()] }), n)
    }
    this.assertAvailable(n)
    if (!Array.isArray(inputs)) throw this.reject(new EdgeMeshError('EM_ERR_INVALID_BODY', 'a batch must be an array of readings', {}), 0)
    try {
      for (let i = 0; i < n; i++) {
        assertReadingInput(inputs[i], i)
        assertAddressable((inputs[i] as ReadingInput).sensor, i)
      }
    } catch (err) {
      throw this.reject(err, n)
    }
    const typed = inputs as readonly ReadingInput[]
    const writes: Array<{ sensor: string, value: JsonValue }> = []
    const from: number[] = []
    let duplicates = 0
    let stale = 0
    // Inputs not written (duplicates, stale): checked against the value contract below all the same.
    const skipped: number[] = []
    // Device timestamps written earlier in this batch, by sensor (only when some input has one).
    let batchTs: Map<string, number> | undefined
    for (let i = 0; i < n; i++) {
      const x = typed[i]
      const ts = x.ts
      if (ts !== undefined) {
        let last = batchTs?.get(x.sensor)
        if (last === undefined) {
          const w = state.winner(x.sensor)
          if (w !== undefined && !w.deleted) last = deviceTsOf(w.value)
        }
        if (last !== undefined && ts <= last) {
          // Not written, but a batch holding an invalid reading is refused whole all the same.
          skipped.push(i)
          if (ts === last) duplicates++
          else stale++
          continue
        }
        if (batchTs === undefined) batchTs = new Map()
        batchTs.set(x.sensor, ts)
      } else if (ifAbsent) {
        const w = state.winner(x.sensor)
        if ((w !== undefined && !w.deleted) || (batchTs?.has(x.sensor) ?? false)) {
          skipped.push(i)
          stale++
          continue
        }
        if (batchTs === undefined) batchTs = new Map()
        batchTs.set(x.sensor, -Infinity)
      }
      writes.push({ sensor: x.sensor, value: toStored(x) })
      from.push(i)
    }
    for (const i of skipped) {
      const write = { sensor: typed[i].sensor, value: toStored(typed[i]) }
      try {
        state.check(write)
      } catch (err) {
        throw this.reject(this.withIndex(err, [write], [i]), n)
      }
    }
    this.counters.duplicates += duplicates + stale
    this.counters.stale += stale
    const k = writes.length
    if (k === 0) return Promise.resolve({ accepted: 0, duplicates: duplicates + stale, readings: [] })
    if (this.pendingReadings > 0 && this.pendingReadings + k > this.maxPending) {
      throw this.reject(new EdgeMeshError('EM_ERR_OVERLOADED', `${this.pendingReadings} readings are waiting to be written; retry later`, {
        region, pending: this.pendingReadings, maxPendingReadings: this.maxPending, retryAfterMs: this.overloadedRetryAfterMs
      }), n)
    }
    let readings: Reading[]
    try {
      readings = state.write(writes)
    } catch (err) {
      throw this.reject(this.withIndex(err, writes, from), n)
    }
    this.pendingReadings += k
    if (this.level === 'ok' && this.pendingReadings >= this.highWater) this.setPressure('high')
    const settled = this.settle(region, readings, duplicates + stale, n, source)
    this.inflight.add(settled)
    const forget = (): void => { this.inflight.delete(settled) }
    settled.then(forget, forget)
    return settled
  }

  private async settle (region: string, readings: Reading[], duplicates: number, n: number, source: IngestSource): Promise<IngestResult> {
    const k = readings.length
    try {
      await this.mesh.whenDurable(region)
    } catch (err) {
      this.log.error({ region, readings: k, err: String(err) }, 'gateway:ingest the write to storage failed')
      throw this.reject(new EdgeMeshError('EM_ERR_UNAVAILABLE', 'storage failed to write the batch', {
        region, retryAfterMs: this.unavailableRetryAfterMs
      }, { cause: err }), n)
    } finally {
      this.pendingReadings -= k
      if (this.level === 'high' && this.pendingReadings <= this.lowWater) this.setPressure('ok')
    }
    this.counters[source] += k
    return { accepted: k, duplicates, readings }
  }

  private assertAvailable (n: number): void {
    let why: string | undefined
    if (this.closed) why = 'the gateway is shutting down'
    else if (this.mesh.node !== undefined && this.mesh.node.status !== 'started') why = `the mesh is ${this.mesh.node.status}`
    else if (this.mesh.store !== undefined && this.mesh.store.status() !== 'open') why = `storage is ${this.mesh.store.status()}`
    if (why !== undefined) {
      throw this.reject(new EdgeMeshError('EM_ERR_UNAVAILABLE', `cannot take readings now: ${why}`, { retryAfterMs: this.unavailableRetryAfterMs }), n)
    }
  }

  /** Counts a refused batch's readings under the error's code and returns the error. */
  private reject (err: unknown, readings: number): unknown {
    const code: ErrorCode = isEdgeMeshError(err) ? err.code : 'EM_ERR_INTERNAL'
    if (code !== 'EM_ERR_INTERNAL') this.rejected[code] = (this.rejected[code] ?? 0) + readings
    return err
  }

  /**
   * Region state's errors name the sensor when they can; container-shape errors name only the
   * path. Either way the failing input is found (on this error path only) and the error is
   * rethrown with its index, like the shape errors of assertReadingInput.
   */
  private withIndex (err: unknown, writes: Array<{ sensor: string, value: JsonValue }>, from: number[]): unknown {
    if (!isEdgeMeshError(err)) return err
    let at = -1
    const sensor = err.details.sensor
    if (typeof sensor === 'string') at = writes.findIndex(w => w.sensor === sensor)
    if (at < 0 && (err.code === 'EM_ERR_INVALID_VALUE' || err.code === 'EM_ERR_INVALID_SENSOR')) at = firstRefused(writes)
    if (at < 0) return err
    const index = from[at]
    return new EdgeMeshError(err.code, `reading ${index}: ${err.message}`, { ...err.details, index }, { cause: err })
  }

  private setPressure (p: Pressure): void {
    this.level = p
    this.log.info({ pressure: p, pending: this.pendingReadings, maxPendingReadings: this.maxPending }, 'gateway:ingest pressure changed')
    for (const f of this.listeners) {
      try {
        f(p)
      } catch (err) {
        this.log.warn({ err: String(err) }, 'gateway:ingest a pressure listener threw')
      }
    }
  }

  pressure (): Pressure {
    return this.level
  }

  onPressure (listener: (pressure: Pressure) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  pending (): number {
    return this.pendingReadings
  }

  stats (): IngestStats {
    return {
      accepted: { http: this.counters.http, mqtt: this.counters.mqtt },
      duplicates: this.counters.duplicates,
      stale: this.counters.stale,
      rejected: { ...this.rejected },
      pending: this.pendingReadings,
      idempotentReplays: this.counters.replays,
      idempotency: { keys: this.cache.size, readings: this.cachedReadings },
      pressure: this.level
    }
  }

  async close (): Promise<void> {
    this.closed = true
    await Promise.allSettled([...this.inflight])
  }
}

/**
 * Sensor ids `.` and `..` are valid in region state but cannot be read back by
 * `GET /v1/sensors/<id>`: URL parsers (fetch, browsers, proxies) turn such a path segment, even
 * percent-encoded, into a path step. Ingest refuses them rather than accept what cannot be read.
 */
function assertAddressable (sensor: string, index: number): void {
  if (sensor.length <= 2 && (sensor === '.' || sensor === '..')) {
    throw new EdgeMeshError('EM_ERR_INVALID_SENSOR', `reading ${index}: sensor id ${JSON.stringify(sensor)} cannot be addressed in a URL path`, { index, field: 'sensor', sensor })
  }
}

/**
 * The index of the first write whose sensor id or value region state refuses, found by writing
 * each alone into a scratch region (the value size limit aside, which errors report by sensor).
 */
function firstRefused (writes: Array<{ sensor: string, value: JsonValue }>): number {
  const probe = createRegionState({ region: 'probe', writer: 'probe', maintenanceIntervalMs: 0, maxValueBytes: HARD_MAX_VALUE_BYTES })
  try {
    for (let i = 0; i < writes.length; i++) {
      try {
        probe.put(writes[i].sensor, writes[i].value)
      } catch {
        return i
      }
    }
    return -1
  } finally {
    probe.close()
  }
}

/** Creates the ingestor of a gateway over its mesh peer. */
export function createIngestor (init: IngestorInit): Ingestor {
  return new IngestorImpl(init)
}
