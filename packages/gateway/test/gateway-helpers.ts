/**
 * Shared helpers of the gateway tests: temp dirs and mesh peers removed at teardown, a bounded
 * poll, and a stand-in mesh whose durability the test controls.
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { ExecutionContext } from 'ava'
import { createMeshPeer, type MeshPeer, type MeshPeerInit } from '@edge-mesh/mesh'
import { createRegionState, type RegionState } from '@edge-mesh/region-state'
import { waitFor as sharedWaitFor, type WaitForInit } from '@edge-mesh/testkit'
import { pino } from 'pino'
import type { IngestMesh } from '../src/ingest.ts'
import { createGateway, type Gateway, type GatewayInit } from '../src/index.ts'

export const REGION = 'site-a'
export const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
/** Bound of every wait on a condition. */
export const WAIT_MS = 20_000

/** A fresh temp dir, removed when the test ends (teardowns run last-registered first). */
export async function tempDir (t: ExecutionContext, prefix: string = 'em-gateway-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix))
  t.teardown(async () => { await fs.rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A mesh peer on loopback holding REGION (unless told otherwise), stopped when the test ends. */
export async function startMesh (t: ExecutionContext, init: Partial<MeshPeerInit> = {}): Promise<MeshPeer> {
  const peer = await createMeshPeer({ regions: [REGION], listen: LOOPBACK, syncIntervalMs: 0, ...init })
  t.teardown(async () => { await peer.stop() })
  return peer
}

/** The shared bounded poll (`@edge-mesh/testkit`), with this suite's longer default bound. */
export async function waitFor (cond: () => boolean | Promise<boolean>, what: string, opts: WaitForInit = {}): Promise<void> {
  await sharedWaitFor(cond, what, { withinMs: WAIT_MS, ...opts })
}

/**
 * A mesh stand-in over in-memory region states whose durability the test releases by hand:
 * `whenDurable` waits until `release()` (or fails with `fail(err)`).
 */
export interface GatedMesh extends IngestMesh {
  states: Map<string, RegionState>
  /** whenDurable calls waiting. */
  waiting: () => number
  release: () => void
  fail: (err: Error) => void
  /** What node.status reports. */
  status: string
}

export function gatedMesh (t: ExecutionContext, regions: string[] = [REGION]): GatedMesh {
  const states = new Map<string, RegionState>()
  for (const r of regions) {
    const s = createRegionState({ region: r, writer: 'gw-test', maintenanceIntervalMs: 0 })
    t.teardown(() => { s.close() })
    states.set(r, s)
  }
  let waiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  const mesh: GatedMesh = {
    states,
    status: 'started',
    get node () { return { status: mesh.status } },
    store: undefined,
    region: (name: string) => {
      const s = states.get(name)
      if (s === undefined) throw new Error(`no region ${name}`)
      return s
    },
    whenDurable: async () => await new Promise<void>((resolve, reject) => { waiters.push({ resolve, reject }) }),
    waiting: () => waiters.length,
    release: () => {
      const w = waiters
      waiters = []
      for (const x of w) x.resolve()
    },
    fail: (err: Error) => {
      const w = waiters
      waiters = []
      for (const x of w) x.reject(err)
    }
  }
  t.teardown(() => { mesh.release() })
  return mesh
}

const silentLogger = pino({ level: 'silent' })

/**
 * A whole gateway in the test process (`createGateway`): HTTP on a free loopback port, logs off
 * unless `init` gives a logger, closed when the test ends.
 */
export async function startGatewayInProcess (t: ExecutionContext, init: GatewayInit): Promise<Gateway> {
  const gw = await createGateway({ http: { host: '127.0.0.1', port: 0 }, logger: silentLogger, ...init })
  t.teardown(async () => { await gw.close() })
  return gw
}

/** POSTs `body` as JSON to `url`. */
export async function postJson (url: string, body: unknown): Promise<Response> {
  return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}
