/**
 * @packageDocumentation
 *
 * A region's sensor state: a map `sensor -> reading` in which the reading with the greatest
 * `(t, writer)` wins on every replica, whatever the order of delivery. `t` is a hybrid logical
 * clock timestamp (@edge-mesh/hlc), `writer` the peer id of the gateway that wrote it.
 *
 * Storage is one Y.Doc per region. Every writer appends its readings, in binary chunks, to its
 * own root array `w/<writer>`; nobody else writes there. The view is computed on each replica
 * and only moves forward. A writer compacts its own log in bounded steps: it copies the oldest
 * chunks' readings that are still winners to the end and deletes the chunks with one range
 * delete, so memory is bounded by live sensors rather than by writes.
 *
 * @example
 * ```ts
 * import { createRegionState } from '@edge-mesh/region-state'
 *
 * const a = createRegionState({ region: 'eu-west', writer: 'gw-a' })
 * const b = createRegionState({ region: 'eu-west', writer: 'gw-b' })
 * a.on('update', (update, local) => { if (local) b.applyUpdate(update) })
 * a.put('line-3/temp', 21.5)
 * console.log(b.get('line-3/temp')) // { sensor, value: 21.5, t, writer: 'gw-a', ageMs }
 * ```
 */
export {
  RegionState, createRegionState, isValidRegionName, LOCAL_ORIGIN, REMOTE_ORIGIN, LOAD_ORIGIN, COMPACTION_DEFAULTS,
  type RegionStateInit, type CompactionInit, type ReadingView, type Change, type ApplyResult,
  type CompactionStats, type RegionStats, type RegionStateEvents, type WriteInput
} from './region-state.ts'
export {
  type Reading, decodeChunk, readChunkHeader, encodeViewSnapshot, decodeViewSnapshot, ViewSnapshotEncoder, isValidWriterId,
  CHUNK_VERSION, VIEW_VERSION
} from './chunk.ts'
export {
  type JsonValue, MAX_DEPTH, MAX_SENSOR_LENGTH, HARD_MAX_VALUE_BYTES, assertSensorId, isValidSensorId
} from './value.ts'
