/**
 * Real region updates for the gossip and sync fuzz tests, a target replica to apply them to, and
 * the check that a refused update changed nothing.
 *
 * The corpus comes from region states writing readings: three writers on one fake clock put every
 * kind of value (numbers, strings, booleans, null, JSON containers), delete sensors, write batches
 * spread over several chunks, and compact their logs (so updates carry deletions too). Besides
 * every local update in order, it holds sync diffs (`encodeStateAsUpdate(stateVector)`), whole
 * states, and the updates of a fourth writer whose clock is beyond the drift bound. The target replica starts with part of that history (and writes of its own), so later
 * updates are new to it, earlier ones duplicates, and some leave gaps (pending structs).
 */
import * as Y from 'yjs'
import { EdgeMeshError } from '@edge-mesh/errors'
import { createRegionState, decodeChunk, type ApplyResult, type JsonValue, type RegionState } from '@edge-mesh/region-state'
import { fakeClock } from '@edge-mesh/testkit'

export const REGION = 'eu-west'
export const T0 = 1_700_000_000_000

/** Codes region state documents for a refused remote update. */
export const APPLY_ERROR_CODES: ReadonlySet<string> = new Set(['EM_ERR_INVALID_UPDATE', 'EM_ERR_CLOCK_DRIFT'])

const VALUES: JsonValue[] = [
  21.5, -0, 1e300, -7, 0, 'on', '', 'héllo wörld ✓', true, false, null,
  { v: 1, unit: 'C' }, [1, 'two', null, { deep: [true] }], { value: { nested: 'x' } }, []
]

export interface RegionCorpus {
  /** Every valid update: local updates in order, sync diffs, whole states. */
  updates: Uint8Array[]
  /** State vectors of the writers at several points. */
  stateVectors: Uint8Array[]
  /** The updates the target starts with. */
  base: Uint8Array[]
  /** Every sensor id written. */
  sensors: string[]
  /** The physical clock of the target (the writers' clock after the corpus was written). */
  now: number
}

/**
 * Gives a new region's doc a fixed Yjs client id (before anything is written), so that the corpus,
 * and so a fast-check seed, replays the same bytes in every run.
 */
function fixClientId (r: RegionState, id: number): void {
  r.doc.clientID = id
}

function record (r: RegionState): Uint8Array[] {
  const out: Uint8Array[] = []
  r.on('update', (u, local) => { if (local) out.push(u) })
  return out
}

export function buildRegionCorpus (): RegionCorpus {
  const clock = fakeClock(T0)
  const compaction = { stepReadings: 4, ratio: 1 }
  const writers = ['gw-a', 'gw-b', 'gw-c'].map((writer, i) => {
    const r = createRegionState({ region: REGION, writer, now: clock.now, maintenanceIntervalMs: 0, maxChunkReadings: 3, compaction })
    fixClientId(r, 1001 + i)
    return r
  })
  const logs = writers.map(record)
  const stateVectors: Uint8Array[] = [Y.encodeStateVector(new Y.Doc())]
  const diffs: Uint8Array[] = []
  const sensors = new Set<string>()
  let v = 0
  for (let round = 0; round < 6; round++) {
    for (const [w, r] of writers.entries()) {
      clock.ms += 7
      const batch = Array.from({ length: 1 + ((round + w) % 4) }, (_, i) => {
        const sensor = `line-${(round + i) % 5}/${['temp', 'rpm', 'state'][(w + i) % 3]}`
        sensors.add(sensor)
        return { sensor, value: VALUES[v++ % VALUES.length] }
      })
      r.putMany(batch)
      if (round % 2 === 1) r.delete(batch[0].sensor)
      if (round === 3) r.compactStep()
    }
    // Replicate some of it, so that later updates refer to structs of other writers.
    if (round % 2 === 0) {
      const [a, b] = writers
      const sv = b.encodeStateVector()
      stateVectors.push(sv)
      const diff = a.encodeStateAsUpdate(sv)
      diffs.push(diff)
      b.applyUpdate(diff)
    }
  }
  for (const r of writers) stateVectors.push(r.encodeStateVector())
  const whole = writers.map(r => r.encodeStateAsUpdate())
  // A writer whose clock is two minutes ahead: its updates are valid but beyond the drift bound.
  const ahead = createRegionState({ region: REGION, writer: 'gw-ahead', now: () => clock.ms + 120_000, maintenanceIntervalMs: 0 })
  fixClientId(ahead, 1009)
  const early = record(ahead)
  ahead.put('line-1/temp', 'from the future')
  ahead.putMany([{ sensor: 'line-9/new', value: 9 }, { sensor: 'line-0/rpm', value: null }])
  const [la, lb, lc] = logs
  const base = [...la.slice(0, Math.ceil(la.length / 2)), ...lb.slice(0, Math.ceil(lb.length / 3))]
  const updates = [...la, ...lb, ...lc, ...diffs, ...whole, ...early, Y.encodeStateAsUpdate(new Y.Doc())]
  for (const r of [...writers, ahead]) r.close()
  return { updates, stateVectors, base, sensors: [...sensors].sort(), now: clock.ms }
}

/**
 * A replica that applies fuzzed updates. Every input starts from the same state: `begin()` rebuilds
 * the replica from the corpus if the previous input changed it.
 */
export class TargetRegion {
  private readonly corpus: RegionCorpus
  private current: RegionState | undefined
  private before: string | undefined
  private dirty = false

  constructor (corpus: RegionCorpus) {
    this.corpus = corpus
  }

  /** The replica, in its initial state. */
  get state (): RegionState {
    if (this.current === undefined) {
      const clock = fakeClock(this.corpus.now)
      const r = createRegionState({ region: REGION, writer: 'gw-t', now: clock.now, maintenanceIntervalMs: 0 })
      fixClientId(r, 1000)
      r.putMany([{ sensor: 'line-0/temp', value: 1 }, { sensor: 'target/own', value: { mine: true } }])
      for (const u of this.corpus.base) r.applyUpdate(u)
      this.current = r
      this.before = fingerprint(r, this.corpus.sensors)
    }
    return this.current
  }

  /** Call before each input. */
  begin (): void {
    if (this.dirty) this.reset()
  }

  /**
   * Applies `update` as the mesh does. Throws (an Error naming what broke) unless the update is
   * applied with a valid result, or refused with a documented EdgeMeshError that changed nothing
   * observable and emitted no event.
   */
  apply (update: Uint8Array): { ok: true, result: ApplyResult, changed: boolean } | { ok: false, code: string } {
    const r = this.state
    const before = this.before as string
    // Until the outcome is known to have changed nothing, the replica counts as changed: a failed
    // check below must not leave a changed replica to the next input.
    const wasDirty = this.dirty
    this.dirty = true
    const events: string[] = []
    const onUpdate = (): void => { events.push('update') }
    const onChange = (): void => { events.push('change') }
    const onGap = (): void => { events.push('gap') }
    r.on('update', onUpdate)
    r.on('change', onChange)
    r.on('gap', onGap)
    let result: ApplyResult
    try {
      result = r.applyUpdate(update)
    } catch (err) {
      if (!(err instanceof EdgeMeshError) || !APPLY_ERROR_CODES.has(err.code)) {
        throw new Error(`applyUpdate threw an undocumented error: ${String(err)} (code ${String((err as { code?: unknown }).code)})`, { cause: err })
      }
      const after = fingerprint(r, this.corpus.sensors)
      if (after !== before) throw new Error(`applyUpdate refused the update (${err.code}: ${err.message}) but the state changed:\nbefore ${before}\nafter  ${after}`)
      if (events.length > 0) throw new Error(`applyUpdate refused the update (${err.code}) but emitted ${events.join(', ')}`)
      this.dirty = wasDirty
      return { ok: false, code: err.code }
    } finally {
      r.off('update', onUpdate)
      r.off('change', onChange)
      r.off('gap', onGap)
    }
    const problems = checkResult(r, result)
    if (problems !== undefined) throw new Error(`applyUpdate returned an invalid result ${JSON.stringify(result)}: ${problems}`)
    const after = fingerprint(r, this.corpus.sensors)
    const changed = after !== before
    if (changed) this.before = after
    else this.dirty = wasDirty
    return { ok: true, result, changed }
  }

  /** Forgets the replica: the next use rebuilds it. */
  reset (): void {
    this.current?.close()
    this.current = undefined
    this.before = undefined
    this.dirty = false
  }
}

function checkResult (r: RegionState, result: ApplyResult): string | undefined {
  if (!Number.isSafeInteger(result.readings) || result.readings < 0) return 'readings is not a count'
  if (!Number.isSafeInteger(result.changed) || result.changed < 0) return 'changed is not a count'
  if (result.pending !== r.stats().pending) return 'pending differs from the region stats'
  for (const s of r.list()) if (r.get(s) === undefined) return `listed sensor ${JSON.stringify(s)} has no value`
  // The view holds, for every reading of a chunk in its writer's log, that reading or a greater one.
  for (const name of r.doc.share.keys()) {
    if (!name.startsWith('w/')) return `the doc has a root type ${JSON.stringify(name)}`
    for (const chunk of r.doc.getArray<Uint8Array>(name).toArray()) {
      let decoded: ReturnType<typeof decodeChunk>
      try {
        decoded = decodeChunk(chunk)
      } catch (err) {
        return `log ${name} holds a chunk that does not decode: ${String(err)}`
      }
      if (`w/${decoded.writer}` !== name) continue // misplaced: counted, left out of the view
      for (const reading of decoded.readings) {
        const w = r.winner(reading.sensor)
        if (w === undefined || w.t < reading.t || (w.t === reading.t && w.writer < reading.writer)) {
          return `the view misses reading ${JSON.stringify(reading)} of log ${name} (winner ${JSON.stringify(w)})`
        }
      }
    }
  }
  return undefined
}

/**
 * Everything observable about a region: its whole doc (pending structs and deletions included),
 * state vector, view (list, get and winner of every known sensor), stats and clock.
 */
export function fingerprint (r: RegionState, sensors: readonly string[]): string {
  const list = r.list()
  const known = [...new Set([...sensors, ...list])].sort()
  return JSON.stringify({
    doc: Buffer.from(Y.encodeStateAsUpdate(r.doc)).toString('base64'),
    sv: Buffer.from(r.encodeStateVector()).toString('base64'),
    list,
    views: known.map(s => r.get(s)),
    winners: known.map(s => r.winner(s)),
    stats: { ...r.stats(), maxCompactionPauseMs: 0 },
    hlc: r.hlc.last()
  })
}
