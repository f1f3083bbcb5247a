/**
 * The operations endpoints every edge-mesh HTTP service serves:
 *
 * | route | reply |
 * |---|---|
 * | `GET /health` | `200 { status: 'ok' }` while the event loop answers |
 * | `GET /ready` | the service's readiness report, `200` when it says `ready`, else `503` |
 * | `GET /metrics` | the Prometheus exposition text of the service's registry |
 */
import type { FastifyInstance } from 'fastify'

export interface OperationRoutesInit {
  /** The readiness report, read at each request; its `ready` picks the status. */
  readiness: () => { ready: boolean }
  /** The service's metrics (see `createServiceRegistry`). */
  metrics: { render: () => Promise<string>, contentType: string }
}

const healthReplySchema = { type: 'object', properties: { status: { type: 'string' } } } as const

/** Registers GET /health, /ready and /metrics on `app` (before it listens). */
export function registerOperationRoutes (app: FastifyInstance, init: OperationRoutesInit): void {
  app.get('/health', { schema: { response: { 200: healthReplySchema } } }, (_req, reply) => {
    void reply.send({ status: 'ok' })
  })
  app.get('/ready', (_req, reply) => {
    const r = init.readiness()
    void reply.code(r.ready ? 200 : 503).send(r)
  })
  app.get('/metrics', async (_req, reply) => {
    const text = await init.metrics.render()
    void reply.type(init.metrics.contentType).send(text)
  })
}
