/**
 * Fuzzing of gossip frames (`decodeFrame`, packages/mesh/src/frame.ts) and of the region updates
 * they carry, applied as the mesh's gossip validator does (`RegionState.applyUpdate`).
 *
 * Inputs: valid frames of real region updates; the same with bytes flipped, set, inserted,
 * deleted, duplicated, truncated, spliced with another frame, and length prefixes (region length,
 * update count, update lengths) changed; well-framed frames whose updates are mutated; random
 * bytes; and any of those as a view inside a larger buffer. Each must either decode to a frame
 * that a reference parser written from docs/PROTOCOL.md agrees with, or be refused with
 * EM_ERR_INVALID_UPDATE; every input the reference parser takes in its documented form must
 * decode. Each update of a decoded frame for the region is then applied to a replica: it is either
 * applied with a valid result, or refused with EM_ERR_INVALID_UPDATE / EM_ERR_CLOCK_DRIFT with
 * nothing changed (doc, state vector, view, stats, clock) and no event emitted.
 *
 * FUZZ_RUNS inputs per property (see fuzz-settings.ts); replay with FUZZ_SEED (and FUZZ_PATH).
 */
import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import { EdgeMeshError } from '@edge-mesh/errors'
import { FRAME_TYPE_UPDATES, FRAME_VERSION, MAX_FRAME_UPDATES, decodeFrame, encodeFrame, type UpdatesFrame } from '../../packages/mesh/src/frame.ts'
import { maybeEmbedded, mutatedArb, validArb, varuintBytes, type CorpusEntry } from './byte-mutations.ts'
import { FUZZ_RUNS, HangGuard, Outcomes, check, fuzzParameters } from './fuzz-settings.ts'
import { REGION, TargetRegion, buildRegionCorpus } from './region-corpus.ts'
import { SpecReader, hex, sameBytes, staysInView } from './spec-reader.ts'

const MAX_FRAME_BYTES = 1024 * 1024
const guard = new HangGuard('gossip frames')
test.after.always(async () => { await guard.stop() })

const corpus = buildRegionCorpus()
const utf8 = new TextEncoder()

/** A frame as encodeFrame writes it, with the offsets of its region length, count and update lengths. */
function frameEntry (region: string, updates: Uint8Array[]): CorpusEntry {
  const bytes = encodeFrame({ region, updates })
  const regionLength = utf8.encode(region).length
  const prefixes = [2]
  let at = 2 + varuintBytes(regionLength).length + regionLength
  prefixes.push(at)
  at += varuintBytes(updates.length).length
  for (const u of updates) {
    prefixes.push(at)
    at += varuintBytes(u.length).length + u.length
  }
  assert.equal(at, bytes.length)
  return { bytes, prefixes }
}

const updateCorpus: CorpusEntry[] = corpus.updates.map(bytes => ({ bytes, prefixes: [] }))
const frames: CorpusEntry[] = [frameEntry(REGION, []), frameEntry('us-east', corpus.updates.slice(0, 2))]
for (let i = 0; i < corpus.updates.length; i++) {
  const window = 1 + (i % 4)
  frames.push(frameEntry(REGION, corpus.updates.slice(i, i + window)))
}

/** The documented frame layout, read by the reference reader: the frame, or undefined if it is not one. */
function referenceFrame (bytes: Uint8Array, maxFrameBytes: number, strict: boolean): UpdatesFrame | undefined {
  if (bytes.length > maxFrameBytes) return undefined
  const r = new SpecReader(bytes, strict)
  if (r.u8() !== FRAME_VERSION || r.u8() !== FRAME_TYPE_UPDATES) return undefined
  const region = r.str()
  const count = r.varuint()
  if (region === undefined || count === undefined || count > MAX_FRAME_UPDATES) return undefined
  const updates: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const u = r.bytesField()
    if (u === undefined) return undefined
    updates.push(u)
  }
  return r.atEnd ? { region, updates } : undefined
}

function sameFrame (a: UpdatesFrame, b: UpdatesFrame): boolean {
  return a.region === b.region && a.updates.length === b.updates.length && a.updates.every((u, i) => sameBytes(u, b.updates[i]))
}

const describeFrame = (f: UpdatesFrame): string => JSON.stringify({ region: f.region, updates: f.updates.map(hex) })

/** Frames whose framing is valid and whose updates may be mutated. */
const wellFramedArb = fc.array(fc.oneof({ arbitrary: validArb(updateCorpus), weight: 1 }, { arbitrary: mutatedArb(updateCorpus), weight: 3 }), { minLength: 1, maxLength: 3 })
  .map(updates => encodeFrame({ region: REGION, updates }))

const frameInputArb = maybeEmbedded(fc.oneof(
  { arbitrary: validArb(frames), weight: 1 },
  { arbitrary: mutatedArb(frames), weight: 5 },
  { arbitrary: wellFramedArb, weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 256 }), weight: 1 }
))

const maxFrameBytesArb = fc.oneof({ arbitrary: fc.constant(MAX_FRAME_BYTES), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 4096 }), weight: 1 })

test('gossip frames: every mutated or random frame decodes to what the reference parser reads or is refused with EM_ERR_INVALID_UPDATE, and its updates apply or are refused with no state change', t => {
  const target = new TargetRegion(corpus)
  t.teardown(() => { target.reset() })
  const outcomes = new Outcomes()
  fc.assert(fc.property(frameInputArb, maxFrameBytesArb, (bytes, maxFrameBytes) => {
    target.begin()
    const decoded = guard.watch(bytes, () => {
      try {
        return { ok: true as const, frame: decodeFrame(bytes, maxFrameBytes) }
      } catch (err) {
        return { ok: false as const, err }
      }
    })
    const strict = referenceFrame(bytes, maxFrameBytes, true)
    if (!decoded.ok) {
      const err = decoded.err
      check(err instanceof EdgeMeshError && err.code === 'EM_ERR_INVALID_UPDATE', () => `decodeFrame threw a foreign error: ${String(err)} (code ${String((err as { code?: unknown }).code)})`)
      check(strict === undefined, () => `decodeFrame refused a frame in the documented form (${err.message}): ${describeFrame(strict as UpdatesFrame)}`)
      outcomes.add('frame refused')
      return
    }
    const frame = decoded.frame
    const lenient = referenceFrame(bytes, maxFrameBytes, false)
    check(lenient !== undefined, () => `decodeFrame accepted bytes that are not a frame: ${describeFrame(frame)}`)
    check(sameFrame(frame, lenient), () => `decodeFrame read ${describeFrame(frame)}, the reference parser ${describeFrame(lenient)}`)
    check(frame.updates.every(u => staysInView(u, bytes)), () => 'a decoded update reaches outside the input view')
    check(sameFrame(decodeFrame(encodeFrame(frame), MAX_FRAME_BYTES), frame), () => 'the decoded frame does not round-trip')
    outcomes.add('frame decoded')
    // What the mesh's validator does with it.
    if (frame.region !== REGION) {
      outcomes.add('frame for another region')
      return
    }
    for (const u of frame.updates) {
      const applied = guard.watch(u, () => target.apply(u))
      outcomes.add(applied.ok ? (applied.changed ? 'update applied' : 'update changed nothing') : `update refused ${applied.code}`)
    }
  }), fuzzParameters())
  t.log(`${FUZZ_RUNS} inputs: ${outcomes.toString()}`)
  t.true(outcomes.get('frame refused') > 0, 'some inputs are refused')
  t.true(outcomes.get('frame decoded') > 0, 'some inputs decode')
  t.true(outcomes.get('update applied') > 0, 'some decoded updates change the replica')
  t.true(outcomes.get('update refused EM_ERR_INVALID_UPDATE') > 0, 'some decoded updates are refused')
})

/** Region updates as gossip and sync carry them: valid, mutated, or spliced. */
const updateInputArb = fc.oneof(
  { arbitrary: validArb(updateCorpus), weight: 1 },
  { arbitrary: mutatedArb(updateCorpus, 1), weight: 4 },
  { arbitrary: mutatedArb(updateCorpus, 6), weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 128 }), weight: 1 }
)

test('region updates: every mutated update is applied with a valid result or refused (EM_ERR_INVALID_UPDATE, EM_ERR_CLOCK_DRIFT) with no state change', t => {
  const target = new TargetRegion(corpus)
  t.teardown(() => { target.reset() })
  const outcomes = new Outcomes()
  fc.assert(fc.property(maybeEmbedded(updateInputArb), update => {
    target.begin()
    const applied = guard.watch(update, () => target.apply(update))
    outcomes.add(applied.ok ? (applied.changed ? 'applied' : 'changed nothing') : `refused ${applied.code}`)
  }), fuzzParameters())
  t.log(`${FUZZ_RUNS} inputs: ${outcomes.toString()}`)
  t.true(outcomes.get('applied') > 0, 'some updates change the replica')
  t.true(outcomes.get('refused EM_ERR_INVALID_UPDATE') > 0, 'some updates are refused')
  t.true(outcomes.get('refused EM_ERR_CLOCK_DRIFT') > 0, 'some updates are beyond the drift bound')
})
