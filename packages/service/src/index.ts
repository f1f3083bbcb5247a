/**
 * @packageDocumentation
 *
 * What the edge-mesh HTTP services (`@edge-mesh/gateway`, `@edge-mesh/analytics`) share, written
 * once so that both answer, count and parse the same way:
 *
 * - error replies: fastify's errors mapped to edge-mesh errors, `{ error, code, details? }` with
 *   the status of the code, `Retry-After`, details safe to show ({@link installErrorReplies});
 * - the operations endpoints `/health`, `/ready`, `/metrics` ({@link registerOperationRoutes});
 * - Prometheus collectors read at scrape time: a counter following a count kept elsewhere, a gauge,
 *   the mesh peer's metrics and the HTTP error counter ({@link followerCounter}, {@link registerMeshMetrics});
 * - the command line: `parseArgs` errors naming the flag, log levels, `--writer <region>=<peer id>`
 *   ({@link parseFlags}, {@link parseWriterFlags});
 * - the TEST-ONLY partition control `POST /_test/partition` ({@link createPartitionControl});
 * - a bounded wait for a stop: whether a promise settles within a bound ({@link settlesWithin}).
 *
 * @example
 * ```ts
 * import { fastify } from 'fastify'
 * import { createServiceRegistry, installErrorReplies, registerHttpErrorMetrics, registerOperationRoutes } from '@edge-mesh/service'
 *
 * const app = fastify()
 * const replies = installErrorReplies(app, { logger: console, component: 'example:http' })
 * const metrics = createServiceRegistry()
 * registerHttpErrorMetrics(metrics.registry, () => replies.counts())
 * registerOperationRoutes(app, { readiness: () => ({ ready: true }), metrics })
 * await app.inject({ method: 'GET', url: '/nope' })           // 404 { error, code: 'EM_ERR_NOT_FOUND' }
 * await app.inject({ method: 'GET', url: '/metrics' })        // … edge_mesh_http_errors_total{code="EM_ERR_NOT_FOUND"} 1
 * ```
 */
export {
  toEdgeMeshError, publicDetails, retryAfterSeconds, installErrorReplies, errorReplySchema,
  type ErrorMappingInit, type ErrorReply, type ErrorReplies, type ErrorRepliesInit, type ErrorRepliesLogger
} from './http-errors.ts'
export {
  followerCounter, scrapedGauge, oneSample, createServiceRegistry, registerMeshMetrics, registerHttpErrorMetrics,
  type Samples, type ServiceRegistry
} from './metrics.ts'
export { registerOperationRoutes, type OperationRoutesInit } from './operation-routes.ts'
export { parseFlags, parseWriterFlags, isPeerId, LOG_LEVELS, PEER_ID_HINT, REGION_NAME_HINT, type FlagValues, type LogLevel } from './cli.ts'
export {
  createPartitionControl, controlFromEnv, CONTROL_ENV, PARTITION_PATH, MAX_DENIED,
  type PartitionControl, type PartitionControlInit, type PartitionControlLogger, type PartitionRouteInit, type PartitionReply
} from './partition-hook.ts'
export { serve, type ServeInit, type ServeLogger, type ServedService } from './serve.ts'
export { settlesWithin } from './settles-within.ts'
