/**
 * Region announcements: the codec, and discovery: a read-only peer that follows announced
 * regions comes to hold every region the writable peers announce, without being told, and
 * replicates them; it never announces itself.
 */
import test from 'ava'
import type { RegionState } from '@edge-mesh/region-state'
import { MAX_ANNOUNCED_REGIONS, decodeAnnounce, encodeAnnounce } from '../src/announce.ts'
import { connected, startPeer, waitFor } from './helpers.ts'

test('announcements round-trip; bad versions, types, names, duplicates, counts and trailing bytes are refused with EM_ERR_INVALID_UPDATE', t => {
  for (const regions of [[], ['eu-west'], ['a', 'b.c', 'plant_1']]) t.deepEqual(decodeAnnounce(encodeAnnounce(regions)), regions)
  const good = encodeAnnounce(['a', 'b'])
  const bad: Uint8Array[] = [
    new Uint8Array(0),
    Uint8Array.of(2, ...good.slice(1)),
    Uint8Array.of(good[0], 1, ...good.slice(2)),
    good.slice(0, good.length - 1),
    Uint8Array.of(...good, 0),
    encodeAnnounce(['a', 'a']),
    encodeAnnounce(['bad name']),
    encodeAnnounce(['-x']),
    Uint8Array.of(1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f),
    encodeAnnounce(Array.from({ length: MAX_ANNOUNCED_REGIONS + 1 }, (_, i) => `r${i}`))
  ]
  for (const b of bad) t.throws(() => decodeAnnounce(b), { code: 'EM_ERR_INVALID_UPDATE' }, `refused: ${Buffer.from(b.slice(0, 16)).toString('hex')}`)
})

test('a read-only peer that follows announcements holds every announced region, gets its state by sync and gossip, and does not announce', async t => {
  const w1 = await startPeer(t, { regions: ['r1', 'r2'], announceIntervalMs: 200 })
  const w2 = await startPeer(t, { regions: ['r2', 'r3'], announceIntervalMs: 200, bootstrap: w1.addrs() })
  const before = [w1.region('r1').put('s', 1), w1.region('r2').put('s', 2), w2.region('r3').put('s', 3)]
  const seen: string[] = []
  const ro = await startPeer(t, {
    regions: [],
    readOnly: true,
    followAnnounced: true,
    bootstrap: [...w1.addrs(), ...w2.addrs()],
    onRegion: (name: string, _state: RegionState) => { seen.push(name) }
  })
  await waitFor(() => connected(ro, w1) && connected(ro, w2), 'the read-only peer connected to both writers')
  await waitFor(() => ro.regions.length === 3, 'the read-only peer follows the three announced regions', { explain: () => ro.regions })
  t.deepEqual([...ro.regions].sort(), ['r1', 'r2', 'r3'])
  t.deepEqual([...seen].sort(), ['r1', 'r2', 'r3'])
  for (const [i, r] of ['r1', 'r2', 'r3'].entries()) {
    await waitFor(() => ro.region(r).get('s')?.t === before[i].t, `${r} synced to the read-only peer`)
  }
  const later = w2.region('r3').put('later', 'x')
  await waitFor(() => ro.region('r3').get('later')?.t === later.t, 'a later write reached the read-only peer')
  t.true(ro.stats().announcementsIn > 0)
  t.is(ro.stats().announcementsOut, 0)
  t.deepEqual([...ro.announcedRegions().keys()].sort(), ['r1', 'r2', 'r3'])
  t.deepEqual([...(ro.announcedRegions().get('r2') ?? [])].sort(), [w1.peerId, w2.peerId].sort())
  // The writers never come to hold a region they did not announce.
  t.deepEqual([...w1.regions].sort(), ['r1', 'r2'])
  t.throws(() => ro.region('r1').put('x', 1), { code: 'EM_ERR_READ_ONLY' })
  await t.throwsAsync(ro.follow('bad name'), { code: 'EM_ERR_INVALID_OPTIONS' })
})
