/**
 * The gateway's Prometheus metrics: one prom-client Registry per gateway (never the global one),
 * with the process's default metrics. Counters and gauges kept by other components (the mesh,
 * the ingestor, app sockets, MQTT) are read when the registry is scraped (`collect()`), so the
 * hot paths only bump their own plain counters (the collectors and the mesh and HTTP error metrics
 * are @edge-mesh/service's, shared with the analytics peer). Histograms are observed as events
 * happen: LevelDB batch writes, compaction pauses, and the convergence lag of remote changes.
 *
 * Every metric name starts with `edge_mesh_`; the list is in the package README.
 */
import { Histogram, type Registry } from 'prom-client'
import { wallOf } from '@edge-mesh/hlc'
import type { BatchInfo } from '@edge-mesh/persistence'
import type { Change, CompactionStats, RegionState, RegionStats } from '@edge-mesh/region-state'
import type { MeshStats } from '@edge-mesh/mesh'
import { createServiceRegistry, followerCounter, oneSample, registerHttpErrorMetrics, registerMeshMetrics, scrapedGauge } from '@edge-mesh/service'
import type { IngestStats } from './ingest.ts'

/** What the metrics read at scrape time; each source may be absent (not running). */
export interface MetricsSources {
  mesh?: () => MeshStats
  storage?: () => { queuedBytes: number, status: string } | undefined
  regions?: () => RegionStats[]
  ingest?: () => IngestStats
  app?: () => { clients: number, messagesIn: number, refusedUpdates: number, invalidMessages: number, dropped: number } | undefined
  mqtt?: () => { connected: boolean, messages: number, accepted: number, malformed: number, rejected: number, retained: number, paused: boolean } | undefined
  sse?: () => { clients: number, dropped: number, events: number }
  http?: () => { errors: Record<string, number> }
}

export interface GatewayMetrics {
  readonly registry: Registry
  /** The sources read at scrape time (set once the components exist). */
  sources: MetricsSources
  /** For PersistenceInit.onBatch. */
  observeBatch: (batch: BatchInfo) => void
  /** Observes compaction pauses and the convergence lag of a region's remote changes. */
  watchRegion: (region: RegionState) => () => void
  /** The exposition text. */
  render: () => Promise<string>
  readonly contentType: string
}

/** Creates the registry and every metric; components are attached through `sources` and `watchRegion`. */
export function createGatewayMetrics (): GatewayMetrics {
  const { registry, render, contentType } = createServiceRegistry()
  const sources: MetricsSources = {}
  const metrics: GatewayMetrics = {
    registry,
    sources,
    observeBatch: () => {},
    watchRegion: () => () => {},
    render,
    contentType
  }
  const src = (): MetricsSources => metrics.sources

  // ---------------------------------------------------------------- ingest
  followerCounter(registry, 'edge_mesh_readings_accepted_total', 'Readings written and durable, by source (http, mqtt).', ['source'], () => {
    const s = src().ingest?.()
    return s === undefined ? undefined : [[{ source: 'http' }, s.accepted.http], [{ source: 'mqtt' }, s.accepted.mqtt]]
  })
  followerCounter(registry, 'edge_mesh_readings_rejected_total', 'Readings of refused batches, by reason (the EM_ERR_* code).', ['reason'], () => {
    const s = src().ingest?.()
    return s === undefined ? undefined : Object.entries(s.rejected).map(([reason, n]) => [{ reason }, n ?? 0])
  })
  followerCounter(registry, 'edge_mesh_readings_duplicates_total', 'Readings not written because the sensor already held the same or a newer device ts.', [], () => oneSample(src().ingest?.().duplicates))
  followerCounter(registry, 'edge_mesh_readings_stale_total', 'Duplicates whose device ts was older than the stored one (included in duplicates).', [], () => oneSample(src().ingest?.().stale))
  followerCounter(registry, 'edge_mesh_idempotent_replays_total', 'Ingest requests answered from the idempotency-key cache.', [], () => oneSample(src().ingest?.().idempotentReplays))
  scrapedGauge(registry, 'edge_mesh_idempotency_cached_readings', 'Readings held by the remembered results of idempotency keys (bounded).', [], () => oneSample(src().ingest?.().idempotency.readings))
  scrapedGauge(registry, 'edge_mesh_ingest_pending_readings', 'Readings written, waiting for their LevelDB batch.', [], () => oneSample(src().ingest?.().pending))
  scrapedGauge(registry, 'edge_mesh_ingest_pressure', 'Ingest pressure: 1 while high (MQTT pauses), else 0.', [], () => {
    const s = src().ingest?.()
    return oneSample(s === undefined ? undefined : s.pressure === 'high' ? 1 : 0)
  })
  registerHttpErrorMetrics(registry, () => src().http?.().errors)

  // ---------------------------------------------------------------- mesh
  registerMeshMetrics(registry, () => src().mesh?.())

  // ---------------------------------------------------------------- storage and regions
  const batchSeconds = new Histogram({
    name: 'edge_mesh_leveldb_batch_write_seconds',
    help: 'Duration of LevelDB batch writes (the group commit every ingest acknowledgement waits for).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry]
  })
  metrics.observeBatch = (b: BatchInfo) => { batchSeconds.observe(b.ms / 1000) }
  scrapedGauge(registry, 'edge_mesh_leveldb_queued_bytes', 'Bytes waiting for the next LevelDB batch.', [], () => oneSample(src().storage?.()?.queuedBytes))
  scrapedGauge(registry, 'edge_mesh_storage_open', '1 while the LevelDB store is open (or the gateway keeps state in memory only).', [], () => {
    const s = src().storage
    if (s === undefined) return undefined
    const st = s()
    return oneSample(st === undefined || st.status === 'open' ? 1 : 0)
  })
  const regionGauge = (name: string, help: string, pick: (r: RegionStats) => number): void => {
    scrapedGauge(registry, name, help, ['region'], () => src().regions?.().map(r => [{ region: r.region }, pick(r)]))
  }
  regionGauge('edge_mesh_region_sensors', 'Live sensors in the region view.', r => r.sensors)
  regionGauge('edge_mesh_region_tombstones', 'Tombstones held in the region view.', r => r.tombstones)
  regionGauge('edge_mesh_region_structs', 'Structs in the region Y.Doc (all writers).', r => r.structs)
  regionGauge('edge_mesh_region_own_log_readings', "Readings in this gateway's own log of the region (bounded by compaction).", r => r.ownLogReadings)
  regionGauge('edge_mesh_region_compaction_max_pause_seconds', 'Longest compaction step so far.', r => r.maxCompactionPauseMs / 1000)
  const compactionSeconds = new Histogram({
    name: 'edge_mesh_compaction_pause_seconds',
    help: 'Event-loop pause of each compaction step.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [registry]
  })
  const lagSeconds = new Histogram({
    name: 'edge_mesh_convergence_lag_seconds',
    help: 'For readings from other gateways that became the winner here: now minus the HLC wall time of the reading.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry]
  })
  metrics.watchRegion = (region: RegionState) => {
    const onCompaction = (s: CompactionStats): void => { compactionSeconds.observe(s.pauseMs / 1000) }
    const onChange = (c: Change): void => {
      if (c.local || c.new === undefined) return
      const lag = Date.now() - wallOf(c.new.t)
      lagSeconds.observe(lag > 0 ? lag / 1000 : 0)
    }
    region.on('compaction', onCompaction)
    region.on('change', onChange)
    return () => {
      region.off('compaction', onCompaction)
      region.off('change', onChange)
    }
  }

  // ---------------------------------------------------------------- app sockets, SSE, MQTT
  const app = (): ReturnType<NonNullable<MetricsSources['app']>> => src().app?.()
  scrapedGauge(registry, 'edge_mesh_app_clients', 'Apps connected over y-websocket.', [], () => oneSample(app()?.clients))
  followerCounter(registry, 'edge_mesh_app_messages_in_total', 'y-websocket messages received from apps.', [], () => oneSample(app()?.messagesIn))
  followerCounter(registry, 'edge_mesh_app_refused_updates_total', 'Doc updates sent by apps and refused (apps are read-only).', [], () => oneSample(app()?.refusedUpdates))
  followerCounter(registry, 'edge_mesh_app_invalid_messages_total', 'Malformed y-websocket messages (the connection is closed).', [], () => oneSample(app()?.invalidMessages))
  followerCounter(registry, 'edge_mesh_app_dropped_total', 'Apps disconnected for falling behind.', [], () => oneSample(app()?.dropped))
  scrapedGauge(registry, 'edge_mesh_sse_clients', 'Clients of the change stream (SSE).', [], () => oneSample(src().sse?.().clients))
  followerCounter(registry, 'edge_mesh_sse_events_total', 'Change events written to stream clients.', [], () => oneSample(src().sse?.().events))
  followerCounter(registry, 'edge_mesh_sse_dropped_total', 'Stream clients disconnected for falling behind.', [], () => oneSample(src().sse?.().dropped))
  const mqtt = (): ReturnType<NonNullable<MetricsSources['mqtt']>> => src().mqtt?.()
  scrapedGauge(registry, 'edge_mesh_mqtt_connected', '1 while connected to the MQTT broker.', [], () => {
    const s = mqtt()
    return oneSample(s === undefined ? undefined : s.connected ? 1 : 0)
  })
  scrapedGauge(registry, 'edge_mesh_mqtt_paused', '1 while MQTT consumption is paused by backpressure.', [], () => {
    const s = mqtt()
    return oneSample(s === undefined ? undefined : s.paused ? 1 : 0)
  })
  followerCounter(registry, 'edge_mesh_mqtt_messages_total', 'MQTT messages received.', [], () => oneSample(mqtt()?.messages))
  followerCounter(registry, 'edge_mesh_mqtt_malformed_total', 'MQTT messages dropped as malformed.', [], () => oneSample(mqtt()?.malformed))
  followerCounter(registry, 'edge_mesh_mqtt_rejected_total', 'MQTT readings refused by ingest.', [], () => oneSample(mqtt()?.rejected))
  followerCounter(registry, 'edge_mesh_mqtt_retained_total', 'Retained MQTT messages without a device ts (ingested only for sensors with no reading).', [], () => oneSample(mqtt()?.retained))

  return metrics
}
