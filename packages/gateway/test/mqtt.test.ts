/**
 * MQTT ingest against a real mosquitto (test/helpers/mosquitto.ts starts one per test on a free
 * loopback port), with a real mqtt.js publisher and a fake `ingest` that records its calls and can
 * be made to hang or throw.
 *
 * Delivery is exactly once while a consumer stays connected (every test but the restart ones checks
 * each reading is recorded once), and at least once across restarts and reconnects: a message
 * whose PUBACK was not sent is delivered again, and ingest deduplicates by (sensor, ts).
 */
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import mqtt, { type MqttClient } from 'mqtt'
import { pino, type Logger } from 'pino'
import { EdgeMeshError, type ErrorCode } from '@edge-mesh/errors'
import type { ReadingInput } from '@edge-mesh/reading'
import { HARD_MAX_VALUE_BYTES } from '@edge-mesh/region-state'
import { startMosquitto, type Mosquitto } from '../../../test/helpers/mosquitto.ts'
import { createMqttIngest, type IngestResult, type MqttIngest, type MqttIngestInit } from '../src/mqtt.ts'

const REGION = 'eu-west'
/** Bound of every wait on a condition. */
const WAIT_MS = 20_000

// ------------------------------------------------------------------ helpers

async function waitFor (cond: () => boolean, what: string, explain?: () => unknown, withinMs: number = WAIT_MS): Promise<void> {
  const end = Date.now() + withinMs
  for (;;) {
    if (cond()) return
    if (Date.now() > end) {
      throw new Error(`timed out after ${withinMs} ms waiting for: ${what}${explain !== undefined ? `; last state: ${JSON.stringify(explain())}` : ''}`)
    }
    await delay(20)
  }
}

/** Polls for `withinMs` and fails if `cond` ever holds (for "this never grows past a bound"). */
async function holdsNever (cond: () => boolean, withinMs: number): Promise<boolean> {
  const end = Date.now() + withinMs
  while (Date.now() < end) {
    if (cond()) return false
    await delay(20)
  }
  return !cond()
}

async function startBroker (t: ExecutionContext, maxInflight?: number): Promise<Mosquitto> {
  const broker = await startMosquitto({ maxInflight })
  t.teardown(async () => { await broker.stop() })
  return broker
}

interface Call { region: string, readings: ReadingInput[] }

/** A fake ingest: records successful calls; `behave` can make a call hang or throw. */
class Recorder {
  readonly calls: Call[] = []
  /** Every call, also those that threw. */
  attempts = 0
  behave: (region: string, readings: ReadingInput[]) => Promise<void> = async () => {}

  readonly ingest = async (region: string, readings: ReadingInput[]): Promise<IngestResult> => {
    this.attempts++
    const copy = readings.map(r => ({ ...r }))
    await this.behave(region, copy)
    this.calls.push({ region, readings: copy })
    return { accepted: readings.length, duplicates: 0 }
  }

  readings (): Array<ReadingInput & { region: string }> {
    return this.calls.flatMap(c => c.readings.map(r => ({ region: c.region, ...r })))
  }

  sensors (): string[] {
    return this.readings().map(r => r.sensor)
  }
}

/** A promise and its resolve function. */
function gate (): { promise: Promise<void>, open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>(resolve => { open = resolve })
  return { promise, open }
}

function captureLogger (): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, { write (line: string) { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { logger, lines }
}

const clientIdFor = (name: string): string => `test-${name}-${randomBytes(3).toString('hex')}`

async function startIngest (t: ExecutionContext, init: Partial<MqttIngestInit> & Pick<MqttIngestInit, 'url' | 'ingest'>): Promise<MqttIngest> {
  const ingest = createMqttIngest({ regions: [REGION], logger: captureLogger().logger, ...init })
  t.teardown(async () => { await ingest.stop() })
  await ingest.start()
  return ingest
}

async function publisher (t: ExecutionContext, url: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId: clientIdFor('pub'), clean: true, reconnectPeriod: 0 })
  t.teardown(async () => { await client.endAsync(true) })
  return client
}

async function publishAll (client: MqttClient, messages: Array<[string, string | Buffer]>, qos: 0 | 1 = 1): Promise<void> {
  await Promise.all(messages.map(async ([topic, payload]) => await client.publishAsync(topic, payload, { qos })))
}

const numbered = (n: number, prefix = 's'): Array<[string, string]> =>
  Array.from({ length: n }, (_, i) => [`sensors/${REGION}/${prefix}${i}`, JSON.stringify({ value: i, ts: 1_700_000_000_000 + i })])

/**
 * Starts a consumer with `clientId`, publishes a sentinel, and checks that the sentinel is the only
 * thing it receives: the broker had nothing left to deliver again, so everything before was acknowledged.
 */
async function assertNothingRedelivered (t: ExecutionContext, url: string, clientId: string, regions: string[] = [REGION]): Promise<void> {
  const rec = new Recorder()
  const consumer = await startIngest(t, { url, clientId, regions, ingest: rec.ingest })
  const pub = await publisher(t, url)
  await publishAll(pub, [[`sensors/${REGION}/sentinel`, '1']])
  await waitFor(() => rec.sensors().includes('sentinel'), 'the sentinel', () => rec.sensors())
  t.deepEqual(rec.sensors(), ['sentinel'], 'nothing was delivered again before the sentinel')
  t.is(consumer.stats().messages, 1)
  await consumer.stop()
}

// ------------------------------------------------------------------ mapping

test('readings are mapped from topics (nested sensor ids) in both payload forms', async t => {
  const broker = await startBroker(t)
  const rec = new Recorder()
  const ingest = await startIngest(t, { url: broker.url, regions: [REGION, 'us-east'], ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, [
    [`sensors/${REGION}/line-3/temp`, '21.5'],
    [`sensors/${REGION}/site/a/b/c`, JSON.stringify({ value: 1, ts: 1_700_000_000_000, unit: 'C' })],
    [`sensors/${REGION}/switch`, '"on"'],
    [`sensors/${REGION}/obj`, '{"x":1,"y":[1,2]}'],
    [`sensors/${REGION}/nested-envelope`, '{"value":{"value":2}}'],
    [`sensors/${REGION}/unit-only`, '{"value":3,"unit":"kPa"}'],
    ['sensors/us-east/gone', 'null']
  ])
  await waitFor(() => rec.readings().length === 7, '7 readings', () => rec.readings())
  const bySensor = Object.fromEntries(rec.readings().map(({ sensor, ...rest }) => [sensor, rest]))
  t.deepEqual(bySensor, {
    'line-3/temp': { region: REGION, value: 21.5 },
    'site/a/b/c': { region: REGION, value: 1, ts: 1_700_000_000_000, unit: 'C' },
    switch: { region: REGION, value: 'on' },
    obj: { region: REGION, value: { x: 1, y: [1, 2] } },
    'nested-envelope': { region: REGION, value: { value: 2 } },
    'unit-only': { region: REGION, value: 3, unit: 'kPa' },
    gone: { region: 'us-east', value: null }
  })
  t.like(ingest.stats(), { connected: true, messages: 7, accepted: 7, duplicates: 0, malformed: 0, rejected: 0, paused: false })
  for (const call of rec.calls) t.true(call.readings.length > 0)
})

test('duplicates reported by ingest are counted', async t => {
  const broker = await startBroker(t)
  const seen = new Set<string>()
  const ingest = await startIngest(t, {
    url: broker.url,
    ingest: async (_region, readings) => {
      let duplicates = 0
      for (const r of readings) {
        const key = `${r.sensor}@${String(r.ts)}`
        if (seen.has(key)) duplicates++
        seen.add(key)
      }
      return { accepted: readings.length - duplicates, duplicates }
    }
  })
  const pub = await publisher(t, broker.url)
  const same: [string, string] = [`sensors/${REGION}/dup`, JSON.stringify({ value: 1, ts: 1_700_000_000_000 })]
  await publishAll(pub, [same])
  await waitFor(() => ingest.stats().accepted === 1, 'the first copy')
  await publishAll(pub, [same, same])
  await waitFor(() => ingest.stats().duplicates === 2, 'two duplicates', () => ingest.stats())
  t.like(ingest.stats(), { messages: 3, accepted: 1, duplicates: 2 })
})

test('QoS 0 subscriptions ingest too', async t => {
  const broker = await startBroker(t)
  const rec = new Recorder()
  const ingest = await startIngest(t, { url: broker.url, qos: 0, ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(20), 0)
  await waitFor(() => rec.readings().length === 20, '20 readings', () => ingest.stats())
  t.deepEqual(rec.sensors().sort(), numbered(20).map(([topic]) => topic.split('/')[2]).sort())
})

// ------------------------------------------------------------------ malformed and refused

test('malformed messages are counted, logged at most once a second with a count, acknowledged, and ingest goes on', async t => {
  const broker = await startBroker(t)
  const clientId = clientIdFor('malformed')
  // A previous run of this gateway also held region "old": the persistent session keeps that
  // subscription, so the broker still sends its messages (a region this gateway no longer holds).
  const before = await startIngest(t, { url: broker.url, clientId, regions: [REGION, 'old'], ingest: new Recorder().ingest })
  await before.stop()

  const rec = new Recorder()
  const { logger, lines } = captureLogger()
  const ingest = createMqttIngest({ url: broker.url, clientId, regions: [REGION], ingest: rec.ingest, logger })
  t.teardown(async () => { await ingest.stop() })
  await ingest.start()
  const pub = await publisher(t, broker.url)
  const bad: Array<[string, string | Buffer]> = [
    [`sensors/${REGION}/a`, '{not json'],
    [`sensors/${REGION}/b`, Buffer.from([0x22, 0xff, 0xfe, 0x22])], // not UTF-8
    [`sensors/${REGION}/c`, ''],
    [`sensors/${REGION}/d`, JSON.stringify({ value: 1, ts: 5 })], // ts out of range
    [`sensors/${REGION}/e`, JSON.stringify({ value: 1, ts: 1.5e12 + 0.5 })], // not an integer
    [`sensors/${REGION}/f`, JSON.stringify({ value: 1, unit: '' })],
    [`sensors/${REGION}/g`, JSON.stringify({ value: 1, extra: true })], // unknown envelope field
    [`sensors/${REGION}/h`, JSON.stringify({ value: 1, sensor: 'other' })], // the sensor comes from the topic
    ['sensors/old/i', '1'], // a region this gateway does not hold
    [`sensors/${REGION}/`, '1'], // empty sensor id
    [`sensors/${REGION}`, '1'], // no sensor level at all (matched by sensors/<region>/#)
    [`sensors/${REGION}/${'x'.repeat(300)}`, '1'], // sensor id over 256 characters
    [`sensors/${REGION}/huge`, JSON.stringify({ value: 'x'.repeat(HARD_MAX_VALUE_BYTES + 2048) })] // oversized
  ]
  await publishAll(pub, bad)
  await publishAll(pub, [[`sensors/${REGION}/good`, '42']])
  await waitFor(() => rec.sensors().includes('good'), 'the good reading after the bad ones', () => ingest.stats())
  t.like(ingest.stats(), { messages: bad.length + 1, malformed: bad.length, accepted: 1, rejected: 0 })
  t.deepEqual(rec.readings(), [{ region: REGION, sensor: 'good', value: 42 }])

  await ingest.stop()
  const warns = lines.filter(l => l.msg === 'malformed MQTT messages dropped')
  t.is(warns.reduce((n, l) => n + (l.count as number), 0), bad.length, 'every malformed message is in a count')
  t.true(warns.length < bad.length, `rate-limited: ${warns.length} lines for ${bad.length} messages`)
  t.true(warns.every(l => l.level === 40 && typeof l.reason === 'string'))

  await assertNothingRedelivered(t, broker.url, clientId)
})

test('a reading that ingest refuses is counted rejected without rejecting the rest of its batch', async t => {
  const broker = await startBroker(t)
  const clientId = clientIdFor('rejected')
  const rec = new Recorder()
  rec.behave = async (_region, readings) => {
    if (readings.some(r => r.sensor.startsWith('bad'))) throw new EdgeMeshError('EM_ERR_INVALID_VALUE', 'refused by region state')
  }
  const ingest = await startIngest(t, { url: broker.url, clientId, ingest: rec.ingest })
  ingest.pause() // gather everything into one batch
  const pub = await publisher(t, broker.url)
  const messages: Array<[string, string]> = [...numbered(3, 'ok'), [`sensors/${REGION}/bad1`, '1'], ...numbered(2, 'fine'), [`sensors/${REGION}/bad2`, '2']]
  await publishAll(pub, messages)
  await waitFor(() => ingest.stats().messages === messages.length, 'all messages gathered', () => ingest.stats())
  t.is(rec.attempts, 0, 'nothing is ingested while paused')
  ingest.resume()
  await waitFor(() => ingest.stats().rejected === 2 && ingest.stats().accepted === 5, '5 accepted, 2 rejected', () => ingest.stats())
  t.is(rec.attempts, 1 + messages.length, 'the batch once, then each reading alone')
  t.deepEqual(rec.sensors().sort(), ['fine0', 'fine1', 'ok0', 'ok1', 'ok2'])
  await ingest.stop()
  await assertNothingRedelivered(t, broker.url, clientId)
})

// ------------------------------------------------------------------ batching and backpressure

test('messages that arrive while a batch is written form the next batch (group commit)', async t => {
  const broker = await startBroker(t, 100)
  const rec = new Recorder()
  const first = gate()
  rec.behave = async () => { if (rec.attempts === 1) await first.promise }
  const ingest = await startIngest(t, { url: broker.url, ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(1, 'lead'))
  await waitFor(() => rec.attempts === 1, 'the first batch to be written')
  await publishAll(pub, numbered(50))
  await waitFor(() => ingest.stats().messages === 51, '50 more messages gathered', () => ingest.stats())
  first.open()
  await waitFor(() => rec.readings().length === 51, 'every reading', () => ingest.stats())
  t.is(rec.calls.length, 2, 'one write for the first message, one for the 50 gathered meanwhile')
  t.is(rec.calls[1].readings.length, 50)
  t.deepEqual(rec.calls[1].readings.map(r => r.sensor), numbered(50).map(([topic]) => topic.split('/')[2]), 'in arrival order')
})

test('maxBatch bounds the readings per ingest call and the messages queued', async t => {
  const broker = await startBroker(t, 1000)
  const rec = new Recorder()
  const first = gate()
  rec.behave = async () => { if (rec.attempts === 1) await first.promise }
  const ingest = await startIngest(t, { url: broker.url, ingest: rec.ingest, maxBatch: 5 })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(1, 'lead'))
  await waitFor(() => rec.attempts === 1, 'the first batch to be written')
  await publishAll(pub, numbered(40))
  await waitFor(() => ingest.stats().messages === 1 + 5, 'the queue to fill up to maxBatch', () => ingest.stats())
  t.true(await holdsNever(() => ingest.stats().messages > 6, 300), 'no more is read while the queue is full')
  first.open()
  await waitFor(() => rec.readings().length === 41, 'every reading', () => ingest.stats())
  t.true(rec.calls.every(c => c.readings.length <= 5), JSON.stringify(rec.calls.map(c => c.readings.length)))
  t.is(new Set(rec.sensors()).size, 41, 'each once')
})

test('the broker in-flight window bounds what is outstanding while ingest is slow', async t => {
  const broker = await startBroker(t, 10)
  const rec = new Recorder()
  const slow = gate()
  rec.behave = async () => { await slow.promise }
  const ingest = await startIngest(t, { url: broker.url, ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(100)) // resolves once the broker has every message
  await waitFor(() => ingest.stats().messages === 10, 'the in-flight window (10) to fill', () => ingest.stats())
  t.true(await holdsNever(() => ingest.stats().messages > 10, 300), 'the broker sends no more until something is acknowledged')
  slow.open()
  await waitFor(() => rec.readings().length === 100, 'every reading', () => ingest.stats())
  t.is(ingest.stats().messages, 100)
  t.is(new Set(rec.sensors()).size, 100)
})

for (const code of ['EM_ERR_OVERLOADED', 'EM_ERR_UNAVAILABLE'] as ErrorCode[]) {
  test(`${code} from ingest pauses the consumer and retries the same batch; after recovery nothing is lost`, async t => {
    const broker = await startBroker(t, 50)
    const rec = new Recorder()
    let overloaded = true
    rec.behave = async () => { if (overloaded) throw new EdgeMeshError(code, 'busy', { retryAfterMs: 50 }) }
    const ingest = await startIngest(t, { url: broker.url, ingest: rec.ingest })
    const pub = await publisher(t, broker.url)
    await publishAll(pub, numbered(100))
    await waitFor(() => ingest.stats().paused, 'paused', () => ingest.stats())
    await waitFor(() => rec.attempts >= 3, 'retries', () => rec.attempts)
    t.is(rec.calls.length, 0)
    t.true(ingest.stats().messages <= 50, 'bounded by the in-flight window while nothing is acknowledged')
    overloaded = false
    await waitFor(() => rec.readings().length === 100, 'every reading after recovery', () => ingest.stats())
    t.false(ingest.stats().paused)
    t.deepEqual(rec.sensors().sort(), numbered(100).map(([topic]) => topic.split('/')[2]).sort(), 'each exactly once')
    t.like(ingest.stats(), { messages: 100, accepted: 100, rejected: 0 })
  })
}

test('nothing is acknowledged while ingest is overloaded: after a restart the broker delivers every message again', async t => {
  const broker = await startBroker(t)
  const clientId = clientIdFor('overloaded')
  const rec = new Recorder()
  rec.behave = async () => { throw new EdgeMeshError('EM_ERR_OVERLOADED', 'busy', { retryAfterMs: 5000 }) }
  const first = await startIngest(t, { url: broker.url, clientId, ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(10))
  await waitFor(() => first.stats().messages === 10 && first.stats().paused, 'all 10 received, ingest overloaded', () => first.stats())
  await first.stop() // wakes the 5 s back-off and gives up the batch
  t.false(first.stats().connected)

  const again = new Recorder()
  const second = await startIngest(t, { url: broker.url, clientId, ingest: again.ingest })
  await waitFor(() => again.readings().length === 10, 'the 10 messages again', () => second.stats())
  t.deepEqual(again.sensors().sort(), numbered(10).map(([topic]) => topic.split('/')[2]).sort())
})

test('pause() holds acknowledgements (so the stream stops at the in-flight window) and resume() ingests what gathered', async t => {
  const broker = await startBroker(t, 10)
  const rec = new Recorder()
  const ingest = await startIngest(t, { url: broker.url, ingest: rec.ingest })
  ingest.pause()
  t.true(ingest.stats().paused)
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(25))
  await waitFor(() => ingest.stats().messages === 10, 'the in-flight window to fill', () => ingest.stats())
  t.true(await holdsNever(() => ingest.stats().messages > 10 || rec.attempts > 0, 300), 'nothing ingested, nothing more read')
  ingest.resume()
  t.false(ingest.stats().paused)
  await waitFor(() => rec.readings().length === 25, 'every reading after resume()', () => ingest.stats())
  t.is(new Set(rec.sensors()).size, 25)
})

// ------------------------------------------------------------------ acknowledgement and sessions

test('a message is acknowledged only once ingest resolves: stopped while ingest hangs, a restart gets it again', async t => {
  const broker = await startBroker(t)
  const clientId = clientIdFor('hang')
  const rec = new Recorder()
  const never = gate()
  t.teardown(() => { never.open() })
  rec.behave = async () => { await never.promise }
  const first = await startIngest(t, { url: broker.url, clientId, ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(5))
  await waitFor(() => first.stats().messages === 5 && rec.attempts >= 1, 'ingest called and hanging', () => first.stats())
  await first.stop() // waits (bounded) for the hanging batch, then disconnects without acknowledging it
  never.open() // resolving now must not acknowledge anything: that client is gone

  const again = new Recorder()
  await startIngest(t, { url: broker.url, clientId, ingest: again.ingest })
  await waitFor(() => again.readings().length === 5, 'the 5 messages delivered again', () => again.sensors())
  t.deepEqual(again.sensors().sort(), numbered(5).map(([topic]) => topic.split('/')[2]).sort())
})

test('stop() waits for the batch being written, acknowledges it, and disconnects; it is idempotent', async t => {
  const broker = await startBroker(t)
  const clientId = clientIdFor('stop')
  const rec = new Recorder()
  const slow = gate()
  rec.behave = async () => { await slow.promise }
  const ingest = await startIngest(t, { url: broker.url, clientId, ingest: rec.ingest })
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(5))
  await waitFor(() => ingest.stats().messages === 5 && rec.attempts >= 1, 'a batch being written', () => ingest.stats())
  let stopped = false
  const stopping = ingest.stop().then(() => { stopped = true })
  await delay(50)
  t.false(stopped, 'stop() waits for the batch in flight')
  slow.open()
  await Promise.all([stopping, ingest.stop()])
  t.false(ingest.stats().connected)
  await ingest.stop()
  const closed = await t.throwsAsync(ingest.start(), { instanceOf: EdgeMeshError })
  t.is(closed?.code, 'EM_ERR_CLOSED')
  // What was written before stop() returned was acknowledged; the rest stays with the broker.
  const written = rec.readings().length
  const again = new Recorder()
  const second = await startIngest(t, { url: broker.url, clientId, ingest: again.ingest })
  const pubAgain = await publisher(t, broker.url)
  await publishAll(pubAgain, [[`sensors/${REGION}/sentinel`, '1']])
  await waitFor(() => again.sensors().includes('sentinel'), 'the sentinel', () => second.stats())
  t.is(again.readings().length - 1 + written, 5, 'each message written once before the restart or delivered after it')
  t.false(again.sensors().some(s => rec.sensors().includes(s)), 'nothing acknowledged is delivered again')
})

test('a consumer that comes back with the same clientId gets what was published while it was away', async t => {
  const broker = await startBroker(t)
  const clientId = clientIdFor('away')
  const first = await startIngest(t, { url: broker.url, clientId, ingest: new Recorder().ingest })
  await first.stop()
  const pub = await publisher(t, broker.url)
  await publishAll(pub, numbered(30))
  const rec = new Recorder()
  await startIngest(t, { url: broker.url, clientId, ingest: rec.ingest })
  await waitFor(() => rec.readings().length === 30, '30 readings published while away', () => rec.sensors().length)
  t.is(new Set(rec.sensors()).size, 30)
})

test('after the broker restarts, the consumer reconnects, subscribes again and ingests', async t => {
  const first = await startMosquitto()
  t.teardown(async () => { await first.stop() })
  const rec = new Recorder()
  const { logger, lines } = captureLogger()
  const ingest = createMqttIngest({ url: first.url, regions: [REGION], ingest: rec.ingest, logger })
  t.teardown(async () => { await ingest.stop() })
  await ingest.start()
  const pub1 = await publisher(t, first.url)
  await publishAll(pub1, [[`sensors/${REGION}/before`, '1']])
  await waitFor(() => rec.sensors().includes('before'), 'a reading before the restart')
  await pub1.endAsync(true)

  await first.stop()
  await waitFor(() => !ingest.stats().connected, 'the consumer to notice the broker is gone')
  // The new broker has no session for us (persistence false): mqtt.js must subscribe again.
  const second = await startMosquitto({ port: first.port })
  t.teardown(async () => { await second.stop() })
  await waitFor(() => ingest.stats().connected, 'the consumer to reconnect (reconnectPeriod)', () => ingest.stats())
  const pub2 = await publisher(t, second.url)
  // The subscription may land a moment after the CONNACK: publish until a reading arrives.
  await waitFor(() => {
    if (!rec.sensors().includes('after')) void pub2.publishAsync(`sensors/${REGION}/after`, '2', { qos: 1 })
    return rec.sensors().includes('after')
  }, 'a reading after the restart', () => ingest.stats())
  t.true(lines.some(l => l.msg === 'MQTT connection closed' && l.level === 40), 'the close is logged')
  t.true(lines.filter(l => l.msg === 'connected to the MQTT broker').length >= 2, 'both connects are logged')
})

// ------------------------------------------------------------------ options and start

test('invalid options are refused with EM_ERR_INVALID_OPTIONS', t => {
  const base: MqttIngestInit = { url: 'mqtt://127.0.0.1:1', regions: [REGION], ingest: new Recorder().ingest, logger: captureLogger().logger }
  const bad: Array<Partial<MqttIngestInit> | Record<string, unknown>> = [
    { url: 'not a url' },
    { url: 'http://127.0.0.1:1883' },
    { regions: [] },
    { regions: ['a/b'] },
    { regions: ['#'] },
    { maxBatch: 0 },
    { maxBatch: 1.5 },
    { qos: 2 },
    { clientId: '' },
    { ingest: undefined }
  ]
  for (const override of bad) {
    const err = t.throws(() => createMqttIngest({ ...base, ...override } as MqttIngestInit), { instanceOf: EdgeMeshError }, JSON.stringify(override))
    t.is(err?.code, 'EM_ERR_INVALID_OPTIONS')
  }
})

test('start() rejects with EM_ERR_UNAVAILABLE when no broker answers, and leaves nothing running', async t => {
  const broker = await startMosquitto()
  const url = broker.url
  await broker.stop() // a port where nothing listens now
  const ingest = createMqttIngest({ url, regions: [REGION], ingest: new Recorder().ingest, logger: captureLogger().logger })
  const err = await t.throwsAsync(ingest.start(), { instanceOf: EdgeMeshError })
  t.is(err?.code, 'EM_ERR_UNAVAILABLE')
  t.false(ingest.stats().connected)
  await ingest.stop()
})
