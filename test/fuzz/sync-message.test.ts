/**
 * Fuzzing of sync messages (`decodeSyncMessage`, packages/mesh/src/sync-message.ts) and of their
 * y-protocols payload as the mesh uses it: a step 1's state vector is answered with
 * `RegionState.encodeStateAsUpdate(stateVector)`, a step 2's update is applied with
 * `RegionState.applyUpdate`.
 *
 * Inputs: valid step 1, step 2 and done messages of real region state; the same with bytes
 * flipped, set, inserted, deleted, duplicated, truncated, spliced, and length prefixes (region
 * length, type, payload length) changed; well-framed messages whose payload is mutated; random
 * bytes; any of those as a view inside a larger buffer. Each must decode to what a reference
 * parser written from docs/PROTOCOL.md reads, or be refused with EM_ERR_INVALID_UPDATE; every
 * message in the documented form must decode. A decoded step 1 for the region must be answered
 * with a decodable Yjs update, with the replica unchanged; a decoded step 2 is applied or refused
 * with nothing changed (see region-corpus.ts).
 *
 * FUZZ_RUNS inputs per property (see fuzz-settings.ts); replay with FUZZ_SEED (and FUZZ_PATH).
 */
import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import * as Y from 'yjs'
import { EdgeMeshError } from '@edge-mesh/errors'
import { STEP1, STEP2, SYNC_VERSION, decodeSyncMessage, encodeSyncMessage, type SyncMessage } from '../../packages/mesh/src/sync-message.ts'
import { maybeEmbedded, mutatedArb, validArb, varuintBytes, type CorpusEntry } from './byte-mutations.ts'
import { FUZZ_RUNS, HangGuard, Outcomes, check, fuzzParameters } from './fuzz-settings.ts'
import { REGION, TargetRegion, buildRegionCorpus, fingerprint } from './region-corpus.ts'
import { SpecReader, hex, sameBytes, staysInView } from './spec-reader.ts'

const guard = new HangGuard('sync messages')
test.after.always(async () => { await guard.stop() })

const corpus = buildRegionCorpus()
const utf8 = new TextEncoder()

/** A message as encodeSyncMessage writes it, with the offsets of its region length, type and payload length. */
function messageEntry (msg: SyncMessage): CorpusEntry {
  const bytes = encodeSyncMessage(msg)
  if (msg.type === 'done') return { bytes, prefixes: [1] }
  const regionLength = utf8.encode(msg.region).length
  const typeAt = 1 + varuintBytes(regionLength).length + regionLength
  return { bytes, prefixes: [1, typeAt, typeAt + 1] }
}

const messages: CorpusEntry[] = [messageEntry({ type: 'done' })]
for (const stateVector of corpus.stateVectors) messages.push(messageEntry({ type: 'step1', region: REGION, stateVector }))
for (const update of corpus.updates) messages.push(messageEntry({ type: 'step2', region: REGION, update }))
messages.push(messageEntry({ type: 'step1', region: 'us-east', stateVector: corpus.stateVectors[1] }))
messages.push(messageEntry({ type: 'step2', region: 'us-east', update: corpus.updates[0] }))

const payloads: CorpusEntry[] = [...corpus.stateVectors, ...corpus.updates].map(bytes => ({ bytes, prefixes: [] }))

/** The documented message layout, read by the reference reader: the message, or undefined if it is not one. */
function referenceMessage (bytes: Uint8Array, strict: boolean): SyncMessage | undefined {
  const r = new SpecReader(bytes, strict)
  if (r.u8() !== SYNC_VERSION) return undefined
  const region = r.str()
  if (region === undefined) return undefined
  if (region === '') return r.atEnd ? { type: 'done' } : undefined
  const type = r.varuint()
  const payload = r.bytesField()
  if (payload === undefined || !r.atEnd) return undefined
  if (type === STEP1) return referenceStateVector(payload, strict) ? { type: 'step1', region, stateVector: payload } : undefined
  if (type === STEP2) return { type: 'step2', region, update: payload }
  return undefined
}

/** A Yjs state vector: count, then count pairs (client, clock), nothing after. */
function referenceStateVector (bytes: Uint8Array, strict: boolean): boolean {
  const r = new SpecReader(bytes, strict)
  const n = r.varuint()
  if (n === undefined) return false
  for (let i = 0; i < n; i++) if (r.varuint() === undefined || r.varuint() === undefined) return false
  return r.atEnd
}

function payloadOf (m: SyncMessage): Uint8Array | undefined {
  return m.type === 'step1' ? m.stateVector : m.type === 'step2' ? m.update : undefined
}

function sameMessage (a: SyncMessage, b: SyncMessage): boolean {
  if (a.type !== b.type) return false
  if (a.type === 'done' || b.type === 'done') return true
  const pa = payloadOf(a) as Uint8Array
  const pb = payloadOf(b) as Uint8Array
  return a.region === b.region && sameBytes(pa, pb)
}

function describe (m: SyncMessage): string {
  const payload = payloadOf(m)
  return JSON.stringify(m.type === 'done' ? m : { type: m.type, region: m.region, payload: payload === undefined ? undefined : hex(payload) })
}

/** Messages whose framing is valid and whose payload may be mutated. */
const wellFramedArb = fc.tuple(fc.constantFrom(STEP1, STEP2), fc.oneof({ arbitrary: validArb(payloads), weight: 1 }, { arbitrary: mutatedArb(payloads), weight: 3 }))
  .map(([type, payload]) => encodeSyncMessage(type === STEP1 ? { type: 'step1', region: REGION, stateVector: payload } : { type: 'step2', region: REGION, update: payload }))

const messageInputArb = maybeEmbedded(fc.oneof(
  { arbitrary: validArb(messages), weight: 1 },
  { arbitrary: mutatedArb(messages), weight: 5 },
  { arbitrary: wellFramedArb, weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 256 }), weight: 1 }
))

test('sync messages: every mutated or random message decodes to what the reference parser reads or is refused with EM_ERR_INVALID_UPDATE; step 1 is answered and step 2 applied or refused with no state change', t => {
  const target = new TargetRegion(corpus)
  t.teardown(() => { target.reset() })
  const outcomes = new Outcomes()
  fc.assert(fc.property(messageInputArb, bytes => {
    target.begin()
    const decoded = guard.watch(bytes, () => {
      try {
        return { ok: true as const, msg: decodeSyncMessage(bytes) }
      } catch (err) {
        return { ok: false as const, err }
      }
    })
    const strict = referenceMessage(bytes, true)
    if (!decoded.ok) {
      const err = decoded.err
      check(err instanceof EdgeMeshError && err.code === 'EM_ERR_INVALID_UPDATE', () => `decodeSyncMessage threw a foreign error: ${String(err)} (code ${String((err as { code?: unknown }).code)})`)
      check(strict === undefined, () => `decodeSyncMessage refused a message in the documented form (${err.message}): ${describe(strict as SyncMessage)}`)
      outcomes.add('message refused')
      return
    }
    const msg = decoded.msg
    const lenient = referenceMessage(bytes, false)
    check(lenient !== undefined, () => `decodeSyncMessage accepted bytes that are not a message: ${describe(msg)}`)
    check(sameMessage(msg, lenient), () => `decodeSyncMessage read ${describe(msg)}, the reference parser ${describe(lenient)}`)
    const payload = payloadOf(msg)
    check(payload === undefined || staysInView(payload, bytes), () => 'the decoded payload reaches outside the input view')
    check(sameMessage(decodeSyncMessage(encodeSyncMessage(msg)), msg), () => 'the decoded message does not round-trip')
    outcomes.add(`${msg.type} decoded`)
    // What the mesh does with it.
    if (msg.type === 'done' || msg.region !== REGION) return
    if (msg.type === 'step1') {
      const r = target.state
      const before = fingerprint(r, corpus.sensors)
      const answer = guard.watch(msg.stateVector, () => {
        try {
          return { ok: true as const, diff: r.encodeStateAsUpdate(msg.stateVector) }
        } catch (err) {
          return { ok: false as const, err }
        }
      })
      check(fingerprint(r, corpus.sensors) === before, () => 'answering a step 1 changed the replica')
      if (!answer.ok) {
        const err = answer.err
        check(err instanceof EdgeMeshError && err.code === 'EM_ERR_INVALID_UPDATE', () => `encodeStateAsUpdate(stateVector) threw a foreign error: ${String(err)}`)
        outcomes.add('step 1 refused')
        return
      }
      assert.doesNotThrow(() => Y.decodeUpdate(answer.diff), 'the answer to a step 1 is not a Yjs update')
      outcomes.add('step 1 answered')
      return
    }
    const applied = guard.watch(msg.update, () => target.apply(msg.update))
    outcomes.add(applied.ok ? (applied.changed ? 'step 2 applied' : 'step 2 changed nothing') : `step 2 refused ${applied.code}`)
  }), fuzzParameters())
  t.log(`${FUZZ_RUNS} inputs: ${outcomes.toString()}`)
  t.true(outcomes.get('message refused') > 0, 'some inputs are refused')
  t.true(outcomes.get('step1 decoded') > 0 && outcomes.get('step2 decoded') > 0, 'steps 1 and 2 decode')
  t.true(outcomes.get('step 1 answered') > 0, 'some step 1 messages are answered')
  t.true(outcomes.get('step 2 applied') > 0, 'some step 2 updates change the replica')
  t.true(outcomes.get('step 2 refused EM_ERR_INVALID_UPDATE') > 0, 'some step 2 updates are refused')
})
