/**
 * Noise length prefixes read without an exception (src/noise-lengths.ts): the reader splits any
 * byte stream into the same messages as the library's throwing reader, and a real Noise connection
 * secured through the decorator uses it and carries messages of every size intact.
 */
import { randomBytes } from 'node:crypto'
import test from 'ava'
import fc from 'fast-check'
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { LengthPrefixedDecoder, multiaddrConnectionPair } from '@libp2p/utils'
import type { MessageStream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { meshNoiseCrypto } from '../src/noise-crypto.ts'
import { noiseLength, quietLengthReads } from '../src/noise-lengths.ts'

/** The library's reader (`uint16BEDecode` of @chainsafe/libp2p-noise, not exported): throws on short input. */
const throwingLength = (data: Uint8ArrayList | Uint8Array): number => {
  if (data.length < 2) throw new RangeError('Could not decode int16BE')
  return data instanceof Uint8Array ? (data[0] << 8) + data[1] : data.getUint16(0)
}

const frame = (body: Uint8Array): Uint8Array => {
  const out = new Uint8Array(2 + body.length)
  out[0] = body.length >> 8
  out[1] = body.length & 0xff
  out.set(body, 2)
  return out
}

/** What a decoder yields for `stream` delivered in pieces cut at `cuts`. */
function split (lengthDecoder: (d: Uint8ArrayList | Uint8Array) => number, stream: Uint8Array, cuts: number[]): number[][] {
  const decoder = new LengthPrefixedDecoder({ lengthDecoder, encodingLength: () => 2, maxDataLength: 65_535 })
  const out: number[][] = []
  let at = 0
  for (const c of [...new Set(cuts.map(x => Math.min(x, stream.length)))].sort((a, b) => a - b).concat(stream.length)) {
    if (c <= at) continue
    for (const m of decoder.decode(stream.subarray(at, c))) out.push(Array.from(m.subarray()))
    at = c
  }
  return out
}

test('a byte stream cut anywhere splits into the same messages as with the throwing reader (property)', t => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { maxLength: 6 }),
    fc.array(fc.nat(2000), { maxLength: 8 }),
    (bodies, cuts) => {
      const parts = bodies.map(frame)
      const stream = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
      let at = 0
      for (const p of parts) { stream.set(p, at); at += p.length }
      const ours = split(noiseLength, stream, cuts)
      t.deepEqual(ours, split(throwingLength, stream, cuts))
      // The library's decoder drops empty messages either way; every other body arrives whole.
      t.deepEqual(ours, bodies.filter(b => b.length > 0).map(b => Array.from(b)))
    }), { numRuns: 300 })
})

test('the reader gives the big-endian length, and 0 while fewer than 2 bytes are buffered', t => {
  t.is(noiseLength(new Uint8Array(0)), 0)
  t.is(noiseLength(Uint8Array.of(0xff)), 0)
  t.is(noiseLength(new Uint8ArrayList(Uint8Array.of(0x12))), 0)
  t.is(noiseLength(Uint8Array.of(0x12, 0x34, 9)), 0x1234)
  t.is(noiseLength(new Uint8ArrayList(Uint8Array.of(0xff), Uint8Array.of(0xfe, 1))), 0xfffe, 'across chunks')
})

/** Secures both ends of an in-memory connection with the decorated Noise. */
async function securedPair (): Promise<[MessageStream, MessageStream]> {
  const [outbound, inbound] = multiaddrConnectionPair()
  const make = async (): Promise<ReturnType<ReturnType<typeof noise>>> =>
    quietLengthReads(noise({ crypto: meshNoiseCrypto }))({ privateKey: await generateKeyPair('Ed25519'), logger: defaultLogger() } as never)
  const [a, b] = [await make(), await make()]
  const options = { skipStreamMuxerNegotiation: true }
  const [x, y] = await Promise.all([a.secureOutbound(outbound, options), b.secureInbound(inbound, options)])
  return [x.connection, y.connection]
}

test('a real Noise connection secured through the decorator uses the reader and carries every size intact', async t => {
  const [a, b] = await securedPair()
  for (const c of [a, b]) {
    t.is((c as unknown as { decoder: { lengthDecoder: unknown } }).decoder.lengthDecoder, noiseLength,
      'the library\'s decoder is where the decorator expects it (if this fails after an upgrade, see src/noise-lengths.ts)')
  }
  const sizes = [1, 2, 3, 100, 6600, 65_519, 200_000]
  const sent = sizes.map(n => randomBytes(n))
  const total = sizes.reduce((n, s) => n + s, 0)
  const received = new Uint8ArrayList()
  const done = new Promise<void>(resolve => {
    b.addEventListener('message', (e) => {
      received.append(e.data)
      if (received.byteLength >= total) resolve()
    })
  })
  for (const m of sent) a.send(m)
  await done
  t.deepEqual(Buffer.from(received.subarray()), Buffer.concat(sent), 'the same bytes, in order')
  a.abort(new Error('test over'))
  b.abort(new Error('test over'))
})
