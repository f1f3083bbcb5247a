/**
 * @packageDocumentation
 *
 * The edge-mesh gateway: what an operator runs at a site and what devices and apps talk to. A
 * gateway is a mesh peer (`@edge-mesh/mesh`) holding the site's regions, with
 *
 * - ingest over HTTP (`POST /v1/readings`) and MQTT (`sensors/<region>/<sensor>`), acknowledged
 *   only once the LevelDB batch holding the readings is written, deduplicated by device timestamp
 *   and idempotency key, refused with 429/503 and `Retry-After` under backpressure;
 * - freshness-aware reads (`GET /v1/sensors/:id?maxAgeMs=`), listing, and a change stream (SSE);
 * - app subscriptions: a y-websocket endpoint per region doc (`/v1/docs/<region>`), read-only;
 * - `/health`, `/ready`, `/metrics` (Prometheus) and pino logs.
 *
 * @example
 * ```ts
 * import { createGateway } from '@edge-mesh/gateway'
 *
 * const gw = await createGateway({ regions: ['plant-1'], dataDir: './data/gw-a', http: { host: '127.0.0.1', port: 8080 } })
 * await gw.ingestor.ingest('plant-1', [{ sensor: 'line-1/temp', value: 21.5, unit: 'C' }])  // durable
 * console.log(gw.url, gw.addrs())
 * await gw.close()
 * ```
 *
 * The command line is `edge-mesh gateway` (see {@link GATEWAY_HELP}).
 */
export { createGateway, APP_SOCKETS_PATH, type Gateway, type GatewayInit } from './gateway.ts'
export {
  createIngestor, type Ingestor, type IngestorInit, type IngestResult, type IngestOptions, type IngestSource,
  type IngestMesh, type IngestStats, type Pressure, type GatewayLogger
} from './ingest.ts'
export {
  createHttpApp, toEdgeMeshError, MAX_BATCH_READINGS, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT,
  type HttpApp, type HttpAppInit, type HttpStats, type SseStats, type Readiness
} from './http.ts'
export { createGatewayMetrics, type GatewayMetrics, type MetricsSources } from './metrics.ts'
export { parseGatewayCommand, httpUrl, DEFAULTS, type GatewayConfig, type ParsedCommand } from './config.ts'
export { LOG_LEVELS, type LogLevel } from '@edge-mesh/service'
export { runGatewayCommand, GATEWAY_HELP } from './cli.ts'
export { attachAppSockets, type AppSockets, type AppSocketsInit, type AppSocketsStats } from './app-ws.ts'
export { createMqttIngest, type MqttIngest, type MqttIngestInit, type MqttIngestStats } from './mqtt.ts'
