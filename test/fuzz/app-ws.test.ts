/**
 * Fuzzing of the WebSocket messages apps send (packages/gateway/src/app-ws.ts, `attachAppSockets`),
 * through real `ws` clients against a node:http server holding a real region state.
 *
 * Inputs: sequences of one to three messages: valid y-websocket messages (sync step 1 with various
 * state vectors; step 2 and update messages that carry nothing new, and ones that carry a forged
 * reading or a deletion; awareness updates; awareness queries; the gateway-only auth message),
 * the same with bytes flipped, set, inserted, deleted, duplicated, truncated, spliced and length
 * prefixes changed, well-framed messages with mutated payloads, random bytes, text frames and
 * frames over the size limit. Many messages go over one connection; when the gateway closes it
 * (the documented answer to malformed input: 1003 for text, 1008 for undecodable bytes, 1009 for
 * an oversized frame) the next input reconnects.
 *
 * Each input is followed by an awareness update of a reserved client id with a fresh clock: the
 * gateway relays it back, so its echo marks the point where every earlier message has been handled
 * and answered. Checked for every input: the connection is closed exactly when an independent
 * reading of the framing (with Yjs and JSON as the judges of payloads) finds a malformed message,
 * with that message's close code, and `invalidMessages` counts it; every message the gateway sends
 * decodes; an auth "permission denied" arrives exactly when `refusedUpdates` grows, and for the
 * unmutated forged updates; the region (doc, view, stats, clock) never changes. Afterwards the
 * gateway still serves: a new app syncs the region and receives a live write.
 *
 * FUZZ_RUNS inputs (see fuzz-settings.ts); replay with FUZZ_SEED (and FUZZ_PATH).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import fc from 'fast-check'
import { pino } from 'pino'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { createRegionState, type RegionState } from '@edge-mesh/region-state'
import { fakeClock } from '@edge-mesh/testkit'
import { attachAppSockets } from '../../packages/gateway/src/app-ws.ts'
import { mutatedArb, validArb, type CorpusEntry } from './byte-mutations.ts'
import { FUZZ_RUNS, HangGuard, Outcomes, check, fuzzParameters, shortJson } from './fuzz-settings.ts'
import { fingerprint } from './region-corpus.ts'
import { SpecReader, hex } from './spec-reader.ts'

const guard = new HangGuard('app WebSocket')
test.after.always(async () => { await guard.stop() })

const REGION = 'eu-west'
const PATH = '/v1/docs'
const MAX_MESSAGE_BYTES = 64 * 1024
/** The awareness client id of the marker that follows every input. */
const MARKER_ID = 0x7ffffff1

// ------------------------------------------------------------------ the region and its messages

function message (write: (enc: encoding.Encoder) => void): Uint8Array {
  const enc = encoding.createEncoder()
  write(enc)
  return encoding.toUint8Array(enc)
}

const syncMessage = (syncType: number, payload: Uint8Array): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, 0)
  encoding.writeVarUint(enc, syncType)
  encoding.writeVarUint8Array(enc, payload)
})
const awarenessMessage = (update: Uint8Array): Uint8Array => message(enc => {
  encoding.writeVarUint(enc, 1)
  encoding.writeVarUint8Array(enc, update)
})

function awarenessUpdate (clientID: number, clock: number, state: unknown): Uint8Array {
  return message(enc => {
    encoding.writeVarUint(enc, 1)
    encoding.writeVarUint(enc, clientID)
    encoding.writeVarUint(enc, clock)
    encoding.writeVarString(enc, JSON.stringify(state))
  })
}

/** The region the gateway serves: readings of every kind, a deletion, a compaction step. */
function servedRegion (): RegionState {
  // A clock that stands still, so that the view's ages do not change between inputs.
  const clock = fakeClock(1_700_000_000_000)
  const r = createRegionState({ region: REGION, writer: 'gw-a', now: clock.now, maintenanceIntervalMs: 0 })
  for (let i = 0; i < 12; i++) r.put('line-1/temp', i)
  r.putMany([{ sensor: 'line-2/state', value: { ok: true } }, { sensor: 'line-3/rpm', value: 1450 }, { sensor: 'line-4/name', value: 'press' }])
  r.delete('line-4/name')
  r.compactStep()
  return r
}

/** Sync and awareness messages an app may send, labelled with the answer they must get. */
interface AppMessage extends CorpusEntry {
  /** 'denied': refused with permission denied; 'silent': dropped without an answer. */
  expect?: 'denied' | 'silent'
}

function appMessages (region: RegionState): AppMessage[] {
  const out: AppMessage[] = []
  const sync = (syncType: number, payload: Uint8Array, expect?: AppMessage['expect']): void => {
    out.push({ bytes: syncMessage(syncType, payload), prefixes: [0, 1, 2], expect })
  }
  const empty = new Y.Doc()
  const partial = new Y.Doc()
  Y.applyUpdate(partial, Y.encodeStateAsUpdate(region.doc, Y.encodeStateVector(empty)))
  sync(0, Y.encodeStateVector(empty))
  sync(0, region.encodeStateVector())
  sync(0, Uint8Array.from([2, 1, 0, 7, 3]))
  // What the region already has: dropped silently (the stock client's reply to the gateway's step 1).
  for (const syncType of [1, 2]) {
    sync(syncType, Y.encodeStateAsUpdate(empty), 'silent')
    sync(syncType, region.encodeStateAsUpdate(), 'silent')
    sync(syncType, region.encodeStateAsUpdate(region.encodeStateVector()), 'silent')
  }
  // A reading forged by an app's own writer, and a deletion the region has not made: refused.
  const forger = createRegionState({ region: REGION, writer: 'app-forger', maintenanceIntervalMs: 0 })
  const forged: Uint8Array[] = []
  forger.on('update', (u, local) => { if (local) forged.push(u) })
  forger.put('line-1/temp', 99)
  forger.close()
  const deleter = new Y.Doc()
  Y.applyUpdate(deleter, region.encodeStateAsUpdate())
  const deletion: Uint8Array[] = []
  deleter.on('update', (u: Uint8Array) => { deletion.push(u) })
  const log = deleter.getArray(`w/${region.writer as string}`)
  log.delete(log.length - 1, 1)
  for (const syncType of [1, 2]) {
    sync(syncType, forged[0], 'denied')
    sync(syncType, deletion[0], 'denied')
  }
  const aw = new Awareness(new Y.Doc())
  aw.setLocalState({ user: 'app', cursor: { x: 1 } })
  out.push({ bytes: awarenessMessage(encodeAwarenessUpdate(aw, [aw.clientID])), prefixes: [0, 1, 2, 3] })
  out.push({ bytes: awarenessMessage(awarenessUpdate(12345, 3, null)), prefixes: [0, 1, 2, 3] })
  aw.destroy()
  out.push({ bytes: Uint8Array.of(3), prefixes: [0] })
  out.push({ bytes: message(enc => { encoding.writeVarUint(enc, 2); encoding.writeVarUint(enc, 0); encoding.writeVarString(enc, 'no') }), prefixes: [0, 1, 2] })
  return out
}

// ------------------------------------------------------------------ the contract, read independently

type Verdict = { ok: true } | { ok: false, code: 1003 | 1008 | 1009 }

/** What the gateway must do with one frame (see the wire description in docs/PROTOCOL.md). */
function verdict (frame: Frame, doc: Y.Doc): Verdict {
  if (frame.text !== undefined) return { ok: false, code: 1003 }
  const bytes = frame.bytes
  if (bytes.length > MAX_MESSAGE_BYTES) return { ok: false, code: 1009 }
  const malformed = { ok: false, code: 1008 } as const
  const r = new SpecReader(bytes, false)
  const type = r.varuint()
  if (type === 0) {
    const syncType = r.varuint()
    const payload = r.bytesField()
    if (payload === undefined || !r.atEnd) return malformed
    try {
      if (syncType === 0) Y.encodeStateAsUpdate(doc, payload)
      else if (syncType === 1 || syncType === 2) Y.decodeUpdate(payload)
      else return malformed
    } catch {
      return malformed
    }
    return { ok: true }
  }
  if (type === 1) {
    const update = r.bytesField()
    if (update === undefined || !r.atEnd) return malformed
    const u = new SpecReader(update, false)
    const n = u.varuint()
    if (n === undefined) return malformed
    for (let i = 0; i < n; i++) {
      if (u.varuint() === undefined || u.varuint() === undefined) return malformed
      const json = u.str()
      if (json === undefined) return malformed
      let state: unknown
      try {
        state = JSON.parse(json)
      } catch {
        return malformed
      }
      if (state !== null && (typeof state !== 'object' || Array.isArray(state))) return malformed
    }
    return u.atEnd ? { ok: true } : malformed
  }
  if (type === 3) return r.atEnd ? { ok: true } : malformed
  return malformed
}

/** A message the gateway sent, decoded; throws if it is not one of the documented gateway → app messages. */
function decodeGatewayMessage (bytes: Uint8Array): { type: 'sync', syncType: number } | { type: 'awareness', states: Map<number, unknown> } | { type: 'denied' } {
  const dec = decoding.createDecoder(bytes)
  const type = decoding.readVarUint(dec)
  let out: ReturnType<typeof decodeGatewayMessage>
  if (type === 0) {
    const syncType = decoding.readVarUint(dec)
    const payload = decoding.readVarUint8Array(dec)
    if (syncType === 0) Y.decodeStateVector(payload)
    else if (syncType === 1 || syncType === 2) Y.decodeUpdate(payload)
    else throw new Error(`sync type ${syncType}`)
    out = { type: 'sync', syncType }
  } else if (type === 1) {
    const u = decoding.createDecoder(decoding.readVarUint8Array(dec))
    const states = new Map<number, unknown>()
    const n = decoding.readVarUint(u)
    for (let i = 0; i < n; i++) {
      const id = decoding.readVarUint(u)
      decoding.readVarUint(u)
      states.set(id, JSON.parse(decoding.readVarString(u)))
    }
    if (decoding.hasContent(u)) throw new Error('trailing bytes in an awareness update')
    out = { type: 'awareness', states }
  } else if (type === 2) {
    if (decoding.readVarUint(dec) !== 0) throw new Error('an auth message other than permission denied')
    decoding.readVarString(dec)
    out = { type: 'denied' }
  } else {
    throw new Error(`message type ${type}`)
  }
  if (decoding.hasContent(dec)) throw new Error('trailing bytes')
  return out
}

// ------------------------------------------------------------------ inputs

/** One WebSocket frame: binary bytes, or text. */
interface Frame {
  bytes: Uint8Array
  text?: string
  /** The answer an unmutated corpus message must get. */
  expect?: AppMessage['expect']
}

const describeFrame = (f: Frame): string => f.text !== undefined ? `text ${JSON.stringify(f.text.slice(0, 100))}` : f.bytes.length > 512 ? `${f.bytes.length} bytes` : `bytes ${hex(f.bytes)}`

function frameArb (corpus: AppMessage[]): fc.Arbitrary<Frame> {
  const payloads: CorpusEntry[] = corpus.map(m => {
    const dec = decoding.createDecoder(m.bytes)
    const type = decoding.readVarUint(dec)
    if (type === 0) decoding.readVarUint(dec)
    return { bytes: type === 0 || type === 1 ? decoding.readVarUint8Array(dec) : new Uint8Array(0), prefixes: [] }
  })
  const wellFramed = fc.tuple(fc.constantFrom(0, 1, 2), mutatedArb(payloads)).map(([syncType, p]) => ({ bytes: syncMessage(syncType, p) }))
  return fc.oneof(
    { arbitrary: fc.nat({ max: corpus.length - 1 }).map(i => ({ bytes: corpus[i].bytes, expect: corpus[i].expect })), weight: 12 },
    { arbitrary: mutatedArb(corpus).map(bytes => ({ bytes })), weight: 5 },
    { arbitrary: wellFramed, weight: 3 },
    { arbitrary: validArb(payloads).map(p => ({ bytes: awarenessMessage(p) })), weight: 1 },
    { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map(bytes => ({ bytes })), weight: 1 },
    { arbitrary: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('\u0000\u0001')).map(text => ({ bytes: new Uint8Array(0), text })), weight: 1 }
  )
}

const OVERSIZED: Frame = { bytes: new Uint8Array(MAX_MESSAGE_BYTES + 1).fill(7) }

// ------------------------------------------------------------------ the app connection

interface AppConnection {
  ws: WebSocket
  /** Messages received since the current input was sent. */
  received: Uint8Array[]
  closed: number | undefined
  /** Called on every message and on close. */
  wake: () => void
}

async function connect (url: string): Promise<AppConnection> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const c: AppConnection = { ws, received: [], closed: undefined, wake: () => {} }
  ws.on('message', (data: Buffer) => {
    c.received.push(new Uint8Array(data))
    c.wake()
  })
  ws.on('close', code => {
    c.closed = code
    c.wake()
  })
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('error', reject)
  })
  return c
}

/** Resolves once `cond()` holds, re-checked whenever the connection receives something or closes. */
async function until (c: AppConnection, cond: () => boolean): Promise<void> {
  if (cond()) return
  await new Promise<void>(resolve => {
    c.wake = () => {
      if (cond()) {
        c.wake = () => {}
        resolve()
      }
    }
  })
}

// ------------------------------------------------------------------ the property

test('app WebSocket: every message is handled, refused with permission denied, or closes its connection with the documented code; the region never changes and the gateway keeps serving', async t => {
  const region = servedRegion()
  t.teardown(() => { region.close() })
  const server = http.createServer((_req, res) => { res.statusCode = 404; res.end() })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  const sockets = attachAppSockets({ server, path: PATH, region: name => name === REGION ? region : undefined, logger: pino({ level: 'silent' }), maxMessageBytes: MAX_MESSAGE_BYTES })
  t.teardown(async () => {
    await sockets.close()
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}${PATH}/${REGION}`
  const corpus = appMessages(region)
  const sensors = ['line-1/temp', 'line-2/state', 'line-3/rpm', 'line-4/name']
  const initial = fingerprint(region, sensors)
  const outcomes = new Outcomes()
  let app: AppConnection | undefined
  let markerClock = 0
  t.teardown(() => { app?.ws.terminate() })

  const inputArb = fc.array(fc.oneof({ arbitrary: frameArb(corpus), weight: 40 }, { arbitrary: fc.constant(OVERSIZED), weight: 1 }), { minLength: 1, maxLength: 3 })

  await fc.assert(fc.asyncProperty(inputArb, async frames => {
    const described = frames.map(describeFrame).join(' | ')
    await guard.watchAsync(described, described, async () => {
      if (app === undefined || app.closed !== undefined || app.ws.readyState !== WebSocket.OPEN) {
        app?.ws.terminate()
        app = await connect(url)
        outcomes.add('connection')
      }
      const c = app
      const before = sockets.stats()
      c.received = []
      const marker = ++markerClock
      for (const f of frames) {
        if (f.text !== undefined) c.ws.send(f.text)
        else c.ws.send(f.bytes, { binary: true })
      }
      c.ws.send(awarenessMessage(awarenessUpdate(MARKER_ID, marker, { marker })), { binary: true })
      const echoed = (): boolean => c.received.some(m => {
        try {
          const d = decodeGatewayMessage(m)
          // The state, not the clock: removing the marker of a closed connection also bumps its clock.
          return d.type === 'awareness' && (d.states.get(MARKER_ID) as { marker?: number } | null | undefined)?.marker === marker
        } catch {
          return false // reported below
        }
      })
      await until(c, () => c.closed !== undefined || echoed())
      // After a close, ws may still hand over messages that were in flight: all were sent before it.
      const after = sockets.stats()
      const verdicts = frames.map(f => verdict(f, region.doc))
      const firstBad = verdicts.findIndex(v => !v.ok)
      const handled = firstBad === -1 ? frames : frames.slice(0, firstBad)
      if (firstBad === -1) {
        check(c.closed === undefined, () => `${described}: the connection closed with ${String(c.closed)}, but every message is well formed`)
        check(after.invalidMessages === before.invalidMessages, () => `${described}: counted as invalid`)
      } else {
        const want = verdicts[firstBad] as { ok: false, code: number }
        // The marker comes back only if the connection stayed open past the malformed message.
        check(c.closed !== undefined, () => `${described}: message ${firstBad} is malformed, but the gateway handled the messages after it`)
        check(c.closed === want.code, () => `${described}: message ${firstBad} must close the connection with ${want.code}, got ${String(c.closed)}`)
        // One count for the message that closed the connection; ws may also report (and the
        // gateway count) an oversized frame that arrives while the connection is closing.
        const lateOversized = frames.slice(firstBad + 1).filter(f => f.text === undefined && f.bytes.length > MAX_MESSAGE_BYTES).length
        const grew = after.invalidMessages - before.invalidMessages
        check(grew >= 1 && grew <= 1 + lateOversized, () => `${described}: invalidMessages grew by ${grew}`)
        outcomes.add(`closed ${want.code}`)
      }
      let denied = 0
      for (const m of c.received) {
        let d: ReturnType<typeof decodeGatewayMessage>
        try {
          d = decodeGatewayMessage(m)
        } catch (err) {
          throw new Error(`${described}: the gateway sent an undecodable message ${hex(m)}: ${String(err)}`)
        }
        if (d.type === 'denied') denied++
      }
      check(denied === after.refusedUpdates - before.refusedUpdates, () => `${described}: ${denied} permission denied messages, refusedUpdates grew by ${after.refusedUpdates - before.refusedUpdates}`)
      const wantDenied = handled.filter(f => f.expect === 'denied').length
      const wantSilent = handled.filter(f => f.expect !== undefined).length - wantDenied
      if (handled.every(f => f.expect !== undefined)) {
        check(denied === wantDenied, () => `${described}: ${denied} permission denied messages for ${wantDenied} forged updates and ${wantSilent} updates carrying nothing new`)
      }
      if (denied > 0) outcomes.add('permission denied')
      if (firstBad === -1) outcomes.add('handled')
      const now = fingerprint(region, sensors)
      check(now === initial, () => `${described}: the region changed:\nbefore ${initial}\nafter  ${now}`)
    })
  }), fuzzParameters())
  app?.ws.terminate()
  t.log(`${FUZZ_RUNS} inputs: ${outcomes.toString()}`)
  t.true(outcomes.get('handled') > 0 && outcomes.get('closed 1008') > 0, 'messages are handled and malformed ones close their connection')
  t.true(outcomes.get('permission denied') > 0, 'forged updates are refused')

  // The gateway keeps serving: a new app syncs the whole region and receives a live write.
  const fresh = await connect(url)
  t.teardown(() => { fresh.ws.terminate() })
  const replica = createRegionState({ region: REGION, readOnly: true, maintenanceIntervalMs: 0 })
  t.teardown(() => { replica.close() })
  fresh.ws.send(syncMessage(0, Y.encodeStateVector(new Y.Doc())), { binary: true })
  const syncPayloads = (): Uint8Array[] => fresh.received.flatMap(m => {
    const dec = decoding.createDecoder(m)
    if (decoding.readVarUint(dec) !== 0 || decoding.readVarUint(dec) === 0) return []
    return [decoding.readVarUint8Array(dec)]
  })
  await guard.watchAsync('a new app syncing', 'a new app syncing', async () => { await until(fresh, () => syncPayloads().length >= 1) })
  for (const u of syncPayloads()) replica.applyUpdate(u)
  t.deepEqual(replica.list(), region.list())
  for (const s of region.list()) t.deepEqual(replica.get(s)?.value, region.get(s)?.value)
  region.put('after/fuzz', 1)
  await guard.watchAsync('a live write', 'a live write', async () => { await until(fresh, () => syncPayloads().length >= 2) })
  for (const u of syncPayloads().slice(1)) replica.applyUpdate(u)
  t.is(replica.get('after/fuzz')?.value, 1)
  t.is(sockets.stats().dropped, 0)
  t.log(shortJson(sockets.stats()))
})
