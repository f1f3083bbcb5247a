/**
 * Fuzzing of HTTP ingest bodies: `POST /v1/readings` (and `/v1/regions/:region/readings`) through
 * fastify's `inject` on the gateway's HTTP app (createHttpApp + createIngestor over in-memory
 * region state whose writes are durable at once).
 *
 * Inputs: valid batches; batches with one reading broken (a field missing, unknown or of the wrong
 * type, ts or unit out of range, sensor ids empty, too long, `.`/`..`, with control characters or
 * lone surrogates, values nested too deep, non-finite or too large); the JSON text of valid batches
 * with bytes flipped, inserted, deleted, truncated or spliced; random JSON and random strings;
 * wrong, odd and missing content types; unknown regions; Idempotency-Key headers (repeated, empty,
 * too long); bodies over the size limit. Every reply must be 200 with a valid result or a
 * documented 4xx JSON `{ error, code }` whose status is the code's (never 5xx); a refused batch
 * writes nothing; and where the outcome follows from the contract alone (a JSON body with the JSON
 * content type) it is the one the contract gives: the batch is taken whole or refused whole.
 *
 * FUZZ_RUNS inputs (see fuzz-settings.ts); replay with FUZZ_SEED (and FUZZ_PATH).
 */
import test from 'ava'
import fc from 'fast-check'
import { pino } from 'pino'
import { ERROR_CODES, type ErrorCode } from '@edge-mesh/errors'
import { MAX_DEVICE_TS, MAX_UNIT_LENGTH, MIN_DEVICE_TS } from '@edge-mesh/reading'
import { MAX_DEPTH, createRegionState, isValidSensorId, type RegionState } from '@edge-mesh/region-state'
import { MAX_BATCH_READINGS, createHttpApp } from '../../packages/gateway/src/http.ts'
import { createIngestor, type IngestMesh } from '../../packages/gateway/src/ingest.ts'
import { createGatewayMetrics } from '../../packages/gateway/src/metrics.ts'
import { mutatedArb, type CorpusEntry } from './byte-mutations.ts'
import { FUZZ_RUNS, HangGuard, Outcomes, check, fuzzParameters, shortJson } from './fuzz-settings.ts'

const guard = new HangGuard('HTTP ingest')
test.after.always(async () => { await guard.stop() })

const REGION = 'plant-1'
const BODY_LIMIT = 512 * 1024
/** Region state's default limit of one encoded value. */
const MAX_VALUE_BYTES = 64 * 1024
const utf8 = new TextEncoder()

/** Codes POST /v1/readings documents (packages/gateway/README.md, Errors). */
const DOCUMENTED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'EM_ERR_INVALID_BODY', 'EM_ERR_INVALID_VALUE', 'EM_ERR_INVALID_SENSOR', 'EM_ERR_INVALID_OPTIONS', 'EM_ERR_NOT_FOUND',
  'EM_ERR_PAYLOAD_TOO_LARGE', 'EM_ERR_VALUE_TOO_LARGE', 'EM_ERR_UNSUPPORTED_MEDIA_TYPE', 'EM_ERR_OVERLOADED'
])
/** Codes of a batch whose JSON is refused by the schema or the reading contract. */
const REFUSED_BATCH: ReadonlySet<string> = new Set(['EM_ERR_INVALID_BODY', 'EM_ERR_INVALID_VALUE', 'EM_ERR_INVALID_SENSOR'])

// ------------------------------------------------------------------ inputs

const sensorArb = fc.oneof(
  { arbitrary: fc.constantFrom('line-1/temp', 'line-1/rpm', 'line-2/state', 'a', 'héllo/wörld ✓'), weight: 4 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), weight: 1 }
)
const valueArb = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, 0, -0, 21.5, '', 'on', [], {}, { value: 2 }))
const readingArb = fc.record({
  sensor: sensorArb,
  value: valueArb,
  ts: fc.integer({ min: MIN_DEVICE_TS, max: MAX_DEVICE_TS }),
  unit: fc.string({ minLength: 1, maxLength: MAX_UNIT_LENGTH })
}, { requiredKeys: ['sensor', 'value'] })
const batchArb = fc.array(readingArb, { maxLength: 8 })

let deep: unknown = 1
for (let i = 0; i < MAX_DEPTH + 3; i++) deep = [deep]

/** One field of a reading that may break the contract. */
const breakArb = fc.oneof(
  fc.constantFrom(['sensor', ''], ['sensor', '.'], ['sensor', '..'], ['sensor', 'a\u0007b'], ['sensor', 's'.repeat(257)], ['sensor', '\ud800x'], ['sensor', 7], ['sensor', null]),
  fc.constantFrom(['ts', MIN_DEVICE_TS - 1], ['ts', MAX_DEVICE_TS + 1], ['ts', 1.5], ['ts', '1700000000000'], ['ts', null], ['ts', -1]),
  fc.constantFrom(['unit', ''], ['unit', 'u'.repeat(MAX_UNIT_LENGTH + 1)], ['unit', 7], ['unit', null]),
  fc.constantFrom(['value', deep], ['value', { a: '\udc00' }], ['value', 'x'.repeat(MAX_VALUE_BYTES + 100)]),
  fc.constantFrom(['extra', 1], ['Sensor', 'x'], ['-value', null], ['value', undefined], ['sensor', undefined])
)
const brokenBatchArb = fc.tuple(batchArb, readingArb, breakArb, fc.nat()).map(([batch, reading, [key, v], at]) => {
  const broken: Record<string, unknown> = { ...reading }
  if (v === undefined) delete broken[key as string]
  else broken[key as string] = v
  const out: unknown[] = [...batch]
  out.splice(at % (batch.length + 1), 0, broken)
  return out
})

/** JSON text the stringifier cannot produce: a non-finite number, a duplicated key, a prototype key. */
const oddTextArb = fc.constantFrom(
  '[{"sensor":"s","value":1e400}]', '[{"sensor":"s","value":-1e400}]', '[{"sensor":"s","sensor":"t","value":1}]',
  '[{"sensor":"s","value":{"__proto__":{"x":1}}}]', '[{"sensor":"s","value":{"constructor":{"prototype":{}}}}]',
  '[{"sensor":"s","value":1}] ', ' [] ', '[]', '{}', 'null', '"[]"', '[{"sensor":"s","value":1},]', '\ufeff[]', '[{"sensor":"\\u0000","value":1}]'
)

const corpus: CorpusEntry[] = [
  [{ sensor: 'line-1/temp', value: 21.5, unit: 'C', ts: 1_700_000_000_000 }, { sensor: 'line-1/rpm', value: 1450 }],
  [{ sensor: 'a', value: { nested: [1, 'two', null] } }],
  [{ sensor: 'b', value: 'on', ts: 1_700_000_000_001 }, { sensor: 'b', value: 'off', ts: 1_700_000_000_002 }],
  []
].map(batch => ({ bytes: utf8.encode(JSON.stringify(batch)), prefixes: [] }))

const TOO_MANY = JSON.stringify(Array.from({ length: MAX_BATCH_READINGS + 1 }, (_, i) => ({ sensor: `s${i % 10}`, value: i })))
const OVER_LIMIT = JSON.stringify([{ sensor: 'big', value: 'x'.repeat(BODY_LIMIT) }])

const bodyArb: fc.Arbitrary<string | Buffer> = fc.oneof(
  { arbitrary: batchArb.map(b => JSON.stringify(b)), weight: 4 },
  { arbitrary: brokenBatchArb.map(b => JSON.stringify(b)), weight: 4 },
  { arbitrary: mutatedArb(corpus).map(b => Buffer.from(b)), weight: 3 },
  { arbitrary: oddTextArb, weight: 1 },
  { arbitrary: fc.json({ maxDepth: 3 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
  { arbitrary: fc.constantFrom('', TOO_MANY, OVER_LIMIT), weight: 1 }
)

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8']
const NOT_JSON_TYPES = ['text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/vnd.api+json']
const contentTypeArb = fc.oneof(
  { arbitrary: fc.constantFrom(...JSON_TYPES), weight: 12 },
  { arbitrary: fc.constantFrom(...NOT_JSON_TYPES), weight: 2 },
  { arbitrary: fc.constantFrom(undefined, '', 'APPLICATION/JSON', 'application/json;charset=latin1', 'application/json-patch+json', 'json'), weight: 1 }
)
const routeArb = fc.oneof(
  { arbitrary: fc.constantFrom('/v1/readings', `/v1/readings?region=${REGION}`, `/v1/regions/${REGION}/readings`, '/v1/readings?echo=1', `/v1/regions/${REGION}/readings?echo=true`), weight: 8 },
  { arbitrary: fc.constantFrom('/v1/readings?region=plant-9', '/v1/regions/plant-9/readings', '/v1/readings?region=', `/v1/readings?region=${'r'.repeat(65)}`), weight: 1 }
)
const keyArb = fc.oneof(
  { arbitrary: fc.constant(null), weight: 12 },
  { arbitrary: fc.constantFrom('k1', 'k2', 'k3'), weight: 2 },
  { arbitrary: fc.constantFrom('', 'k'.repeat(257)), weight: 1 }
)

const inputArb = fc.record({ route: routeArb, contentType: contentTypeArb, body: bodyArb, key: keyArb })
type Input = typeof inputArb extends fc.Arbitrary<infer T> ? T : never

// ------------------------------------------------------------------ the contract, read independently

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k)
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A value region state takes: depth, finite numbers, well-formed strings (size apart). */
function valueOk (v: unknown, depth: number = 0): boolean {
  if (typeof v === 'number') return Number.isFinite(v)
  if (typeof v === 'string') return v.isWellFormed()
  if (v === null || typeof v === 'boolean') return true
  if (depth >= MAX_DEPTH) return false
  if (Array.isArray(v)) return v.every(x => valueOk(x, depth + 1))
  return Object.keys(v as object).every(k => k.isWellFormed() && valueOk((v as Record<string, unknown>)[k], depth + 1))
}

/** A reading whose shape, sensor, ts and unit follow the contract (its value apart). */
function shapeOk (x: unknown): x is Record<string, unknown> {
  if (!isPlainObject(x) || !own(x, 'sensor') || !own(x, 'value')) return false
  if (Object.keys(x).some(k => k !== 'sensor' && k !== 'value' && k !== 'ts' && k !== 'unit')) return false
  const { sensor, ts, unit } = x
  if (typeof sensor !== 'string' || !isValidSensorId(sensor) || sensor === '.' || sensor === '..') return false
  if (own(x, 'ts') && !(Number.isSafeInteger(ts) && (ts as number) >= MIN_DEVICE_TS && (ts as number) <= MAX_DEVICE_TS)) return false
  if (own(x, 'unit') && !(typeof unit === 'string' && unit.length >= 1 && unit.length <= MAX_UNIT_LENGTH)) return false
  return true
}

/**
 * The outcome the contract gives for a request that reaches ingest unambiguously: a held region, a
 * JSON content type, no idempotency key, a body within the limit whose JSON parses without
 * prototype keys and whose values are far from the size limit. `ok` (accepted whole), `refused`
 * (400, nothing written), or undefined where the contract alone does not tell.
 */
function expected (input: Input, text: string | undefined): 'ok' | 'refused' | undefined {
  if (input.key !== null || input.contentType === undefined || !JSON_TYPES.includes(input.contentType)) return undefined
  if (input.route.includes('plant-9') || input.route.includes('region=&') || /region=r{65}/.test(input.route) || input.route.endsWith('region=')) return undefined
  if (text === undefined || Buffer.byteLength(text) > BODY_LIMIT / 2 || text.includes('__proto__') || text.includes('constructor')) return undefined
  let json: unknown
  try {
    // A leading byte order mark is allowed (RFC 8259 lets a parser ignore it; fastify's does).
    json = JSON.parse(text.startsWith('\ufeff') ? text.slice(1) : text)
  } catch {
    return 'refused'
  }
  if (!Array.isArray(json) || json.length > MAX_BATCH_READINGS) return 'refused'
  if (json.some(x => isPlainObject(x) && own(x, 'value') && Buffer.byteLength(JSON.stringify(x.value) ?? '') > MAX_VALUE_BYTES / 2)) return undefined
  if (!json.every(shapeOk)) return 'refused'
  return json.every(x => valueOk(x.value)) ? 'ok' : 'refused'
}

/** Everything a write would change in the region: state vector, live and deleted sensor counts, clock. */
const stateOf = (r: RegionState): string => JSON.stringify([Buffer.from(r.encodeStateVector()).toString('base64'), r.size, r.stats().tombstones, r.hlc.last()])

// ------------------------------------------------------------------ the property

test('HTTP ingest: every body gives 200 with a valid result or a documented 4xx, never 5xx; a refused batch writes nothing', async t => {
  const state = createRegionState({ region: REGION, writer: 'gw-fuzz', maintenanceIntervalMs: 0 })
  t.teardown(() => { state.close() })
  const mesh: IngestMesh = {
    region: name => {
      if (name !== REGION) throw new Error(`no region ${name}`)
      return state
    },
    whenDurable: async () => {}
  }
  const ingestor = createIngestor({ mesh, regions: [REGION] })
  const metrics = createGatewayMetrics()
  const http = createHttpApp({
    logger: pino({ level: 'silent' }),
    ingestor,
    regions: new Map([[REGION, state]]),
    readiness: () => ({ ready: true, storage: 'memory', mesh: 'started', peers: 0, lastSyncAt: null, regions: [REGION] }),
    metrics,
    bodyLimitBytes: BODY_LIMIT
  })
  t.teardown(async () => { await http.app.close() })
  await http.app.ready()
  /** Successful results by idempotency key: a repeat with the key is answered with the same result. */
  const replies = new Map<string, { accepted: number, duplicates: number, readings?: unknown }>()
  const outcomes = new Outcomes()

  await fc.assert(fc.asyncProperty(inputArb, async input => {
    const text = typeof input.body === 'string' ? input.body : (() => {
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(input.body)
      } catch {
        return undefined
      }
    })()
    const headers: Record<string, string> = {}
    if (input.contentType !== undefined) headers['content-type'] = input.contentType
    if (input.key !== null) headers['idempotency-key'] = input.key
    const before = stateOf(state)
    const described = `POST ${input.route} ${shortJson(headers)} ${shortJson(typeof input.body === 'string' ? input.body : `bytes ${input.body.toString('hex')}`, 2000)}`
    const res = await guard.watchAsync(described, described, async () => await http.app.inject({ method: 'POST', url: input.route, headers, payload: input.body }))
    const status = res.statusCode
    let reply: Record<string, unknown>
    try {
      reply = res.json()
    } catch {
      throw new Error(`${described}: ${status} with a body that is not JSON: ${shortJson(res.body)}`)
    }
    check(status < 500, () => `${described}: ${status} ${shortJson(reply)}`)
    const after = stateOf(state)
    if (status === 200) {
      const { accepted, duplicates, readings: echo } = reply as { accepted: number, duplicates: number, readings?: unknown }
      check(Number.isSafeInteger(accepted) && accepted >= 0 && Number.isSafeInteger(duplicates) && duplicates >= 0,
        () => `${described}: 200 with an invalid result ${shortJson(reply)}`)
      check(echo === undefined || (Array.isArray(echo) && echo.length === accepted && echo.every(r => typeof r.sensor === 'string' && /^[0-9a-f]{16}$/.test(r.t as string))),
        () => `${described}: echoed readings ${shortJson(echo)} do not match accepted ${String(accepted)}`)
      const first = input.key === null ? undefined : replies.get(input.key)
      if (first !== undefined) {
        // A repeat: the first result again (with the readings if both asked for them), nothing written.
        check(first.accepted === accepted && first.duplicates === duplicates && (first.readings === undefined || echo === undefined || shortJson(first.readings, Infinity) === shortJson(echo, Infinity)),
          () => `${described}: a repeated Idempotency-Key got ${shortJson(reply)}, not the first result ${shortJson(first)}`)
        check(after === before, () => `${described}: an idempotent repeat wrote to the region`)
        if (first.readings === undefined && echo !== undefined) first.readings = echo
        outcomes.add('200 replayed')
      } else {
        check((after !== before) === (accepted > 0), () => `${described}: accepted ${String(accepted)} but the region ${after === before ? 'did not change' : 'changed'}`)
        if (input.key !== null) replies.set(input.key, { accepted, duplicates, readings: echo })
        outcomes.add('200')
      }
    } else {
      const code = reply.code as ErrorCode
      check(typeof reply.error === 'string' && DOCUMENTED.has(code) && ERROR_CODES[code] === status, () => `${described}: ${status} ${shortJson(reply)} is not a documented error`)
      check(after === before, () => `${described}: refused with ${code} but the region changed`)
      outcomes.add(`${status} ${code}`)
    }
    const want = expected(input, text)
    if (want === 'ok') check(status === 200, () => `${described}: a valid batch was refused: ${status} ${shortJson(reply)}`)
    if (want === 'refused') check(status === 400 && REFUSED_BATCH.has(reply.code as string), () => `${described}: an invalid batch got ${status} ${shortJson(reply)}`)
  }), fuzzParameters())
  t.log(`${FUZZ_RUNS} inputs: ${outcomes.toString()}`)
  t.true(outcomes.get('200') > 0, 'some batches are accepted')
  t.true(outcomes.get('400 EM_ERR_INVALID_BODY') > 0 && outcomes.get('415 EM_ERR_UNSUPPORTED_MEDIA_TYPE') > 0, 'bad bodies and content types are refused')
  t.true(outcomes.get('400 EM_ERR_INVALID_SENSOR') > 0, 'batches that pass the schema but break the contract are refused')
  // The gateway keeps serving: a valid batch after all that is accepted.
  const last = await http.app.inject({ method: 'POST', url: '/v1/readings', headers: { 'content-type': 'application/json' }, payload: [{ sensor: 'after/fuzz', value: 1 }] })
  t.is(last.statusCode, 200)
  t.is(state.get('after/fuzz')?.value, 1)
})

/*
 * Found by this fuzzer (regression test): a reading with a device `ts` that is a duplicate or
 * stale is not written, but its value is still checked, so a batch holding an invalid one is
 * refused whole. Minimal counterexample: after `[{"sensor":"s","value":1,"ts":946684800000}]`,
 * the batch `[{"sensor":"t","value":2},{"sensor":"s","value":<35 nested arrays>,"ts":946684800000}]`
 * once answered 200 {accepted: 1, duplicates: 1} and wrote `t`.
 */
test('a batch whose duplicate reading has a value out of contract is refused whole (a duplicate is not written, but it is checked)', async t => {
  const state = createRegionState({ region: REGION, writer: 'gw-fuzz', maintenanceIntervalMs: 0 })
  t.teardown(() => { state.close() })
  const ingestor = createIngestor({ mesh: { region: () => state, whenDurable: async () => {} }, regions: [REGION] })
  const http = createHttpApp({
    logger: pino({ level: 'silent' }),
    ingestor,
    regions: new Map([[REGION, state]]),
    readiness: () => ({ ready: true, storage: 'memory', mesh: 'started', peers: 0, lastSyncAt: null, regions: [REGION] }),
    metrics: createGatewayMetrics()
  })
  t.teardown(async () => { await http.app.close() })
  const post = async (body: string): Promise<{ status: number, json: Record<string, unknown> }> => {
    const res = await http.app.inject({ method: 'POST', url: '/v1/readings', headers: { 'content-type': 'application/json' }, payload: body })
    return { status: res.statusCode, json: res.json() }
  }
  t.is((await post('[{"sensor":"s","value":1,"ts":946684800000}]')).status, 200)
  const nested = '['.repeat(MAX_DEPTH + 3) + '1' + ']'.repeat(MAX_DEPTH + 3)
  const refused = await post(`[{"sensor":"t","value":2},{"sensor":"s","value":${nested},"ts":946684800000}]`)
  t.is(state.get('t'), undefined, 'nothing of the batch is written')
  t.is(refused.status, 400)
  t.like(refused.json, { code: 'EM_ERR_INVALID_VALUE', details: { index: 1 } })
})
