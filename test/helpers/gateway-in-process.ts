/**
 * A whole gateway in the test process (`createGateway`), for tests that need its parts at hand
 * rather than a child process (for those, gateway-process.ts): HTTP on a free loopback port, logs
 * off unless a logger is given, closed when the test ends.
 *
 *   const gw = await startGatewayInProcess(t, { regions: ['plant-1'], syncIntervalMs: 1000 })
 *   const res = await postJson(`${gw.url}/v1/readings`, [{ sensor: 'line-1/temp', value: 21.5 }])
 */
import { pino } from 'pino'
import { createGateway, type Gateway, type GatewayInit } from '@edge-mesh/gateway'
import type { TeardownHost } from './child-peer.ts'

const silent = pino({ level: 'silent' })

/** `createGateway(init)` with HTTP on 127.0.0.1, a free port, and a silent logger unless `init` says otherwise. */
export async function startGatewayInProcess (t: TeardownHost, init: GatewayInit): Promise<Gateway> {
  const gw = await createGateway({ http: { host: '127.0.0.1', port: 0 }, logger: silent, ...init })
  t.teardown(async () => { await gw.close() })
  return gw
}

/** POSTs `body` as JSON to `url`. */
export async function postJson (url: string, body: unknown): Promise<Response> {
  return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}
