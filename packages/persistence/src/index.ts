/**
 * @packageDocumentation
 *
 * LevelDB persistence for edge-mesh region state. Per region doc: an append log of Yjs updates
 * written in batches (group commit), and snapshots (the doc plus the view) after which the log
 * is trimmed, so disk use is bounded like memory. The node's HLC state is written in every batch,
 * so a restarted clock never goes backwards. `whenDurable()` resolves only after the LevelDB
 * write holding everything emitted before the call has completed: that is the acknowledgement
 * the ingest APIs give.
 *
 * @example
 * ```ts
 * import { openPersistence } from '@edge-mesh/persistence'
 * import { createRegionState } from '@edge-mesh/region-state'
 *
 * const store = await openPersistence({ path: './data/db' })
 * const region = createRegionState({ region: 'eu-west', writer: 'gw-a', hlc: store.clock })
 * const bound = await store.bind(region)
 * region.put('line-3/temp', 21.5)
 * await bound.whenDurable() // acknowledged: survives kill -9
 * await store.close()
 * ```
 */
export {
  openPersistence, type Persistence, type PersistenceInit, type BoundRegion, type BoundRegionStats,
  type LoadReport, type PersistenceStats, type PersistenceStatus, type BatchInfo
} from './persistence.ts'
export { type SnapshotMeta } from './keys.ts'
