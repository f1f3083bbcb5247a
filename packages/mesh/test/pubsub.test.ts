/**
 * The pubsub service as a mesh peer builds it (src/pubsub.ts): the settings gossipsub runs with are
 * the mesh's, not gossipsub's defaults.
 */
import test from 'ava'
import { GOSSIP_DEGREE, IDONTWANT_MIN_BYTES } from '../src/pubsub.ts'
import { startPeer } from './helpers.ts'

test('a mesh peer\'s gossipsub runs with the mesh\'s degree, duplicate window, IDONTWANT threshold and signing policy', async t => {
  const peer = await startPeer(t)
  const opts = (peer.node.services.pubsub as unknown as { opts: Record<string, unknown> }).opts
  t.is(opts.D, GOSSIP_DEGREE.D)
  t.is(opts.Dlo, GOSSIP_DEGREE.Dlo)
  t.is(opts.Dhi, GOSSIP_DEGREE.Dhi)
  t.is(opts.Dlazy, GOSSIP_DEGREE.Dlazy)
  t.true(GOSSIP_DEGREE.Dlo <= GOSSIP_DEGREE.D && GOSSIP_DEGREE.D <= GOSSIP_DEGREE.Dhi, 'gossipsub requires Dlo <= D <= Dhi')
  t.is(opts.seenTTL, 30_000)
  t.is(opts.idontwantMinDataSize, IDONTWANT_MIN_BYTES)
  t.is(opts.globalSignaturePolicy, 'StrictSign')
})
