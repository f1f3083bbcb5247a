/**
 * The same-run baseline of bench:gateway's ingest: a bare fastify server that parses and
 * schema-checks reading batches (the gateway's own body schema) and answers at once, holding no
 * state and writing nothing. What the gateway adds on top of it is region state, LevelDB and gossip.
 *
 * Prints {"event":"ready","http":"http://127.0.0.1:PORT"} on stdout; stops on SIGTERM.
 */
import Fastify from 'fastify'
import { readingInputSchema } from '@edge-mesh/reading'

const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 })
app.post('/v1/readings', {
  schema: { body: { type: 'array', maxItems: 10_000, items: readingInputSchema } }
}, async (req) => ({ accepted: (req.body as unknown[]).length, duplicates: 0 }))
const address = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(JSON.stringify({ event: 'ready', http: address }) + '\n')
const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
