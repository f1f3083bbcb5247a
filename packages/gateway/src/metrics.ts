/**
 * The gateway's Prometheus metrics: one prom-client Registry per gateway (never the global one),
 * with the process's default metrics. Counters and gauges kept by other components (the mesh,
 * the ingestor, app sockets, MQTT) are read when the registry is scraped (`collect()`), so the
 * hot paths only bump their own plain counters. Histograms are observed as events happen: LevelDB
 * batch writes, compaction pauses, and the convergence lag of remote changes.
 *
 * Every metric name starts with `edge_mesh_`; the list is in the package README.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { wallOf } from '@edge-mesh/hlc'
import type { BatchInfo } from '@edge-mesh/persistence'
import type { Change, CompactionStats, RegionState, RegionStats } from '@edge-mesh/region-state'
import type { MeshStats } from '@edge-mesh/mesh'
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

/**
 * A counter that follows a monotonic count kept elsewhere: at each scrape it is raised by what
 * the count grew since the last one.
 */
function follower (registry: Registry, name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]> | undefined): Counter {
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

function gauge (registry: Registry, name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]> | undefined): Gauge {
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

const one = (v: number | undefined): Array<[Record<string, string>, number]> | undefined => v === undefined ? undefined : [[{}, v]]

/** Creates the registry and every metric; components are attached through `sources` and `watchRegion`. */
export function createGatewayMetrics (): GatewayMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const sources: MetricsSources = {}
  const metrics: GatewayMetrics = {
    registry,
    sources,
    observeBatch: () => {},
    watchRegion: () => () => {},
    render: async () => await registry.metrics(),
    contentType: registry.contentType
  }
  const src = (): MetricsSources => metrics.sources

  // ---------------------------------------------------------------- ingest
  follower(registry, 'edge_mesh_readings_accepted_total', 'Readings written and durable, by source (http, mqtt).', ['source'], () => {
    const s = src().ingest?.()
    return s === undefined ? undefined : [[{ source: 'http' }, s.accepted.http], [{ source: 'mqtt' }, s.accepted.mqtt]]
  })
  follower(registry, 'edge_mesh_readings_rejected_total', 'Readings of refused batches, by reason (the EM_ERR_* code).', ['reason'], () => {
    const s = src().ingest?.()
    return s === undefined ? undefined : Object.entries(s.rejected).map(([reason, n]) => [{ reason }, n ?? 0])
  })
  follower(registry, 'edge_mesh_readings_duplicates_total', 'Readings not written because the sensor already held the same or a newer device ts.', [], () => one(src().ingest?.().duplicates))
  follower(registry, 'edge_mesh_readings_stale_total', 'Duplicates whose device ts was older than the stored one (included in duplicates).', [], () => one(src().ingest?.().stale))
  follower(registry, 'edge_mesh_idempotent_replays_total', 'Ingest requests answered from the idempotency-key cache.', [], () => one(src().ingest?.().idempotentReplays))
  gauge(registry, 'edge_mesh_ingest_pending_readings', 'Readings written, waiting for their LevelDB batch.', [], () => one(src().ingest?.().pending))
  gauge(registry, 'edge_mesh_ingest_pressure', 'Ingest pressure: 1 while high (MQTT pauses), else 0.', [], () => {
    const s = src().ingest?.()
    return one(s === undefined ? undefined : s.pressure === 'high' ? 1 : 0)
  })
  follower(registry, 'edge_mesh_http_errors_total', 'HTTP error replies, by code.', ['code'], () => {
    const s = src().http?.()
    return s === undefined ? undefined : Object.entries(s.errors).map(([code, n]) => [{ code }, n])
  })

  // ---------------------------------------------------------------- mesh
  const mesh = (): MeshStats | undefined => src().mesh?.()
  follower(registry, 'edge_mesh_gossip_frames_total', 'Gossip frames, by direction (in, out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.framesIn], [{ direction: 'out' }, s.framesOut]]
  })
  follower(registry, 'edge_mesh_gossip_bytes_total', 'Gossip frame bytes, by direction (in, out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.frameBytesIn], [{ direction: 'out' }, s.frameBytesOut]]
  })
  follower(registry, 'edge_mesh_gossip_invalid_frames_total', 'Gossip frames refused as invalid.', [], () => one(mesh()?.invalidFrames))
  follower(registry, 'edge_mesh_gossip_unauthorized_frames_total', 'Gossip frames refused because their publisher may not write the region (writer authorization; also in invalid frames).', [], () => one(mesh()?.unauthorizedFrames))
  follower(registry, 'edge_mesh_sync_invalid_messages_total', 'Sync messages refused (undecodable, or readings of writers not allowed).', [], () => one(mesh()?.invalidSyncMessages))
  follower(registry, 'edge_mesh_announcements_total', 'Region announcements published (out) and accepted (in).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'out' }, s.announcementsOut], [{ direction: 'in' }, s.announcementsIn]]
  })
  follower(registry, 'edge_mesh_sync_rounds_total', 'Completed sync rounds with peers.', [], () => one(mesh()?.syncRounds))
  follower(registry, 'edge_mesh_sync_failures_total', 'Sync rounds that failed.', [], () => one(mesh()?.syncFailures))
  follower(registry, 'edge_mesh_sync_bytes_total', 'Sync stream bytes, by direction (in, out).', ['direction'], () => {
    const s = mesh()
    return s === undefined ? undefined : [[{ direction: 'in' }, s.syncBytesIn], [{ direction: 'out' }, s.syncBytesOut]]
  })
  gauge(registry, 'edge_mesh_peers', 'Connected mesh peers.', [], () => one(mesh()?.peers))
  gauge(registry, 'edge_mesh_banned_peers', 'Peers refused for sending invalid messages.', [], () => one(mesh()?.bannedPeers))
  gauge(registry, 'edge_mesh_last_sync_timestamp_seconds', 'When the last sync round completed (Unix time, s); absent before the first.', [], () => {
    const at = mesh()?.lastSyncAt
    return at === undefined ? undefined : [[{}, at / 1000]]
  })

  // ---------------------------------------------------------------- storage and regions
  const batchSeconds = new Histogram({
    name: 'edge_mesh_leveldb_batch_write_seconds',
    help: 'Duration of LevelDB batch writes (the group commit every ingest acknowledgement waits for).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry]
  })
  metrics.observeBatch = (b: BatchInfo) => { batchSeconds.observe(b.ms / 1000) }
  gauge(registry, 'edge_mesh_leveldb_queued_bytes', 'Bytes waiting for the next LevelDB batch.', [], () => one(src().storage?.()?.queuedBytes))
  gauge(registry, 'edge_mesh_storage_open', '1 while the LevelDB store is open (or the gateway keeps state in memory only).', [], () => {
    const s = src().storage
    if (s === undefined) return undefined
    const st = s()
    return one(st === undefined || st.status === 'open' ? 1 : 0)
  })
  const regionGauge = (name: string, help: string, pick: (r: RegionStats) => number): void => {
    gauge(registry, name, help, ['region'], () => src().regions?.().map(r => [{ region: r.region }, pick(r)]))
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
  gauge(registry, 'edge_mesh_app_clients', 'Apps connected over y-websocket.', [], () => one(app()?.clients))
  follower(registry, 'edge_mesh_app_messages_in_total', 'y-websocket messages received from apps.', [], () => one(app()?.messagesIn))
  follower(registry, 'edge_mesh_app_refused_updates_total', 'Doc updates sent by apps and refused (apps are read-only).', [], () => one(app()?.refusedUpdates))
  follower(registry, 'edge_mesh_app_invalid_messages_total', 'Malformed y-websocket messages (the connection is closed).', [], () => one(app()?.invalidMessages))
  follower(registry, 'edge_mesh_app_dropped_total', 'Apps disconnected for falling behind.', [], () => one(app()?.dropped))
  gauge(registry, 'edge_mesh_sse_clients', 'Clients of the change stream (SSE).', [], () => one(src().sse?.().clients))
  follower(registry, 'edge_mesh_sse_events_total', 'Change events written to stream clients.', [], () => one(src().sse?.().events))
  follower(registry, 'edge_mesh_sse_dropped_total', 'Stream clients disconnected for falling behind.', [], () => one(src().sse?.().dropped))
  const mqtt = (): ReturnType<NonNullable<MetricsSources['mqtt']>> => src().mqtt?.()
  gauge(registry, 'edge_mesh_mqtt_connected', '1 while connected to the MQTT broker.', [], () => {
    const s = mqtt()
    return one(s === undefined ? undefined : s.connected ? 1 : 0)
  })
  gauge(registry, 'edge_mesh_mqtt_paused', '1 while MQTT consumption is paused by backpressure.', [], () => {
    const s = mqtt()
    return one(s === undefined ? undefined : s.paused ? 1 : 0)
  })
  follower(registry, 'edge_mesh_mqtt_messages_total', 'MQTT messages received.', [], () => one(mqtt()?.messages))
  follower(registry, 'edge_mesh_mqtt_malformed_total', 'MQTT messages dropped as malformed.', [], () => one(mqtt()?.malformed))
  follower(registry, 'edge_mesh_mqtt_rejected_total', 'MQTT readings refused by ingest.', [], () => one(mqtt()?.rejected))
  follower(registry, 'edge_mesh_mqtt_retained_total', 'Retained MQTT messages without a device ts (ingested only for sensors with no reading).', [], () => one(mqtt()?.retained))

  return metrics
}
