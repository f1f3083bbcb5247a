/**
 * The Noise crypto of the mesh (src/noise-crypto.ts): interchangeable with the package's default
 * (each decrypts what the other encrypts, at every size and in both input shapes), refusing what
 * the default refuses, and making one key object per session key, anew when the key's bytes change.
 */
import { randomBytes } from 'node:crypto'
import test from 'ava'
import fc from 'fast-check'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { meshNoiseCrypto, NODE_CIPHER_MIN_BYTES, sessionKey } from '../src/noise-crypto.ts'

/** What Noise passes: a buffer or a list of chunks (of the uint8arraylist version Noise uses). */
type Chunks = Parameters<typeof meshNoiseCrypto.chaCha20Poly1305Encrypt>[0]
const bytes = (x: Uint8Array | { subarray: () => Uint8Array }): Buffer => Buffer.from(x instanceof Uint8Array ? x : x.subarray())
const nonceOf = (n: number): Uint8Array => { const b = new Uint8Array(12); new DataView(b.buffer).setUint32(4, n, true); return b }
/** The same bytes as a list of chunks cut at `cuts`. */
const chunked = (data: Uint8Array, cuts: number[]): Chunks => {
  const list = new Uint8ArrayList()
  let at = 0
  for (const c of [...new Set(cuts.map(x => Math.min(x, data.length)))].sort((a, b) => a - b)) {
    if (c > at) list.append(data.subarray(at, c))
    at = Math.max(at, c)
  }
  if (at < data.length) list.append(data.subarray(at))
  return list as unknown as Chunks
}
const SIZES = [0, 1, 100, NODE_CIPHER_MIN_BYTES - 1, NODE_CIPHER_MIN_BYTES, 6600, 65_519]

test('what the mesh encrypts, the default decrypts, and the other way round, at every size', t => {
  const k = randomBytes(32)
  const ad = randomBytes(32)
  for (const [i, size] of SIZES.entries()) {
    const plain = randomBytes(size)
    const ours = meshNoiseCrypto.chaCha20Poly1305Encrypt(plain, nonceOf(i), ad, k)
    const theirs = defaultCrypto.chaCha20Poly1305Encrypt(plain, nonceOf(i), ad, k)
    t.deepEqual(bytes(ours), bytes(theirs), `${size} bytes: the same ciphertext and tag`)
    t.deepEqual(bytes(defaultCrypto.chaCha20Poly1305Decrypt(bytes(ours), nonceOf(i), ad, k)), plain, `${size} bytes: the default opens ours`)
    t.deepEqual(bytes(meshNoiseCrypto.chaCha20Poly1305Decrypt(bytes(theirs), nonceOf(i), ad, k)), plain, `${size} bytes: ours opens the default's`)
  }
})

test('a message given as a list of chunks encrypts and decrypts as the same bytes in one piece (property)', t => {
  const k = randomBytes(32)
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 0, maxLength: 5000 }), fc.array(fc.nat(5000), { maxLength: 4 }), fc.nat(1000),
    (plain, cuts, n) => {
      const whole = bytes(meshNoiseCrypto.chaCha20Poly1305Encrypt(plain, nonceOf(n), new Uint8Array(0), k))
      const fromList = bytes(meshNoiseCrypto.chaCha20Poly1305Encrypt(chunked(plain, cuts), nonceOf(n), new Uint8Array(0), k))
      t.deepEqual(fromList, whole)
      const opened = meshNoiseCrypto.chaCha20Poly1305Decrypt(chunked(whole, cuts), nonceOf(n), new Uint8Array(0), k)
      t.deepEqual(bytes(opened), Buffer.from(plain))
    }), { numRuns: 200 })
})

test('a changed byte, another nonce, another key or other associated data is refused, as by the default', t => {
  const k = randomBytes(32)
  const ad = randomBytes(16)
  for (const size of [100, 6600]) {
    const sealed = bytes(meshNoiseCrypto.chaCha20Poly1305Encrypt(randomBytes(size), nonceOf(1), ad, k))
    const flipped = Buffer.from(sealed)
    flipped[Math.floor(size / 2)] ^= 1
    const tagFlipped = Buffer.from(sealed)
    tagFlipped[tagFlipped.length - 1] ^= 1
    for (const [what, open] of [
      ['a changed byte', () => meshNoiseCrypto.chaCha20Poly1305Decrypt(flipped, nonceOf(1), ad, k)],
      ['a changed tag', () => meshNoiseCrypto.chaCha20Poly1305Decrypt(tagFlipped, nonceOf(1), ad, k)],
      ['another nonce', () => meshNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonceOf(2), ad, k)],
      ['another key', () => meshNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonceOf(1), ad, randomBytes(32))],
      ['other associated data', () => meshNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonceOf(1), randomBytes(16), k)]
    ] as const) {
      t.throws(open, undefined, `${size} bytes, ${what}`)
    }
  }
})

test('one key object per session key, and a new one when the key bytes change in place', t => {
  const k = new Uint8Array(randomBytes(32))
  const first = sessionKey(k)
  t.is(sessionKey(k), first, 'the same key array: the same key object')
  t.not(sessionKey(new Uint8Array(k)), first, 'another array with the same bytes gets its own')
  const plain = randomBytes(6600)
  k[0] ^= 0xff
  const rekeyed = sessionKey(k)
  t.not(rekeyed, first, 'changed bytes: a new key object')
  t.deepEqual(Buffer.from(rekeyed.export()), Buffer.from(k), 'holding the new bytes')
  t.deepEqual(bytes(meshNoiseCrypto.chaCha20Poly1305Encrypt(plain, nonceOf(3), new Uint8Array(0), k)),
    bytes(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonceOf(3), new Uint8Array(0), k)), 'and encrypting with the new key')
})
