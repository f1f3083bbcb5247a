/**
 * stop() called before the broker has acknowledged the first connection (the broker is down or
 * slow, and mqtt.js is between attempts or waiting for CONNACK) must also stop mqtt.js's
 * reconnects: otherwise an in-process gateway whose broker is down at shutdown keeps its process
 * alive. Found through the gateway, whose close() with an unreachable --mqtt broker left a test
 * worker running.
 */
import net from 'node:net'
import test from 'ava'
import { pino } from 'pino'
import { createMqttIngest, type MqttIngest } from '../src/mqtt.ts'
import { waitFor } from './gateway-helpers.ts'

test('MQTT ingest stopped before its first connection is acknowledged makes no further connection attempts', async t => {
  // A "broker" that accepts TCP connections and never answers CONNECT.
  let connections = 0
  const sockets: net.Socket[] = []
  const server = net.createServer(s => { connections++; sockets.push(s) })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const { port } = server.address() as net.AddressInfo
  const m = createMqttIngest({ url: `mqtt://127.0.0.1:${port}`, regions: ['r'], ingest: async () => ({ accepted: 0, duplicates: 0 }), logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await m.stop() })
  m.start().catch(() => {})
  await waitFor(() => connections === 1, 'the ingest connects')
  await m.stop()
  // mqtt.js reconnects every second: three periods without a new connection show it is stopped.
  const after = connections
  await new Promise(resolve => setTimeout(resolve, 3000))
  t.is(connections, after, 'no connection attempt after stop()')
})
