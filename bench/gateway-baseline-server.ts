/**
 * The same-run baseline of bench:gateway's ingest: a bare fastify server that parses and
 * schema-checks reading batches (the gateway's own body schema) and answers at once, holding no
 * state and writing nothing. What the gateway adds on top of it is region state, LevelDB and gossip.
 * For the read scenario it answers `GET /v1/sensors/:id` from a plain Map filled by those batches,
 * with a reply of the gateway's shape: what the gateway adds there is its read path.
 *
 * Prints {"event":"ready","http":"http://127.0.0.1:PORT"} on stdout; stops on SIGTERM.
 */
import Fastify from 'fastify'
import { readingInputSchema } from '@edge-mesh/reading'

const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 })
const latest = new Map<string, { value: unknown, at: number }>()
app.post('/v1/readings', {
  schema: { body: { type: 'array', maxItems: 10_000, items: readingInputSchema } }
}, async (req) => {
  const body = req.body as Array<{ sensor: string, value: unknown }>
  const at = Date.now()
  for (const r of body) latest.set(r.sensor, { value: r.value, at })
  return { accepted: body.length, duplicates: 0 }
})
app.get<{ Params: { id: string } }>('/v1/sensors/:id', async (req, reply) => {
  const r = latest.get(req.params.id)
  if (r === undefined) return await reply.code(404).send({ error: 'no reading', code: 'EM_ERR_NOT_FOUND' })
  const ageMs = Date.now() - r.at
  return { sensor: req.params.id, value: r.value, t: '', writer: 'baseline', ageMs, stale: false }
})
const address = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(JSON.stringify({ event: 'ready', http: address }) + '\n')
const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
