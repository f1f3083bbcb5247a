/**
 * @packageDocumentation
 *
 * The edge-mesh analytics peer and its store library.
 *
 * The peer ({@link createAnalyticsPeer}, the command `edge-mesh analytics`) joins the mesh
 * read-only, follows every region the gateways announce, records every reading it observes, and
 * serves history, window aggregates, anomalies, freshness and replication lag over HTTP, with a
 * live stream (SSE) and the dashboard (`public/`).
 *
 * The store ({@link openAnalyticsStore}): every reading the peer observes (a region state's
 * 'change' events with reason 'write') is kept as history, folded into fixed windows (count, min,
 * max, mean, last) per sensor and per region, and tested against an exponentially weighted
 * baseline per sensor, which flags anomalies. One LevelDB database, group-committed batches, a
 * bounded write queue, bounded caches, and retention in bounded steps.
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
 *
 * const peer = await createAnalyticsPeer({ dataDir: './data/analytics-peer', bootstrap: ['/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW…'] })
 * console.log(peer.url, peer.regions())
 * await peer.close()
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
export { createAnalyticsPeer, httpUrl, PUBLIC_DIR, type AnalyticsPeer, type AnalyticsPeerInit } from './peer.ts'
export {
  createAnalyticsHttp, parseQuery, MAX_LATEST_LIMIT, DEFAULT_LATEST_LIMIT,
  type AnalyticsHttp, type AnalyticsHttpInit, type AnalyticsApi, type RegionReport, type LatestEntry, type PeersReport, type AnalyticsReadiness
} from './http.ts'
export { LiveStream, STREAM_EVENTS, type LiveStreamInit, type LiveClientFilter, type LiveStreamStats, type StreamEvent } from './live-stream.ts'
export { LagWindow, quantile, type LagWindowInit, type LagSummary } from './lag.ts'
export { createAnalyticsMetrics, type AnalyticsMetrics, type AnalyticsMetricsSources, type ObservationStats } from './metrics.ts'
export { parseAnalyticsCommand, parseDuration, parseHostPort, ANALYTICS_DEFAULTS, type AnalyticsConfig, type ParsedAnalyticsCommand } from './config.ts'
export { LOG_LEVELS, type LogLevel } from '@edge-mesh/service'
export { runAnalyticsCommand, ANALYTICS_HELP } from './cli.ts'
export { testHooksFromEnv, createTestHooks, CONTROL_ENV, PARTITION_PATH, type AnalyticsTestHooksInit, type AnalyticsTestHooks } from './test-hooks.ts'
