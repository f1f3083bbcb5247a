/**
 * App subscriptions: one WebSocket endpoint per region doc, `${path}/${region}`, speaking the
 * y-websocket message protocol, so that a stock `y-websocket` client (or `@edge-mesh/client`) can
 * sync a read-only replica of a region doc and see every change live.
 *
 * Wire (y-websocket 3 / y-protocols 1; every message is one binary WebSocket frame, all integers
 * lib0 varUints, `bytes` a varUint length then the bytes, `string` the same in UTF-8):
 *
 *   message   = type:varUint payload
 *   type 0  sync             syncType:varUint data:bytes
 *             syncType 0  step 1: data is a Yjs state vector; answered with a step 2
 *             syncType 1  step 2: data is a Yjs update (what the receiver lacks)
 *             syncType 2  update: data is a Yjs update
 *   type 1  awareness        data:bytes = count:varUint (clientID:varUint clock:varUint state:string(JSON))*
 *   type 2  auth             authType:varUint (0 = permission denied) reason:string   (gateway -> app only)
 *   type 3  query awareness  (no payload): answered with every awareness state of the region
 *
 * Session: on connect the gateway sends sync step 1 (the region's state vector) and the current
 * awareness states; it answers the app's step 1 with a step 2 (`encodeStateAsUpdate(appSv)`), and
 * from then on forwards every region 'update' (local writes, compaction and updates from the mesh)
 * to every app of that region as a sync update message.
 *
 * Apps are read-only. A step 2 or update from an app is never applied. One that carries nothing
 * the region lacks is dropped silently: that is the stock client's reply to our step 1, which is
 * empty on a first connection but, after a reconnect, repeats the delete set (compaction) the app
 * learnt from us. One that carries anything new (a struct beyond the region's state, or a deletion
 * the region has not made) is refused with an auth `permission denied` message, counted in
 * `refusedUpdates` and logged at warn (at most one line per 10 s, with the number held back); the
 * connection stays open.
 *
 * Malformed messages (a text frame, undecodable bytes, trailing bytes, an unknown or gateway-only
 * type) are counted in `invalidMessages`, logged, and the connection is closed with 1003 (text
 * frame) or 1008 (anything else). A frame over `maxMessageBytes` is refused by ws itself
 * (`maxPayload`), which closes with 1009 (message too big); ws protocol errors close with
 * 1002/1007; both are counted in `invalidMessages` too.
 *
 * Awareness: one y-protocols Awareness per region that has apps, relaying awareness updates
 * between the apps of that region; the states an app announced are removed when it leaves. The
 * gateway has no awareness state of its own.
 *
 * Slow consumers: before each send the socket's `bufferedAmount` is checked; an app over
 * `maxBufferedBytes` is terminated and counted in `dropped`. The step 2 answering a step 1 (the
 * whole region, for a new app) may take a socket over the limit on its own: its size is allowed on
 * top of the limit until the buffer has drained below the limit once.
 *
 * Upgrade requests for other paths are left to the server's other 'upgrade' listeners; if there
 * is none, they are answered 404 and the socket destroyed (once an 'upgrade' listener exists, Node
 * hands every upgrade request to the listeners, so one nobody takes would hang). A request for an unknown or invalid region is answered 404 (JSON `{ error, code }`
 * like the gateway's other errors); if the region lookup throws, or during a shutdown, 503.
 */
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as authProtocol from 'y-protocols/auth'
import * as syncProtocol from 'y-protocols/sync'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness'
import { InvalidOptionsError } from '@edge-mesh/errors'
import type { RegionState } from '@edge-mesh/region-state'

const MESSAGE_SYNC = 0
const MESSAGE_AWARENESS = 1
const MESSAGE_AUTH = 2
const MESSAGE_QUERY_AWARENESS = 3

/** Close code for a text frame (RFC 6455 "unsupported data"). */
const CLOSE_UNSUPPORTED_DATA = 1003
/** Close code for a malformed or unexpected message (RFC 6455 "policy violation"). */
const CLOSE_POLICY_VIOLATION = 1008
/** Close code sent to every app when the gateway shuts down ("going away"). */
const CLOSE_GOING_AWAY = 1001

/** Warnings about refused updates, invalid messages and dropped apps: at most one per kind per this period, ms. */
const LOG_EVERY_MS = 10_000
/** On close(), how long apps get to answer the close handshake before they are terminated, ms. */
const CLOSE_TIMEOUT_MS = 2000

export interface AppSocketsInit {
  /** The HTTP server (fastify's `app.server`); its 'upgrade' event is handled for `path` only. */
  server: Server
  /** Endpoint prefix, e.g. '/v1/docs'; an app connects to `${path}/${region}`. */
  path: string
  /** The region state of a region name, or undefined if this gateway does not hold it. */
  region: (name: string) => RegionState | undefined
  logger: Logger
  /** An app whose ws.bufferedAmount exceeds this is disconnected (slow consumer). @default 8 MiB */
  maxBufferedBytes?: number
  /** Largest message accepted from an app, bytes. @default 1 MiB */
  maxMessageBytes?: number
}

export interface AppSocketsStats {
  /** Apps connected now. */
  clients: number
  /** Messages received from apps, valid or not. */
  messagesIn: number
  /** Step 2 / update messages that carried content and were refused (apps are read-only). */
  refusedUpdates: number
  /** Malformed messages; each closed its connection. */
  invalidMessages: number
  /** Apps terminated as slow consumers. */
  dropped: number
}

export interface AppSockets {
  stats: () => AppSocketsStats
  /** Closes every app connection (1001) and the WebSocket server, and removes the 'upgrade' listener. */
  close: () => Promise<void>
}

/** A region with at least one app connected. */
interface Room {
  readonly name: string
  readonly state: RegionState
  readonly awareness: Awareness
  readonly clients: Map<WebSocket, AppClient>
  readonly onUpdate: (update: Uint8Array) => void
  readonly onAwareness: (changes: AwarenessChanges, origin: unknown) => void
}

interface AwarenessChanges {
  added: number[]
  updated: number[]
  removed: number[]
}

/** One app connection. */
interface AppClient {
  readonly id: number
  readonly ws: WebSocket
  readonly room: Room
  readonly remote: string | undefined
  /** Awareness client ids this app announced: removed when it leaves. */
  readonly awarenessIds: Set<number>
  /** Bytes of step 2 replies allowed over maxBufferedBytes until the buffer drains (see the module doc). */
  slack: number
  /** Set once the connection is being closed: later messages are ignored. */
  closing: boolean
}

/** A message that breaks the protocol: the connection is closed with `closeCode`. */
class MalformedMessage extends Error {
  readonly closeCode: number
  /** The close reason sent to the app (short and ASCII: at most 123 bytes are allowed). */
  readonly closeReason: string

  constructor (message: string, closeCode: number = CLOSE_POLICY_VIOLATION) {
    super(message)
    this.closeCode = closeCode
    this.closeReason = closeCode === CLOSE_UNSUPPORTED_DATA ? 'text frames are not accepted' : 'malformed message'
  }
}

/** Lets one log line through per period, and counts the ones held back. */
class LogThrottle {
  private readonly everyMs: number
  private last = -Infinity
  private skipped = 0

  constructor (everyMs: number) {
    this.everyMs = everyMs
  }

  /** The number of lines held back since the last one, if this one may be logged; else undefined. */
  take (): number | undefined {
    const now = Date.now()
    if (now - this.last < this.everyMs) {
      this.skipped++
      return undefined
    }
    const skipped = this.skipped
    this.skipped = 0
    this.last = now
    return skipped
  }
}

function positiveInt (name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidOptionsError(`${name} must be a positive integer`, { [name]: v })
  return v
}

/** A binary frame as one Uint8Array (ws gives a Buffer, an ArrayBuffer or fragments). */
function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function message (write: (enc: encoding.Encoder) => void): Uint8Array {
  const enc = encoding.createEncoder()
  write(enc)
  return encoding.toUint8Array(enc)
}

const syncStep1Message = (sv: Uint8Array): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, MESSAGE_SYNC)
  encoding.writeVarUint(enc, syncProtocol.messageYjsSyncStep1)
  encoding.writeVarUint8Array(enc, sv)
})

const syncStep2Message = (update: Uint8Array): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, MESSAGE_SYNC)
  encoding.writeVarUint(enc, syncProtocol.messageYjsSyncStep2)
  encoding.writeVarUint8Array(enc, update)
})

const syncUpdateMessage = (update: Uint8Array): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, MESSAGE_SYNC)
  encoding.writeVarUint(enc, syncProtocol.messageYjsUpdate)
  encoding.writeVarUint8Array(enc, update)
})

const awarenessMessage = (update: Uint8Array): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, MESSAGE_AWARENESS)
  encoding.writeVarUint8Array(enc, update)
})

const permissionDeniedMessage = (reason: string): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, MESSAGE_AUTH)
  authProtocol.writePermissionDenied(enc, reason)
})

/** Reads a varUint or throws MalformedMessage (lib0 reads past the end as a RangeError or undefined). */
function readUint (dec: decoding.Decoder, what: string): number {
  if (dec.pos >= dec.arr.length) throw new MalformedMessage(`message ends before its ${what}`)
  const n = decoding.readVarUint(dec)
  if (!Number.isSafeInteger(n)) throw new MalformedMessage(`${what} is not a valid integer`)
  return n
}

function readBytes (dec: decoding.Decoder, what: string): Uint8Array {
  const len = readUint(dec, `${what} length`)
  if (len > dec.arr.length - dec.pos) throw new MalformedMessage(`${what} is longer than the message`)
  return decoding.readUint8Array(dec, len)
}

function assertEnd (dec: decoding.Decoder): void {
  if (dec.pos !== dec.arr.length) throw new MalformedMessage(`${dec.arr.length - dec.pos} trailing bytes after the message`)
}

/** Decodes an awareness update in full (without applying it): throws MalformedMessage if it is not one. */
function checkAwarenessUpdate (update: Uint8Array): void {
  const dec = decoding.createDecoder(update)
  const count = readUint(dec, 'awareness state count')
  for (let i = 0; i < count; i++) {
    readUint(dec, 'awareness client id')
    readUint(dec, 'awareness clock')
    const json = new TextDecoder('utf-8', { fatal: true }).decode(readBytes(dec, 'awareness state'))
    try {
      const state: unknown = JSON.parse(json)
      if (state !== null && (typeof state !== 'object' || Array.isArray(state))) throw new MalformedMessage('an awareness state must be an object or null')
    } catch (err) {
      if (err instanceof MalformedMessage) throw err
      throw new MalformedMessage('an awareness state is not JSON')
    }
  }
  assertEnd(dec)
}

/** Struct ranges [clock, end) by client, of a doc's pending structs (known to it, not integrated). */
function pendingStructRanges (doc: Y.Doc): Map<number, Array<[number, number]>> {
  const out = new Map<number, Array<[number, number]>>()
  const pending = doc.store.pendingStructs
  if (pending === null) return out
  for (const s of Y.decodeUpdateV2(pending.update).structs) {
    if (s instanceof Y.Skip) continue
    let list = out.get(s.id.client)
    if (list === undefined) out.set(s.id.client, (list = []))
    list.push([s.id.clock, s.id.clock + s.length])
  }
  return out
}

/** True when [clock, clock + len) lies within one item of a sorted, merged delete list. */
function rangeDeleted (items: Array<{ clock: number, len: number }> | undefined, clock: number, len: number): boolean {
  if (items === undefined) return false
  let lo = 0
  let hi = items.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const it = items[mid]
    if (clock < it.clock) hi = mid - 1
    else if (clock >= it.clock + it.len) lo = mid + 1
    else return clock + len <= it.clock + it.len
  }
  return false
}

/**
 * True when a Yjs (v1) update holds something `doc` lacks: a struct beyond its state vector that
 * is not among its pending structs either, or a deletion it has not made. Throws if the update
 * cannot be decoded.
 */
function carriesNews (doc: Y.Doc, update: Uint8Array): boolean {
  const { structs, ds } = Y.decodeUpdate(update)
  const store = doc.store
  let pending: Map<number, Array<[number, number]>> | undefined
  for (const s of structs) {
    if (s instanceof Y.Skip) continue
    const end = s.id.clock + s.length
    if (end <= Y.getState(store, s.id.client)) continue
    pending ??= pendingStructRanges(doc)
    const ranges = pending.get(s.id.client)
    if (ranges === undefined || !ranges.some(([from, to]) => s.id.clock >= from && end <= to)) return true
  }
  let any = false
  for (const items of ds.clients.values()) if (items.some(d => d.len > 0)) any = true
  if (!any) return false
  const sets = [Y.createDeleteSetFromStructStore(store)]
  if (store.pendingDs !== null) sets.push(Y.decodeUpdateV2(store.pendingDs).ds)
  const known = Y.mergeDeleteSets(sets)
  for (const [client, items] of ds.clients) {
    const have = known.clients.get(client)
    for (const d of items) if (d.len > 0 && !rangeDeleted(have, d.clock, d.len)) return true
  }
  return false
}

/** The region name of an upgrade URL under `path`, '' if it names none, undefined if the URL is not under `path`. */
function regionOfUrl (url: string | undefined, path: string): string | undefined {
  if (url === undefined) return undefined
  const q = url.indexOf('?')
  const pathname = q === -1 ? url : url.slice(0, q)
  if (pathname === path || pathname === path + '/') return ''
  if (!pathname.startsWith(path + '/')) return undefined
  const rest = pathname.slice(path.length + 1)
  let name: string
  try {
    name = decodeURIComponent(rest)
  } catch {
    return ''
  }
  return name.includes('/') ? '' : name
}

/** Answers an upgrade request with a plain HTTP error and destroys the socket. */
function refuseUpgrade (socket: Duplex, status: 404 | 503, code: 'EM_ERR_NOT_FOUND' | 'EM_ERR_UNAVAILABLE', error: string): void {
  const body = JSON.stringify({ error, code })
  const reason = status === 404 ? 'Not Found' : 'Service Unavailable'
  socket.on('error', () => {})
  if (!socket.writable) {
    socket.destroy()
    return
  }
  socket.once('finish', () => { socket.destroy() })
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

class AppSocketServer implements AppSockets {
  private readonly server: Server
  private readonly path: string
  private readonly lookup: (name: string) => RegionState | undefined
  private readonly log: Logger
  private readonly maxBufferedBytes: number
  private readonly wss: WebSocketServer
  private readonly rooms = new Map<RegionState, Room>()
  private readonly refusedLog: LogThrottle
  private readonly invalidLog: LogThrottle
  private readonly droppedLog: LogThrottle
  private readonly counters = { messagesIn: 0, refusedUpdates: 0, invalidMessages: 0, dropped: 0 }
  private clientCount = 0
  private nextId = 1
  private closing: Promise<void> | undefined
  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => { this.upgrade(req, socket, head) }

  constructor (init: AppSocketsInit) {
    if (typeof init.path !== 'string' || !/^\/[^?#]*[^/?#]$/.test(init.path)) {
      throw new InvalidOptionsError('path must start with "/" and not end with "/"', { path: init.path })
    }
    this.server = init.server
    this.path = init.path
    this.lookup = init.region
    this.log = init.logger
    this.maxBufferedBytes = positiveInt('maxBufferedBytes', init.maxBufferedBytes ?? 8 * 1024 * 1024)
    const maxMessageBytes = positiveInt('maxMessageBytes', init.maxMessageBytes ?? 1024 * 1024)
    this.refusedLog = new LogThrottle(LOG_EVERY_MS)
    this.invalidLog = new LogThrottle(LOG_EVERY_MS)
    this.droppedLog = new LogThrottle(LOG_EVERY_MS)
    this.wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes, perMessageDeflate: false })
    this.server.on('upgrade', this.onUpgrade)
  }

  stats (): AppSocketsStats {
    return { clients: this.clientCount, ...this.counters }
  }

  // ------------------------------------------------------------------ connections

  private upgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const name = regionOfUrl(req.url, this.path)
    if (name === undefined) {
      // Not ours: another listener may take it. With none, the socket would hang (see the module doc).
      if (this.server.listenerCount('upgrade') === 1) refuseUpgrade(socket, 404, 'EM_ERR_NOT_FOUND', 'no such endpoint')
      return
    }
    if (this.closing !== undefined) {
      refuseUpgrade(socket, 503, 'EM_ERR_UNAVAILABLE', 'the gateway is shutting down')
      return
    }
    let state: RegionState | undefined
    try {
      state = name === '' ? undefined : this.lookup(name)
    } catch (err) {
      this.log.error({ region: name, err: String(err) }, 'gateway:app-ws region lookup failed')
      refuseUpgrade(socket, 503, 'EM_ERR_UNAVAILABLE', 'region lookup failed')
      return
    }
    if (state === undefined) {
      refuseUpgrade(socket, 404, 'EM_ERR_NOT_FOUND', `no region ${JSON.stringify(name)} here`)
      return
    }
    const found = state
    this.wss.handleUpgrade(req, socket, head, ws => {
      if (this.closing !== undefined) {
        ws.terminate()
        return
      }
      this.connect(ws, found, name, req.socket.remoteAddress)
    })
  }

  private connect (ws: WebSocket, state: RegionState, name: string, remote: string | undefined): void {
    const room = this.rooms.get(state) ?? this.openRoom(state, name)
    const client: AppClient = { id: this.nextId++, ws, room, remote, awarenessIds: new Set(), slack: 0, closing: false }
    room.clients.set(ws, client)
    this.clientCount++
    ws.on('message', (data, isBinary) => { this.receive(client, data, isBinary) })
    ws.on('error', err => { this.onSocketError(client, err) })
    ws.on('close', () => { this.leave(client) })
    this.log.debug({ region: name, client: client.id, remote }, 'gateway:app-ws app connected')
    this.send(client, syncStep1Message(state.encodeStateVector()))
    if (room.awareness.getStates().size > 0) {
      this.send(client, awarenessMessage(encodeAwarenessUpdate(room.awareness, [...room.awareness.getStates().keys()])))
    }
  }

  private openRoom (state: RegionState, name: string): Room {
    // A doc of its own: Awareness listens to its doc's 'destroy' for good, and the region doc outlives rooms.
    const awareness = new Awareness(new Y.Doc())
    awareness.setLocalState(null)
    const room: Room = {
      name,
      state,
      awareness,
      clients: new Map(),
      onUpdate: update => { this.broadcast(room, syncUpdateMessage(update)) },
      onAwareness: (changes, origin) => { this.relayAwareness(room, changes, origin) }
    }
    state.on('update', room.onUpdate)
    awareness.on('update', room.onAwareness)
    this.rooms.set(state, room)
    return room
  }

  private leave (client: AppClient): void {
    const room = client.room
    if (room.clients.get(client.ws) !== client) return
    room.clients.delete(client.ws)
    this.clientCount--
    client.closing = true
    const ids = [...client.awarenessIds]
    if (ids.length > 0) {
      removeAwarenessStates(room.awareness, ids, null)
      // Forget their clocks too, so that the per-room metadata does not grow with every app ever seen.
      for (const id of ids) if (!room.awareness.states.has(id)) room.awareness.meta.delete(id)
    }
    this.log.debug({ region: room.name, client: client.id }, 'gateway:app-ws app left')
    if (room.clients.size === 0) this.closeRoom(room)
  }

  private closeRoom (room: Room): void {
    room.state.off('update', room.onUpdate)
    room.awareness.off('update', room.onAwareness)
    room.awareness.destroy()
    this.rooms.delete(room.state)
  }

  private onSocketError (client: AppClient, err: Error & { code?: string }): void {
    // ws reports frames it refuses (over maxPayload, bad opcode, invalid UTF-8) here and closes
    // the connection itself (1009, 1002, 1007).
    if (typeof err.code === 'string' && err.code.startsWith('WS_ERR_')) {
      this.invalid(client, err.message, err.code)
      return
    }
    this.log.debug({ region: client.room.name, client: client.id, err: String(err) }, 'gateway:app-ws socket error')
  }

  // ------------------------------------------------------------------ messages from apps

  private receive (client: AppClient, data: RawData, isBinary: boolean): void {
    this.counters.messagesIn++
    if (client.closing) return
    try {
      if (!isBinary) throw new MalformedMessage('text frames are not part of the protocol', CLOSE_UNSUPPORTED_DATA)
      this.handle(client, toBytes(data))
    } catch (err) {
      const malformed = err instanceof MalformedMessage
        ? err
        : new MalformedMessage(`undecodable message: ${err instanceof Error ? err.message : String(err)}`)
      this.invalid(client, malformed.message)
      client.closing = true
      client.ws.close(malformed.closeCode, malformed.closeReason)
    }
  }

  private handle (client: AppClient, bytes: Uint8Array): void {
    const dec = decoding.createDecoder(bytes)
    const type = readUint(dec, 'message type')
    switch (type) {
      case MESSAGE_SYNC: {
        const syncType = readUint(dec, 'sync message type')
        const data = readBytes(dec, 'sync payload')
        assertEnd(dec)
        if (syncType === syncProtocol.messageYjsSyncStep1) this.answerStep1(client, data)
        else if (syncType === syncProtocol.messageYjsSyncStep2 || syncType === syncProtocol.messageYjsUpdate) this.checkUpdate(client, data)
        else throw new MalformedMessage(`unknown sync message type ${syncType}`)
        return
      }
      case MESSAGE_AWARENESS: {
        const update = readBytes(dec, 'awareness update')
        assertEnd(dec)
        checkAwarenessUpdate(update)
        applyAwarenessUpdate(client.room.awareness, update, client)
        return
      }
      case MESSAGE_QUERY_AWARENESS: {
        assertEnd(dec)
        const awareness = client.room.awareness
        this.send(client, awarenessMessage(encodeAwarenessUpdate(awareness, [...awareness.getStates().keys()])))
        return
      }
      default:
        throw new MalformedMessage(`message type ${type} is not accepted from apps`)
    }
  }

  private answerStep1 (client: AppClient, sv: Uint8Array): void {
    let update: Uint8Array
    try {
      update = client.room.state.encodeStateAsUpdate(sv)
    } catch {
      throw new MalformedMessage('sync step 1 holds no valid state vector')
    }
    const msg = syncStep2Message(update)
    // Allowed on top of the limit once sent (send() resets the allowance while the buffer is under the limit).
    if (this.send(client, msg)) client.slack += msg.length
  }

  /** A step 2 or update from an app: never applied; refused if it carries anything new. */
  private checkUpdate (client: AppClient, update: Uint8Array): void {
    let news: boolean
    try {
      news = carriesNews(client.room.state.doc, update)
    } catch {
      throw new MalformedMessage('sync update is not a decodable Yjs update')
    }
    if (!news) return
    this.counters.refusedUpdates++
    const skipped = this.refusedLog.take()
    if (skipped !== undefined) {
      this.log.warn({ region: client.room.name, client: client.id, remote: client.remote, bytes: update.length, skipped },
        'gateway:app-ws refused an update from an app: apps are read-only')
    }
    this.send(client, permissionDeniedMessage('apps are read-only: updates are refused'))
  }

  private invalid (client: AppClient, reason: string, code?: string): void {
    this.counters.invalidMessages++
    const skipped = this.invalidLog.take()
    if (skipped !== undefined) {
      this.log.warn({ region: client.room.name, client: client.id, remote: client.remote, reason, code, skipped },
        'gateway:app-ws invalid message from an app, closing its connection')
    }
  }

  // ------------------------------------------------------------------ messages to apps

  private relayAwareness (room: Room, changes: AwarenessChanges, origin: unknown): void {
    // Updates an app sent come with the app as origin (see handle): it controls the states it announced.
    const from = origin instanceof Object && 'awarenessIds' in origin ? origin as AppClient : undefined
    if (from !== undefined && room.clients.get(from.ws) === from) {
      for (const id of changes.added) from.awarenessIds.add(id)
      for (const id of changes.updated) from.awarenessIds.add(id)
      for (const id of changes.removed) from.awarenessIds.delete(id)
    }
    const changed = changes.added.concat(changes.updated, changes.removed)
    if (changed.length === 0) return
    this.broadcast(room, awarenessMessage(encodeAwarenessUpdate(room.awareness, changed)))
  }

  private broadcast (room: Room, msg: Uint8Array): void {
    for (const client of room.clients.values()) this.send(client, msg)
  }

  /** Sends unless the app is closing; an app over its buffer bound is terminated instead. True if sent. */
  private send (client: AppClient, msg: Uint8Array): boolean {
    const ws = client.ws
    if (client.closing || ws.readyState !== WebSocket.OPEN) return false
    const buffered = ws.bufferedAmount
    if (buffered <= this.maxBufferedBytes) client.slack = 0
    else if (buffered > this.maxBufferedBytes + client.slack) {
      this.drop(client, buffered)
      return false
    }
    ws.send(msg)
    return true
  }

  private drop (client: AppClient, buffered: number): void {
    this.counters.dropped++
    client.closing = true
    const skipped = this.droppedLog.take()
    if (skipped !== undefined) {
      this.log.warn({ region: client.room.name, client: client.id, remote: client.remote, buffered, limit: this.maxBufferedBytes, skipped },
        'gateway:app-ws app reads too slowly, disconnecting it')
    }
    client.ws.terminate()
  }

  // ------------------------------------------------------------------ shutdown

  close (): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    this.server.off('upgrade', this.onUpgrade)
    const all: AppClient[] = []
    for (const room of this.rooms.values()) for (const c of room.clients.values()) all.push(c)
    const closed = all.map(c => new Promise<void>(resolve => {
      if (c.ws.readyState === WebSocket.CLOSED) resolve()
      else c.ws.once('close', () => { resolve() })
    }))
    for (const c of all) {
      c.closing = true
      c.ws.close(CLOSE_GOING_AWAY, 'gateway shutting down')
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    const timedOut = new Promise<void>(resolve => { timer = setTimeout(resolve, CLOSE_TIMEOUT_MS) })
    await Promise.race([Promise.all(closed), timedOut])
    clearTimeout(timer)
    for (const c of all) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate()
    await Promise.all(closed)
    await new Promise<void>(resolve => { this.wss.close(() => { resolve() }) })
    for (const room of [...this.rooms.values()]) this.closeRoom(room)
  }
}

/**
 * Serves app subscriptions on `init.server` (see the module doc): a stock y-websocket client
 * syncs a read-only replica of a region doc from `${path}/${region}`.
 *
 * @example
 * ```ts
 * const sockets = attachAppSockets({ server: app.server, path: '/v1/docs', region: name => mesh.region(name), logger })
 * // client: new WebsocketProvider('ws://127.0.0.1:8080/v1/docs', 'eu-west', doc, { WebSocketPolyfill: WebSocket })
 * await sockets.close()
 * ```
 */
export function attachAppSockets (init: AppSocketsInit): AppSockets {
  return new AppSocketServer(init)
}
