/**
 * Writer authorization over the mesh: peers given the writers of a region refuse gossip frames
 * published by any other peer, and sync messages carrying its readings, count them and hold them
 * against the sender; the peer's writes never show in their views.
 */
import test from 'ava'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreatePeerKey } from '../src/identity.ts'
import type { MeshPeer } from '../src/index.ts'
import { REGION, allShow, connected, expectedView, startPeer, tempDir, waitFor } from './helpers.ts'

async function identity (t: import('ava').ExecutionContext): Promise<{ dataDir: string, peerId: string }> {
  const dataDir = await tempDir(t)
  return { dataDir, peerId: peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString() }
}

test('an intruder that is not among the writers: its frames and sync messages are refused, counted and never applied; the writers replicate', async t => {
  const [a, b, x] = await Promise.all([identity(t), identity(t), identity(t)])
  const writers = { [REGION]: [a.peerId, b.peerId] }
  const pa = await startPeer(t, { dataDir: a.dataDir, writers, syncIntervalMs: 300, maxInvalidFromPeer: 1000 })
  const pb = await startPeer(t, { dataDir: b.dataDir, writers, syncIntervalMs: 300, maxInvalidFromPeer: 1000, bootstrap: pa.addrs() })
  // The intruder holds the region without a writers list, so it writes (and accepts everything).
  const px = await startPeer(t, { dataDir: x.dataDir, syncIntervalMs: 300, bootstrap: [...pa.addrs(), ...pb.addrs()] })
  t.is(px.peerId, x.peerId)
  await waitFor(() => connected(pa, pb) && connected(px, pa) && connected(px, pb), 'all three connected')

  const good = [pa.region(REGION).put('line-1/temp', 20), pb.region(REGION).put('line-2/temp', 21)]
  const forged = [px.region(REGION).put('line-1/temp', 99), px.region(REGION).put('intruder/s', 1)]
  const refused = (p: MeshPeer): number => p.stats().unauthorizedFrames + p.stats().invalidSyncMessages
  // Keep writing until both writers have refused the intruder by gossip and by sync.
  await waitFor(() => {
    if (pa.stats().unauthorizedFrames === 0 || pb.stats().unauthorizedFrames === 0) forged.push(px.region(REGION).put('intruder/s', forged.length))
    return pa.stats().unauthorizedFrames > 0 && pb.stats().unauthorizedFrames > 0 && pa.stats().invalidSyncMessages > 0 && pb.stats().invalidSyncMessages > 0
  }, 'both writers refused frames and sync messages of the intruder', { everyMs: 200, explain: () => [pa.stats(), pb.stats()] })
  await waitFor(() => allShow([pa, pb], expectedView(good)), 'the writers show only their own readings')
  for (const p of [pa, pb]) {
    t.is(p.region(REGION).get('intruder/s'), undefined)
    t.is(p.region(REGION).get('line-1/temp')?.writer, pa.peerId)
    t.true(refused(p) >= 2)
  }
  // The intruder itself accepts the writers' readings (it has no list), but its own win there.
  await waitFor(() => px.region(REGION).get('line-2/temp')?.writer === pb.peerId, 'the intruder got the writers\' readings')
})

test('a peer whose own id is not among its region\'s writers does not start', async t => {
  const a = await identity(t)
  await t.throwsAsync(startPeer(t, { dataDir: a.dataDir, writers: { [REGION]: ['12D3KooWSomeoneElse'] } }), { code: 'EM_ERR_INVALID_OPTIONS' })
})
