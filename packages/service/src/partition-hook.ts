/**
 * TEST-ONLY partition control of a mesh service, for the chaos suite, end-to-end tests and the
 * demo's `--partition`. Off unless `EDGE_MESH_TEST_CONTROL=1`; never set it in production.
 *
 *   POST /_test/partition  {"deny": ["<peer id>", …]}   (at most 1000 ids, each 1-256 characters)
 *
 * sets the deny list: the mesh refuses connections to and from those peers (its `denyPeer`
 * predicate) and the open ones are closed. `{"deny": []}` heals. The reply is
 * `{ deny: [ids], closed: <connections closed> }`; a service that names its bootstrap addresses
 * (`redial`) also dials at once those whose peer is allowed again and not connected (instead of
 * waiting out the redial backoff that grew during the partition), and adds `redialed: <dialled>`.
 * A request before the mesh exists is refused (400 `EM_ERR_INVALID_OPTIONS`).
 */
import type { FastifyInstance } from 'fastify'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidOptionsError } from '@edge-mesh/errors'
import type { MeshPeer } from '@edge-mesh/mesh'

/** The environment variable that turns the control on (`1`) or leaves it off (`0` or unset). */
export const CONTROL_ENV = 'EDGE_MESH_TEST_CONTROL'
/** The route of the partition control. */
export const PARTITION_PATH = '/_test/partition'
/** Most peer ids one partition request may deny. */
export const MAX_DENIED = 1000

/**
 * Whether `env` turns the control on: `1` on; unset, empty or `0` off. Throws InvalidOptionsError
 * naming the variable (`details.env`) for any other value.
 */
export function controlFromEnv (env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  const control = env[CONTROL_ENV]
  if (control === undefined || control === '' || control === '0') return false
  if (control !== '1') {
    throw new InvalidOptionsError(`${CONTROL_ENV} must be 1 (on) or 0 (off), not ${JSON.stringify(control)}`, { env: CONTROL_ENV, value: control })
  }
  return true
}

/** The part of a logger the control uses. */
export interface PartitionControlLogger {
  warn: (obj: object, msg: string) => void
}

export interface PartitionControlInit {
  log: PartitionControlLogger
  /** Names the service in the warning logged for every request applied (`gateway`, `analytics`). */
  component: string
}

export interface PartitionRouteInit {
  /**
   * Bootstrap multiaddrs (ending in `/p2p/<peer id>`) to dial at once when a request allows their
   * peer again and it is not connected; the reply then carries `redialed`. @default none: the
   * mesh's redialer reconnects them in its own time
   */
  redial?: readonly string[]
}

/** The reply of POST /_test/partition. */
export interface PartitionReply {
  deny: string[]
  closed: number
  redialed?: number
}

/** The deny list and its route. */
export interface PartitionControl {
  /** For `MeshPeerInit.denyPeer`: true for a peer on the deny list. */
  denyPeer: (peer: string) => boolean
  /** Registers POST /_test/partition on `app` (before it listens); `mesh` is read at each request. */
  register: (app: FastifyInstance, mesh: () => MeshPeer | undefined, init?: PartitionRouteInit) => void
}

/** A partition control with an empty deny list. */
export function createPartitionControl (init: PartitionControlInit): PartitionControl {
  const { log, component } = init
  const denied = new Set<string>()
  return {
    denyPeer: peer => denied.has(peer),
    register: (app, meshOf, route = {}) => {
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
        const reply: PartitionReply = { deny: [...denied], closed: open.length }
        if (route.redial !== undefined) reply.redialed = redialAllowed(mesh, route.redial, denied)
        log.warn(reply, `${component}: TEST-ONLY partition control applied`)
        return reply
      })
    }
  }
}

/** Dials the bootstrap peers that are allowed and not connected, now; returns how many. */
function redialAllowed (mesh: MeshPeer, bootstrap: readonly string[], denied: ReadonlySet<string>): number {
  const connected = new Set(mesh.connectedPeers())
  const redial = bootstrap.filter(a => {
    const peer = /\/p2p\/([^/]+)$/.exec(a)?.[1]
    return peer !== undefined && !denied.has(peer) && !connected.has(peer)
  })
  for (const a of redial) {
    mesh.node.dial(multiaddr(a), { signal: AbortSignal.timeout(10_000) }).catch(() => {})
  }
  return redial.length
}
