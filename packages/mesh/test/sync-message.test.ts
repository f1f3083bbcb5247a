/**
 * Sync messages (src/sync-message.ts): round trips, and the decoder's contract that anything that
 * is not exactly one valid message is refused with EM_ERR_INVALID_UPDATE.
 */
import test from 'ava'
import fc from 'fast-check'
import { createRegionState } from '@edge-mesh/region-state'
import { SYNC_PROTOCOL, SYNC_VERSION, decodeSyncMessage, encodeSyncMessage, type SyncMessage } from '../src/index.ts'
import { STEP1, STEP2 } from '../src/sync-message.ts'

const RUNS = 500
const INVALID = { code: 'EM_ERR_INVALID_UPDATE' } as const
const utf8 = new TextEncoder()

function varuint (v: number): number[] {
  const out: number[] = []
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

const str = (s: string): number[] => { const b = utf8.encode(s); return [...varuint(b.length), ...b] }

/** A message as plain data, for deepEqual independent of views on the decoded buffer. */
function plain (m: SyncMessage): unknown {
  if (m.type === 'done') return { type: 'done' }
  if (m.type === 'step1') return { type: 'step1', region: m.region, stateVector: Array.from(m.stateVector) }
  return { type: 'step2', region: m.region, update: Array.from(m.update) }
}

const regionArb = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 })
/** A Yjs state vector: count, then (client, clock) pairs. */
const stateVectorArb = fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 12 })
  .map(pairs => Uint8Array.from([...varuint(pairs.length), ...pairs.flatMap(([client, clock]) => [...varuint(client), ...varuint(clock)])]))
const messageArb: fc.Arbitrary<SyncMessage> = fc.oneof(
  fc.record({ type: fc.constant('step1' as const), region: regionArb, stateVector: stateVectorArb }),
  fc.record({ type: fc.constant('step2' as const), region: regionArb, update: fc.uint8Array({ maxLength: 400 }) }),
  fc.constant({ type: 'done' as const })
)

function outcome (bytes: Uint8Array): { ok: true, msg: SyncMessage } | { ok: false, code: unknown } {
  try {
    return { ok: true, msg: decodeSyncMessage(bytes) }
  } catch (err) {
    return { ok: false, code: (err as { code?: unknown }).code }
  }
}

const refused = (bytes: Uint8Array): boolean => { const o = outcome(bytes); return !o.ok && o.code === 'EM_ERR_INVALID_UPDATE' }

test('the protocol id and version are the documented ones', t => {
  t.is(SYNC_PROTOCOL, '/edge-mesh/sync/1.0.0')
  t.is(SYNC_VERSION, 1)
  t.is(STEP1, 0)
  t.is(STEP2, 1)
})

test('step 1, step 2 and done of real region state round-trip', t => {
  const a = createRegionState({ region: 'eu-west', writer: 'gw-a', maintenanceIntervalMs: 0 })
  const b = createRegionState({ region: 'eu-west', writer: 'gw-b', maintenanceIntervalMs: 0 })
  t.teardown(() => { a.close(); b.close() })
  a.put('line-1/temp', 21.5)
  const step1 = decodeSyncMessage(encodeSyncMessage({ type: 'step1', region: 'eu-west', stateVector: b.encodeStateVector() }))
  t.deepEqual(plain(step1), plain({ type: 'step1', region: 'eu-west', stateVector: b.encodeStateVector() }))
  if (step1.type !== 'step1') return t.fail()
  const diff = a.encodeStateAsUpdate(step1.stateVector)
  const step2 = decodeSyncMessage(encodeSyncMessage({ type: 'step2', region: 'eu-west', update: diff }))
  if (step2.type !== 'step2') return t.fail()
  t.deepEqual(Array.from(step2.update), Array.from(diff))
  b.applyUpdate(step2.update)
  t.is(b.get('line-1/temp')?.value, 21.5)
  t.deepEqual(decodeSyncMessage(encodeSyncMessage({ type: 'done' })), { type: 'done' })
  t.deepEqual(Array.from(encodeSyncMessage({ type: 'done' })), [SYNC_VERSION, 0])
})

test('any sync message round-trips', t => {
  fc.assert(fc.property(messageArb, m => JSON.stringify(plain(decodeSyncMessage(encodeSyncMessage(m)))) === JSON.stringify(plain(m))), { numRuns: RUNS })
  t.pass()
})

test('every truncation of a valid sync message is refused with EM_ERR_INVALID_UPDATE', t => {
  fc.assert(fc.property(messageArb, m => {
    const bytes = encodeSyncMessage(m)
    for (let k = 0; k < bytes.length; k++) {
      if (!refused(bytes.slice(0, k)) || !refused(bytes.subarray(0, k))) return false
    }
    return true
  }), { numRuns: RUNS })
  t.pass()
})

test('trailing bytes after a valid sync message (done included) are refused', t => {
  fc.assert(fc.property(messageArb, fc.uint8Array({ minLength: 1, maxLength: 16 }), (m, extra) => {
    const bytes = encodeSyncMessage(m)
    return refused(Uint8Array.from([...bytes, ...extra]))
  }), { numRuns: RUNS })
  t.throws(() => decodeSyncMessage(Uint8Array.from([1, 0, 0])), INVALID)
})

test('an unknown sync message version is refused', t => {
  fc.assert(fc.property(messageArb, fc.integer({ min: 0, max: 255 }), (m, v) => {
    fc.pre(v !== SYNC_VERSION)
    const bytes = encodeSyncMessage(m)
    bytes[0] = v
    return refused(bytes)
  }), { numRuns: RUNS })
  t.throws(() => decodeSyncMessage(Uint8Array.from([2, 0])), INVALID)
  t.throws(() => decodeSyncMessage(Uint8Array.from([0, ...str('eu-west'), 0, 0])), INVALID)
})

test('an unknown y-protocols message type is refused', t => {
  fc.assert(fc.property(regionArb, fc.integer({ min: 2, max: 2 ** 31 }), fc.uint8Array({ maxLength: 32 }), (region, type, payload) => {
    return refused(Uint8Array.from([SYNC_VERSION, ...str(region), ...varuint(type), ...varuint(payload.length), ...payload]))
  }), { numRuns: RUNS })
  // Type 2 is y-protocols' "update" message, which this protocol does not use.
  t.throws(() => decodeSyncMessage(Uint8Array.from([1, ...str('eu-west'), 2, 0])), INVALID)
})

test('a payload length running past the end of the message is refused', t => {
  t.throws(() => decodeSyncMessage(Uint8Array.from([1, ...str('eu-west'), STEP2, ...varuint(1000), 1, 2, 3])), INVALID)
  t.throws(() => decodeSyncMessage(Uint8Array.from([1, ...str('eu-west'), STEP1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])), INVALID)
  t.throws(() => decodeSyncMessage(new Uint8Array(0)), INVALID)
})

/** A version byte, a region field of random bytes, then random bytes. */
const headerThenRandom = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }))
  .map(([region, rest]) => Uint8Array.from([SYNC_VERSION, ...varuint(region.length), ...region, ...rest]))

/** A version byte and a well-formed region name (or done's empty one), then random bytes. */
const validHeadThenRandom = fc.tuple(fc.oneof(regionArb, fc.constant('')), fc.uint8Array({ maxLength: 200 }))
  .map(([region, rest]) => Uint8Array.from([SYNC_VERSION, ...str(region), ...rest]))

/** A valid message with one byte after the region name replaced: it often still decodes. */
const mutatedAfterRegion = fc.tuple(messageArb, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([m, at, v]) => {
  const bytes = encodeSyncMessage(m)
  const head = 1 + str(m.type === 'done' ? '' : m.region).length
  if (bytes.length > head) bytes[head + (at % (bytes.length - head))] = v
  return bytes
})

function decodesOrIsInvalid (bytes: Uint8Array): boolean {
  const o = outcome(bytes)
  if (!o.ok) return o.code === 'EM_ERR_INVALID_UPDATE'
  return JSON.stringify(plain(decodeSyncMessage(encodeSyncMessage(o.msg)))) === JSON.stringify(plain(o.msg))
}

test('random bytes behind a version byte and a well-formed region name, and valid messages with a byte changed after the region, either decode or are refused with EM_ERR_INVALID_UPDATE', t => {
  let decoded = 0
  fc.assert(fc.property(fc.oneof(validHeadThenRandom, mutatedAfterRegion), bytes => {
    if (outcome(bytes).ok) decoded++
    return decodesOrIsInvalid(bytes)
  }), { numRuns: RUNS })
  t.true(decoded > 0, 'some random inputs decode, so both outcomes are exercised')
})

/*
 * Bug: a region name that is not valid UTF-8 escapes decodeSyncMessage as a TypeError with code
 * ERR_ENCODING_INVALID_ENCODED_DATA instead of an InvalidUpdateError. Input: [1, 1, 0x80]
 * (version 1, a 1-byte region 0x80). Expected: EM_ERR_INVALID_UPDATE. Actual: TypeError
 * [ERR_ENCODING_INVALID_ENCODED_DATA] thrown by lib0's readVarString (its TextDecoder is fatal).
 * Cause: the catch in decodeSyncMessage (src/sync-message.ts, `if (err instanceof Error && 'code'
 * in err) throw err`) rethrows every error carrying a `code`, Node's included, rather than only
 * EdgeMeshError. Plain fc.uint8Array() input hits this in roughly one 500-run suite in six; the
 * generator below also puts the version byte first so that it is found on every run. The mesh
 * still counts such a message as invalid (io.read's catch is unconditional) but logs the foreign
 * code.
 */
test('a sync message whose region name is not valid UTF-8 is refused with EM_ERR_INVALID_UPDATE', t => {
  t.throws(() => decodeSyncMessage(Uint8Array.from([1, 1, 0x80])), INVALID)
})

/* The same bug as above, found by the random-bytes property: see the comment there. */
test('random bytes either decode or are refused with EM_ERR_INVALID_UPDATE, never another error', t => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), headerThenRandom), bytes => decodesOrIsInvalid(bytes)), { numRuns: RUNS })
  t.pass()
})

/*
 * Found by fuzzing (test/fuzz/sync-message.test.ts): a step 1 whose payload is not a state vector
 * used to decode, and answering it (Y.encodeStateAsUpdate) then threw lib0's untyped "Unexpected
 * end of array". Input: [1, 7, ...'eu-west', 0, 2, 255, 1] (step 1, payload [255, 1]: a count of
 * 255 and no pairs).
 */
test('a step 1 whose payload is not exactly one Yjs state vector is refused with EM_ERR_INVALID_UPDATE', t => {
  const step1 = (payload: number[]): Uint8Array => Uint8Array.from([SYNC_VERSION, ...str('eu-west'), STEP1, ...varuint(payload.length), ...payload])
  t.throws(() => decodeSyncMessage(step1([255, 1])), INVALID)
  t.throws(() => decodeSyncMessage(step1([1, 5])), INVALID, 'a client without its clock')
  t.throws(() => decodeSyncMessage(step1([0, 0])), INVALID, 'a byte after the state vector')
  t.throws(() => decodeSyncMessage(step1([])), INVALID, 'no state vector at all')
  t.throws(() => decodeSyncMessage(step1([1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0])), INVALID, 'a client id beyond 2^53')
  const r = createRegionState({ region: 'eu-west', writer: 'gw-a', maintenanceIntervalMs: 0 })
  t.teardown(() => { r.close() })
  r.put('line-1/temp', 1)
  for (const sv of [r.encodeStateVector(), Uint8Array.from([0]), Uint8Array.from([2, 1, 0, 7, 3])]) {
    const msg = decodeSyncMessage(step1(Array.from(sv)))
    if (msg.type !== 'step1') return t.fail()
    t.notThrows(() => r.encodeStateAsUpdate(msg.stateVector))
  }
})
