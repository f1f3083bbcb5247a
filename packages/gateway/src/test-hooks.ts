/**
 * TEST-ONLY fault hooks of the gateway, for the chaos harness (`test/chaos/`). Each is off unless
 * its environment variable is set; `edge-mesh gateway` reads them at start (`testHooksFromEnv`) and
 * the gateway logs a warning naming every hook that is on. Never set them in production.
 *
 *   EDGE_MESH_TEST_CLOCK_OFFSET_MS=<int>   the mesh clock (the HLC's physical time) reads
 *                                          Date.now() + offset: a skewed site clock
 *   EDGE_MESH_TEST_CONTROL=1               POST /_test/partition with {"deny": ["<peer id>", ...]}:
 *                                          the mesh refuses connections to and from those peers
 *                                          and closes the open ones; {"deny": []} heals (the
 *                                          redialer reconnects the bootstrap peers). Without the
 *                                          variable the route does not exist (404).
 *
 * The partition reply is `{ deny: [ids], closed: <connections closed> }`. The control is
 * @edge-mesh/service's (`createPartitionControl`), the analytics peer's too.
 */
import type { FastifyInstance } from 'fastify'
import { InvalidOptionsError } from '@edge-mesh/errors'
import type { HlcInit } from '@edge-mesh/hlc'
import type { MeshPeer, MeshPeerInit } from '@edge-mesh/mesh'
import { CONTROL_ENV, controlFromEnv, createPartitionControl } from '@edge-mesh/service'

export { CONTROL_ENV, PARTITION_PATH } from '@edge-mesh/service'
export const CLOCK_OFFSET_ENV = 'EDGE_MESH_TEST_CLOCK_OFFSET_MS'

/** Test-only hooks a gateway is started with. */
export interface TestHooksInit {
  /** Added to the mesh clock's physical time, ms. @default 0 (no offset) */
  clockOffsetMs?: number
  /** Serve POST /_test/partition. @default false */
  control?: boolean
}

/**
 * The hooks set in `env`, or undefined when none is. Throws InvalidOptionsError (naming the
 * variable) for a value that is not an integer offset, or a control value other than 1 or 0.
 */
export function testHooksFromEnv (env: Readonly<Record<string, string | undefined>> = process.env): TestHooksInit | undefined {
  const hooks: TestHooksInit = {}
  const offset = env[CLOCK_OFFSET_ENV]
  if (offset !== undefined && offset !== '') {
    if (!/^[+-]?\d{1,12}$/.test(offset.trim())) {
      throw new InvalidOptionsError(`${CLOCK_OFFSET_ENV} must be an integer number of milliseconds, not ${JSON.stringify(offset)}`, { env: CLOCK_OFFSET_ENV, value: offset })
    }
    hooks.clockOffsetMs = Number(offset.trim())
  }
  if (controlFromEnv(env)) hooks.control = true
  return hooks.clockOffsetMs !== undefined || hooks.control === true ? hooks : undefined
}

/** The part of a logger the hooks use. */
export interface TestHooksLogger {
  warn: (obj: object, msg: string) => void
}

/** The hooks as the gateway wires them. */
export interface TestHooks {
  /** Mesh options replacing the caller's: the offset clock (over `base`'s) and the deny predicate. */
  meshInit: (base: Omit<HlcInit, 'last'> | undefined) => Pick<MeshPeerInit, 'clock' | 'denyPeer'>
  /** Registers POST /_test/partition on `app` (before it listens) when the control is on. */
  register: (app: FastifyInstance, mesh: MeshPeer) => void
}

/** Creates the hooks of `init`, and logs a warning naming those that are on. */
export function createTestHooks (init: TestHooksInit, log: TestHooksLogger): TestHooks {
  const offset = init.clockOffsetMs ?? 0
  if (!Number.isSafeInteger(offset)) throw new InvalidOptionsError('clockOffsetMs must be an integer', { clockOffsetMs: offset })
  const control = init.control === true ? createPartitionControl({ log, component: 'gateway' }) : undefined
  if (offset !== 0 || control !== undefined) {
    log.warn({ clockOffsetMs: offset, control: control !== undefined }, `gateway: TEST-ONLY HOOKS ARE ON (${CLOCK_OFFSET_ENV}=${offset}, ${CONTROL_ENV}=${control !== undefined ? 1 : 0}): never run a production gateway like this`)
  }
  return {
    meshInit: base => {
      const out: Pick<MeshPeerInit, 'clock' | 'denyPeer'> = {}
      if (offset !== 0) {
        const physical = base?.now ?? Date.now
        out.clock = { ...base, now: () => physical() + offset }
      } else if (base !== undefined) {
        out.clock = base
      }
      if (control !== undefined) out.denyPeer = control.denyPeer
      return out
    },
    register: (app, mesh) => { control?.register(app, () => mesh) }
  }
}
