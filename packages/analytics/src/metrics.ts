/**
 * The analytics peer's Prometheus metrics: one prom-client Registry per peer (never the global
 * one), with the process's default metrics. Counts kept by other components (the store, the mesh,
 * the live stream, the peer's observation counters) are read when the registry is scraped, so the
 * hot path (one 'change' event per reading) only bumps plain numbers and observes the lag
 * histogram.
 *
 * Every metric name starts with `edge_mesh_`; the list is in the package README.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { MeshStats } from '@edge-mesh/mesh'
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

type Samples = Array<[Record<string, string>, number]> | undefined

/** A counter that follows a monotonic count kept elsewhere (raised by its growth at each scrape). */
function follower (registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): Counter {
  const last = new Map<string, number>()
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      const values = read()
      if (values === undefined) return
      for (const [labels, value] of values) {
        const key = JSON.stringify(labels)
        const delta = value - (last.get(key) ?? 0)
        if (delta > 0) this.inc(labels, delta)
        last.set(key, value)
      }
    }
  })
}

function gauge (registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): Gauge {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      const values = read()
      this.reset()
      if (values === undefined) return
      for (const [labels, value] of values) this.set(labels, value)
    }
  })
}

const one = (v: number | undefined): Samples => v === undefined ? undefined : [[{}, v]]

/** Creates the registry and every metric; components are attached through `sources`. */
export function createAnalyticsMetrics (): AnalyticsMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
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
    render: async () => await registry.metrics(),
    contentType: registry.contentType
  }
  const src = (): AnalyticsMetricsSources => metrics.sources
  const obs = (): ObservationStats | undefined => src().observations?.()
  const store = (): AnalyticsStats | undefined => src().store?.()
  const mesh = (): MeshStats | undefined => src().mesh?.()

  // ---------------------------------------------------------------- observations and the store
  follower(registry, 'edge_mesh_analytics_readings_observed_total', 'Readings observed in followed regions (region state changes with reason write).', [], () => one(obs()?.observed))
  follower(registry, 'edge_mesh_analytics_readings_recorded_total', 'Readings written to history (duplicates excluded).', [], () => one(store()?.recorded))
  follower(registry, 'edge_mesh_analytics_readings_duplicates_total', 'Readings seen again and not recorded twice.', [], () => one(store()?.duplicates))
  follower(registry, 'edge_mesh_analytics_readings_expired_total', 'Readings older than the retention horizon when observed, left out.', [], () => one(store()?.expired))
  follower(registry, 'edge_mesh_analytics_readings_dropped_total', 'Observed readings not recorded: reason overloaded (the store queue was full) or refused (malformed, or the store failed or closed).', ['reason'], () => {
    const s = obs()
    return s === undefined ? undefined : [[{ reason: 'overloaded' }, s.overloaded], [{ reason: 'refused' }, s.refused]]
  })
  follower(registry, 'edge_mesh_analytics_anomalies_total', 'Readings flagged as anomalies.', [], () => one(store()?.anomalies))
  gauge(registry, 'edge_mesh_analytics_regions_followed', 'Regions the analytics peer holds (follows).', [], () => one(obs()?.regions))
  gauge(registry, 'edge_mesh_analytics_regions_recorded', 'Regions with readings within the retention horizon.', [], () => one(store()?.regions))
  gauge(registry, 'edge_mesh_analytics_sensors_recorded', 'Sensors with readings within the retention horizon.', [], () => one(store()?.sensors))
  gauge(registry, 'edge_mesh_analytics_store_queue_readings', 'Readings accepted by the store and not yet written.', [], () => one(store()?.pending))
  gauge(registry, 'edge_mesh_analytics_store_queue_bytes', 'JSON characters of the values queued in the store.', [], () => one(store()?.pendingBytes))
  gauge(registry, 'edge_mesh_analytics_store_last_batch_seconds', 'Duration of the last LevelDB batch of readings.', [], () => {
    const s = store()
    return one(s === undefined ? undefined : s.lastBatchMs / 1000)
  })
  follower(registry, 'edge_mesh_analytics_store_batches_total', 'LevelDB batches of readings written.', [], () => one(store()?.batches))
  follower(registry, 'edge_mesh_analytics_retention_deleted_total', 'Records deleted by retention.', [], () => one(store()?.retentionDeleted))
  gauge(registry, 'edge_mesh_analytics_store_open', '1 while the analytics store is open, else 0 (closing, closed or failed).', [], () => {
    const s = store()
    return one(s === undefined ? undefined : s.status === 'open' ? 1 : 0)
  })

  // ---------------------------------------------------------------- mesh
  gauge(registry, 'edge_mesh_peers', 'Connected mesh peers.', [], () => one(mesh()?.peers))
  gauge(registry, 'edge_mesh_banned_peers', 'Peers refused for sending invalid messages.', [], () => one(mesh()?.bannedPeers))
  follower(registry, 'edge_mesh_gossip_frames_total', 'Gossip frames, by direction (in, out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.framesIn], [{ direction: 'out' }, s.framesOut]]
  })
  follower(registry, 'edge_mesh_gossip_bytes_total', 'Gossip frame bytes, by direction (in, out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.frameBytesIn], [{ direction: 'out' }, s.frameBytesOut]]
  })
  follower(registry, 'edge_mesh_gossip_invalid_frames_total', 'Gossip frames refused as invalid.', [], () => one(mesh()?.invalidFrames))
  follower(registry, 'edge_mesh_sync_rounds_total', 'Completed sync rounds with peers.', [], () => one(mesh()?.syncRounds))
  follower(registry, 'edge_mesh_sync_failures_total', 'Sync rounds that failed.', [], () => one(mesh()?.syncFailures))
  follower(registry, 'edge_mesh_sync_bytes_total', 'Sync stream bytes, by direction (in, out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.syncBytesIn], [{ direction: 'out' }, s.syncBytesOut]]
  })
  follower(registry, 'edge_mesh_announcements_total', 'Region announcements accepted (in); a read-only peer publishes none (out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.announcementsIn], [{ direction: 'out' }, s.announcementsOut]]
  })
  gauge(registry, 'edge_mesh_last_sync_timestamp_seconds', 'When the last sync round completed (Unix time, s); absent before the first.', [], () => {
    const at = mesh()?.lastSyncAt
    return at === undefined ? undefined : [[{}, at / 1000]]
  })

  // ---------------------------------------------------------------- HTTP and the live stream
  follower(registry, 'edge_mesh_http_errors_total', 'HTTP error replies, by code.', ['code'], () => {
    const s = src().http?.()
    return s === undefined ? undefined : Object.entries(s.errors).map(([code, n]) => [{ code }, n])
  })
  gauge(registry, 'edge_mesh_analytics_stream_clients', 'Clients of the live stream (SSE).', [], () => one(src().stream?.().clients))
  follower(registry, 'edge_mesh_analytics_stream_events_total', 'Events written to live stream clients (one per event and client).', [], () => one(src().stream?.().events))
  follower(registry, 'edge_mesh_analytics_stream_dropped_total', 'Live stream clients disconnected for falling behind.', [], () => one(src().stream?.().dropped))

  return metrics
}
