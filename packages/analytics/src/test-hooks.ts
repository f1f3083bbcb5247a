/**
 * TEST-ONLY fault hooks of the analytics peer, for end-to-end tests (`test/analytics-e2e.test.ts`).
 * Off unless its environment variable is set; `edge-mesh analytics` reads it at start
 * (`testHooksFromEnv`) and the peer logs a warning when it is on. Never set it in production.
 *
 *   EDGE_MESH_TEST_CONTROL=1   POST /_test/partition with {"deny": ["<peer id>", ...]}: the mesh
 *                              refuses connections to and from those peers and closes the open
 *                              ones; {"deny": []} heals, and the bootstrap peers no longer denied
 *                              are dialled at once (not after the redial backoff grew during the
 *                              partition). Without the variable the route does not exist (404).
 *
 * The reply is `{ deny: [ids], closed: <connections closed>, redialed: <bootstrap peers dialled> }`.
 * The same control as the gateway's (packages/gateway/src/test-hooks.ts), so a test partitions
 * either kind of peer the same way.
 */
import type { FastifyInstance } from 'fastify'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidOptionsError } from '@edge-mesh/errors'
import type { MeshPeer, MeshPeerInit } from '@edge-mesh/mesh'

export const CONTROL_ENV = 'EDGE_MESH_TEST_CONTROL'
/** The route of the partition control. */
export const PARTITION_PATH = '/_test/partition'
/** Most peer ids one partition request may deny. */
const MAX_DENIED = 1000

/** Test-only hooks an analytics peer is started with. */
export interface AnalyticsTestHooksInit {
  /** Serve POST /_test/partition. @default false */
  control?: boolean
}

/**
 * The hooks set in `env`, or undefined when none is. Throws InvalidOptionsError (naming the
 * variable) for a control value other than 1 or 0.
 */
export function testHooksFromEnv (env: Readonly<Record<string, string | undefined>> = process.env): AnalyticsTestHooksInit | undefined {
  const control = env[CONTROL_ENV]
  if (control === undefined || control === '' || control === '0') return undefined
  if (control !== '1') {
    throw new InvalidOptionsError(`${CONTROL_ENV} must be 1 (on) or 0 (off), not ${JSON.stringify(control)}`, { env: CONTROL_ENV, value: control })
  }
  return { control: true }
}

export interface TestHooksLogger {
  warn: (obj: object, msg: string) => void
}

/** The hooks as the peer wires them. */
export interface AnalyticsTestHooks {
  /** Mesh options: the deny predicate. */
  meshInit: () => Pick<MeshPeerInit, 'denyPeer'>
  /** Registers POST /_test/partition on `app` (before it listens) when the control is on. */
  register: (app: FastifyInstance, mesh: () => MeshPeer | undefined, bootstrap: readonly string[]) => void
}

/** Creates the hooks of `init`, and logs a warning when one is on. */
export function createTestHooks (init: AnalyticsTestHooksInit, log: TestHooksLogger): AnalyticsTestHooks {
  const control = init.control === true
  const denied = new Set<string>()
  if (control) log.warn({ control }, `analytics: TEST-ONLY HOOKS ARE ON (${CONTROL_ENV}=1): never run a production analytics peer like this`)
  return {
    meshInit: () => control ? { denyPeer: peer => denied.has(peer) } : {},
    register: (app, meshOf, bootstrap) => {
      if (!control) return
      app.post<{ Body: { deny: string[] } }>(PARTITION_PATH, {
        schema: {
          body: {
            type: 'object',
            required: ['deny'],
            additionalProperties: false,
            properties: { deny: { type: 'array', maxItems: MAX_DENIED, items: { type: 'string', minLength: 1, maxLength: 256 } } }
          }
        }
      }, async req => {
        const mesh = meshOf()
        if (mesh === undefined) throw new InvalidOptionsError('the mesh is not started', {})
        denied.clear()
        for (const p of req.body.deny) denied.add(p)
        // The gater refuses new connections; those already open are closed here.
        const open = mesh.node.getConnections().filter(c => denied.has(c.remotePeer.toString()))
        await Promise.all(open.map(async c => {
          await c.close({ signal: AbortSignal.timeout(2000) }).catch((err: unknown) => { c.abort(err as Error) })
        }))
        // Healing: dial the bootstrap peers that are allowed again and not connected, now.
        const connected = new Set(mesh.connectedPeers())
        const redial = bootstrap.filter(a => {
          const peer = /\/p2p\/([^/]+)$/.exec(a)?.[1]
          return peer !== undefined && !denied.has(peer) && !connected.has(peer)
        })
        for (const a of redial) {
          mesh.node.dial(multiaddr(a), { signal: AbortSignal.timeout(10_000) }).catch(() => {})
        }
        log.warn({ deny: [...denied], closed: open.length, redialed: redial.length }, 'analytics: TEST-ONLY partition control applied')
        return { deny: [...denied], closed: open.length, redialed: redial.length }
      })
    }
  }
}
