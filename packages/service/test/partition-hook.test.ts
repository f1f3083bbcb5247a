/**
 * The TEST-ONLY partition control over two real mesh peers on loopback: the environment turns it
 * on, a deny list refuses and closes connections, an empty list heals, and with bootstrap
 * addresses the heal dials them at once (the mesh's own redial is held back for a minute here).
 */
import { setTimeout as delay } from 'node:timers/promises'
import test, { type ExecutionContext } from 'ava'
import { fastify, type FastifyInstance } from 'fastify'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { createMeshPeer, type MeshPeer, type MeshPeerInit } from '@edge-mesh/mesh'
import { CONTROL_ENV, PARTITION_PATH, controlFromEnv, createPartitionControl, installErrorReplies, type PartitionControl, type PartitionReply } from '../src/index.ts'

const REGION = 'plant-1'

async function startPeer (t: ExecutionContext, init: Partial<MeshPeerInit> = {}): Promise<MeshPeer> {
  const peer = await createMeshPeer({ regions: [REGION], listen: ['/ip4/127.0.0.1/tcp/0'], syncIntervalMs: 0, ...init })
  t.teardown(async () => { await peer.stop() })
  return peer
}

/** Polls `cond` every 50 ms for at most 20 s. */
async function waitFor (cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return
    await delay(50)
  }
  throw new Error(`timed out after 20 s waiting for: ${what}`)
}

/** A fastify app set up as the services set theirs: strict schemas, edge-mesh error replies. */
function appWith (t: ExecutionContext): FastifyInstance {
  const app = fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } } })
  installErrorReplies(app, { logger: { error: () => {} }, component: 'test:http' })
  t.teardown(async () => { await app.close() })
  return app
}

const partition = async (app: FastifyInstance, deny: unknown): Promise<{ status: number, body: PartitionReply & { code?: string } }> => {
  const res = await app.inject({ method: 'POST', url: PARTITION_PATH, payload: { deny } })
  return { status: res.statusCode, body: res.json() }
}

test('controlFromEnv: 1 is on; unset, empty or 0 is off; anything else is refused naming the variable', t => {
  t.true(controlFromEnv({ [CONTROL_ENV]: '1' }))
  t.false(controlFromEnv({}))
  t.false(controlFromEnv({ [CONTROL_ENV]: '' }))
  t.false(controlFromEnv({ [CONTROL_ENV]: '0' }))
  for (const value of ['yes', 'true', ' 1', '2']) {
    const err = t.throws(() => controlFromEnv({ [CONTROL_ENV]: value }))
    t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS'), value)
    t.deepEqual((err as unknown as { details: unknown }).details, { env: CONTROL_ENV, value })
  }
})

test('a deny list refuses and closes the connections to the peers named; an empty list heals and, with bootstrap addresses, dials them at once', async t => {
  const b = await startPeer(t)
  const warnings: Array<{ obj: object, msg: string }> = []
  const control: PartitionControl = createPartitionControl({ log: { warn: (obj, msg) => { warnings.push({ obj, msg }) } }, component: 'test' })
  // a's own redialer waits a minute after a disconnect: only the control's redial reconnects in time.
  const a = await startPeer(t, { bootstrap: b.addrs(), denyPeer: control.denyPeer, redial: { minMs: 60_000, maxMs: 60_000 } })
  const app = appWith(t)
  control.register(app, () => a, { redial: b.addrs() })
  await waitFor(() => a.connectedPeers().includes(b.peerId), 'a connects to b')

  t.is((await partition(app, 'nope')).status, 400)
  t.is((await partition(app, ['x'.repeat(300)])).status, 400)
  t.false(control.denyPeer(b.peerId), 'a refused request changes nothing')

  const cut = await partition(app, [b.peerId])
  t.is(cut.status, 200)
  t.deepEqual(cut.body.deny, [b.peerId])
  t.true(cut.body.closed >= 1, `closed ${cut.body.closed}`)
  t.is(cut.body.redialed, 0)
  t.true(control.denyPeer(b.peerId))
  t.false(control.denyPeer(a.peerId))
  await waitFor(() => !a.connectedPeers().includes(b.peerId) && !b.connectedPeers().includes(a.peerId), 'a and b are disconnected')

  const healed = await partition(app, [])
  t.is(healed.status, 200)
  t.deepEqual(healed.body, { deny: [], closed: 0, redialed: 1 })
  t.false(control.denyPeer(b.peerId))
  await waitFor(() => a.connectedPeers().includes(b.peerId), 'a dials b again at once')
  const again = await partition(app, [])
  t.deepEqual(again.body, { deny: [], closed: 0, redialed: 0 }, 'a connected peer is not dialled')
  t.deepEqual(warnings.map(w => w.msg), Array(3).fill('test: TEST-ONLY partition control applied'))
  t.deepEqual(warnings[0].obj, cut.body, 'the warning carries what was applied')
})

test('without bootstrap addresses the reply has no redialed count; before the mesh exists a request is refused', async t => {
  const b = await startPeer(t)
  const a = await startPeer(t)
  const control = createPartitionControl({ log: { warn: () => {} }, component: 'test' })
  let mesh: MeshPeer | undefined
  const app = appWith(t)
  control.register(app, () => mesh)
  const early = await partition(app, [b.peerId])
  t.is(early.status, 400)
  t.is(early.body.code, 'EM_ERR_INVALID_OPTIONS')
  t.false(control.denyPeer(b.peerId), 'a refused request changes nothing')

  mesh = a
  const res = await partition(app, [b.peerId, 'QmNotConnected'])
  t.is(res.status, 200)
  t.deepEqual(res.body, { deny: [b.peerId, 'QmNotConnected'], closed: 0 })
  t.true(control.denyPeer('QmNotConnected'))
})
