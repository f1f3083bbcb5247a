/**
 * @packageDocumentation
 *
 * The storage and computation library of the edge-mesh analytics peer: every reading the peer
 * observes (a region state's 'change' events with reason 'write') is kept as history, folded into
 * fixed windows (count, min, max, mean, last) per sensor and per region, and tested against an
 * exponentially weighted baseline per sensor, which flags anomalies. One LevelDB database,
 * group-committed batches, a bounded write queue, bounded caches, and retention in bounded steps.
 *
 * @example
 * ```ts
 * import { openAnalyticsStore } from '@edge-mesh/analytics'
 *
 * const store = await openAnalyticsStore({ path: './data/analytics' })
 * region.on('change', c => {
 *   if (c.reason === 'write' && c.new !== undefined) store.record(region.region, c.new)
 * })
 * await store.flush()
 * await store.aggregates({ region: 'eu-west', sensor: 'line-3/temp', from: Date.now() - 3_600_000 })
 * await store.anomalies({ region: 'eu-west', order: 'desc', limit: 20 })
 * await store.close()
 * ```
 */
export {
  openAnalyticsStore,
  type AnalyticsStore, type AnalyticsStoreInit, type AnomalyInit, type Observation, type TimeRange,
  type HistoryQuery, type HistoryEntry, type AggregatesQuery, type WindowAggregate, type AnomaliesQuery, type Anomaly,
  type RegionSummary, type SensorSummary, type AnalyticsStats, type AnalyticsStatus
} from './store.ts'
export { MAX_LIMIT, DEFAULT_LIMIT } from './query-args.ts'
export { observe, alphaForHalfLife, emptyBaseline, type Baseline, type AnomalyRule, type Flag } from './baseline.ts'
