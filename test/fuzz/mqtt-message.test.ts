/**
 * Fuzzing of the MQTT topic and payload decoder (`decodeMqttMessage`, packages/gateway/src/mqtt.ts).
 *
 * Inputs: topics `sensors/<region>/<sensor…>` for held and other regions, the same with characters
 * inserted (separators, wildcards, control characters, lone surrogates), deleted, replaced or cut,
 * and random strings; payloads that are JSON values and `{ value, ts?, unit? }` envelopes (valid
 * and out of contract), the same with bytes flipped, inserted, deleted, truncated or spliced,
 * random bytes, invalid UTF-8, a byte order mark, deep nesting, and payloads at and over the size
 * limit; as Buffers and as Uint8Arrays. Every input must give `{ ok: true, region, reading }` with
 * a reading that passes `assertReadingInput` and is exactly what the topic and payload say, or
 * `{ ok: false, reason }`, as an independent reading of the contract in docs/PROTOCOL.md
 * (MQTT ingest) decides; never a throw.
 *
 * FUZZ_RUNS inputs (see fuzz-settings.ts); replay with FUZZ_SEED (and FUZZ_PATH).
 */
import test from 'ava'
import fc from 'fast-check'
import { MAX_DEVICE_TS, MAX_UNIT_LENGTH, MIN_DEVICE_TS, assertReadingInput } from '@edge-mesh/reading'
import { HARD_MAX_VALUE_BYTES, isValidSensorId } from '@edge-mesh/region-state'
import { decodeMqttMessage } from '../../packages/gateway/src/mqtt.ts'
import { mutatedArb, validArb, type CorpusEntry } from './byte-mutations.ts'
import { FUZZ_RUNS, HangGuard, Outcomes, check, fuzzParameters, shortJson } from './fuzz-settings.ts'

const guard = new HangGuard('MQTT messages')
test.after.always(async () => { await guard.stop() })

const HELD = ['plant-1', 'eu-west']
const REGIONS: ReadonlySet<string> = new Set(HELD)
/** The documented payload bound: no value may be larger, plus room for an envelope. */
const MAX_PAYLOAD_BYTES = HARD_MAX_VALUE_BYTES + 1024
const utf8 = new TextEncoder()

// ------------------------------------------------------------------ topics

const sensorArb = fc.oneof(
  fc.constantFrom('line-1/temp', 'a', 'x/y/z/w', 'héllo/wörld', 'temp ✓', '.', '..', 's'.repeat(256), 's'.repeat(257)),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 24 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 16 })
)
const regionNameArb = fc.oneof({ arbitrary: fc.constantFrom(...HELD), weight: 4 }, { arbitrary: fc.constantFrom('us-east', 'Plant-1', '', 'plant-1 '), weight: 1 })
const validTopicArb = fc.tuple(regionNameArb, sensorArb).map(([region, sensor]) => `sensors/${region}/${sensor}`)

const ODD_CHARS = ['/', '#', '+', '\u0000', '\u001f', '\u007f', '\ud800', '\udc00', ' ', 'é', '\u{1f600}', '\n', 'sensors/']
type TopicEdit = { kind: 'insert', at: number, text: string } | { kind: 'delete', at: number, length: number } | { kind: 'cut', at: number } | { kind: 'replace', at: number, text: string }
const topicEditArb: fc.Arbitrary<TopicEdit> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...ODD_CHARS), fc.string({ unit: 'binary', maxLength: 4 })) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: fc.constantFrom(...ODD_CHARS) })
)

function editTopic (topic: string, e: TopicEdit): string {
  const at = e.at % (topic.length + 1)
  switch (e.kind) {
    case 'insert': return topic.slice(0, at) + e.text + topic.slice(at)
    case 'delete': return topic.slice(0, at) + topic.slice(at + e.length)
    case 'cut': return topic.slice(0, at)
    case 'replace': return topic.slice(0, at) + e.text + topic.slice(at + 1)
  }
}

const topicArb = fc.oneof(
  { arbitrary: validTopicArb, weight: 5 },
  { arbitrary: fc.tuple(validTopicArb, fc.array(topicEditArb, { minLength: 1, maxLength: 3 })).map(([t, edits]) => edits.reduce(editTopic, t)), weight: 3 },
  { arbitrary: fc.constantFrom('sensors', 'sensors/', 'sensors/plant-1', 'sensors/plant-1/', '/sensors/plant-1/x', 'Sensors/plant-1/x', 'sensors//x', ''), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 }
)

// ------------------------------------------------------------------ payloads

const tsArb = fc.oneof(
  fc.integer({ min: MIN_DEVICE_TS, max: MAX_DEVICE_TS }),
  fc.constantFrom(MIN_DEVICE_TS - 1, MAX_DEVICE_TS + 1, 0, -1, 1.5, 1e300, 1_700_000_000_000.5),
  fc.constantFrom('1700000000000', null, true, [1_700_000_000_000])
)
const unitArb = fc.oneof(fc.string({ minLength: 1, maxLength: MAX_UNIT_LENGTH }), fc.constantFrom('', 'C', 'u'.repeat(MAX_UNIT_LENGTH + 1), 7, null))
const jsonArb = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, 0, -0, 1e308, '', 'on', [], {}, { value: 1 }, { v: 2 }))

/** Envelopes in contract. */
const envelopeArb = fc.record({
  value: jsonArb,
  ts: fc.integer({ min: MIN_DEVICE_TS, max: MAX_DEVICE_TS }),
  unit: fc.string({ minLength: 1, maxLength: MAX_UNIT_LENGTH })
}, { requiredKeys: ['value'] })

/** An envelope with one field that may break the contract: ts or unit of any kind, a sensor field, an unknown field. */
const badEnvelopeArb = fc.tuple(envelopeArb, fc.oneof(
  tsArb.map(ts => ['ts', ts] as const),
  unitArb.map(unit => ['unit', unit] as const),
  fc.constantFrom('line-1/temp', 7).map(sensor => ['sensor', sensor] as const),
  fc.constantFrom(['extra', 1] as const, ['Value', 1] as const, ['__proto__', { ts: 1 }] as const)
)).map(([env, [key, v]]) => {
  const out: Record<string, unknown> = { ...env }
  Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
  return out
})

const payloadValueArb = fc.oneof({ arbitrary: jsonArb, weight: 2 }, { arbitrary: envelopeArb, weight: 2 }, { arbitrary: badEnvelopeArb, weight: 1 })
const toBytes = (v: unknown): Uint8Array => utf8.encode(JSON.stringify(v))

const payloadCorpus: CorpusEntry[] = [
  21.5, 'on', null, true, [1, 2], { x: 1 }, { value: 21.5 }, { value: 21.5, unit: 'C' }, { value: 1, ts: 1_700_000_000_000 },
  { value: { nested: [1, { a: null }] }, ts: 1_700_000_000_000, unit: 'kPa' }, { value: 'x', unit: 'u'.repeat(MAX_UNIT_LENGTH) }
].map(v => ({ bytes: toBytes(v), prefixes: [] }))

/** A JSON string payload of exactly `n` bytes. */
const stringPayloadOf = (n: number): Uint8Array => utf8.encode(JSON.stringify('a'.repeat(n - 2)))
const AT_LIMIT = stringPayloadOf(MAX_PAYLOAD_BYTES)
const OVER_LIMIT = stringPayloadOf(MAX_PAYLOAD_BYTES + 1)
/** Nested far deeper than the value contract allows (JSON.parse takes it; region state refuses it). */
const DEEP = utf8.encode('['.repeat(5000) + ']'.repeat(5000))

const payloadArb = fc.oneof(
  { arbitrary: payloadValueArb.map(toBytes), weight: 6 },
  { arbitrary: validArb(payloadCorpus), weight: 1 },
  { arbitrary: mutatedArb(payloadCorpus), weight: 4 },
  { arbitrary: payloadValueArb.map(v => Uint8Array.from([0xef, 0xbb, 0xbf, ...toBytes(v)])), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
  { arbitrary: fc.constantFrom(new Uint8Array(0), Uint8Array.from([0xc3, 0x28]), Uint8Array.from([0x22, 0xed, 0xa0, 0x80, 0x22]), DEEP, AT_LIMIT, OVER_LIMIT), weight: 1 }
)

// ------------------------------------------------------------------ the contract, read independently

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k)

/** What the message must give: the region and reading, or undefined if it is malformed. */
function expected (topic: string, payload: Uint8Array): { region: string, reading: Record<string, unknown> } | undefined {
  const m = /^sensors\/([^/]*)\/([\s\S]*)$/.exec(topic)
  if (m === null || !REGIONS.has(m[1]) || !isValidSensorId(m[2])) return undefined
  const [, region, sensor] = m
  if (payload.byteLength > MAX_PAYLOAD_BYTES) return undefined
  let json: unknown
  try {
    json = JSON.parse(fatalUtf8.decode(payload))
  } catch {
    return undefined
  }
  if (!isPlainObject(json) || !own(json, 'value')) return { region, reading: { sensor, value: json } }
  for (const k of Object.keys(json)) if (k !== 'value' && k !== 'ts' && k !== 'unit') return undefined
  if (own(json, 'ts') && !(Number.isSafeInteger(json.ts) && (json.ts as number) >= MIN_DEVICE_TS && (json.ts as number) <= MAX_DEVICE_TS)) return undefined
  if (own(json, 'unit') && !(typeof json.unit === 'string' && json.unit.length >= 1 && json.unit.length <= MAX_UNIT_LENGTH)) return undefined
  return { region, reading: { ...json, sensor } }
}

const shown = (topic: string, payload: Uint8Array): string =>
  `topic ${JSON.stringify(topic)}, payload ${payload.length > 200 ? `${payload.length} bytes` : JSON.stringify(Buffer.from(payload).toString('latin1'))}`

/** Deep equality of two JSON values, without recursion (values may nest deeper than the stack). */
function sameJson (a: unknown, b: unknown): boolean {
  const stack: Array<[unknown, unknown]> = [[a, b]]
  while (stack.length > 0) {
    const [x, y] = stack.pop() as [unknown, unknown]
    if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') {
      if (!Object.is(x, y)) return false
      continue
    }
    if (Array.isArray(x) !== Array.isArray(y)) return false
    const kx = Object.keys(x)
    const ky = Object.keys(y)
    if (kx.length !== ky.length) return false
    for (const k of kx) {
      if (!own(y, k)) return false
      stack.push([(x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]])
    }
  }
  return true
}

test('MQTT messages: every topic and payload gives the reading they say or a reason, never a throw', t => {
  const outcomes = new Outcomes()
  fc.assert(fc.property(topicArb, payloadArb, fc.boolean(), (topic, bytes, asBuffer) => {
    const payload = asBuffer ? Buffer.from(bytes) : bytes
    // The guard's copy of the input: the topic, a NUL, the payload.
    const input = Buffer.concat([Buffer.from(topic), Buffer.of(0), Buffer.from(payload.subarray(0, 4096))])
    const got = guard.watch(input, () => decodeMqttMessage(topic, payload, REGIONS))
    const want = expected(topic, payload)
    if (!got.ok) {
      check(typeof got.reason === 'string' && got.reason.length > 0, () => 'a refusal without a reason')
      check(want === undefined, () => `a valid message was refused (${got.reason}): ${shown(topic, payload)}`)
      outcomes.add('malformed')
      return
    }
    check(want !== undefined, () => `a malformed message was taken: ${shown(topic, payload)} gave ${shortJson(got)}`)
    check(got.region === want.region, () => `region ${got.region}, expected ${want.region}`)
    assertReadingInput(got.reading)
    check(isValidSensorId(got.reading.sensor), () => `the sensor id ${JSON.stringify(got.reading.sensor)} is not a valid one`)
    check(sameJson({ ...got.reading }, want.reading), () => `${shown(topic, payload)}: the reading ${shortJson(got.reading)} differs from what the message says, ${shortJson(want.reading)}`)
    outcomes.add(own(want.reading, 'ts') || own(want.reading, 'unit') ? 'taken with ts or unit' : 'taken')
  }), fuzzParameters())
  t.log(`${FUZZ_RUNS} inputs: ${outcomes.toString()}`)
  t.true(outcomes.get('malformed') > 0, 'some messages are malformed')
  t.true(outcomes.get('taken with ts or unit') > 0 && outcomes.get('taken') > 0, 'messages with and without ts or unit are taken')
})
