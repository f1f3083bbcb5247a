/**
 * MQTT ingest: subscribes to `sensors/<region>/#` on a broker and hands the readings to the
 * gateway's `ingest`, acknowledging each QoS 1 message only once its reading is durable.
 *
 *   topic    sensors/<region>/<sensor...>      the sensor id is the rest of the topic ('/' allowed)
 *   payload  UTF-8 JSON: { value, ts?, unit? } (the HTTP contract), or any other JSON, which is
 *            then the value itself (`21.5`, `"on"`, `[1, 2]`, `{ "x": 1 }`)
 *
 * Anything else (not UTF-8 JSON, a bad `ts` or `unit`, an unknown field in an envelope, a region
 * this gateway does not hold, an empty or invalid sensor id, a payload over 1 MiB + 1 KiB, larger
 * than any value may be) is `malformed`: counted, logged at warn (at most one line per second, with
 * a count), acknowledged and dropped.
 *
 * ## Acknowledgement, group commit and backpressure
 *
 * mqtt.js hands incoming messages to `client.handleMessage(packet, callback)` one at a time: it
 * sends the PUBACK of a QoS 1 message, and only then reads the next packet, when `callback()` is
 * called without an error (mqtt 5.16, `handlers/publish` and the `work` loop of `client`). Holding
 * the callback until a reading is durable would therefore allow one message per durable write, and
 * no group commit. So `handleMessage` is overridden to queue the message and call
 * `callback(DEFERRED)`: with an error mqtt.js skips the automatic PUBACK and moves on to the next
 * packet. The PUBACKs are sent by this module, through mqtt.js's own (internal) `_sendPacket`, in the
 * order the messages arrived, after `ingest` resolved for the batch that holds them; a malformed
 * message is acknowledged in its turn. `start()` checks that `_sendPacket` exists, and the tests
 * check against a real broker that what is not acknowledged is delivered again.
 *
 *   broker ──PUBLISH──▶ handleMessage ──▶ queue ──(pump: one batch at a time)──▶ ingest ──▶ PUBACKs
 *
 * While a batch is being written, new messages gather in the queue and form the next batch (up to
 * `maxBatch` readings). What is outstanding is bounded twice. The queue never holds more than
 * `maxBatch` messages: at that size the mqtt.js callback is held, so the client stops reading its
 * socket and TCP pushes back on the broker; memory is thus at most two batches, whatever the broker
 * does (and this is the only bound for QoS 0). And the broker sends at most `max_inflight_messages`
 * unacknowledged QoS 1 messages (mosquitto's default is 20) to a consumer that acknowledges nothing
 * (stalled, overloaded or paused). (With acknowledgements flowing, mosquitto 2.0.11 was measured to
 * run well past that window, ~900 unacknowledged with a window of 20: the queue bound is what holds.)
 *
 * `ingest` failing with `EM_ERR_OVERLOADED` or `EM_ERR_UNAVAILABLE` sets `paused`, waits
 * `details.retryAfterMs` (clamped to 100 ms - 5 s) and retries the same batch; nothing is
 * acknowledged meanwhile. Any other error splits the batch: its readings are retried one by one, so
 * that one bad reading is counted `rejected` without rejecting the good ones; then the batch is
 * acknowledged.
 *
 * `pause()` holds the acknowledgements: no new batch is started, messages keep being read until the
 * broker's in-flight window (or `maxBatch`) is full, and then the broker stops sending. The
 * connection itself stays healthy (keepalive PINGRESPs are still read), so a long pause costs no
 * reconnect. `resume()` starts the next batch.
 *
 * ## Delivery guarantee: at least once
 *
 * The client connects with `clean: false` and a fixed client id, so the broker keeps the session
 * (subscriptions and unacknowledged QoS 1 messages) while the gateway is away or reconnecting
 * (mqtt.js reconnects every `reconnectPeriod`). A PUBACK is sent only on the connection the message
 * came in on; messages of a connection that closed are not acknowledged and the broker delivers
 * them again. A message can thus be ingested twice (when the connection drops between the durable
 * write and the PUBACK): ingest deduplicates readings that carry a device timestamp `ts`.
 * Give the gateway a stable `clientId` for this to hold across restarts.
 */
import { randomBytes } from 'node:crypto'
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { ClosedError, EdgeMeshError, InvalidOptionsError, isEdgeMeshError } from '@edge-mesh/errors'
import { assertReadingInput, type JsonValue, type ReadingInput } from '@edge-mesh/reading'
import { HARD_MAX_VALUE_BYTES, isValidRegionName, isValidSensorId } from '@edge-mesh/region-state'
import { settlesWithin } from '@edge-mesh/service'

/** What `ingest` reports for a batch: readings applied, and readings already known (same sensor and `ts`). */
export interface IngestResult { accepted: number, duplicates: number }

export interface MqttIngestInit {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883` (mqtt:, mqtts:, tcp:, ssl:, ws:, wss:). */
  url: string
  /** Regions to take readings for: subscribes to `sensors/<region>/#` for each. */
  regions: string[]
  /**
   * Writes readings of one region; resolves once they are durable. Throws an `EdgeMeshError`:
   * `EM_ERR_OVERLOADED` / `EM_ERR_UNAVAILABLE` (with `details.retryAfterMs`) to be retried later,
   * any other code when a reading is refused.
   */
  ingest: (region: string, readings: ReadingInput[], opts?: { ifAbsent?: boolean }) => Promise<IngestResult>
  /** Logs under `component: 'gateway:mqtt'` (a child is made unless it is bound already). */
  logger: Logger
  /**
   * MQTT client id. The session is persistent (`clean: false`): the broker keeps QoS 1 messages
   * while the gateway is away, as long as it comes back with the same id.
   * @default `edge-mesh-gw-<8 random hex digits>`
   */
  clientId?: string
  /** QoS of the subscriptions: 1 for acknowledged delivery, 0 for best effort. @default 1 */
  qos?: 0 | 1
  /** Most readings per `ingest` call (and most messages queued). @default 1000 */
  maxBatch?: number
}

export interface MqttIngestStats {
  /** Connected to the broker now. */
  connected: boolean
  /** Messages received (each delivery counts, redeliveries too). */
  messages: number
  /** Readings `ingest` applied. */
  accepted: number
  /** Readings `ingest` reported as already known. */
  duplicates: number
  /** Messages dropped without calling `ingest` (bad topic or payload). */
  malformed: number
  /** Readings `ingest` refused. */
  rejected: number
  /** Retained messages without a device `ts`, ingested only where their sensor had no reading. */
  retained: number
  /** Not consuming now: `pause()` was called, or `ingest` is overloaded and a retry is pending. */
  paused: boolean
}

export interface MqttIngest {
  /**
   * Connects, subscribes, and starts ingesting. Rejects with `EM_ERR_UNAVAILABLE` if the broker
   * cannot be reached (or refuses the subscriptions) within 15 s, and is then stopped. Calling it
   * again while it runs returns the same promise; once stopped it rejects with `EM_ERR_CLOSED`.
   */
  start: () => Promise<void>
  /**
   * Stops taking messages, waits (at most 5 s) for the batch being written and acknowledges it,
   * then disconnects. Messages not acknowledged stay with the broker for the next session.
   */
  stop: () => Promise<void>
  stats: () => MqttIngestStats
  /** Holds the acknowledgements (and so, through the broker's in-flight window, the stream). */
  pause: () => void
  /** Undoes `pause()`. */
  resume: () => void
}

/** Creates an MQTT ingest; call `start()` to connect. Throws `EM_ERR_INVALID_OPTIONS` for bad options. */
export function createMqttIngest (init: MqttIngestInit): MqttIngest {
  return new MqttIngestService(init)
}

const TOPIC_ROOT = 'sensors'
const COMPONENT = 'gateway:mqtt'
/** Largest payload parsed: no value may be larger, whatever a region allows, plus room for an envelope. */
const MAX_PAYLOAD_BYTES = HARD_MAX_VALUE_BYTES + 1024
const DEFAULT_MAX_BATCH = 1000
const MAX_MAX_BATCH = 100_000
const START_TIMEOUT_MS = 15_000
const STOP_DRAIN_MS = 5_000
const END_TIMEOUT_MS = 2_000
const RECONNECT_PERIOD_MS = 1_000
const MIN_RETRY_MS = 100
const MAX_RETRY_MS = 5_000
const DEFAULT_RETRY_MS = 1_000
const WARN_EVERY_MS = 1_000
const URL_PROTOCOLS = new Set(['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'])

/**
 * Passed to mqtt.js's `handleMessage` callback: an error makes it skip its automatic PUBACK (we
 * send it once the reading is durable) and go on with the next packet.
 */
const DEFERRED = new Error('edge-mesh: PUBACK deferred until the reading is durable')

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A QoS 1 message to acknowledge: its packet id, on the connection (stream) it arrived on. */
interface Ack { messageId: number, stream: unknown }

/** One received message, in arrival order: a reading to ingest, or a malformed message to drop. */
interface Received {
  region: string | undefined
  reading: ReadingInput | undefined
  ack: Ack | undefined
  /**
   * A retained message without a device `ts`: the broker's "last known value", sent again on every
   * subscription. It is ingested only for a sensor with no live reading (`ifAbsent`).
   */
  ifAbsent: boolean
}

type Decoded = { ok: true, region: string, reading: ReadingInput } | { ok: false, reason: string }

type SendPacket = (packet: { cmd: 'puback', messageId: number }) => void

type State = 'new' | 'running' | 'stopping' | 'stopped'

class MqttIngestService implements MqttIngest {
  private readonly url: string
  private readonly regions: ReadonlySet<string>
  private readonly ingest: MqttIngestInit['ingest']
  private readonly log: Logger
  private readonly clientId: string
  private readonly qos: 0 | 1
  private readonly maxBatch: number
  private readonly malformedWarn: RateLimitedWarn
  private readonly rejectedWarn: RateLimitedWarn

  private state: State = 'new'
  private client: MqttClient | undefined
  private queue: Received[] = []
  /** mqtt.js's callback for the last message, held while the queue is full. */
  private held: ((err?: Error) => void) | undefined
  private pumpScheduled = false
  private pumping: Promise<void> | undefined
  private manualPause = false
  private overloaded = false
  private acksAllowed = true
  private wakeBackoff: (() => void) | undefined
  private wasConnected = false
  private lastError: string | undefined
  private starting: Promise<void> | undefined
  private stopping: Promise<void> | undefined
  private readonly counts = { messages: 0, accepted: 0, duplicates: 0, malformed: 0, rejected: 0, retained: 0 }

  constructor (init: MqttIngestInit) {
    this.url = validUrl(init.url)
    this.regions = validRegions(init.regions)
    if (typeof init.ingest !== 'function') throw new InvalidOptionsError('ingest must be a function')
    if (init.logger === undefined || typeof init.logger.child !== 'function') throw new InvalidOptionsError('logger must be a pino logger')
    this.ingest = init.ingest
    this.log = init.logger.bindings().component === COMPONENT ? init.logger : init.logger.child({ component: COMPONENT })
    this.clientId = init.clientId ?? `edge-mesh-gw-${randomBytes(4).toString('hex')}`
    if (typeof this.clientId !== 'string' || this.clientId.length === 0 || this.clientId.length > 65535) {
      throw new InvalidOptionsError('clientId must be a non-empty string', { clientId: init.clientId })
    }
    this.qos = init.qos ?? 1
    if (this.qos !== 0 && this.qos !== 1) throw new InvalidOptionsError('qos must be 0 or 1', { qos: init.qos })
    this.maxBatch = init.maxBatch ?? DEFAULT_MAX_BATCH
    if (!Number.isSafeInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > MAX_MAX_BATCH) {
      throw new InvalidOptionsError(`maxBatch must be an integer between 1 and ${MAX_MAX_BATCH}`, { maxBatch: init.maxBatch })
    }
    this.malformedWarn = new RateLimitedWarn(this.log, 'malformed MQTT messages dropped')
    this.rejectedWarn = new RateLimitedWarn(this.log, 'MQTT readings refused by ingest')
  }

  // ------------------------------------------------------------------ lifecycle

  async start (): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') throw new ClosedError('MQTT ingest', { clientId: this.clientId })
    this.starting ??= this.connectAndSubscribe()
    await this.starting
  }

  private async connectAndSubscribe (): Promise<void> {
    this.state = 'running'
    const client = mqtt.connect(this.url, {
      clientId: this.clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: START_TIMEOUT_MS,
      manualConnect: true
    })
    this.client = client
    const send = (client as unknown as { _sendPacket?: unknown })._sendPacket
    if (typeof send !== 'function') {
      this.state = 'stopped'
      client.end(true)
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', 'this mqtt.js version has no _sendPacket: cannot acknowledge messages once durable')
    }
    client.handleMessage = (packet, callback) => { this.onMessage(packet, callback) }
    this.listen(client)
    client.connect()

    const topics = [...this.regions].map(r => `${TOPIC_ROOT}/${r}/#`)
    try {
      await withTimeout(this.connectedAndSubscribed(client, topics), START_TIMEOUT_MS,
        `no connection to the MQTT broker ${this.url} within ${START_TIMEOUT_MS} ms`)
    } catch (err) {
      await this.stop()
      throw isEdgeMeshError(err)
        ? err
        : new EdgeMeshError('EM_ERR_UNAVAILABLE', `MQTT ingest could not start: ${(err as Error).message}`, { url: this.url }, { cause: err })
    }
    this.log.info({ url: this.url, clientId: this.clientId, topics, qos: this.qos }, 'MQTT ingest started')
  }

  async stop (): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped'
      return
    }
    this.stopping ??= this.shutdown()
    await this.stopping
  }

  private async shutdown (): Promise<void> {
    this.state = 'stopping'
    this.wakeBackoff?.()
    if (this.pumping !== undefined) {
      const drained = await settlesWithin(this.pumping, STOP_DRAIN_MS)
      if (!drained) this.log.warn({ waitedMs: STOP_DRAIN_MS }, 'MQTT ingest stopped with a batch still being written: it is not acknowledged and the broker will deliver it again')
    }
    this.acksAllowed = false
    this.queue = []
    this.held = undefined
    const client = this.client
    if (client !== undefined) await endClient(client)
    this.malformedWarn.close()
    this.rejectedWarn.close()
    this.state = 'stopped'
    this.log.info({ ...this.counts }, 'MQTT ingest stopped')
  }

  stats (): MqttIngestStats {
    return {
      connected: this.client?.connected === true,
      ...this.counts,
      paused: this.manualPause || this.overloaded
    }
  }

  pause (): void {
    if (this.manualPause) return
    this.manualPause = true
    this.log.info('MQTT ingest paused')
  }

  resume (): void {
    if (!this.manualPause) return
    this.manualPause = false
    this.log.info('MQTT ingest resumed')
    this.schedulePump()
  }

  private listen (client: MqttClient): void {
    client.on('connect', packet => {
      this.wasConnected = true
      this.lastError = undefined
      this.log.info({ url: this.url, clientId: this.clientId, sessionPresent: packet.sessionPresent }, 'connected to the MQTT broker')
    })
    client.on('close', () => {
      // Messages of the closed connection cannot be acknowledged any more: the broker delivers
      // the QoS 1 ones again on the next connection (persistent session), so drop them here.
      this.queue = this.queue.filter(r => r.ack === undefined)
      this.held = undefined
      if (this.state !== 'running') this.log.debug({ url: this.url }, 'MQTT connection closed (stopping)')
      else if (this.wasConnected) this.log.warn({ url: this.url }, 'MQTT connection closed')
      else this.log.debug({ url: this.url }, 'MQTT connection attempt closed')
      this.wasConnected = false
    })
    client.on('reconnect', () => { this.log.debug({ url: this.url }, 'reconnecting to the MQTT broker') })
    client.on('error', err => {
      // While the broker is away mqtt.js fails every reconnect attempt the same way: warn once.
      const level = err.message === this.lastError ? 'debug' : 'warn'
      this.lastError = err.message
      this.log[level]({ url: this.url, err }, 'MQTT client error')
    })
  }

  private async connectedAndSubscribed (client: MqttClient, topics: string[]): Promise<void> {
    if (!client.connected) {
      await new Promise<void>((resolve, reject) => {
        const onConnect = (): void => { client.off('end', onEnd); resolve() }
        const onEnd = (): void => { client.off('connect', onConnect); reject(new Error('client ended before connecting')) }
        client.once('connect', onConnect)
        client.once('end', onEnd)
      })
    }
    const granted = await client.subscribeAsync(topics, { qos: this.qos })
    const refused = granted.filter(g => g.qos !== 0 && g.qos !== 1)
    if (refused.length > 0) {
      throw new EdgeMeshError('EM_ERR_UNAVAILABLE', `the MQTT broker refused the subscriptions ${refused.map(g => g.topic).join(', ')}`, { url: this.url })
    }
  }

  // ------------------------------------------------------------------ receiving

  private onMessage (packet: IPublishPacket, callback: (err?: Error) => void): void {
    if (this.state !== 'running') {
      // Neither ingested nor acknowledged: the broker keeps it for the next session.
      callback(DEFERRED)
      return
    }
    this.counts.messages++
    const ack = packet.qos > 0 && packet.messageId !== undefined
      ? { messageId: packet.messageId, stream: this.client?.stream }
      : undefined
    const topic = typeof packet.topic === 'string' ? packet.topic : String(packet.topic)
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const decoded = decodeMessage(topic, payload, this.regions)
    if (decoded.ok) {
      const ifAbsent = packet.retain && decoded.reading.ts === undefined
      if (ifAbsent) this.counts.retained++
      this.queue.push({ region: decoded.region, reading: decoded.reading, ack, ifAbsent })
    } else {
      this.counts.malformed++
      this.malformedWarn.note({ topic: topic.slice(0, 300), reason: decoded.reason })
      this.queue.push({ region: undefined, reading: undefined, ack, ifAbsent: false })
    }
    if (this.queue.length >= this.maxBatch) this.held = callback
    else callback(DEFERRED)
    this.schedulePump()
  }

  private releaseHeld (): void {
    const held = this.held
    if (held === undefined || this.queue.length >= this.maxBatch) return
    this.held = undefined
    held(DEFERRED)
  }

  // ------------------------------------------------------------------ writing

  /** Starts the pump on the next turn of the event loop, so that a burst of messages forms one batch. */
  private schedulePump (): void {
    if (this.pumpScheduled || this.pumping !== undefined) return
    this.pumpScheduled = true
    setImmediate(() => {
      this.pumpScheduled = false
      if (this.pumping === undefined) {
        this.pumping = this.pump().finally(() => { this.pumping = undefined })
      }
    })
  }

  /** Writes batches one at a time while there are messages, then stops. */
  private async pump (): Promise<void> {
    while (this.state === 'running' && !this.manualPause && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch)
      this.releaseHeld()
      const durable = await this.commit(batch)
      if (durable) this.acknowledge(batch)
    }
  }

  /** Ingests the readings of a batch, region by region. False if it was given up (stopping). */
  private async commit (batch: Received[]): Promise<boolean> {
    // Retained "last known values" go in their own ingest call, after the live readings of their region.
    const byRegion = new Map<string, { live: ReadingInput[], ifAbsent: ReadingInput[] }>()
    for (const r of batch) {
      if (r.region === undefined || r.reading === undefined) continue
      let lists = byRegion.get(r.region)
      if (lists === undefined) byRegion.set(r.region, lists = { live: [], ifAbsent: [] })
      ;(r.ifAbsent ? lists.ifAbsent : lists.live).push(r.reading)
    }
    for (const [region, { live, ifAbsent }] of byRegion) {
      if (live.length > 0 && !await this.ingestWithRetry(region, live, false)) return false
      if (ifAbsent.length > 0 && !await this.ingestWithRetry(region, ifAbsent, true)) return false
    }
    return true
  }

  /**
   * Ingests `readings` until it succeeds: waits and retries while ingest is overloaded; on any
   * other error retries the readings one by one and counts the refused ones. False if it gave up
   * because the ingest is stopping.
   */
  private async ingestWithRetry (region: string, readings: ReadingInput[], ifAbsent: boolean): Promise<boolean> {
    for (;;) {
      try {
        const result = await this.ingest(region, readings, ifAbsent ? { ifAbsent } : undefined)
        this.counts.accepted += result.accepted
        this.counts.duplicates += result.duplicates
        this.setOverloaded(false)
        return true
      } catch (err) {
        if (isEdgeMeshError(err, 'EM_ERR_OVERLOADED') || isEdgeMeshError(err, 'EM_ERR_UNAVAILABLE')) {
          this.setOverloaded(true, err)
          if (!await this.backoff(retryAfterMs(err))) return false
          continue
        }
        if (readings.length > 1) {
          for (const reading of readings) {
            if (!await this.ingestWithRetry(region, [reading], ifAbsent)) return false
          }
          return true
        }
        this.counts.rejected++
        this.rejectedWarn.note({
          region,
          sensor: readings[0]?.sensor,
          code: isEdgeMeshError(err) ? err.code : undefined,
          err: isEdgeMeshError(err) ? undefined : err
        })
        return true
      }
    }
  }

  private setOverloaded (overloaded: boolean, err?: EdgeMeshError): void {
    if (overloaded === this.overloaded) return
    this.overloaded = overloaded
    if (overloaded) this.log.warn({ code: err?.code, retryAfterMs: err?.details.retryAfterMs }, 'ingest overloaded: MQTT ingest paused, acknowledgements held')
    else this.log.info('ingest accepts again: MQTT ingest resumed')
  }

  /** Waits `ms`, or less if the ingest stops. False if it is stopping. */
  private async backoff (ms: number): Promise<boolean> {
    if (this.state !== 'running') return false
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.wakeBackoff = undefined; resolve() }, ms)
      this.wakeBackoff = () => { clearTimeout(timer); this.wakeBackoff = undefined; resolve() }
    })
    return this.state === 'running'
  }

  /** Sends the PUBACKs of a batch, in arrival order, for the messages of the current connection. */
  private acknowledge (batch: Received[]): void {
    const client = this.client
    if (client === undefined || !this.acksAllowed || !client.connected) return
    const send = (client as unknown as { _sendPacket: SendPacket })._sendPacket.bind(client)
    for (const r of batch) {
      if (r.ack !== undefined && r.ack.stream === client.stream) send({ cmd: 'puback', messageId: r.ack.messageId })
    }
  }
}

// ------------------------------------------------------------------ decoding

/** Maps a topic and payload to a reading, or says why it is malformed. */
function decodeMessage (topic: string, payload: Uint8Array, regions: ReadonlySet<string>): Decoded {
  const prefix = `${TOPIC_ROOT}/`
  if (!topic.startsWith(prefix)) return { ok: false, reason: 'topic is not under sensors/' }
  const slash = topic.indexOf('/', prefix.length)
  if (slash < 0) return { ok: false, reason: 'topic has no sensor id' }
  const region = topic.slice(prefix.length, slash)
  if (!regions.has(region)) return { ok: false, reason: 'not a region of this gateway' }
  const sensor = topic.slice(slash + 1)
  if (!isValidSensorId(sensor)) return { ok: false, reason: 'empty or invalid sensor id' }
  if (payload.byteLength > MAX_PAYLOAD_BYTES) return { ok: false, reason: `payload over ${MAX_PAYLOAD_BYTES} bytes` }

  let json: unknown
  try {
    json = JSON.parse(utf8.decode(payload))
  } catch {
    return { ok: false, reason: 'payload is not UTF-8 JSON' }
  }
  let input: unknown
  if (isEnvelope(json)) {
    if (Object.prototype.hasOwnProperty.call(json, 'sensor')) return { ok: false, reason: 'the sensor comes from the topic, not the payload' }
    input = { ...json, sensor }
  } else {
    input = { sensor, value: json as JsonValue }
  }
  try {
    assertReadingInput(input)
  } catch (err) {
    return { ok: false, reason: (err as Error).message }
  }
  return { ok: true, region, reading: input }
}

export { decodeMessage as decodeMqttMessage }

/** A plain JSON object with a `value` key: `{ value, ts?, unit? }`. */
function isEnvelope (json: unknown): json is Record<string, unknown> {
  return typeof json === 'object' && json !== null && !Array.isArray(json) &&
    Object.prototype.hasOwnProperty.call(json, 'value')
}

// ------------------------------------------------------------------ helpers

function validUrl (url: unknown): string {
  if (typeof url !== 'string') throw new InvalidOptionsError('url must be a string', { url })
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new InvalidOptionsError(`url is not a URL: ${url}`, { url })
  }
  if (!URL_PROTOCOLS.has(parsed.protocol)) {
    throw new InvalidOptionsError(`url must use one of ${[...URL_PROTOCOLS].join(' ')}, got ${parsed.protocol}`, { url })
  }
  return url
}

function validRegions (regions: unknown): Set<string> {
  if (!Array.isArray(regions) || regions.length === 0) throw new InvalidOptionsError('regions must be a non-empty array', { regions })
  for (const r of regions) {
    if (!isValidRegionName(r)) throw new InvalidOptionsError(`invalid region name: ${String(r)}`, { region: r })
  }
  return new Set(regions as string[])
}

/** `details.retryAfterMs` of an overload error, clamped to [MIN_RETRY_MS, MAX_RETRY_MS]. */
function retryAfterMs (err: EdgeMeshError): number {
  const ms = err.details.retryAfterMs
  const wanted = typeof ms === 'number' && Number.isFinite(ms) ? ms : DEFAULT_RETRY_MS
  return Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, wanted))
}

async function withTimeout<T> (p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new EdgeMeshError('EM_ERR_UNAVAILABLE', message, { timeoutMs: ms })) }, ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Disconnects cleanly (DISCONNECT, so the broker keeps the session) or, failing that within a bound, drops the socket. */
async function endClient (client: MqttClient): Promise<void> {
  // Without this, a client between connection attempts (broker down, or no CONNACK yet) goes on
  // reconnecting after end().
  client.options.reconnectPeriod = 0
  const force = !client.connected
  const ended = new Promise<void>(resolve => { client.end(force, {}, () => { resolve() }) })
  if (!await settlesWithin(ended, END_TIMEOUT_MS)) {
    client.stream?.destroy()
    await settlesWithin(ended, END_TIMEOUT_MS)
  }
}

/** A warn log line at most every `WARN_EVERY_MS`, with the count of events since the last line. */
class RateLimitedWarn {
  private readonly log: Logger
  private readonly msg: string
  private count = 0
  private last: Record<string, unknown> = {}
  private lastAt = 0
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor (log: Logger, msg: string) {
    this.log = log
    this.msg = msg
  }

  note (fields: Record<string, unknown>): void {
    this.count++
    this.last = fields
    if (this.timer !== undefined) return
    const wait = this.lastAt + WARN_EVERY_MS - Date.now()
    if (wait <= 0) {
      this.flush()
      return
    }
    this.timer = setTimeout(() => { this.timer = undefined; this.flush() }, wait)
    this.timer.unref()
  }

  /** Logs what is pending and stops the timer. */
  close (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.flush()
  }

  private flush (): void {
    if (this.count === 0) return
    this.log.warn({ ...this.last, count: this.count }, this.msg)
    this.count = 0
    this.lastAt = Date.now()
  }
}
