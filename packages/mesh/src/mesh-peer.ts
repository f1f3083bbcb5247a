import { join } from 'node:path'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { PeerId, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { EdgeMeshError, InvalidOptionsError } from '@edge-mesh/errors'
import { createHlc, type Hlc, type HlcInit } from '@edge-mesh/hlc'
import { createRegionState, isValidRegionName, type RegionState, type RegionStateInit } from '@edge-mesh/region-state'
import { openPersistence, type BoundRegion, type Persistence, type PersistenceInit } from '@edge-mesh/persistence'
import { meshNoiseCrypto } from './noise-crypto.ts'
import { joiningWrites } from './coalesce.ts'
import { quietLengthReads } from './noise-lengths.ts'
import { installSignKeyCache } from './ed25519-sign.ts'
import { installVerifyKeyCache } from './ed25519-verify.ts'
import { installWindowUpdateHysteresis } from './yamux-window.ts'
import { createPubsub, scoreTopic, TopicValidatorResult, type GossipSub, type Message } from './pubsub.ts'
import { decodeFrame, encodeFrame, frameEntryBound, frameHeaderBound } from './frame.ts'
import { SYNC_PROTOCOL, decodeSyncMessage, encodeSyncMessage, type SyncMessage } from './sync-message.ts'
import { loadOrCreatePeerKey } from './identity.ts'
import { ANNOUNCE_TOPIC, MAX_ANNOUNCED_REGIONS, decodeAnnounce, encodeAnnounce } from './announce.ts'
import { Redialer, type RedialInit } from './redial.ts'

/** The gossip topic of a region. */
export const regionTopic = (region: string): string => `/edge-mesh/1/region/${region}`

/** A structured logger (pino's shape). */
export interface MeshLogger {
  debug: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
}

const silent: MeshLogger = { debug () {}, info () {}, warn () {} }

/** Bounds of what announcements make a peer remember. */
const MAX_KNOWN_REGIONS = 1024
const MAX_ANNOUNCERS_PER_REGION = 64

export interface MeshPeerInit {
  /** Regions this peer holds and replicates. */
  regions: string[]
  /**
   * Data directory: the peer key (`peer-key`) and the LevelDB store (`db/`). Without it the peer
   * has a fresh identity and keeps its state in memory only.
   */
  dataDir?: string
  /** Never write: subscribe and sync, never publish. @default false */
  readOnly?: boolean
  /**
   * Writer authorization: for each region named, the peer ids allowed to write it. Gossip frames
   * published by any other peer, and frames or sync messages carrying readings of any other
   * writer, are refused, counted (`unauthorizedFrames`, `invalidSyncMessages`) and held against
   * the sender. A writable peer must be among its regions' writers. Regions not named accept any
   * writer that can join the mesh (the PSK is then the only gate). @default {}
   */
  writers?: Record<string, string[]>
  /** Listen multiaddrs. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** Multiaddrs (with /p2p/<peer id>) of peers to connect to and keep connected. @default [] */
  bootstrap?: string[]
  /** Private network: the swarm key (`/key/swarm/psk/1.0.0/` file bytes); peers without it cannot connect. */
  psk?: Uint8Array
  /** How long local updates are gathered into one gossip frame, ms. @default 5 */
  flushMs?: number
  /** Largest gossip frame, bytes. @default 1 MiB */
  maxFrameBytes?: number
  /** Largest sync message, bytes. @default 256 MiB */
  maxSyncMessageBytes?: number
  /** Period of anti-entropy with a random connected peer, ms (jittered ±25%); 0 disables. @default 10000 */
  syncIntervalMs?: number
  /** Time allowed for one sync round, ms. @default 15000 */
  syncTimeoutMs?: number
  /**
   * Longest a sync round, dialed or answered, waits for the peer's other rounds under way before it
   * sends the peer's state vector, ms (so that the peer is not sent again what one of those rounds
   * is bringing; see docs/PROTOCOL.md); 0 sends it at once. @default 500
   */
  syncSettleMs?: number
  /** Invalid frames or sync messages from one peer before it is disconnected and refused. @default 10 */
  maxInvalidFromPeer?: number
  /** How long a peer disconnected for invalid messages is refused, ms. @default 60000 */
  banMs?: number
  redial?: RedialInit
  /**
   * Period of region announcements on `/edge-mesh/1/announce`, ms (jittered ±25 %), published by
   * writable peers (see docs/PROTOCOL.md); 0 disables them. Read-only peers never announce.
   * @default 5000
   */
  announceIntervalMs?: number
  /**
   * Follow every region another peer announces (see `follow()`), up to `maxFollowedRegions`
   * regions in all. Meant for read-only peers such as the analytics peer. @default false
   */
  followAnnounced?: boolean
  /** Most regions this peer holds through `follow()` and announcements. @default 64 */
  maxFollowedRegions?: number
  /** Called for every region this peer comes to hold (the initial ones at start, then each one followed). */
  onRegion?: (name: string, state: RegionState) => void
  /** Options for every region state (retention, compaction, ...). */
  region?: Omit<RegionStateInit, 'region' | 'writer' | 'readOnly' | 'hlc'>
  /** Options of the LevelDB store (when `dataDir` is set). */
  persistence?: Omit<PersistenceInit, 'path' | 'clock'>
  /** The node clock (physical clock and drift bound). */
  clock?: Omit<HlcInit, 'last'>
  /**
   * Test-only fault injection: peers for which it returns true are refused like banned ones (no
   * dials to them, no connections from them). The caller closes connections already open.
   * @default none
   */
  denyPeer?: (peerId: string) => boolean
  logger?: MeshLogger
}

export interface SyncReport {
  peer: string
  regions: number
  bytesOut: number
  bytesIn: number
  ms: number
}

export interface MeshStats {
  peerId: string
  peers: number
  framesOut: number
  framesIn: number
  frameBytesOut: number
  frameBytesIn: number
  invalidFrames: number
  /** Frames refused because their publisher may not write the region (also in `invalidFrames`). */
  unauthorizedFrames: number
  syncRounds: number
  syncFailures: number
  syncBytesOut: number
  syncBytesIn: number
  invalidSyncMessages: number
  oversizedUpdates: number
  /** Sync rounds started with other peers after a sync taught this peer something. */
  cascadeSyncs: number
  /** Region announcements published and accepted. */
  announcementsOut: number
  announcementsIn: number
  bannedPeers: number
  lastSyncAt: number | undefined
}

interface Replica {
  name: string
  topic: string
  state: RegionState
  bound: BoundRegion | undefined
  outbox: Uint8Array[]
  /** Upper bound of the encoded frame the outbox would make, header included. */
  outboxBytes: number
  /** Cancels the scheduled flush (a timer within the window, or an immediate after a quiet one). */
  cancelFlush: (() => void) | undefined
  /** When the last frame was published (performance.now()), -Infinity before the first. */
  lastFlushAt: number
  gapSync: boolean
}

type Node = Libp2p<{ pubsub: GossipSub, identify: Identify, ping: Ping }>

/** A running mesh peer. Create with {@link createMeshPeer}. */
export class MeshPeer {
  readonly node: Node
  readonly peerId: string
  readonly readOnly: boolean
  readonly store: Persistence | undefined
  readonly clock: Hlc
  private readonly replicas = new Map<string, Replica>()
  private readonly init: MeshPeerInit
  private readonly log: MeshLogger
  private readonly flushMs: number
  private readonly maxFrameBytes: number
  private readonly maxSyncBytes: number
  private readonly syncTimeoutMs: number
  private readonly syncSettleMs: number
  private readonly maxInvalid: number
  private readonly banMs: number
  private readonly invalidByPeer = new Map<string, number>()
  private readonly cascading = new Set<string>()
  /**
   * The latest sync round under way with each peer (as dialer or listener): a dialed round waits for
   * it, so this peer never dials a peer it is already in a round with.
   */
  private readonly inflight = new Map<string, Promise<unknown>>()
  /**
   * The sync rounds under way, dialed and answered, that may still bring this peer data, with their
   * peer: a round leaves it while it waits to send this peer's state vector (settle).
   */
  private readonly bringing = new Map<object, { peer: string, round: Promise<unknown> }>()
  private readonly banned: Map<string, number>
  private redialer: Redialer | undefined
  private syncTimer: ReturnType<typeof setTimeout> | undefined
  private stopped = false
  private readonly counters = {
    framesOut: 0, framesIn: 0, frameBytesOut: 0, frameBytesIn: 0, invalidFrames: 0, syncRounds: 0, syncFailures: 0,
    syncBytesOut: 0, syncBytesIn: 0, invalidSyncMessages: 0, oversizedUpdates: 0, cascadeSyncs: 0, unauthorizedFrames: 0,
    announcementsOut: 0, announcementsIn: 0
  }

  private lastSyncAt: number | undefined
  private announceTimer: ReturnType<typeof setTimeout> | undefined
  private readonly announced = new Map<string, Set<string>>()
  private readonly following = new Map<string, Promise<RegionState>>()

  /** @internal */
  constructor (node: Node, init: MeshPeerInit, store: Persistence | undefined, clock: Hlc, banned: Map<string, number>) {
    this.node = node
    this.peerId = node.peerId.toString()
    this.init = init
    this.store = store
    this.clock = clock
    this.banned = banned
    this.readOnly = init.readOnly ?? false
    this.log = init.logger ?? silent
    this.flushMs = init.flushMs ?? 5
    this.maxFrameBytes = init.maxFrameBytes ?? 1024 * 1024
    this.maxSyncBytes = init.maxSyncMessageBytes ?? 256 * 1024 * 1024
    this.syncTimeoutMs = init.syncTimeoutMs ?? 15_000
    this.syncSettleMs = init.syncSettleMs ?? 500
    this.maxInvalid = init.maxInvalidFromPeer ?? 10
    this.banMs = init.banMs ?? 60_000
  }

  /** @internal */
  async start (): Promise<void> {
    for (const name of this.init.regions) await this.addReplica(name)
    const pubsub = this.node.services.pubsub
    pubsub.topicValidators.set(ANNOUNCE_TOPIC, (peer, msg) => this.validateAnnounce(peer, msg))
    pubsub.subscribe(ANNOUNCE_TOPIC)
    await this.node.handle(SYNC_PROTOCOL, async (stream, connection) => {
      await this.answerSync(stream, connection.remotePeer).catch(err => {
        this.log.debug({ peer: connection.remotePeer.toString(), err: String(err) }, 'mesh:sync answer failed')
      })
    }, { maxInboundStreams: 8, maxOutboundStreams: 8 })
    // A new connection: the peer with the smaller id starts a sync, so that the diff crosses once.
    this.node.addEventListener('peer:identify', evt => {
      const { peerId, protocols } = evt.detail
      if (!protocols.includes(SYNC_PROTOCOL)) return
      if (this.peerId < peerId.toString()) this.syncSoon(peerId, 'connect')
    })
    this.scheduleAntiEntropy()
    this.scheduleAnnounce(0)
    const bootstrap = (this.init.bootstrap ?? []).map(a => multiaddr(a))
    this.redialer = new Redialer(this.node, bootstrap, this.init.redial)
    this.redialer.start()
  }

  /**
   * Starts holding a region this peer did not hold: its state (loaded from the store if the
   * data dir has it), its gossip topic, and a sync round with every connected peer. Returns the
   * region's state; for a region already held, at once. Throws `EM_ERR_INVALID_OPTIONS` for an
   * invalid name or beyond `maxFollowedRegions`.
   */
  async follow (name: string): Promise<RegionState> {
    const held = this.replicas.get(name)
    if (held !== undefined) return held.state
    if (this.stopped) throw new EdgeMeshError('EM_ERR_CLOSED', 'the mesh peer is stopped', { region: name })
    if (!isValidRegionName(name)) throw new InvalidOptionsError(`invalid region name ${JSON.stringify(name)}`, { region: name })
    const max = this.init.maxFollowedRegions ?? 64
    if (this.replicas.size - this.init.regions.length >= max) {
      throw new InvalidOptionsError(`this peer follows ${max} regions already (maxFollowedRegions)`, { region: name, maxFollowedRegions: max })
    }
    let adding = this.following.get(name)
    if (adding === undefined) {
      adding = this.addReplica(name).finally(() => { this.following.delete(name) })
      this.following.set(name, adding)
    }
    const state = await adding
    this.log.info({ region: name }, 'mesh: following a region')
    for (const peer of this.node.getConnections().map(c => c.remotePeer)) this.syncSoon(peer, 'follow')
    return state
  }

  private async addReplica (name: string): Promise<RegionState> {
    {
      const state = createRegionState({
        ...this.init.region,
        region: name,
        writer: this.readOnly ? undefined : this.peerId,
        readOnly: this.readOnly,
        hlc: this.clock,
        ...(this.init.writers?.[name] !== undefined ? { writers: this.init.writers[name] } : {})
      })
      const bound = this.store !== undefined ? await this.store.bind(state) : undefined
      const replica: Replica = { name, topic: regionTopic(name), state, bound, outbox: [], outboxBytes: frameHeaderBound(name), cancelFlush: undefined, lastFlushAt: -Infinity, gapSync: false }
      this.replicas.set(name, replica)
      state.on('update', (update, local) => { if (local) this.enqueue(replica, update) })
      const pubsub = this.node.services.pubsub
      scoreTopic(pubsub, replica.topic)
      pubsub.topicValidators.set(replica.topic, (peer, msg) => this.validate(replica, peer, msg))
      pubsub.subscribe(replica.topic)
      try {
        this.init.onRegion?.(name, state)
      } catch (err) {
        this.log.warn({ region: name, err: String(err) }, 'mesh: the onRegion callback failed')
      }
      return state
    }
  }

  // ------------------------------------------------------------ announcements

  private scheduleAnnounce (delayMs: number): void {
    const every = this.init.announceIntervalMs ?? 5000
    if (this.readOnly || every <= 0 || this.stopped) return
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined
      if (this.stopped) return
      const regions = [...this.replicas.keys()].slice(0, MAX_ANNOUNCED_REGIONS)
      this.node.services.pubsub.publish(ANNOUNCE_TOPIC, encodeAnnounce(regions)).then(() => {
        this.counters.announcementsOut++
      }, err => {
        this.log.debug({ err: String(err) }, 'mesh: announcement not published')
      })
      this.scheduleAnnounce(every * (0.75 + Math.random() * 0.5))
    }, delayMs)
    this.announceTimer.unref?.()
  }

  private validateAnnounce (peer: PeerId, msg: Message): TopicValidatorResult {
    try {
      if (msg.type !== 'signed') throw new EdgeMeshError('EM_ERR_INVALID_UPDATE', 'an unsigned announcement', {})
      const regions = decodeAnnounce(msg.data)
      this.counters.announcementsIn++
      const from = msg.from.toString()
      for (const r of regions) {
        let by = this.announced.get(r)
        if (by === undefined) {
          if (this.announced.size >= MAX_KNOWN_REGIONS) continue
          this.announced.set(r, by = new Set())
        }
        if (by.size < MAX_ANNOUNCERS_PER_REGION) by.add(from)
        if (this.init.followAnnounced === true && !this.replicas.has(r) && !this.following.has(r)) {
          this.follow(r).catch(err => { this.log.warn({ region: r, err: String(err) }, 'mesh: could not follow an announced region') })
        }
      }
      return TopicValidatorResult.Accept
    } catch (err) {
      this.counters.invalidFrames++
      this.invalid(peer, err, 'mesh:announce invalid announcement')
      return TopicValidatorResult.Reject
    }
  }

  /** Regions announced by other peers, with the peers that announced each (bounded). */
  announcedRegions (): Map<string, string[]> {
    return new Map([...this.announced].map(([r, by]) => [r, [...by]]))
  }

  /** The region state of a region this peer holds. */
  region (name: string): RegionState {
    return this.replica(name).state
  }

  /** Resolves when every update of the region emitted so far is in LevelDB (at once without a store). */
  async whenDurable (name: string): Promise<void> {
    await this.replica(name).bound?.whenDurable()
  }

  get regions (): string[] {
    return [...this.replicas.keys()]
  }

  private replica (name: string): Replica {
    const r = this.replicas.get(name)
    if (r === undefined) throw new InvalidOptionsError(`region ${name} is not held by this peer`, { region: name })
    return r
  }

  /** Listen addresses, each with /p2p/<peer id>. */
  addrs (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString())
  }

  connectedPeers (): string[] {
    return [...new Set(this.node.getConnections().map(c => c.remotePeer.toString()))]
  }

  // ------------------------------------------------------------ gossip out

  private enqueue (r: Replica, update: Uint8Array): void {
    if (this.readOnly || this.stopped) return
    if (frameHeaderBound(r.name) + frameEntryBound(update) > this.maxFrameBytes) {
      // Too large to gossip: peers get it by sync (their next update shows the gap).
      this.counters.oversizedUpdates++
      this.log.warn({ region: r.name, bytes: update.length }, 'mesh:gossip update over the frame limit, left to sync')
      return
    }
    if (r.outboxBytes + frameEntryBound(update) > this.maxFrameBytes) this.flush(r)
    r.outbox.push(update)
    r.outboxBytes += frameEntryBound(update)
    if (r.cancelFlush === undefined) {
      // At most one frame per flush window and region: after a quiet window the frame leaves as
      // soon as the code that wrote returns (a microtask: the writes of one synchronous run, such
      // as one putMany, are one frame), not after the rest of the event loop's pending I/O, which
      // on a busy peer took up to tens of ms (bench:mesh `flushP99Ms` 23-59 ms, 5-8 with this);
      // under load the updates gather until a window has passed since the previous frame.
      const wait = r.lastFlushAt + this.flushMs - performance.now()
      if (wait <= 0) {
        let cancelled = false
        queueMicrotask(() => { if (!cancelled) this.flush(r) })
        r.cancelFlush = () => { cancelled = true }
      } else {
        const timer = setTimeout(() => { this.flush(r) }, wait)
        r.cancelFlush = () => { clearTimeout(timer) }
      }
    }
  }

  private flush (r: Replica): void {
    r.cancelFlush?.()
    r.cancelFlush = undefined
    if (r.outbox.length === 0) return
    r.lastFlushAt = performance.now()
    const frame = encodeFrame({ region: r.name, updates: r.outbox })
    r.outbox = []
    r.outboxBytes = frameHeaderBound(r.name)
    this.counters.framesOut++
    this.counters.frameBytesOut += frame.length
    this.node.services.pubsub.publish(r.topic, frame).catch(err => {
      this.log.debug({ region: r.name, err: String(err) }, 'mesh:gossip publish failed')
    })
  }

  // ------------------------------------------------------------ gossip in

  private validate (r: Replica, peer: PeerId, msg: Message): TopicValidatorResult {
    this.counters.framesIn++
    this.counters.frameBytesIn += msg.data.length
    try {
      const writers = r.state.writers
      if (writers !== undefined && (msg.type !== 'signed' || !writers.has(msg.from.toString()))) {
        this.counters.unauthorizedFrames++
        throw new EdgeMeshError('EM_ERR_UNAUTHORIZED_WRITER', `a frame of region ${r.name} published by a peer that may not write it`, {
          region: r.name, from: msg.type === 'signed' ? msg.from.toString() : undefined
        })
      }
      const frame = decodeFrame(msg.data, this.maxFrameBytes)
      if (frame.region !== r.name) {
        throw new EdgeMeshError('EM_ERR_INVALID_UPDATE', 'frame region differs from its topic', { region: frame.region, topic: r.topic })
      }
      let gap = false
      for (const u of frame.updates) gap = r.state.applyUpdate(u).pending || gap
      if (gap) this.onGap(r, peer)
      return TopicValidatorResult.Accept
    } catch (err) {
      this.counters.invalidFrames++
      this.invalid(peer, err, 'mesh:gossip invalid frame', r.name)
      return TopicValidatorResult.Reject
    }
  }

  private invalid (peer: PeerId, err: unknown, what: string, region?: string): void {
    const id = peer.toString()
    const n = (this.invalidByPeer.get(id) ?? 0) + 1
    this.invalidByPeer.set(id, n)
    this.log.warn({ peer: id, region, code: (err as EdgeMeshError).code, err: String(err), count: n }, what)
    if (n >= this.maxInvalid) {
      this.log.warn({ peer: id, count: n }, 'mesh: peer sent too many invalid messages, disconnecting it')
      this.invalidByPeer.delete(id)
      this.ban(id, this.banMs)
    }
  }

  private onGap (r: Replica, peer: PeerId): void {
    if (r.gapSync) return
    r.gapSync = true
    this.syncSoon(peer, 'gap', () => { r.gapSync = false })
  }

  // ------------------------------------------------------------ sync

  private syncSoon (peer: PeerId, why: string, done?: () => void): void {
    setTimeout(() => {
      this.syncWith(peer.toString()).catch(err => {
        this.log.debug({ peer: peer.toString(), why, err: String(err) }, 'mesh:sync failed')
      }).finally(done)
    }, 0)
  }

  /** Starts a sync round with every connected peer but `from`, unless one is already due. */
  private cascade (from: string): void {
    for (const p of this.connectedPeers()) {
      if (p === from || this.cascading.has(p)) continue
      this.cascading.add(p)
      this.counters.cascadeSyncs++
      this.syncSoon(peerIdFromString(p), 'cascade', () => { this.cascading.delete(p) })
    }
  }

  private scheduleAntiEntropy (): void {
    const every = this.init.syncIntervalMs ?? 10_000
    if (every <= 0 || this.stopped) return
    const wait = every * (0.75 + Math.random() * 0.5)
    this.syncTimer = setTimeout(() => {
      // Peers with a round under way are up to date, or about to be.
      const peers = this.connectedPeers().filter(p => !this.inflight.has(p))
      const done = (): void => this.scheduleAntiEntropy()
      if (peers.length === 0) return done()
      const peer = peers[Math.floor(Math.random() * peers.length)]
      this.syncWith(peer).catch(err => {
        this.log.debug({ peer, err: String(err) }, 'mesh:sync anti-entropy failed')
      }).finally(done)
    }, wait)
    this.syncTimer.unref?.()
  }

  /**
   * One sync round with a connected peer over `/edge-mesh/sync/1.0.0`: state vectors of every
   * region both hold are exchanged and each side sends the other what it lacks.
   */
  async syncWith (peer: string): Promise<SyncReport> {
    // Two overlapping rounds would both send the diff from the same state vector.
    for (let prior = this.inflight.get(peer); prior !== undefined; prior = this.inflight.get(peer)) await prior.catch(() => {})
    const token = {}
    const round = this.dialRound(peer, token)
    this.inflight.set(peer, round)
    this.bringing.set(token, { peer, round })
    try {
      return await round
    } finally {
      if (this.inflight.get(peer) === round) this.inflight.delete(peer)
      this.bringing.delete(token)
    }
  }

  private async dialRound (peer: string, token: object): Promise<SyncReport> {
    const t0 = performance.now()
    const signal = AbortSignal.timeout(this.syncTimeoutMs)
    const stream = await this.node.dialProtocol(peerIdFromString(peer), SYNC_PROTOCOL, { signal })
    const io = this.io(stream, peer, signal)
    try {
      await this.settle(token, peer)
      for (const r of this.replicas.values()) await io.write({ type: 'step1', region: r.name, stateVector: r.state.encodeStateVector() })
      await io.write({ type: 'done' })
      // The listener's step 2s and step 1s, until its done.
      const asked: string[] = []
      for (;;) {
        const msg = await io.read()
        if (msg.type === 'done') break
        if (msg.type === 'step2') this.applySync(msg.region, msg.update, peer)
        else if (this.replicas.has(msg.region)) asked.push(msg.region)
      }
      // Answer the listener's step 1s; they were read in full above, so the state is current.
      for (const region of asked) await io.write({ type: 'step2', region, update: this.pendingDiff(region, io.stateVectors.get(region)) })
      await io.write({ type: 'done' })
      await stream.close({ signal })
      this.counters.syncRounds++
      this.lastSyncAt = Date.now()
      return { peer, regions: this.replicas.size, bytesOut: io.bytesOut, bytesIn: io.bytesIn, ms: performance.now() - t0 }
    } catch (err) {
      this.counters.syncFailures++
      stream.abort(err as Error)
      throw err
    }
  }

  private async answerSync (stream: Stream, remote: PeerId): Promise<void> {
    const peer = remote.toString()
    const token = {}
    const round = this.listenRound(stream, peer, token)
    this.inflight.set(peer, round)
    this.bringing.set(token, { peer, round })
    try {
      await round
    } finally {
      if (this.inflight.get(peer) === round) this.inflight.delete(peer)
      this.bringing.delete(token)
    }
  }

  private async listenRound (stream: Stream, peer: string, token: object): Promise<void> {
    if (this.banned.has(peer)) {
      stream.abort(new Error('banned'))
      return
    }
    const signal = AbortSignal.timeout(this.syncTimeoutMs)
    const io = this.io(stream, peer, signal)
    try {
      const asked: string[] = []
      for (;;) {
        const msg = await io.read()
        if (msg.type === 'done') break
        if (msg.type === 'step1' && this.replicas.has(msg.region)) asked.push(msg.region)
        if (msg.type === 'step2') this.applySync(msg.region, msg.update, peer)
      }
      for (const region of asked) await io.write({ type: 'step2', region, update: this.pendingDiff(region, io.stateVectors.get(region)) })
      await this.settle(token, peer)
      for (const region of asked) {
        const r = this.replicas.get(region)
        if (r !== undefined) await io.write({ type: 'step1', region, stateVector: r.state.encodeStateVector() })
      }
      await io.write({ type: 'done' })
      for (;;) {
        const msg = await io.read()
        if (msg.type === 'done') break
        if (msg.type === 'step2') this.applySync(msg.region, msg.update, peer)
      }
      await stream.close({ signal })
      this.counters.syncRounds++
      this.lastSyncAt = Date.now()
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  /**
   * Waits, at most syncSettleMs, for this peer's other sync rounds that may bring it data, before a
   * round sends this peer's state vector (a dialed round at its start, an answered one after its
   * step 2s). Two rounds bringing the same diff at once would each carry it: a partition healing
   * over two links, where each side's delta arrives over its link while the cascade from the other
   * link's end asks for it again (heal bytes were 1.25-1.75x the minimum in some runs of bench:mesh
   * without this), or a peer catching up from several neighbours at once. The round waiting is not
   * itself waited for meanwhile, so two rounds of one peer never wait for each other.
   */
  private async settle (token: object, peer: string): Promise<void> {
    const self = this.bringing.get(token)
    this.bringing.delete(token)
    try {
      // Not a round with the same peer: two peers that each dial the other would wait in a cycle.
      const others = [...this.bringing.values()].filter(r => r.peer !== peer).map(r => r.round)
      if (others.length === 0 || this.syncSettleMs <= 0) return
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.allSettled(others),
        new Promise<void>(resolve => { timer = setTimeout(resolve, this.syncSettleMs); timer.unref?.() })
      ])
      clearTimeout(timer)
    } finally {
      if (self !== undefined) this.bringing.set(token, self)
    }
  }

  /** What a peer with `stateVector` lacks of a region (the whole doc without one). */
  private pendingDiff (region: string, stateVector: Uint8Array | undefined): Uint8Array {
    return this.replica(region).state.encodeStateAsUpdate(stateVector)
  }

  private applySync (region: string, update: Uint8Array, peer: string): void {
    const r = this.replicas.get(region)
    if (r === undefined) return
    try {
      const result = r.state.applyUpdate(update)
      // What this peer learned by sync, its other neighbours may lack too (a partition healing
      // through one link): sync with them, so each gets just what it lacks (a state-vector
      // exchange of about 100 bytes where it already has everything).
      if (result.readings > 0) this.cascade(peer)
    } catch (err) {
      this.counters.invalidSyncMessages++
      this.invalid(peerIdFromString(peer), err, 'mesh:sync invalid update', region)
      throw err
    }
  }

  private io (stream: Stream, peer: string, signal: AbortSignal): {
    read: () => Promise<SyncMessage>
    write: (msg: SyncMessage) => Promise<void>
    stateVectors: Map<string, Uint8Array>
    bytesIn: number
    bytesOut: number
  } {
    const lp = lpStream(stream, { maxDataLength: this.maxSyncBytes })
    const counters = this.counters
    const self = this
    const io = {
      bytesIn: 0,
      bytesOut: 0,
      stateVectors: new Map<string, Uint8Array>(),
      async read (): Promise<SyncMessage> {
        const buf = (await lp.read({ signal })).subarray()
        io.bytesIn += buf.length
        counters.syncBytesIn += buf.length
        let msg: SyncMessage
        try {
          msg = decodeSyncMessage(buf)
        } catch (err) {
          counters.invalidSyncMessages++
          self.invalid(peerIdFromString(peer), err, 'mesh:sync invalid message')
          throw err
        }
        if (msg.type === 'step1') io.stateVectors.set(msg.region, msg.stateVector)
        return msg
      },
      async write (msg: SyncMessage): Promise<void> {
        const buf = encodeSyncMessage(msg)
        io.bytesOut += buf.length
        counters.syncBytesOut += buf.length
        await lp.write(buf, { signal })
      }
    }
    return io
  }

  // ------------------------------------------------------------ peers

  /** Disconnects a peer and refuses its connections for `ms` (Infinity: until {@link allow}). */
  ban (peer: string, ms: number = Infinity): void {
    this.banned.set(peer, ms === Infinity ? Infinity : Date.now() + ms)
    void this.node.hangUp(peerIdFromString(peer)).catch(() => {})
  }

  allow (peer: string): void {
    this.banned.delete(peer)
  }

  stats (): MeshStats {
    const now = Date.now()
    let bannedPeers = 0
    for (const until of this.banned.values()) if (until > now) bannedPeers++
    return { peerId: this.peerId, peers: this.connectedPeers().length, ...this.counters, bannedPeers, lastSyncAt: this.lastSyncAt }
  }

  /** Flushes pending frames, stops libp2p, closes the regions and the store. */
  async stop (): Promise<void> {
    if (this.stopped) return
    for (const r of this.replicas.values()) this.flush(r)
    this.stopped = true
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer)
    if (this.announceTimer !== undefined) clearTimeout(this.announceTimer)
    await Promise.allSettled(this.following.values())
    this.redialer?.stop()
    await this.node.stop()
    await this.store?.close()
    for (const r of this.replicas.values()) r.state.close()
  }
}

/** Starts a mesh peer: identity, storage, libp2p, and replication of every region given. */
export async function createMeshPeer (init: MeshPeerInit): Promise<MeshPeer> {
  installVerifyKeyCache()
  installSignKeyCache()
  installWindowUpdateHysteresis()
  if (!Array.isArray(init.regions)) throw new InvalidOptionsError('regions must be an array of region names')
  if (init.regions.length === 0 && init.readOnly !== true) throw new InvalidOptionsError('a writable peer must hold at least one region')
  for (const r of init.regions) {
    if (!isValidRegionName(r)) throw new InvalidOptionsError(`invalid region name ${JSON.stringify(r)}`, { region: r })
  }
  for (const a of [...(init.listen ?? []), ...(init.bootstrap ?? [])]) {
    try {
      multiaddr(a)
    } catch (err) {
      throw new InvalidOptionsError(`invalid multiaddr ${JSON.stringify(a)}`, { addr: a, cause: String(err) })
    }
  }
  const privateKey = init.dataDir !== undefined ? await loadOrCreatePeerKey(init.dataDir) : await generateKeyPair('Ed25519')
  let store: Persistence | undefined
  let clock: Hlc
  if (init.dataDir !== undefined) {
    store = await openPersistence({ ...init.persistence, path: join(init.dataDir, 'db'), clock: init.clock })
    clock = store.clock
  } else {
    clock = createHlc(init.clock)
  }
  const banned = new Map<string, number>()
  const isBanned = (peer: PeerId): boolean => {
    const until = banned.get(peer.toString())
    if (until === undefined) return false
    if (until < Date.now()) {
      banned.delete(peer.toString())
      return false
    }
    return true
  }
  const denyPeer = init.denyPeer
  const refused = denyPeer === undefined ? isBanned : (peer: PeerId): boolean => isBanned(peer) || denyPeer(peer.toString())
  const maxFrameBytes = init.maxFrameBytes ?? 1024 * 1024
  // Loaded only for a private network: its XSalsa20 WebAssembly holds memory once loaded.
  const protector = init.psk !== undefined ? (await import('@libp2p/pnet')).preSharedKey({ psk: init.psk }) : undefined
  try {
    const node = await createLibp2p({
      privateKey,
      addresses: { listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [joiningWrites(quietLengthReads(noise({ crypto: meshNoiseCrypto })))],
      streamMuxers: [yamux()],
      ...(protector !== undefined ? { connectionProtector: protector } : {}),
      connectionGater: {
        denyDialMultiaddr: () => false,
        denyDialPeer: refused,
        denyInboundEncryptedConnection: refused,
        denyOutboundEncryptedConnection: refused
      },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: createPubsub({ maxFrameBytes, topics: [...init.regions.map(regionTopic), ANNOUNCE_TOPIC] })
      }
    })
    const peer = new MeshPeer(node, init, store, clock, banned)
    try {
      await peer.start()
    } catch (err) {
      // Whatever start() got to (regions, timers, libp2p) is stopped again; the store closes below.
      await peer.stop().catch(() => {})
      throw err
    }
    return peer
  } catch (err) {
    await store?.close()
    throw err
  }
}
