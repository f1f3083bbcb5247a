/**
 * Reading chunks: the elements of every writer log, and the encoding of a view snapshot.
 *
 * A writer log is the root `Y.Array` named `w/<writer>` of a region doc. Each element is one
 * `Uint8Array` (Yjs `ContentBinary`, which Yjs never merges, so appends stay O(1)) holding a chunk
 * of readings, all written by that writer:
 *
 *   chunk    := version:u8 (=1)  writer:str  count:varuint  reading{count}
 *   reading  := sensor:str  t:u8[8]  kind:u8  payload
 *   t        := HLC timestamp: wall milliseconds as u48 big-endian, then the logical counter as u16
 *               big-endian (byte order = HLC order; see @edge-mesh/hlc)
 *   kind     := 0 tombstone (no payload)
 *             | 1 null | 2 false | 3 true   (no payload)
 *             | 4 number: float64 big-endian (8 bytes)
 *             | 5 string: str
 *             | 6 json: str holding the JSON text of an array or object
 *   str      := length:varuint  utf8-bytes{length}
 *   varuint  := unsigned LEB128 of a value below 2^32 (at most 5 bytes)
 *
 * A view snapshot (persisted beside the doc, see @edge-mesh/persistence) lists the winning reading
 * of every key, tombstones included, with a writer table:
 *
 *   view     := version:u8 (=1)  writers:varuint  writer:str{writers}  count:varuint  entry{count}
 *   entry    := writerIndex:varuint  reading
 *
 * Decoders check every length against the bytes left and reject anything malformed, truncated,
 * trailing or out of contract with an `InvalidUpdateError` (code `EM_ERR_INVALID_UPDATE`).
 */
import { InvalidUpdateError, InvalidValueError } from '@edge-mesh/errors'
import { TIMESTAMP_BYTE_LENGTH } from '@edge-mesh/hlc'
import { HARD_MAX_VALUE_BYTES, MAX_SENSOR_LENGTH, deepFreeze, isValidSensorId, type JsonValue } from './value.ts'

export const CHUNK_VERSION = 1
export const VIEW_VERSION = 1

export const KIND_TOMBSTONE = 0
export const KIND_NULL = 1
export const KIND_FALSE = 2
export const KIND_TRUE = 3
export const KIND_NUMBER = 4
export const KIND_STRING = 5
export const KIND_JSON = 6

/** The smallest encoded reading: a 1-byte sensor, its length byte, t and kind. */
const MIN_READING_BYTES = 2 + TIMESTAMP_BYTE_LENGTH + 1

/** A reading, as held in the view and returned by writes. Tombstones have `deleted: true` and `value: null`. */
export interface Reading {
  readonly sensor: string
  readonly value: JsonValue
  /** HLC timestamp, 16 hex characters; see @edge-mesh/hlc. */
  readonly t: string
  /** Writer id (peer id of the gateway that wrote it). */
  readonly writer: string
  readonly deleted: boolean
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** A growable byte buffer with the few writes the chunk format needs. */
export class ChunkEncoder {
  private buf: Uint8Array
  private view: DataView
  pos = 0

  constructor (initialSize: number = 4096) {
    this.buf = new Uint8Array(initialSize)
    this.view = new DataView(this.buf.buffer)
  }

  reset (): void {
    this.pos = 0
  }

  private ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8 (v: number): void {
    this.ensure(1)
    this.buf[this.pos++] = v
  }

  varuint (v: number): void {
    this.ensure(5)
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80
      v = Math.floor(v / 128)
    }
    this.buf[this.pos++] = v
  }

  float64 (v: number): void {
    this.ensure(8)
    this.view.setFloat64(this.pos, v, false)
    this.pos += 8
  }

  /** A length-prefixed UTF-8 string, with a fast path for short ASCII. */
  str (s: string): void {
    const n = s.length
    if (n < 128) {
      this.ensure(n + 1)
      const start = this.pos
      this.buf[start] = n
      let i = 0
      for (; i < n; i++) {
        const c = s.charCodeAt(i)
        if (c > 0x7f) break
        this.buf[start + 1 + i] = c
      }
      if (i === n) {
        this.pos = start + 1 + n
        return
      }
    }
    // TextEncoder would replace a lone surrogate: refuse it rather than store something else.
    if (!s.isWellFormed()) throw new InvalidValueError('strings must be well-formed Unicode (no lone surrogates)')
    const bytes = textEncoder.encode(s)
    this.varuint(bytes.length)
    this.bytes(bytes)
  }

  /** Bytes `start` to `end` of `b`, copied without a subarray. */
  range (b: Uint8Array, start: number, end: number): void {
    const n = end - start
    this.ensure(n)
    const buf = this.buf
    const pos = this.pos
    for (let i = 0; i < n; i++) buf[pos + i] = b[start + i]
    this.pos = pos + n
  }

  bytes (b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /** An HLC timestamp string as its 8 bytes. `t` must be valid (it comes from an Hlc or a decoder). */
  timestamp (t: string): void {
    this.ensure(TIMESTAMP_BYTE_LENGTH)
    const buf = this.buf
    const pos = this.pos
    for (let i = 0; i < TIMESTAMP_BYTE_LENGTH; i++) {
      buf[pos + i] = (hexValue(t.charCodeAt(2 * i)) << 4) | hexValue(t.charCodeAt(2 * i + 1))
    }
    this.pos = pos + TIMESTAMP_BYTE_LENGTH
  }

  /**
   * A timestamp given as the three integers a view slot keeps (the wall's upper and lower 24 bits,
   * the logical counter), as its 8 bytes.
   */
  timestampParts (hi: number, lo: number, lg: number): void {
    this.ensure(TIMESTAMP_BYTE_LENGTH)
    const buf = this.buf
    const pos = this.pos
    buf[pos] = hi >>> 16
    buf[pos + 1] = (hi >>> 8) & 0xff
    buf[pos + 2] = hi & 0xff
    buf[pos + 3] = lo >>> 16
    buf[pos + 4] = (lo >>> 8) & 0xff
    buf[pos + 5] = lo & 0xff
    buf[pos + 6] = lg >>> 8
    buf[pos + 7] = lg & 0xff
    this.pos = pos + TIMESTAMP_BYTE_LENGTH
  }

  /** A copy of the bytes written so far. */
  toBytes (): Uint8Array {
    return this.buf.slice(0, this.pos)
  }
}

/** A value prepared for encoding: its kind and, for numbers and strings, the payload. */
export interface EncodedValue {
  kind: number
  /** number for KIND_NUMBER, string for KIND_STRING and KIND_JSON */
  payload: number | string | undefined
  /** The payload's size in bytes, an upper bound for strings (UTF-16 length × 3). */
  size: number
}

export function writeReading (enc: ChunkEncoder, sensor: string, t: string, kind: number, payload: number | string | undefined): void {
  enc.str(sensor)
  enc.timestamp(t)
  writeValue(enc, kind, payload)
}

function writeValue (enc: ChunkEncoder, kind: number, payload: number | string | undefined): void {
  enc.u8(kind)
  if (kind === KIND_NUMBER) enc.float64(payload as number)
  else if (kind === KIND_STRING || kind === KIND_JSON) enc.str(payload as string)
}

/** The value of a lowercase hex digit's character code. @internal */
export const hexValue = (c: number): number => c <= 57 ? c - 48 : c - 87
const hexChar = (v: number): number => v < 10 ? 48 + v : 87 + v

/**
 * The key of a sensor id in a region's byte index (see RegionState): FNV-1a over its bytes, in 30
 * bits (a small integer, which V8 keeps unboxed), for ids of 1 to MAX_SENSOR_LENGTH printable
 * ASCII characters (0x20-0x7e), whose UTF-8 bytes are their character codes; -1 for any other id.
 * A reading's id is then found from the chunk's bytes without building a string.
 */
export function sensorHash (sensor: string): number {
  const n = sensor.length
  if (n === 0 || n > MAX_SENSOR_LENGTH) return -1
  let h = FNV_OFFSET
  for (let i = 0; i < n; i++) {
    const c = sensor.charCodeAt(i)
    if (c < 0x20 || c > 0x7e) return -1
    h = Math.imul(h ^ c, FNV_PRIME)
  }
  return h & HASH_MASK
}

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193
const HASH_MASK = 0x3fffffff

/** The 8 bytes at `at` as an HLC timestamp string (every 8-byte sequence is a valid timestamp). */
function timestampAt (b: Uint8Array, at: number): string {
  const b0 = b[at]; const b1 = b[at + 1]; const b2 = b[at + 2]; const b3 = b[at + 3]
  const b4 = b[at + 4]; const b5 = b[at + 5]; const b6 = b[at + 6]; const b7 = b[at + 7]
  return String.fromCharCode(
    hexChar(b0 >> 4), hexChar(b0 & 15), hexChar(b1 >> 4), hexChar(b1 & 15),
    hexChar(b2 >> 4), hexChar(b2 & 15), hexChar(b3 >> 4), hexChar(b3 & 15),
    hexChar(b4 >> 4), hexChar(b4 & 15), hexChar(b5 >> 4), hexChar(b5 & 15),
    hexChar(b6 >> 4), hexChar(b6 & 15), hexChar(b7 >> 4), hexChar(b7 & 15))
}

function fail (message: string, details: Record<string, unknown> = {}): never {
  throw new InvalidUpdateError(message, details)
}

/**
 * Reads a chunk or a view snapshot. `next()` advances to the next reading, checks it and leaves
 * its fields: the sensor id's byte range and `sensorHash`, the timestamp as the three integers a
 * view slot keeps (`tHi`, `tLo`, `tLg`), `kind` and the value's byte range. Strings are built only
 * when asked for (`sensor`, `t`, `value()`), so that a merge that finds its slot by the id's bytes
 * and compares integers allocates nothing but a winning value.
 */
export class ChunkDecoder {
  readonly bytes: Uint8Array
  private readonly dv: DataView
  pos = 0
  remaining = 0
  writer = ''
  kind = 0
  /** Start of the current reading (its sensor length byte). */
  readingStart = 0
  /** The current sensor id's UTF-8 bytes. */
  sensorStart = 0
  sensorLength = 0
  /** The id's key in the byte index ({@link sensorHash}), or -1 if it is not printable ASCII. */
  sensorHash = -1
  /** The wall's upper and lower 24 bits and the logical counter of the current timestamp. */
  tHi = 0
  tLo = 0
  tLg = 0
  valueStart = 0
  valueEnd = 0
  /** The id as a string, once built (ids other than printable ASCII are built to be checked). */
  private sensorText: string | undefined = undefined
  private tAt = 0
  /** Where a string or JSON value's bytes start (after their length). */
  private payloadStart = 0

  constructor (bytes: Uint8Array) {
    this.bytes = bytes
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Reads a chunk header; returns the reading count. */
  readChunkHeader (): number {
    const version = this.u8()
    if (version !== CHUNK_VERSION) fail(`unknown chunk version ${version}`, { version })
    this.writer = this.str()
    if (!isValidWriterId(this.writer)) fail('chunk writer id is invalid', { writer: this.writer })
    this.remaining = this.count()
    return this.remaining
  }

  /** A count, checked against what the bytes left can hold. */
  count (): number {
    const n = this.varuint()
    if (n * MIN_READING_BYTES > this.bytes.length - this.pos) fail('reading count exceeds the bytes left', { count: n })
    return n
  }

  /** Advances to the next reading; false when the chunk is done (and checks nothing trails it). */
  next (): boolean {
    if (this.remaining === 0) {
      if (this.pos !== this.bytes.length) fail('trailing bytes after the last reading', { trailing: this.bytes.length - this.pos })
      return false
    }
    this.remaining--
    this.readReading()
    return true
  }

  /** Reads one reading at the current position (used directly by the view decoder). */
  readReading (): void {
    const b = this.bytes
    this.readingStart = this.pos
    const n = this.varuint()
    const start = this.pos
    if (start + n > b.length) fail('truncated string')
    this.sensorStart = start
    this.sensorLength = n
    this.sensorText = undefined
    // Printable ASCII (the common case) is a valid id as it is; anything else is decoded and checked.
    let h = FNV_OFFSET
    let ascii = n > 0 && n <= MAX_SENSOR_LENGTH
    for (let i = 0; ascii && i < n; i++) {
      const c = b[start + i]
      if (c < 0x20 || c > 0x7e) ascii = false
      else h = Math.imul(h ^ c, FNV_PRIME)
    }
    if (ascii) {
      this.sensorHash = h & HASH_MASK
    } else {
      const sensor = decodeUtf8(b, start, n)
      if (!isValidSensorId(sensor)) fail('invalid sensor id in reading', { sensor })
      this.sensorText = sensor
      this.sensorHash = -1
    }
    const at = start + n
    if (at + TIMESTAMP_BYTE_LENGTH > b.length) fail('truncated timestamp')
    this.tAt = at
    this.tHi = (b[at] << 16) | (b[at + 1] << 8) | b[at + 2]
    this.tLo = (b[at + 3] << 16) | (b[at + 4] << 8) | b[at + 5]
    this.tLg = (b[at + 6] << 8) | b[at + 7]
    this.pos = at + TIMESTAMP_BYTE_LENGTH
    this.skipValue()
  }

  /** The current reading's sensor id. */
  get sensor (): string {
    return this.sensorText ?? (this.sensorText = decodeUtf8(this.bytes, this.sensorStart, this.sensorLength))
  }

  /** The current reading's timestamp as a string. */
  get t (): string {
    return timestampAt(this.bytes, this.tAt)
  }

  /** Whether the current sensor id is `key` (a string of printable ASCII compared to the bytes). */
  sensorIs (key: string): boolean {
    const n = this.sensorLength
    if (key.length !== n) return false
    const b = this.bytes
    const start = this.sensorStart
    for (let i = 0; i < n; i++) if (key.charCodeAt(i) !== b[start + i]) return false
    return true
  }

  /**
   * Skips over the next reading of a chunk this replica wrote and has already validated, leaving
   * only its byte range (`readingStart`, `valueEnd`); no strings are built. False at the end.
   */
  skipNext (): boolean {
    if (this.remaining === 0) return false
    this.remaining--
    this.readingStart = this.pos
    const n = this.varuint()
    this.pos += n + TIMESTAMP_BYTE_LENGTH
    this.skipValue()
    return true
  }

  /** The sensor id of the reading that starts at `at`. */
  sensorAt (at: number): string {
    const save = this.pos
    this.pos = at
    const s = this.str()
    this.pos = save
    return s
  }

  private skipValue (): void {
    this.kind = this.u8()
    this.valueStart = this.pos
    switch (this.kind) {
      case KIND_TOMBSTONE:
      case KIND_NULL:
      case KIND_FALSE:
      case KIND_TRUE:
        break
      case KIND_NUMBER:
        if (this.pos + 8 > this.bytes.length) fail('truncated number')
        this.pos += 8
        break
      case KIND_STRING:
      case KIND_JSON: {
        const n = this.varuint()
        if (n > HARD_MAX_VALUE_BYTES) fail('value exceeds the hard size limit', { bytes: n })
        if (this.pos + n > this.bytes.length) fail('truncated string value')
        this.payloadStart = this.pos
        this.pos += n
        break
      }
      default:
        fail(`unknown value kind ${this.kind}`, { kind: this.kind })
    }
    this.valueEnd = this.pos
  }

  /**
   * Checks the current reading's value as `value()` would, without building it when it is a
   * number or an ASCII string.
   */
  checkValue (): void {
    switch (this.kind) {
      case KIND_NUMBER:
        if (!Number.isFinite(this.dv.getFloat64(this.valueStart, false))) fail('number value is not finite')
        return
      case KIND_STRING: {
        // ASCII is valid UTF-8; anything else is decoded, which checks it.
        const b = this.bytes
        let i = this.payloadStart
        while (i < this.valueEnd && b[i] < 0x80) i++
        if (i < this.valueEnd) this.value()
        return
      }
      case KIND_JSON:
        this.value()
    }
  }

  /** Decodes the current reading's value (frozen for containers). */
  value (): JsonValue {
    switch (this.kind) {
      case KIND_TOMBSTONE:
      case KIND_NULL: return null
      case KIND_FALSE: return false
      case KIND_TRUE: return true
      case KIND_NUMBER: {
        const v = this.dv.getFloat64(this.valueStart, false)
        if (!Number.isFinite(v)) fail('number value is not finite')
        return v
      }
      case KIND_STRING: return this.strAt(this.valueStart)
      default: {
        const text = this.strAt(this.valueStart)
        let v: unknown
        try {
          v = JSON.parse(text)
        } catch {
          fail('json value does not parse')
        }
        if (v === null || typeof v !== 'object') fail('json value is not an array or object')
        return deepFreeze(v as JsonValue)
      }
    }
  }

  /** The current reading as a view entry. */
  reading (writer: string = this.writer): Reading {
    return { sensor: this.sensor, value: this.value(), t: this.t, writer, deleted: this.kind === KIND_TOMBSTONE }
  }

  u8 (): number {
    if (this.pos >= this.bytes.length) fail('unexpected end of chunk')
    return this.bytes[this.pos++]
  }

  varuint (): number {
    let v = 0
    let mul = 1
    for (let i = 0; i < 5; i++) {
      const b = this.u8()
      v += (b & 0x7f) * mul
      if (b < 0x80) {
        if (v > 0xffffffff) fail('varuint out of range')
        return v
      }
      mul *= 128
    }
    return fail('varuint longer than 5 bytes')
  }

  str (): string {
    const n = this.varuint()
    if (this.pos + n > this.bytes.length) fail('truncated string')
    const s = decodeUtf8(this.bytes, this.pos, n)
    this.pos += n
    return s
  }

  private strAt (at: number): string {
    const save = this.pos
    this.pos = at
    const s = this.str()
    this.pos = save
    return s
  }
}

function decodeUtf8 (bytes: Uint8Array, start: number, n: number): string {
  if (n <= 64) {
    let ascii = true
    for (let i = 0; i < n; i++) {
      if (bytes[start + i] > 0x7f) { ascii = false; break }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, start + n) as unknown as number[])
  }
  try {
    return textDecoder.decode(bytes.subarray(start, start + n))
  } catch {
    return fail('string is not valid UTF-8')
  }
}

// eslint-disable-next-line no-control-regex
const WRITER_RE = /^[^\u0000-\u001f\u007f]{1,128}$/

/** Writer ids (peer ids) are 1 to 128 characters without control characters. */
export function isValidWriterId (writer: unknown): writer is string {
  return typeof writer === 'string' && WRITER_RE.test(writer) && writer.isWellFormed()
}

/** Decodes every reading of a chunk (validating all of it). */
export function decodeChunk (bytes: Uint8Array): { writer: string, readings: Reading[] } {
  const dec = new ChunkDecoder(bytes)
  dec.readChunkHeader()
  const readings: Reading[] = []
  while (dec.next()) readings.push(dec.reading())
  return { writer: dec.writer, readings }
}

/** The writer and reading count of a chunk, from its header only. */
export function readChunkHeader (bytes: Uint8Array): { writer: string, count: number } {
  const dec = new ChunkDecoder(bytes)
  const count = dec.readChunkHeader()
  return { writer: dec.writer, count }
}

/** Prepares a checked value for encoding. The value must already satisfy the value contract. */
export function prepareValue (value: JsonValue): EncodedValue {
  switch (typeof value) {
    case 'number': return { kind: KIND_NUMBER, payload: value, size: 8 }
    case 'boolean': return { kind: value ? KIND_TRUE : KIND_FALSE, payload: undefined, size: 0 }
    case 'string': return { kind: KIND_STRING, payload: value, size: value.length * 3 }
    default: {
      if (value === null) return { kind: KIND_NULL, payload: undefined, size: 0 }
      const json = JSON.stringify(value)
      return { kind: KIND_JSON, payload: json, size: json.length * 3 }
    }
  }
}

/**
 * Builds a view snapshot reading by reading, so that a large view can be encoded in slices
 * between which the event loop runs.
 */
export class ViewSnapshotEncoder {
  private readonly writers = new Map<string, number>()
  private readonly body: ChunkEncoder
  private count = 0

  constructor (sizeHint: number = 4096) {
    this.body = new ChunkEncoder(sizeHint)
  }

  add (r: Reading): void {
    this.beginEntry(r.writer, r.sensor)
    this.body.timestamp(r.t)
    this.endEntry(r.deleted, r.value)
  }

  /** The same entry as `add`, with its timestamp as a view slot keeps it (no string made and parsed back). */
  addParts (sensor: string, hi: number, lo: number, lg: number, writer: string, deleted: boolean, value: JsonValue): void {
    this.beginEntry(writer, sensor)
    this.body.timestampParts(hi, lo, lg)
    this.endEntry(deleted, value)
  }

  /** An entry's writer index and sensor id. */
  private beginEntry (writer: string, sensor: string): void {
    let wi = this.writers.get(writer)
    if (wi === undefined) {
      wi = this.writers.size
      this.writers.set(writer, wi)
    }
    this.body.varuint(wi)
    this.body.str(sensor)
    this.count++
  }

  /** An entry's kind and value. */
  private endEntry (deleted: boolean, v: JsonValue): void {
    const body = this.body
    if (deleted) body.u8(KIND_TOMBSTONE)
    else if (typeof v === 'number') {
      body.u8(KIND_NUMBER)
      body.float64(v)
    } else {
      const p = prepareValue(v)
      writeValue(body, p.kind, p.payload)
    }
  }

  finish (): Uint8Array {
    const head = new ChunkEncoder(64 + 64 * this.writers.size)
    head.u8(VIEW_VERSION)
    head.varuint(this.writers.size)
    for (const w of this.writers.keys()) head.str(w)
    head.varuint(this.count)
    const body = this.body.toBytes()
    const out = new Uint8Array(head.pos + body.length)
    out.set(head.toBytes(), 0)
    out.set(body, head.pos)
    return out
  }
}

/** Encodes a view snapshot: every reading given, each with its writer. */
export function encodeViewSnapshot (readings: Iterable<Reading>, sizeHint: number = 4096): Uint8Array {
  const enc = new ViewSnapshotEncoder(sizeHint)
  for (const r of readings) enc.add(r)
  return enc.finish()
}

/** Decodes a view snapshot written by {@link encodeViewSnapshot}. */
export function decodeViewSnapshot (bytes: Uint8Array): Reading[] {
  const dec = new ChunkDecoder(bytes)
  const version = dec.u8()
  if (version !== VIEW_VERSION) fail(`unknown view snapshot version ${version}`, { version })
  const nWriters = dec.varuint()
  if (nWriters > bytes.length) fail('writer count exceeds the bytes left')
  const writers: string[] = []
  for (let i = 0; i < nWriters; i++) {
    const w = dec.str()
    if (!isValidWriterId(w)) fail('view writer id is invalid', { writer: w })
    writers.push(w)
  }
  const n = dec.count()
  const out: Reading[] = []
  for (let i = 0; i < n; i++) {
    const wi = dec.varuint()
    if (wi >= writers.length) fail('writer index out of range', { index: wi })
    dec.readReading()
    out.push(dec.reading(writers[wi]))
  }
  if (dec.pos !== bytes.length) fail('trailing bytes after the view snapshot')
  return out
}
