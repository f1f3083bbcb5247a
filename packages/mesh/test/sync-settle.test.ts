/**
 * A peer sends its state vector in a sync round only once its other rounds under way have brought
 * what they bring (at most `syncSettleMs`): a peer catching up from two neighbours at once is sent
 * the missing diff once, not once per neighbour.
 */
import test, { type ExecutionContext } from 'ava'
import type { MeshPeer } from '../src/index.ts'
import { REGION, allShow, connected, startPeer, viewOf, waitFor } from './helpers.ts'

const SENSORS = 3000
const WRITES = 30_000
/** Far above the rounds' length here, so that the wait ends when they do, however loaded the machine. */
const SETTLE_MS = 10_000

/** Two peers holding the same 30k writes, and a third, empty one that connects to both at once. */
async function catchUp (t: ExecutionContext): Promise<{ late: MeshPeer, diffBytes: number }> {
  const quiet = { syncIntervalMs: 0, syncSettleMs: SETTLE_MS }
  const x = await startPeer(t, quiet)
  const z = await startPeer(t, { ...quiet, bootstrap: [x.addrs()[0]] })
  await waitFor(() => connected(z, x), 'the two full peers connected')
  const region = x.region(REGION)
  for (let i = 0; i < WRITES; i += 1000) {
    region.putMany(Array.from({ length: 1000 }, (_, k) => ({ sensor: `line-1/s-${(i + k) % SENSORS}`, value: i + k })))
  }
  await z.syncWith(x.peerId)
  await waitFor(() => allShow([z], viewOf(x)), 'the second full peer holds the writes')
  // What an empty peer lacks: the whole doc, as one diff.
  const diffBytes = region.encodeStateAsUpdate().length
  const late = await startPeer(t, { ...quiet, bootstrap: [x.addrs()[0], z.addrs()[0]] })
  await waitFor(() => allShow([late], viewOf(x)), 'the late peer caught up', { explain: () => late.stats() })
  return { late, diffBytes }
}

test('a peer catching up from two neighbours at once is sent the missing diff once', async t => {
  const { late, diffBytes } = await catchUp(t)
  const received = late.stats().syncBytesIn
  t.true(received >= diffBytes, `it received the diff (${received} bytes, the diff ${diffBytes})`)
  t.true(received < 1.2 * diffBytes, `once: ${received} bytes received by sync for a ${diffBytes}-byte diff`)
})
