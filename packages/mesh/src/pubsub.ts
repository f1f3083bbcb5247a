/**
 * The one place that builds the pubsub service. edge-mesh uses `@libp2p/gossipsub` 17, the libp2p
 * team's libp2p-3 build of ChainSafe's gossipsub (`@chainsafe/libp2p-gossipsub` 14 targets libp2p 2
 * and under libp2p 3 silently sees no subscribers). To swap back when ChainSafe ships for libp2p 3,
 * change this file only: the rest of the mesh uses the `GossipSub` interface.
 */
import { gossipsub, StrictSign, type GossipSub, type GossipsubOpts } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'

export type { GossipSub }
export { TopicValidatorResult, type Message } from '@libp2p/gossipsub'

/** Bytes allowed above the frame limit for gossipsub's message envelope. */
export const FRAME_ENVELOPE_HEADROOM = 16 * 1024

/**
 * The gossip mesh's degree: each peer forwards a frame to about `D` others (between `Dlo` and `Dhi`)
 * and offers its ids to `Dlazy` more. gossipsub's defaults (6, 4, 12, 6) are made for large public
 * networks with adversarial peers. A gateway mesh is tens of known peers, and anti-entropy sync, not
 * gossip redundancy, makes delivery certain: every duplicate is bytes on a WAN link and a decryption,
 * a parse and a write at both ends. In bench:mesh's 10-peer topology, 4 instead of 6 cut the gossip
 * messages per frame by 12-17 % (`msgsIn`), and the raw gossipsub baseline's CPU at 10k readings/s
 * from 1.25-1.31 to 1.07 cores (bench/README.md, "The gossip degree").
 */
export const GOSSIP_DEGREE = { D: 4, Dlo: 3, Dhi: 8, Dlazy: 4 } as const

/** Smallest gossip message for which IDONTWANT is sent (see createPubsub). */
export const IDONTWANT_MIN_BYTES = 64 * 1024

export interface PubsubInit {
  /** Largest gossip frame accepted, bytes. */
  maxFrameBytes: number
  /** Topics scored, so that invalid frames lower the sender's score. */
  topics: string[]
}

/**
 * A cheap message id computed before the signature is checked, so that duplicates are dropped
 * without an Ed25519 verification: FNV-1a over the sender and sequence number, which a signed
 * message carries and which together are unique per message.
 */
function fastMsgId (msg: { from?: Uint8Array, seqno?: Uint8Array, data?: Uint8Array }): string {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  const mix = (b: Uint8Array | undefined): void => {
    if (b === undefined) return
    for (let i = 0; i < b.length; i++) {
      h1 = Math.imul(h1 ^ b[i], 16777619)
      h2 = Math.imul(h2 ^ b[i], 2246822519)
    }
  }
  mix(msg.from)
  mix(msg.seqno)
  if (msg.from === undefined) mix(msg.data)
  return (h1 >>> 0).toString(36) + ':' + (h2 >>> 0).toString(36)
}

/** Score parameters of a region topic: invalid frames weigh heavily and decay slowly. */
export function regionTopicScore (): ReturnType<typeof createTopicScoreParams> {
  return createTopicScoreParams({
    topicWeight: 1,
    timeInMeshWeight: 0.01,
    timeInMeshQuantum: 1000,
    timeInMeshCap: 100,
    firstMessageDeliveriesWeight: 0,
    meshMessageDeliveriesWeight: 0,
    meshFailurePenaltyWeight: 0,
    invalidMessageDeliveriesWeight: -100,
    invalidMessageDeliveriesDecay: 0.9
  })
}

export function createPubsub (init: PubsubInit): ReturnType<typeof gossipsub> {
  const topics: Record<string, ReturnType<typeof createTopicScoreParams>> = {}
  for (const t of init.topics) topics[t] = regionTopicScore()
  const opts: Partial<GossipsubOpts> = {
    globalSignaturePolicy: StrictSign,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    emitSelf: false,
    fastMsgIdFn: fastMsgId,
    // The limit applies to the whole gossipsub message: leave room for its envelope (sender,
    // sequence number, topic, key, signature), so that frames up to maxFrameBytes pass and
    // larger ones reach the validator, which refuses and counts them.
    maxInboundDataLength: init.maxFrameBytes + FRAME_ENVELOPE_HEADROOM,
    // Low-latency settings for a small mesh on a LAN/WAN of gateways.
    heartbeatInterval: 700,
    ...GOSSIP_DEGREE,
    // IDONTWANT (gossipsub 1.2) only for frames of 64 KiB and more (gossipsub's default: 512 bytes).
    // A peer sends one to each mesh neighbour for every new message, so it is as many extra
    // messages as duplicates it could prevent, and it prevents them only if it arrives before the
    // neighbour has forwarded the frame: for frames of a few kB, it did not (gossip messages per
    // frame unchanged), while it made a third of the socket writes (bench/README.md, "The
    // transport's own cost, cut"). Large frames (heal bursts, big batches) still use it.
    idontwantMinDataSize: IDONTWANT_MIN_BYTES,
    // Message ids remembered against duplicates, ms (gossipsub's default is 120 s). A frame seen
    // again after this is applied again, which changes nothing: 30 s covers gossip's own
    // re-delivery (a few heartbeats) and keeps the cache a quarter of the size.
    seenTTL: 30_000,
    scoreParams: { topics },
    scoreThresholds: { gossipThreshold: -50, publishThreshold: -100, graylistThreshold: -200 }
  }
  return gossipsub(opts)
}

/**
 * Gives a topic subscribed after start the same score parameters as the region topics given at
 * start (invalid messages weigh -100). The implementation keeps its parameters in `score.params`.
 */
export function scoreTopic (pubsub: GossipSub, topic: string): void {
  const params = (pubsub as unknown as { score?: { params?: { topics?: Record<string, unknown> } } }).score?.params?.topics
  if (params !== undefined) params[topic] ??= regionTopicScore()
}
