/**
 * Prometheus collectors read at scrape time, for services whose hot paths only bump plain numbers:
 * a counter that follows a count kept elsewhere ({@link followerCounter}), a gauge set from a
 * reading ({@link scrapedGauge}), and the metric sets every mesh service exposes the same way (the
 * mesh peer's counters, HTTP error replies).
 *
 * A read function returns the samples to report, `[labels, value]` pairs, or `undefined` while
 * its source is absent (not started yet, or not configured).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { MeshStats } from '@edge-mesh/mesh'

/** Samples read at scrape time: `[labels, value]` pairs, or undefined while the source is absent. */
export type Samples = Array<[Record<string, string>, number]> | undefined

/** One unlabelled sample of `v`, or none when `v` is undefined. */
export const oneSample = (v: number | undefined): Samples => v === undefined ? undefined : [[{}, v]]

/** The options of a metric registered in `registry` only. */
function metricInit<L extends string> (registry: Registry, name: string, help: string, labelNames: L[]): { name: string, help: string, labelNames: L[], registers: Registry[] } {
  return { name, help, labelNames, registers: [registry] }
}

/**
 * A counter that follows a monotonic count kept elsewhere: at each scrape, each label set is
 * raised by what its count grew since the last scrape. A count that did not grow adds nothing; a
 * count that went down (its source restarted) adds nothing either, and growth is counted from the
 * lower value on. While `read` returns undefined the counter keeps its value.
 */
export function followerCounter (registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): Counter {
  const last = new Map<string, number>()
  return new Counter({
    ...metricInit(registry, name, help, labelNames),
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

/**
 * A gauge set at each scrape to what `read` returns; label sets it no longer returns are
 * dropped. While `read` returns undefined it has no labelled series (prom-client shows an
 * unlabelled gauge as 0).
 */
export function scrapedGauge (registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): Gauge {
  return new Gauge({
    ...metricInit(registry, name, help, labelNames),
    collect () {
      const values = read()
      this.reset()
      if (values === undefined) return
      for (const [labels, value] of values) this.set(labels, value)
    }
  })
}

/** A service's registry: its own (never prom-client's global one), with the default process metrics. */
export interface ServiceRegistry {
  readonly registry: Registry
  /** The exposition text. */
  render: () => Promise<string>
  readonly contentType: string
}

/** A new registry with prom-client's default process metrics (`process_*`, `nodejs_*`). */
export function createServiceRegistry (): ServiceRegistry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return { registry, render: async () => await registry.metrics(), contentType: registry.contentType }
}

/** A pair of samples labelled `direction` in and out. */
const inOut = (inValue: number, outValue: number): Samples => [[{ direction: 'in' }, inValue], [{ direction: 'out' }, outValue]]

/**
 * The mesh peer's metrics, read from `read()` (its `stats()`) at scrape time: connected and
 * banned peers, gossip frames and bytes, invalid frames and the refusals of writer authorization
 * (both services can hold writer lists), sync rounds, failures and bytes, region announcements,
 * and when the last sync round completed.
 */
export function registerMeshMetrics (registry: Registry, read: () => MeshStats | undefined): void {
  followerCounter(registry, 'edge_mesh_gossip_frames_total', 'Gossip frames, by direction (in, out).', ['direction'], () => {
    const s = read()
    return s === undefined ? undefined : inOut(s.framesIn, s.framesOut)
  })
  followerCounter(registry, 'edge_mesh_gossip_bytes_total', 'Gossip frame bytes, by direction (in, out).', ['direction'], () => {
    const s = read()
    return s === undefined ? undefined : inOut(s.frameBytesIn, s.frameBytesOut)
  })
  followerCounter(registry, 'edge_mesh_gossip_invalid_frames_total', 'Gossip frames refused as invalid.', [], () => oneSample(read()?.invalidFrames))
  followerCounter(registry, 'edge_mesh_gossip_unauthorized_frames_total', 'Gossip frames refused because their publisher may not write the region (writer authorization; also in invalid frames).', [], () => oneSample(read()?.unauthorizedFrames))
  followerCounter(registry, 'edge_mesh_sync_invalid_messages_total', 'Sync messages refused (undecodable, or readings of writers not allowed).', [], () => oneSample(read()?.invalidSyncMessages))
  followerCounter(registry, 'edge_mesh_announcements_total', 'Region announcements published (out) and accepted (in); a read-only peer publishes none.', ['direction'], () => {
    const s = read()
    return s === undefined ? undefined : inOut(s.announcementsIn, s.announcementsOut)
  })
  followerCounter(registry, 'edge_mesh_sync_rounds_total', 'Completed sync rounds with peers.', [], () => oneSample(read()?.syncRounds))
  followerCounter(registry, 'edge_mesh_sync_failures_total', 'Sync rounds that failed.', [], () => oneSample(read()?.syncFailures))
  followerCounter(registry, 'edge_mesh_sync_bytes_total', 'Sync stream bytes, by direction (in, out).', ['direction'], () => {
    const s = read()
    return s === undefined ? undefined : inOut(s.syncBytesIn, s.syncBytesOut)
  })
  scrapedGauge(registry, 'edge_mesh_peers', 'Connected mesh peers.', [], () => oneSample(read()?.peers))
  scrapedGauge(registry, 'edge_mesh_banned_peers', 'Peers refused for sending invalid messages.', [], () => oneSample(read()?.bannedPeers))
  scrapedGauge(registry, 'edge_mesh_last_sync_timestamp_seconds', 'When the last sync round completed (Unix time, s); absent before the first.', [], () => {
    const at = read()?.lastSyncAt
    return at === undefined ? undefined : [[{}, at / 1000]]
  })
}

/** `edge_mesh_http_errors_total{code}`, following the error replies counted by code (see `installErrorReplies`). */
export function registerHttpErrorMetrics (registry: Registry, read: () => Record<string, number> | undefined): void {
  followerCounter(registry, 'edge_mesh_http_errors_total', 'HTTP error replies, by code.', ['code'], () => {
    const errors = read()
    return errors === undefined ? undefined : Object.entries(errors).map(([code, n]) => [{ code }, n])
  })
}
