/**
 * Shared helpers of the mesh tests: in-process peers stopped at teardown, temp dirs, a bounded
 * poll, and views of a region as far as the public API shows them.
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import type { ExecutionContext } from 'ava'
import type { Reading } from '@edge-mesh/region-state'
import { createMeshPeer, regionTopic, type MeshPeer, type MeshPeerInit } from '../src/index.ts'

export const REGION = 'eu-west'
export const TOPIC = regionTopic(REGION)
export const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
/** Bound of every wait on a condition. */
export const WAIT_MS = 20_000

/** A fresh temp dir, removed when the test ends (teardowns run last-registered first, so peers stop before). */
export async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'em-mesh-'))
  t.teardown(async () => { await fs.rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Starts a peer on loopback holding REGION (unless told otherwise), stopped when the test ends. */
export async function startPeer (t: ExecutionContext, init: Partial<MeshPeerInit> = {}): Promise<MeshPeer> {
  const peer = await createMeshPeer({ regions: [REGION], listen: LOOPBACK, ...init })
  t.teardown(async () => { await peer.stop() })
  return peer
}

/**
 * Polls `cond` every `everyMs` until it holds; fails with `what` (and the last `explain()`) after
 * `withinMs`. A bound on a wait, never a timing assertion.
 */
export async function waitFor (cond: () => boolean, what: string, opts: { withinMs?: number, everyMs?: number, explain?: () => unknown } = {}): Promise<void> {
  const withinMs = opts.withinMs ?? WAIT_MS
  const end = Date.now() + withinMs
  for (;;) {
    if (cond()) return
    if (Date.now() > end) {
      const detail = opts.explain !== undefined ? `; last state: ${JSON.stringify(opts.explain())}` : ''
      throw new Error(`timed out after ${withinMs} ms waiting for: ${what}${detail}`)
    }
    await delay(opts.everyMs ?? 50)
  }
}

/** What a replica shows of a region: the live sensor list and the winner of each listed sensor. */
export interface View {
  list: string[]
  winners: Record<string, { t: string, writer: string, value: unknown, deleted: boolean }>
}

export function viewOf (peer: MeshPeer, region: string = REGION): View {
  const r = peer.region(region)
  const list = r.list()
  const winners: View['winners'] = {}
  for (const s of list) {
    const w = r.winner(s) as Reading
    winners[s] = { t: w.t, writer: w.writer, value: w.value, deleted: w.deleted }
  }
  return { list, winners }
}

/** (t, writer) order of the region state. */
export const greater = (a: Reading, b: Reading): boolean => a.t > b.t || (a.t === b.t && a.writer > b.writer)

/** The view every replica must reach after the given writes (no deletes): the greatest (t, writer) per sensor. */
export function expectedView (writes: Iterable<Reading>): View {
  const best = new Map<string, Reading>()
  for (const w of writes) {
    const cur = best.get(w.sensor)
    if (cur === undefined || greater(w, cur)) best.set(w.sensor, w)
  }
  const list = [...best.keys()].sort()
  const winners: View['winners'] = {}
  for (const s of list) {
    const w = best.get(s) as Reading
    winners[s] = { t: w.t, writer: w.writer, value: w.value, deleted: w.deleted }
  }
  return { list, winners }
}

export const sameView = (a: View, b: View): boolean => JSON.stringify(a) === JSON.stringify(b)

/** True when every peer's view of the region equals `expected`. */
export function allShow (peers: MeshPeer[], expected: View): boolean {
  return peers.every(p => sameView(viewOf(p), expected))
}

/** Whether `peer` has a live connection to `other`. */
export const connected = (peer: MeshPeer, other: MeshPeer): boolean => peer.connectedPeers().includes(other.peerId)

/** Whether `peer`'s gossipsub knows that every one of `others` is subscribed to the region topic. */
export function seesSubscribers (peer: MeshPeer, others: MeshPeer[], topic: string = TOPIC): boolean {
  const subs = new Set(peer.node.services.pubsub.getSubscribers(topic).map(p => p.toString()))
  return others.every(o => subs.has(o.peerId))
}
