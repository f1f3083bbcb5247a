/**
 * The test-only fault hooks (src/test-hooks.ts): off unless asked for (no route, no offset), the
 * clock offset moves the HLC timestamps a gateway writes, the partition control refuses and closes
 * connections to the peers named and heals with an empty list, and `edge-mesh gateway` takes both
 * from its environment (and refuses a bad value as a usage error).
 */
import { Writable } from 'node:stream'
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { wallOf } from '@edge-mesh/hlc'
import { fromStored } from '@edge-mesh/reading'
import { multiaddr } from '@multiformats/multiaddr'
import type { Gateway, GatewayInit } from '../src/gateway.ts'
import { CLOCK_OFFSET_ENV, CONTROL_ENV, PARTITION_PATH, testHooksFromEnv } from '../src/test-hooks.ts'
import { GatewayProcess } from '../../../test/helpers/gateway-process.ts'
import { postJson, REGION, startGatewayInProcess, tempDir, waitFor } from './gateway-helpers.ts'

/** A gateway of REGION that syncs and redials quickly (a healed partition shows soon). */
const startGateway = async (t: ExecutionContext, init: Partial<GatewayInit> = {}): Promise<Gateway> =>
  await startGatewayInProcess(t, { regions: [REGION], syncIntervalMs: 500, mesh: { redial: { minMs: 100, maxMs: 400 } }, ...init })

/** Posts one reading with ?echo=1 and returns the HLC timestamp written. */
async function writeOne (url: string, sensor: string, value: number): Promise<string> {
  const res = await postJson(`${url}/v1/readings?echo=1`, [{ sensor, value }])
  if (res.status !== 200) throw new Error(`ingest answered ${res.status}: ${await res.text()}`)
  const body = await res.json() as { readings: Array<{ sensor: string, t: string }> }
  return body.readings[0].t
}

test('testHooksFromEnv: nothing set is no hooks; offsets and the control are parsed; bad values are refused by name', t => {
  t.is(testHooksFromEnv({}), undefined)
  t.is(testHooksFromEnv({ [CLOCK_OFFSET_ENV]: '', [CONTROL_ENV]: '0' }), undefined)
  t.deepEqual(testHooksFromEnv({ [CLOCK_OFFSET_ENV]: '-30000' }), { clockOffsetMs: -30_000 })
  t.deepEqual(testHooksFromEnv({ [CLOCK_OFFSET_ENV]: '+150000', [CONTROL_ENV]: '1' }), { clockOffsetMs: 150_000, control: true })
  t.deepEqual(testHooksFromEnv({ [CONTROL_ENV]: '1' }), { control: true })
  for (const env of [{ [CLOCK_OFFSET_ENV]: '1.5' }, { [CLOCK_OFFSET_ENV]: '10s' }, { [CONTROL_ENV]: 'yes' }]) {
    const err = t.throws(() => testHooksFromEnv(env))
    t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS'), JSON.stringify(env))
    t.is((err as unknown as { details: { env: string } }).details.env, Object.keys(env)[0])
  }
})

test('without hooks there is no partition route (404) and the mesh clock is the wall clock', async t => {
  const gw = await startGateway(t)
  const res = await postJson(`${gw.url}${PARTITION_PATH}`, { deny: [] })
  t.is(res.status, 404)
  const before = Date.now()
  const t1 = await writeOne(gw.url, 'line-1/temp', 1)
  const after = Date.now()
  t.true(wallOf(t1) >= before && wallOf(t1) <= after, `HLC wall ${wallOf(t1)} within [${before}, ${after}]`)
})

test('a clock offset moves the HLC timestamps the gateway writes by the offset, and a warning says the hook is on', async t => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done() } })
  const offset = 150_000
  const gw = await startGateway(t, { logger: pino({ level: 'warn' }, sink), testHooks: { clockOffsetMs: offset } })
  const before = Date.now()
  const t1 = await writeOne(gw.url, 'line-1/temp', 1)
  const after = Date.now()
  t.true(wallOf(t1) >= before + offset && wallOf(t1) <= after + offset, `HLC wall ${wallOf(t1)} within [${before + offset}, ${after + offset}]`)
  t.true(lines.some(l => l.includes('TEST-ONLY HOOKS ARE ON') && l.includes('"clockOffsetMs":150000')), lines.join(''))
  // The offset alone does not open the control route.
  t.is((await postJson(`${gw.url}${PARTITION_PATH}`, { deny: [] })).status, 404)
})

test('the partition control refuses and closes connections to the peers named; an empty list heals and the peers converge', async t => {
  const a = await startGateway(t, { testHooks: { control: true } })
  const b = await startGateway(t, { bootstrap: a.addrs(), testHooks: { control: true } })
  await waitFor(() => a.mesh.connectedPeers().includes(b.peerId), 'b connects to a')

  t.is((await postJson(`${a.url}${PARTITION_PATH}`, { deny: 'nope' })).status, 400)
  const res = await postJson(`${a.url}${PARTITION_PATH}`, { deny: [b.peerId] })
  t.is(res.status, 200)
  const body = await res.json() as { deny: string[], closed: number }
  t.deepEqual(body.deny, [b.peerId])
  t.true(body.closed >= 1)
  await waitFor(() => !a.mesh.connectedPeers().includes(b.peerId) && !b.mesh.connectedPeers().includes(a.peerId), 'a and b are disconnected')
  // Refused both ways, though only a denies: a does not dial b, and a drops b's connection once
  // the handshake names b (b's dial may resolve before it learns of the refusal).
  await t.throwsAsync(a.mesh.node.dial(multiaddr(b.addrs()[0]), { signal: AbortSignal.timeout(5000) }))
  await b.mesh.node.dial(multiaddr(a.addrs()[0]), { signal: AbortSignal.timeout(5000) }).catch(() => {})
  t.false(a.mesh.connectedPeers().includes(b.peerId))
  await waitFor(() => !b.mesh.connectedPeers().includes(a.peerId), "a's refusal ends b's connection")

  const written = await writeOne(a.url, 'line-2/flow', 42)
  t.is((await postJson(`${a.url}${PARTITION_PATH}`, { deny: [] })).status, 200)
  await waitFor(() => a.mesh.connectedPeers().includes(b.peerId), 'b redials a after the heal')
  await waitFor(() => b.mesh.region(REGION).get('line-2/flow')?.t === written, 'the reading written during the partition reaches b')
  const seen = b.mesh.region(REGION).get('line-2/flow')
  t.is(seen === undefined ? undefined : fromStored(seen.value).value, 42)
  t.is(seen?.writer, a.peerId)
})

test('edge-mesh gateway takes the hooks from its environment, and refuses a bad value with exit status 2', async t => {
  const dir = await tempDir(t)
  const offset = -30_000
  const gw = await GatewayProcess.start(t, {
    name: 'hooked',
    regions: [REGION],
    data: dir,
    logLevel: 'warn',
    env: { [CLOCK_OFFSET_ENV]: String(offset), [CONTROL_ENV]: '1' }
  })
  t.true(gw.stderr.includes('TEST-ONLY HOOKS ARE ON'), gw.stderr)
  const before = Date.now()
  const t1 = await writeOne(gw.url, 'line-1/temp', 1)
  const after = Date.now()
  t.true(wallOf(t1) >= before + offset && wallOf(t1) <= after + offset, `HLC wall ${wallOf(t1)} within [${before + offset}, ${after + offset}]`)
  const res = await gw.post(PARTITION_PATH, { deny: ['12D3KooWNotConnected'] })
  t.is(res.status, 200)
  t.deepEqual(res.body, { deny: ['12D3KooWNotConnected'], closed: 0 })
  t.is((await gw.stop()).code, 0)

  const bad = await GatewayProcess.start(t, { name: 'bad', regions: [REGION], env: { [CONTROL_ENV]: 'yes' }, readyTimeoutMs: 20_000 })
    .then(() => undefined, (err: unknown) => err as Error)
  t.truthy(bad)
  t.regex(String(bad?.message), /exited before ready \(code 2/)
  t.regex(String(bad?.message), new RegExp(CONTROL_ENV))
})
