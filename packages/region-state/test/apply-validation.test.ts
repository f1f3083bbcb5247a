import test from 'ava'
import fc from 'fast-check'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import type { ClockDriftError } from '@edge-mesh/errors'
import { createHlc, encodeTimestamp } from '@edge-mesh/hlc'
import type { RegionState } from '../src/index.ts'
import {
  KIND, buildChunk, fakeClock, fingerprint, plainArrayUpdate, recordLocalUpdates, region, T0, type FakeClock
} from './helpers.ts'

const ts = (logical: number, wall: number = T0): string => encodeTimestamp({ wall, logical })

/** A replica with some state of its own and from a peer, so that "unchanged" means something. */
function populated (): { clock: FakeClock, r: RegionState, peerUpdates: Uint8Array[] } {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a' })
  const peer = region(clock, { writer: 'gw-b' })
  const peerUpdates = recordLocalUpdates(peer)
  r.putMany([{ sensor: 'mine', value: 1 }, { sensor: 'gone', value: 2 }])
  r.delete('gone')
  peer.put('theirs', { x: 1 })
  r.applyUpdate(peerUpdates[0])
  peer.put('later', 'not yet delivered')
  return { clock, r, peerUpdates }
}

/** Applies `update`, expects `code`, and checks that nothing observable changed and no event fired. */
function assertRefused (t: import('ava').ExecutionContext, r: RegionState, update: Uint8Array, code: string = 'EM_ERR_INVALID_UPDATE'): void {
  const before = fingerprint(r)
  const events: string[] = []
  const onUpdate = (): void => { events.push('update') }
  const onChange = (): void => { events.push('change') }
  const onGap = (): void => { events.push('gap') }
  r.on('update', onUpdate)
  r.on('change', onChange)
  r.on('gap', onGap)
  t.throws(() => r.applyUpdate(update), { code })
  r.off('update', onUpdate)
  r.off('change', onChange)
  r.off('gap', onGap)
  t.deepEqual(fingerprint(r), before)
  t.deepEqual(events, [])
}

function validChunk (writer: string, sensor: string = 'forged', logical: number = 0): Uint8Array {
  return buildChunk(writer, [{ sensor, t: ts(logical), kind: KIND.number, payload: 42 }])
}

test('a plain-doc update carrying a hand-built valid chunk in w/<writer> is accepted (control for the refusals below)', t => {
  const { r } = populated()
  r.applyUpdate(plainArrayUpdate('w/gw-x', [validChunk('gw-x', 'hand-built')]))
  t.like(r.get('hand-built'), { value: 42, writer: 'gw-x', t: ts(0) })
})

test('random garbage bytes are refused with EM_ERR_INVALID_UPDATE and change nothing', t => {
  const { r } = populated()
  assertRefused(t, r, Uint8Array.from([0xff, 0xfe, 0xfd, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x02]))
  assertRefused(t, r, new Uint8Array(0))
  assertRefused(t, r, new TextEncoder().encode('{"sensor":"s","value":1}'))
})

test('arbitrary bytes never escape as anything but EM_ERR_INVALID_UPDATE, and a refusal changes nothing', t => {
  const { r } = populated()
  const initial = fingerprint(r)
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), bytes => {
    const before = fingerprint(r)
    try {
      r.applyUpdate(bytes)
    } catch (err) {
      if ((err as { code?: string }).code !== 'EM_ERR_INVALID_UPDATE') throw err
      const after = fingerprint(r)
      if (JSON.stringify(after) !== JSON.stringify(before)) throw new Error('state changed on a refused update')
    }
  }), { numRuns: 500 })
  t.deepEqual(fingerprint(r).winners, initial.winners, 'no reading came out of random bytes')
})

test('every truncation of a valid update is refused with EM_ERR_INVALID_UPDATE and changes nothing', t => {
  const clock = fakeClock()
  const source = region(clock, { writer: 'gw-s' })
  source.putMany([{ sensor: 'n', value: 1.5 }, { sensor: 'j', value: { deep: ['x', null] } }, { sensor: 'str', value: 'héllo' }])
  source.delete('n')
  const updates = recordLocalUpdates(source)
  source.put('inc', true)
  for (const full of [source.encodeStateAsUpdate(), updates[0]]) {
    const { r } = populated()
    for (let n = 0; n < full.length; n++) assertRefused(t, r, full.subarray(0, n))
    t.notThrows(() => r.applyUpdate(full), 'the untruncated update is accepted')
  }
})

test('an update that sets a Y.Map entry is refused', t => {
  const { r } = populated()
  for (const [name, value] of [['w/x', 1], ['w/x', validChunk('x')], ['meta', 'v']] as const) {
    const doc = new Y.Doc()
    doc.getMap(name).set('k', value)
    assertRefused(t, r, Y.encodeStateAsUpdate(doc))
  }
})

test('an update that inserts a string, a number or a nested type into a writer log is refused', t => {
  const { r } = populated()
  assertRefused(t, r, plainArrayUpdate('w/x', ['a string']))
  assertRefused(t, r, plainArrayUpdate('w/x', [7]))
  assertRefused(t, r, plainArrayUpdate('w/x', [new Y.Array()]))
  const doc = new Y.Doc()
  doc.getText('w/x').insert(0, 'text')
  assertRefused(t, r, Y.encodeStateAsUpdate(doc))
})

test('an update that puts a valid chunk into a root array not named w/<writer> is refused', t => {
  const { r } = populated()
  assertRefused(t, r, plainArrayUpdate('meta', [validChunk('x')]))
  assertRefused(t, r, plainArrayUpdate('x', [validChunk('x')]))
  assertRefused(t, r, plainArrayUpdate('w', [validChunk('x')]))
})

test('garbage bytes pushed into w/x are refused', t => {
  const { r } = populated()
  assertRefused(t, r, plainArrayUpdate('w/x', [Uint8Array.from([1, 2, 3, 4, 5])]))
  assertRefused(t, r, plainArrayUpdate('w/x', [new Uint8Array(0)]))
})

test('a valid chunk pushed into the log of another writer is refused', t => {
  const { r } = populated()
  assertRefused(t, r, plainArrayUpdate('w/x', [validChunk('y')]))
  assertRefused(t, r, plainArrayUpdate('w/gw-a', [validChunk('gw-b')]))
})

test('a chunk with trailing bytes is refused', t => {
  const { r } = populated()
  const chunk = buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.true }], { trailing: [0] })
  assertRefused(t, r, plainArrayUpdate('w/x', [chunk]))
})

const badChunks: Array<[string, Uint8Array]> = [
  ['an unknown version', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.null }], { version: 2 })],
  ['a count larger than the readings', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.null }], { count: 2 })],
  ['a count smaller than the readings', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.null }, { sensor: 'u', t: ts(1), kind: KIND.null }], { count: 1 })],
  ['an empty sensor id', buildChunk('x', [{ sensor: '', t: ts(0), kind: KIND.null }])],
  ['a sensor id with a control character', buildChunk('x', [{ sensor: 'a\nb', t: ts(0), kind: KIND.null }])],
  ['a sensor id over 256 characters', buildChunk('x', [{ sensor: 's'.repeat(257), t: ts(0), kind: KIND.null }])],
  ['an unknown value kind', buildChunk('x', [{ sensor: 's', t: ts(0), kind: 7 }])],
  ['a NaN number', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.number, payload: NaN }])],
  ['an infinite number', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.number, payload: -Infinity }])],
  ['JSON that does not parse', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.json, payload: '{"a":' }])],
  ['JSON that is not a container', buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.json, payload: '12' }])],
  ['an empty writer id', buildChunk('', [{ sensor: 's', t: ts(0), kind: KIND.null }])],
  ['invalid UTF-8 in a string value', Uint8Array.from([...buildChunk('x', [{ sensor: 's', t: ts(0), kind: KIND.string, payload: 'ab' }]).slice(0, -2), 0xc3, 0x28])]
]

for (const [name, chunk] of badChunks) {
  test(`a chunk with ${name} is refused`, t => {
    const { r } = populated()
    assertRefused(t, r, plainArrayUpdate('w/x', [chunk]))
  })
}

test('one bad chunk refuses the whole update, valid chunks included', t => {
  const { r } = populated()
  assertRefused(t, r, plainArrayUpdate('w/x', [validChunk('x', 'ok-1'), Uint8Array.from([9, 9, 9]), validChunk('x', 'ok-2', 1)]))
  t.is(r.get('ok-1'), undefined)
})

test('an update from a replica whose clock is 2 minutes ahead throws EM_ERR_CLOCK_DRIFT and changes nothing', t => {
  const { r } = populated()
  const ahead = region(fakeClock(T0 + 120_000), { writer: 'gw-ahead' })
  const updates = recordLocalUpdates(ahead)
  ahead.put('future', 1)
  assertRefused(t, r, updates[0], 'EM_ERR_CLOCK_DRIFT')
  const err = t.throws<ClockDriftError>(() => r.applyUpdate(ahead.encodeStateAsUpdate()), { code: 'EM_ERR_CLOCK_DRIFT', name: 'ClockDriftError' })
  t.like(err?.details, { maxDriftMs: 60_000 })
  t.is(r.get('future'), undefined)
})

test('a drifted reading refuses the whole update, in-bound readings included', t => {
  const { r } = populated()
  const doc = new Y.Doc()
  doc.getArray('w/x').push([buildChunk('x', [
    { sensor: 'fine', t: ts(0), kind: KIND.true },
    { sensor: 'drifted', t: ts(0, T0 + 120_000), kind: KIND.true }
  ])])
  assertRefused(t, r, Y.encodeStateAsUpdate(doc), 'EM_ERR_CLOCK_DRIFT')
  t.is(r.get('fine'), undefined)
})

test('the drift bound follows the hlc given in the options', t => {
  const clock = fakeClock()
  const strict = region(clock, { writer: 'gw-a', hlc: createHlc({ now: clock.now, maxDriftMs: 1_000 }) })
  const ahead = region(fakeClock(T0 + 5_000), { writer: 'gw-b' })
  const updates = recordLocalUpdates(ahead)
  ahead.put('s', 1)
  assertRefused(t, strict, updates[0], 'EM_ERR_CLOCK_DRIFT')
})

// Regression: Yjs encodes an item's parent only when it has no origin, so the log-name and writer
// checks must resolve appended items' parents through their origin (in the update or the doc).
test('a valid chunk appended after the first element of another writer\'s log is refused', t => {
  const { r } = populated()
  const doc = new Y.Doc()
  const log = doc.getArray<Uint8Array>('w/x')
  log.push([validChunk('x', 'legit')])
  log.push([validChunk('y', 'forged', 1)])
  assertRefused(t, r, Y.encodeStateAsUpdate(doc))
})

test('a chunk appended to the own log of this replica under another writer\'s name is refused', t => {
  const { r } = populated()
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const log = doc.getArray<Uint8Array>('w/x')
  log.push([validChunk('x', 'legit')])
  log.push([validChunk('gw-a', 'impersonated', 1)])
  r.applyUpdate(updates[0])
  assertRefused(t, r, updates[1])
})

test('a chunk in a root array not named w/<writer> is refused even when it is not the array\'s first element', t => {
  const { r } = populated()
  const doc = new Y.Doc()
  const evil = doc.getArray<unknown>('evil')
  evil.push(['placeholder'])
  evil.push([validChunk('x', 'smuggled')])
  evil.delete(0, 1)
  assertRefused(t, r, Y.encodeStateAsUpdate(doc))
})

// ------------------------------------------------------------------ found by fuzzing (test/fuzz)

/** A struct of a hand-written Yjs v1 update. */
type RawStruct =
  | { gc: number }
  | { chunk: Uint8Array, key?: string, origin?: [number, number], rightOrigin?: [number, number] }

/**
 * A Yjs v1 update written by hand, byte by byte, for what no Y.Doc would produce: the structs of
 * one client from `clock` on, then a delete set of [client, clock, length] ranges.
 */
function rawUpdate (client: number, clock: number, structs: RawStruct[], deletes: Array<[number, number, number]> = []): Uint8Array {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, structs.length === 0 ? 0 : 1)
  if (structs.length > 0) {
    encoding.writeVarUint(enc, structs.length)
    encoding.writeVarUint(enc, client)
    encoding.writeVarUint(enc, clock)
  }
  for (const s of structs) {
    if ('gc' in s) {
      encoding.writeUint8(enc, 0)
      encoding.writeVarUint(enc, s.gc)
      continue
    }
    // Content 3 (binary), with the bits saying which neighbours are written.
    encoding.writeUint8(enc, 3 | (s.origin !== undefined ? 0x80 : 0) | (s.rightOrigin !== undefined ? 0x40 : 0))
    for (const id of [s.origin, s.rightOrigin]) {
      if (id === undefined) continue
      encoding.writeVarUint(enc, id[0])
      encoding.writeVarUint(enc, id[1])
    }
    if (s.origin === undefined && s.rightOrigin === undefined) {
      encoding.writeVarUint(enc, 1) // the parent is a root type, by name
      encoding.writeVarString(enc, s.key ?? 'w/x')
    }
    encoding.writeVarUint8Array(enc, s.chunk)
  }
  const byClient = new Map<number, Array<[number, number]>>()
  for (const [c, k, len] of deletes) byClient.set(c, [...(byClient.get(c) ?? []), [k, len]])
  encoding.writeVarUint(enc, byClient.size)
  for (const [c, ranges] of byClient) {
    encoding.writeVarUint(enc, c)
    encoding.writeVarUint(enc, ranges.length)
    for (const [k, len] of ranges) {
      encoding.writeVarUint(enc, k)
      encoding.writeVarUint(enc, len)
    }
  }
  return encoding.toUint8Array(enc)
}

test('a hand-written update is accepted (control for the refusals below)', t => {
  const { r } = populated()
  r.applyUpdate(rawUpdate(7, 0, [{ chunk: validChunk('x', 'first') }, { chunk: validChunk('x', 'second', 1), origin: [7, 0] }]))
  t.like(r.get('first'), { value: 42, writer: 'x' })
  t.like(r.get('second'), { value: 42, writer: 'x' })
})

// Regression: Yjs looks up an item's neighbour of its own client without checking that it comes
// first; a later one made Y.applyUpdate throw after it had integrated the item before it, so the
// doc held a reading the view never took (and the state vector said it was there).
test('an item whose neighbour is a later item of its own client is refused and changes nothing', t => {
  const { r } = populated()
  const first = { chunk: validChunk('x', 'first') }
  assertRefused(t, r, rawUpdate(7, 0, [first, { chunk: validChunk('x', 'second', 1), origin: [7, 5] }]))
  assertRefused(t, r, rawUpdate(7, 0, [first, { chunk: validChunk('x', 'second', 1), origin: [7, 0], rightOrigin: [7, 1] }]))
  t.is(r.get('first'), undefined)
})

// Regression: a struct of length 0 beyond the state vector was parked among Yjs's pending structs,
// which Yjs then failed to encode, halfway through Y.applyUpdate.
test('a struct or a deletion of length 0 is refused and changes nothing', t => {
  const { r } = populated()
  assertRefused(t, r, rawUpdate(9, 14, [{ gc: 0 }]))
  assertRefused(t, r, rawUpdate(9, 0, [{ chunk: validChunk('x', 'first') }, { gc: 0 }]))
  assertRefused(t, r, rawUpdate(9, 0, [], [[9, 14, 0]]))
})

// Regression: lib0 decodes a varint beyond 2^53 but refuses to read it back; an item waiting for
// such a client was kept among the pending structs, and from then on every encoding of the doc
// (sync answers, snapshots) threw.
test('an update with a client id or clock beyond 2^53 is refused and the doc can still be encoded', t => {
  const { r } = populated()
  // Beyond 2^53, with low bits set: lib0 reads the varint of 2^55 back, not this one.
  const huge = 58_993_715_436_632_296
  assertRefused(t, r, rawUpdate(9, 0, [{ chunk: validChunk('x', 'first'), origin: [huge, 28] }]))
  assertRefused(t, r, rawUpdate(huge, 0, [{ chunk: validChunk('x', 'first') }]))
  assertRefused(t, r, rawUpdate(9, huge, [{ chunk: validChunk('x', 'first'), origin: [9, 0] }]))
  assertRefused(t, r, rawUpdate(9, 0, [], [[9, huge, 1]]))
  t.notThrows(() => r.encodeStateAsUpdate())
})
