/**
 * The operations endpoints: /health answers ok, /ready answers the readiness report with 200 or
 * 503 by its `ready`, read at each request, and /metrics the registry's exposition text.
 */
import test from 'ava'
import { fastify } from 'fastify'
import { createServiceRegistry, followerCounter, oneSample, registerOperationRoutes } from '../src/index.ts'

test('/health is ok, /ready follows the readiness report, /metrics serves the registry', async t => {
  const app = fastify()
  t.teardown(async () => { await app.close() })
  const metrics = createServiceRegistry()
  let handled = 0
  followerCounter(metrics.registry, 'test_handled_total', 'Requests handled.', [], () => oneSample(handled))
  let report = { ready: false, storage: 'closed', peers: 0 }
  registerOperationRoutes(app, { readiness: () => report, metrics })

  const health = await app.inject({ method: 'GET', url: '/health' })
  t.is(health.statusCode, 200)
  t.deepEqual(health.json(), { status: 'ok' })

  const notReady = await app.inject({ method: 'GET', url: '/ready' })
  t.is(notReady.statusCode, 503)
  t.deepEqual(notReady.json(), { ready: false, storage: 'closed', peers: 0 })
  report = { ready: true, storage: 'open', peers: 2 }
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.is(ready.statusCode, 200)
  t.deepEqual(ready.json(), { ready: true, storage: 'open', peers: 2 })

  handled = 7
  const scraped = await app.inject({ method: 'GET', url: '/metrics' })
  t.is(scraped.statusCode, 200)
  t.is(scraped.headers['content-type'], metrics.contentType)
  t.true(scraped.body.includes('\ntest_handled_total 7\n'), scraped.body.slice(0, 400))
  t.true(scraped.body.includes('# TYPE nodejs_heap_size_used_bytes gauge'), 'the process metrics are served too')
})
