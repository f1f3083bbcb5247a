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
 * The control is the gateway's (`createPartitionControl` of @edge-mesh/service), so a test
 * partitions either kind of peer the same way.
 */
import type { FastifyInstance } from 'fastify'
import type { MeshPeer, MeshPeerInit } from '@edge-mesh/mesh'
import { CONTROL_ENV, controlFromEnv, createPartitionControl, type PartitionControlLogger } from '@edge-mesh/service'

export { CONTROL_ENV, PARTITION_PATH } from '@edge-mesh/service'

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
  return controlFromEnv(env) ? { control: true } : undefined
}

export type TestHooksLogger = PartitionControlLogger

/** The hooks as the peer wires them. */
export interface AnalyticsTestHooks {
  /** Mesh options: the deny predicate. */
  meshInit: () => Pick<MeshPeerInit, 'denyPeer'>
  /** Registers POST /_test/partition on `app` (before it listens) when the control is on. */
  register: (app: FastifyInstance, mesh: () => MeshPeer | undefined, bootstrap: readonly string[]) => void
}

/** Creates the hooks of `init`, and logs a warning when one is on. */
export function createTestHooks (init: AnalyticsTestHooksInit, log: TestHooksLogger): AnalyticsTestHooks {
  const control = init.control === true ? createPartitionControl({ log, component: 'analytics' }) : undefined
  if (control !== undefined) log.warn({ control: true }, `analytics: TEST-ONLY HOOKS ARE ON (${CONTROL_ENV}=1): never run a production analytics peer like this`)
  return {
    meshInit: () => control !== undefined ? { denyPeer: control.denyPeer } : {},
    register: (app, meshOf, bootstrap) => { control?.register(app, meshOf, { redial: bootstrap }) }
  }
}
