/**
 * @packageDocumentation
 *
 * The edge-mesh peer: libp2p 3 (TCP, Noise, Yamux, identify, ping, optional private-network key)
 * with gossipsub, and replication of region state. Each region has a gossip topic
 * (`/edge-mesh/1/region/<name>`) carrying versioned frames of batched Yjs updates, and every pair
 * of peers can run `/edge-mesh/sync/1.0.0` (y-protocols sync step 1/2) to exchange what the other
 * lacks: on a new connection, when an applied update leaves a gap, and periodically with a random
 * peer. Invalid frames and sync messages are refused with a typed, counted, logged error, lower
 * the sender's gossipsub score, and after `maxInvalidFromPeer` get it disconnected and refused.
 *
 * @example
 * ```ts
 * import { createMeshPeer } from '@edge-mesh/mesh'
 *
 * const a = await createMeshPeer({ regions: ['eu-west'], dataDir: './data/a' })
 * const b = await createMeshPeer({ regions: ['eu-west'], dataDir: './data/b', bootstrap: a.addrs() })
 * a.region('eu-west').put('line-3/temp', 21.5)
 * b.region('eu-west').on('change', c => console.log(c.sensor, c.new?.value))
 * ```
 */
export {
  createMeshPeer, MeshPeer, regionTopic, type MeshPeerInit, type MeshStats, type SyncReport, type MeshLogger
} from './mesh-peer.ts'
export { encodeFrame, decodeFrame, FRAME_VERSION, type UpdatesFrame } from './frame.ts'
export { encodeSyncMessage, decodeSyncMessage, SYNC_PROTOCOL, SYNC_VERSION, type SyncMessage } from './sync-message.ts'
export { loadOrCreatePeerKey, peerIdOfDataDir, PEER_KEY_FILE } from './identity.ts'
export { encodeAnnounce, decodeAnnounce, ANNOUNCE_TOPIC, MAX_ANNOUNCED_REGIONS } from './announce.ts'
export { type RedialInit } from './redial.ts'
