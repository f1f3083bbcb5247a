/**
 * @packageDocumentation
 *
 * `@edge-mesh/client`: a small, typed, read-only view of one region doc, synced from a gateway's
 * app endpoint (`/v1/docs/<region>`) with the stock y-websocket provider. It answers
 * `latest(sensor)` (decoded: value, unit, device timestamp, HLC time, writer, age), freshness
 * checks, sensor listings and the age of the newest reading, and emits a 'change' event for every
 * sensor whose live reading changes. Reconnects and resyncs are the provider's job.
 *
 * @example
 * ```ts
 * import WebSocket from 'ws' // not needed where globalThis.WebSocket exists (browsers, Node >= 22)
 * import { connectRegion } from '@edge-mesh/client'
 *
 * const view = connectRegion({ url: 'ws://127.0.0.1:8080/v1/docs', region: 'eu-west', WebSocket })
 * await view.synced
 * view.latest('line-3/temp')              // { sensor, value: 21.5, unit: 'C', t, writer, ageMs }
 * view.freshness('line-3/temp', 5000)     // { ageMs, fresh: true }
 * view.on('change', c => console.log(c.sensor, c.reading?.value))
 * await view.close()
 * ```
 */
export {
  connectRegion,
  type ConnectRegionInit, type RegionView, type RegionViewEvents, type RegionViewStats, type LatestReading,
  type Freshness, type ViewChange, type ViewStatus, type WebSocketClass
} from './region-view.ts'
