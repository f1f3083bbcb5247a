/**
 * The analytics peer's Prometheus metrics: one prom-client Registry per peer (never the global
 * one), with the process's default metrics. Counts kept by other components (the store, the mesh,
 * the live stream, the peer's observation counters) are read when the registry is scraped, so the
 * hot path (one 'change' event per reading) only bumps plain numbers and observes the lag
 * histogram. The collectors and the mesh and HTTP error metrics are @edge-mesh/service's, shared
 * with the gateway.
 *
 * Every metric name starts with `edge_mesh_`; the list is in the package README.
 */
import { Histogram, type Registry } from 'prom-client'
import type { MeshStats } from '@edge-mesh/mesh'
import { createServiceRegistry, followerCounter, oneSample, registerHttpErrorMetrics, registerMeshMetrics, scrapedGauge } from '@edge-mesh/service'
import type { AnalyticsStats } from './store.ts'
import type { LiveStreamStats } from './live-stream.ts'

/** The peer's own counts of what it observed. */
export interface ObservationStats {
  /** Readings observed ('change' events with reason 'write'). */
  observed: number
  /** Observed readings the store refused because its write queue was full. */
  overloaded: number
  /** Observed readings the store refused as malformed, or after it failed or closed. */
  refused: number
  /** Regions held (followed). */
  regions: number
}

/** What the metrics read at scrape time; each source may be absent (not running yet). */
export interface AnalyticsMetricsSources {
  observations?: () => ObservationStats
  store?: () => AnalyticsStats
  mesh?: () => MeshStats
  stream?: () => LiveStreamStats
  http?: () => { errors: Record<string, number> }
}

export interface AnalyticsMetrics {
  readonly registry: Registry
  /** Read at scrape time (set once the components exist). */
  sources: AnalyticsMetricsSources
  /** Observes one replication lag sample, ms. */
  observeLag: (ms: number) => void
  render: () => Promise<string>
  readonly contentType: string
}

/** Creates the registry and every metric; components are attached through `sources`. */
export function createAnalyticsMetrics (): AnalyticsMetrics {
  const { registry, render, contentType } = createServiceRegistry()
  const lag = new Histogram({
    name: 'edge_mesh_analytics_lag_seconds',
    help: 'Replication lag seen by the analytics peer: when it observed a reading minus the wall time of the reading\'s HLC timestamp.',
    // Fine below 1 s, where a healthy mesh is, so that quantiles read from the buckets are useful.
    buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300],
    registers: [registry]
  })
  const metrics: AnalyticsMetrics = {
    registry,
    sources: {},
    observeLag: ms => { lag.observe(ms > 0 ? ms / 1000 : 0) },
    render,
    contentType
  }
  const src = (): AnalyticsMetricsSources => metrics.sources
  const obs = (): ObservationStats | undefined => src().observations?.()
  const store = (): AnalyticsStats | undefined => src().store?.()
  const mesh = (): MeshStats | undefined => src().mesh?.()

  // ---------------------------------------------------------------- observations and the store
  followerCounter(registry, 'edge_mesh_analytics_readings_observed_total', 'Readings observed in followed regions (region state changes with reason write).', [], () => oneSample(obs()?.observed))
  followerCounter(registry, 'edge_mesh_analytics_readings_recorded_total', 'Readings written to history (duplicates excluded).', [], () => oneSample(store()?.recorded))
  followerCounter(registry, 'edge_mesh_analytics_readings_duplicates_total', 'Readings seen again and not recorded twice.', [], () => oneSample(store()?.duplicates))
  followerCounter(registry, 'edge_mesh_analytics_readings_expired_total', 'Readings older than the retention horizon when observed, left out.', [], () => oneSample(store()?.expired))
  followerCounter(registry, 'edge_mesh_analytics_readings_dropped_total', 'Observed readings not recorded: reason overloaded (the store queue was full) or refused (malformed, or the store failed or closed).', ['reason'], () => {
    const s = obs()
    return s === undefined ? undefined : [[{ reason: 'overloaded' }, s.overloaded], [{ reason: 'refused' }, s.refused]]
  })
  followerCounter(registry, 'edge_mesh_analytics_anomalies_total', 'Readings flagged as anomalies.', [], () => oneSample(store()?.anomalies))
  scrapedGauge(registry, 'edge_mesh_analytics_regions_followed', 'Regions the analytics peer holds (follows).', [], () => oneSample(obs()?.regions))
  scrapedGauge(registry, 'edge_mesh_analytics_regions_recorded', 'Regions with readings within the retention horizon.', [], () => oneSample(store()?.regions))
  scrapedGauge(registry, 'edge_mesh_analytics_sensors_recorded', 'Sensors with readings within the retention horizon.', [], () => oneSample(store()?.sensors))
  scrapedGauge(registry, 'edge_mesh_analytics_store_queue_readings', 'Readings accepted by the store and not yet written.', [], () => oneSample(store()?.pending))
  scrapedGauge(registry, 'edge_mesh_analytics_store_queue_bytes', 'JSON characters of the values queued in the store.', [], () => oneSample(store()?.pendingBytes))
  scrapedGauge(registry, 'edge_mesh_analytics_store_last_batch_seconds', 'Duration of the last LevelDB batch of readings.', [], () => {
    const s = store()
    return oneSample(s === undefined ? undefined : s.lastBatchMs / 1000)
  })
  followerCounter(registry, 'edge_mesh_analytics_store_batches_total', 'LevelDB batches of readings written.', [], () => oneSample(store()?.batches))
  followerCounter(registry, 'edge_mesh_analytics_retention_deleted_total', 'Records deleted by retention.', [], () => oneSample(store()?.retentionDeleted))
  scrapedGauge(registry, 'edge_mesh_analytics_store_open', '1 while the analytics store is open, else 0 (closing, closed or failed).', [], () => {
    const s = store()
    return oneSample(s === undefined ? undefined : s.status === 'open' ? 1 : 0)
  })

  // ---------------------------------------------------------------- mesh, HTTP and the live stream
  registerMeshMetrics(registry, mesh)
  registerHttpErrorMetrics(registry, () => src().http?.().errors)
  scrapedGauge(registry, 'edge_mesh_analytics_stream_clients', 'Clients of the live stream (SSE).', [], () => oneSample(src().stream?.().clients))
  followerCounter(registry, 'edge_mesh_analytics_stream_events_total', 'Events written to live stream clients (one per event and client).', [], () => oneSample(src().stream?.().events))
  followerCounter(registry, 'edge_mesh_analytics_stream_dropped_total', 'Live stream clients disconnected for falling behind.', [], () => oneSample(src().stream?.().dropped))

  return metrics
}
