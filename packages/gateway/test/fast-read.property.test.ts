/**
 * Property: for any valid sensor id, a single-sensor read over a real socket (the fast path ahead
 * of fastify's routing) answers exactly what the fastify route answers (fastify's inject, which
 * never reaches the fast path), in both path forms (the id URL-encoded in one segment, or its
 * segments encoded one by one), with and without `region` and `maxAgeMs`; ids it does not hold
 * get fastify's 404.
 */
import http from 'node:http'
import test from 'ava'
import fc from 'fast-check'
import { pino } from 'pino'
import { createHttpApp } from '../src/http.ts'
import { createIngestor } from '../src/ingest.ts'
import { createGatewayMetrics } from '../src/metrics.ts'
import { REGION, startMesh } from './gateway-helpers.ts'

interface Reply { status: number, type: string | undefined, body: Record<string, unknown> }

/** GET `path` exactly as given (no URL normalisation, unlike fetch). */
async function rawGet (port: number, path: string): Promise<Reply> {
  return await new Promise<Reply>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: JSON.parse(text) as Record<string, unknown> })
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('error', reject)
  })
}

/** The reply without what depends on when it was read (`ageMs`, and `stale`, checked apart). */
const withoutAge = (b: Record<string, unknown>): Record<string, unknown> => {
  const { ageMs, stale, ...rest } = b
  return rest
}

// Any id the gateway takes: no control characters, not '.' or '..', at most 256 UTF-16 units.
const sensorId = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 })
  .filter(s => /^[^\u0000-\u001f\u007f]+$/.test(s) && s.isWellFormed() && s !== '.' && s !== '..')

test('a read over a socket answers what the fastify route answers, for any sensor id and either path form', async t => {
  const mesh = await startMesh(t)
  const names = [REGION]
  const regions = new Map(names.map(n => [n, mesh.region(n)]))
  const ingestor = createIngestor({ mesh, regions: names })
  const app = createHttpApp({
    logger: pino({ level: 'silent' }),
    ingestor,
    regions,
    readiness: () => ({ ready: true, storage: 'open', mesh: 'started', peers: 0, lastSyncAt: null, regions: names }),
    metrics: createGatewayMetrics(),
    whenDurable: async region => { await mesh.whenDurable(region) }
  })
  t.teardown(async () => { await app.app.close() })
  await app.app.listen({ host: '127.0.0.1', port: 0 })
  const addr = app.app.server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  let checked = 0

  await fc.assert(fc.asyncProperty(
    fc.uniqueArray(sensorId, { minLength: 1, maxLength: 4 }),
    fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string(), fc.boolean()),
    fc.constantFrom('', `region=${REGION}`, 'maxAgeMs=0', `maxAgeMs=600000&region=${REGION}`, 'other=1'),
    async (ids, value, query) => {
      const posted = await app.app.inject({ method: 'POST', url: '/v1/readings', payload: ids.map(sensor => ({ sensor, value })) })
      if (posted.statusCode !== 200) return false
      const fastBefore = app.stats().fastReads
      for (const id of ids) {
        const q = query === '' ? '' : `?${query}`
        const segments = id.split('/')
        const forms = [`/v1/sensors/${encodeURIComponent(id)}${q}`]
        if (segments.every(s => s !== '' && s !== '.' && s !== '..')) forms.push(`/v1/sensors/${segments.map(encodeURIComponent).join('/')}${q}`)
        const expected = await app.app.inject({ method: 'GET', url: forms[0] })
        if (expected.statusCode !== 200) return false
        for (const path of forms) {
          const got = await rawGet(addr.port, path)
          if (got.status !== 200 || got.type !== 'application/json; charset=utf-8') return false
          const want = expected.json() as Record<string, unknown>
          if (JSON.stringify(withoutAge(got.body)) !== JSON.stringify(withoutAge(want))) return false
          if (JSON.stringify(Object.keys(got.body)) !== JSON.stringify(Object.keys(want))) return false
          const maxAge = /maxAgeMs=(\d+)/.exec(query)
          if (got.body.stale !== (maxAge !== null && (got.body.ageMs as number) > Number(maxAge[1]))) return false
          checked++
        }
        const missing = await rawGet(addr.port, `/v1/sensors/${encodeURIComponent(id + '\u00a7missing')}${q}`)
        if (missing.status !== 404 || missing.body.code !== 'EM_ERR_NOT_FOUND') return false
      }
      // Every successful socket read of this run went through the fast path.
      return app.stats().fastReads - fastBefore >= ids.length
    }
  ), { numRuns: Number(process.env.FUZZ_RUNS ?? 60) })
  t.true(checked >= 60, `${checked} socket reads compared`)
})
