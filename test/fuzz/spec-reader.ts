/**
 * An independent reader of the wire primitives of docs/PROTOCOL.md, for the fuzz tests' reference
 * parsers: u8, varuint (unsigned LEB128), bytes (varuint length, then the bytes) and str (bytes
 * holding UTF-8). It shares no code with lib0.
 *
 * `strict` takes the documented form only: a varuint is the shortest LEB128 of a value below 2^32
 * (at most 5 bytes). Otherwise any LEB128 of a value below 2^53 is taken, overlong forms included,
 * as the decoders do. Every read returns undefined where the input does not hold a valid field.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export class SpecReader {
  private readonly bytes: Uint8Array
  private readonly strict: boolean
  pos = 0

  constructor (bytes: Uint8Array, strict: boolean) {
    this.bytes = bytes
    this.strict = strict
  }

  get atEnd (): boolean {
    return this.pos === this.bytes.length
  }

  u8 (): number | undefined {
    return this.pos < this.bytes.length ? this.bytes[this.pos++] : undefined
  }

  varuint (): number | undefined {
    let value = 0n
    let shift = 0n
    const start = this.pos
    for (;;) {
      if (this.pos >= this.bytes.length) return undefined
      const b = this.bytes[this.pos++]
      value |= BigInt(b & 0x7f) << shift
      shift += 7n
      if (b < 0x80) break
      if (this.strict && this.pos - start >= 5) return undefined
      // (lib0 reads a zero-padded varint of about 147 bytes or more as NaN.)
      if (this.pos - start >= 140) return undefined
    }
    const length = this.pos - start
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
    if (this.strict) {
      if (value >= 2n ** 32n) return undefined
      // Shortest form: a multi-byte varuint never ends in a zero byte.
      if (length > 1 && this.bytes[this.pos - 1] === 0) return undefined
    }
    return Number(value)
  }

  bytesField (): Uint8Array | undefined {
    const n = this.varuint()
    if (n === undefined || n > this.bytes.length - this.pos) return undefined
    const out = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  str (): string | undefined {
    const b = this.bytesField()
    if (b === undefined) return undefined
    try {
      return utf8.decode(b)
    } catch {
      return undefined
    }
  }
}

/** Equal bytes. */
export function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}

/** False when `part` is a view on the buffer of `whole` that reaches outside the bytes of `whole`. */
export function staysInView (part: Uint8Array, whole: Uint8Array): boolean {
  return part.buffer !== whole.buffer || (part.byteOffset >= whole.byteOffset && part.byteOffset + part.length <= whole.byteOffset + whole.length)
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')
